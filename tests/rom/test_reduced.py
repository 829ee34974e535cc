"""ReducedModel (rom.reduced): HDF5 round trip, no FOM-sized array in the online part, the
basis read only by reconstruct, Galerkin solution equal to the projected FOM system, bad input."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from rom.errors import ParameterError, ShapeError, StoreError
from rom.rb import Reductor
from rom.reduced import ReducedModel
from solvers.problems import ThermalBlock


def build(n, N=5, estimator="orthonormalized", stability="min_theta"):
    tb = ThermalBlock((2, 2), n=n)
    box = tb.parameter_space
    rng = np.random.default_rng(0)
    red = Reductor(tb.affine, tb.inner_product, box.lower, box.upper, outputs=[tb.affine.rhs[0]],
                   stability=stability, scm_training=rng.uniform(box.lower, box.upper, (20, 4)))
    red.extend(np.stack([tb.solve(mu) for mu in rng.uniform(box.lower, box.upper, (N, 4))], axis=1))
    train = rng.uniform(box.lower, box.upper, (30, 4))
    return tb, red, red.model(estimator=estimator, eim_training=train)


def online_shapes(path):
    shapes = {}
    with h5py.File(path, "r") as h:
        h["online"].visititems(lambda name, obj: shapes.__setitem__(name, obj.shape)
                               if isinstance(obj, h5py.Dataset) else None)
    return shapes


@pytest.mark.parametrize("estimator", ["gram", "orthonormalized", "eim"])
def test_no_online_array_scales_with_the_number_of_dofs(tmp_path, estimator):
    shapes = []
    for n in (8, 16):
        tb, red, model = build(n, estimator=estimator, stability="scm" if estimator == "gram" else "min_theta")
        model.save(tmp_path / f"m{n}.h5")
        s = online_shapes(tmp_path / f"m{n}.h5")
        assert all(tb.space.n_dofs not in shape for shape in s.values())
        shapes.append(s)
    if estimator != "eim":  # EIM's d may differ with the mesh; all the others are equal
        assert shapes[0] == shapes[1]
    assert max(max(s, default=0) for s in shapes[1].values()) < 81  # (2x2 block, N=5) data only


def test_round_trip_and_lazy_basis(tmp_path):
    tb, red, model = build(10, stability="scm")
    path = tmp_path / "rm.h5"
    model.save(path)
    loaded = ReducedModel.load(path)
    assert loaded.basis is None
    mu = np.random.default_rng(1).uniform(0.1, 1.0, (7, 4))
    np.testing.assert_array_equal(loaded.solve(mu), model.solve(mu))
    for k, v in model.estimate(mu).items():
        np.testing.assert_allclose(loaded.estimate(mu)[k], v, rtol=1e-12)
    u = loaded.solve(mu[0])
    np.testing.assert_allclose(loaded.reconstruct(u), red.V @ u, rtol=1e-14)
    model.save(tmp_path / "nobasis.h5", basis=False)
    with pytest.raises(StoreError, match="basis"):
        ReducedModel.load(tmp_path / "nobasis.h5").reconstruct(u)


def test_galerkin_solution_is_the_projected_fom_system():
    tb, red, model = build(10)
    mu = np.array([0.2, 0.9, 0.5, 0.3])
    V = red.V
    A = V.T @ (tb.matrix(mu) @ V)
    b = V.T @ tb.affine.rhs[0]
    np.testing.assert_allclose(model.solve(mu), np.linalg.solve(A, b), rtol=1e-10)
    # vectorized over parameters = one at a time
    mus = np.stack([mu, np.full(4, 0.4)])
    np.testing.assert_allclose(model.solve(mus)[0], model.solve(mu), rtol=1e-12)
    assert model.output(mu) == pytest.approx(tb.affine.rhs[0] @ (V @ model.solve(mu)), rel=1e-12)


def test_bad_input_is_named(tmp_path):
    _, _, model = build(6)
    with pytest.raises(ParameterError, match="outside the box"):
        model.solve(np.full(4, 5.0))
    with pytest.raises(ParameterError, match="NaN"):
        model.estimate(np.array([np.nan, 0.5, 0.5, 0.5]))
    with pytest.raises(ParameterError, match="p = 4"):
        model.solve(np.ones(3))
    with pytest.raises(ShapeError, match="coeffs"):
        model.reconstruct(np.ones(3))
    (tmp_path / "junk.h5").write_bytes(b"junk")
    with pytest.raises(StoreError, match="not a readable HDF5 file"):
        ReducedModel.load(tmp_path / "junk.h5")
    with h5py.File(tmp_path / "other.h5", "w") as h:
        h.attrs["format"] = "something else"
    with pytest.raises(StoreError, match="not a romtk reduced model"):
        ReducedModel.load(tmp_path / "other.h5")
