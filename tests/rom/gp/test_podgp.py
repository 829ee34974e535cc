"""POD + GP on a parametrized 1-D field with a known formula."""

import numpy as np
import pytest

from rom.errors import ParameterError, RomError, ShapeError, StoreError
from rom.gp.podgp import PodGP

X = np.linspace(0, 1, 300)


def field(mu):
    # u(x; a, b) = exp(-a x) sin(pi b x): smooth in (a, b), quickly reducible
    return np.exp(-np.outer(X, mu[:, 0])) * np.sin(np.pi * np.outer(X, mu[:, 1]))


@pytest.fixture(scope="module")
def model():
    rng = np.random.default_rng(0)
    mu = rng.uniform([0.5, 1.0], [2.0, 2.0], (60, 2))
    return PodGP(tol=1e-6, n_restarts=1).fit(mu, field(mu))


def test_predicted_fields_and_uncertainty(model, tmp_path):
    rng = np.random.default_rng(1)
    mu = rng.uniform([0.5, 1.0], [2.0, 2.0], (40, 2))
    ref = field(mu)
    pred, std = model.predict(mu, return_std=True)
    assert pred.shape == ref.shape == std.shape
    assert np.linalg.norm(pred - ref) / np.linalg.norm(ref) < 1e-2
    # the predicted std brackets the error: the 95% band holds most nodal values
    inside = np.abs(pred - ref) <= 1.96 * std + 1e-6
    assert inside.mean() > 0.8
    lo, hi = model.quantiles(mu[:3])
    assert np.all(lo <= pred[:, :3] + 1e-15) and np.all(hi >= pred[:, :3] - 1e-15)
    model.save(tmp_path / "m.h5")
    again = PodGP.load(tmp_path / "m.h5")
    assert np.array_equal(again.predict(mu), model.predict(mu))


def test_bad_input(model, tmp_path):
    with pytest.raises(RomError, match="not fitted"):
        PodGP().predict(np.zeros((1, 2)))
    mu = np.zeros((5, 2))
    with pytest.raises(ShapeError, match="one column per"):
        PodGP().fit(mu, np.zeros((10, 4)))
    with pytest.raises(ParameterError, match="NaN"):
        PodGP().fit(mu, np.full((10, 5), np.nan))
    with pytest.raises(ShapeError, match="columns"):
        model.predict(np.zeros((2, 3)))
    import h5py

    with h5py.File(tmp_path / "other.h5", "w") as f:
        f.attrs["kind"] = "something else"
    with pytest.raises(StoreError, match="not a PodGP"):
        PodGP.load(tmp_path / "other.h5")


def test_round_trip_is_data_and_predicts_the_same(model, tmp_path):
    """The file holds numbers and text only (no opaque bytes a reader would unpickle), and the
    GP rebuilt from it predicts what the fitted one predicts, std included."""
    import h5py

    path = tmp_path / "m.h5"
    model.save(path)
    kinds = set()
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: kinds.add(obj.dtype.kind) if isinstance(obj, h5py.Dataset) else None)
    assert kinds <= {"f", "i"}
    again = PodGP.load(path)
    mu = np.random.default_rng(3).uniform([0.5, 1.0], [2.0, 2.0], (25, 2))
    m0, s0 = model.predict(mu, return_std=True)
    m1, s1 = again.predict(mu, return_std=True)
    np.testing.assert_allclose(m1, m0, rtol=0, atol=1e-12 * np.abs(m0).max())
    np.testing.assert_allclose(s1, s0, rtol=0, atol=1e-12 * s0.max())


def test_composite_kernels_round_trip(tmp_path):
    from rom.gp.kernels import Matern32, Product, Scaled, SquaredExponential, StudentTMixture, White

    rng = np.random.default_rng(4)
    mu = rng.uniform([0.5, 1.0], [2.0, 2.0], (30, 2))
    kernel = Scaled(Product(Matern32([0.7, 1.3]), SquaredExponential(2.0)), 0.8) + \
        StudentTMixture([0.3], [1.5], [0.2], dim=1) + White(1e-3)
    fitted = PodGP(n_modes=4, kernel=kernel, n_restarts=0).fit(mu, field(mu))
    fitted.save(tmp_path / "k.h5")
    again = PodGP.load(tmp_path / "k.h5")
    assert np.array_equal(again.gp_.kernel_.theta, fitted.gp_.kernel_.theta)
    x = rng.uniform([0.5, 1.0], [2.0, 2.0], (10, 2))
    np.testing.assert_allclose(again.predict(x), fitted.predict(x), rtol=0, atol=1e-12)


class _Exploit:
    marker = None

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def test_a_pickled_payload_is_refused_and_not_run(tmp_path):
    """Files in the old layout held the GP as a pickle, which runs code when read."""
    import pickle

    import h5py

    _Exploit.marker = tmp_path / "pwned"
    with h5py.File(tmp_path / "old.h5", "w") as f:
        f.attrs["kind"] = "romtk.PodGP"
        f["modes"] = np.eye(3)
        f["singular_values"] = np.ones(3)
        f["coefficients"] = np.ones((2, 3))
        f["gp"] = np.void(pickle.dumps(_Exploit()))
    with pytest.raises(StoreError, match="not a PodGP"):
        PodGP.load(tmp_path / "old.h5")
    with h5py.File(tmp_path / "old.h5", "r+") as f:  # even under the new format marker
        f.attrs["format"], f.attrs["format_version"], f.attrs["n_dofs"] = "romtk.PodGP", 1, 3
    with pytest.raises(StoreError, match="/gp"):
        PodGP.load(tmp_path / "old.h5")
    assert not _Exploit.marker.exists()


def test_a_kernel_tree_linking_one_group_twice_per_level_is_refused_quickly(tmp_path):
    """30 groups, each Sum naming the next as both children: 2^30 reads without a cap on terms."""
    import time

    import h5py

    from rom.gp._io import read_kernel

    with h5py.File(tmp_path / "k.h5", "w") as f:
        leaf = f.create_group("leaf")
        leaf.attrs["type"] = "White"
        leaf["noise"], leaf["log_bounds"] = 0.1, np.array([-5.0, 1.0])
        below = leaf
        for level in range(30):
            g = f.create_group(f"sum{level}")
            g.attrs["type"] = "Sum"
            g["k1"], g["k2"] = below, below  # hard links to one group
            below = g
    t0 = time.perf_counter()
    with h5py.File(tmp_path / "k.h5", "r") as f, pytest.raises(StoreError, match="larger than"):
        read_kernel(f["sum29"])
    assert time.perf_counter() - t0 < 5.0
