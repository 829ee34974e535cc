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
