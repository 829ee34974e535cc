"""Transient SUPG advection-diffusion (issue 6): operators against scikit-fem on the same mesh,
SUPG parameter asymptotics, time-stepping rates, linearity in the amplitude, stabilization."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from rom.errors import ParameterError, ShapeError
from solvers.problems.advection_diffusion import AdvectionDiffusion, supg_tau


def test_operators_equal_scikit_fem_forms_on_the_same_mesh():
    import skfem
    from skfem.helpers import dot, grad

    p = AdvectionDiffusion(n=12, velocity=(1.0, 0.4))
    m = skfem.MeshTri(p.mesh.points.T.copy(), p.mesh.cells.T.copy())
    basis = skfem.Basis(m, skfem.ElementTriP1())
    b = p.velocity

    def bgrad(w):
        return b[0] * grad(w)[0] + b[1] * grad(w)[1]

    forms = {
        "mass": skfem.BilinearForm(lambda u, v, w: u * v),
        "diffusion": skfem.BilinearForm(lambda u, v, w: dot(grad(u), grad(v))),
        "advection": skfem.BilinearForm(lambda u, v, w: bgrad(u) * v),
        "supg_mass": skfem.BilinearForm(lambda u, v, w: u * bgrad(v)),
        "supg_advection": skfem.BilinearForm(lambda u, v, w: bgrad(u) * bgrad(v)),
    }
    f = p.free
    for name, form in forms.items():
        ref = sp.csr_matrix(form.assemble(basis))[f][:, f]
        assert abs(p.operators[name] - ref).max() <= 1e-13 * abs(ref).max(), name
    # (b.grad u, v) = -(u, b.grad v) for divergence-free b and zero boundary values
    assert abs(p.operators["advection"] + p.operators["supg_mass"]).max() < 1e-15


def test_supg_parameter_limits():
    h, speed = 0.01, 2.0
    # advection-dominated: tau -> h / (2|b|); diffusion-dominated: tau -> h^2 / (12 kappa)
    assert supg_tau(1e-9, h, speed) == pytest.approx(h / (2 * speed), rel=1e-6)
    assert supg_tau(1.0, h, speed) == pytest.approx(h**2 / 12.0, rel=1e-5)
    k = speed * h / 2 / np.array([0.999e-3, 1.001e-3])  # both sides of the series switch at Pe = 1e-3
    t = supg_tau(k, h, speed)
    assert t[0] == pytest.approx(t[1], rel=3e-3)
    p = AdvectionDiffusion(n=16)
    assert p.tau([0.3, 0.5, 1.0, 2e-3]) == pytest.approx(supg_tau(2e-3, 1 / 16, np.hypot(1.0, 0.25)))
    tm, ta = p.theta_functions()
    mu = np.array([[0.3, 0.5, 1.0, 2e-3], [0.2, 0.4, 3.0, 7e-3]])
    np.testing.assert_allclose(ta(mu)[:, 2], [p.tau(x) for x in mu], rtol=1e-13)
    np.testing.assert_allclose(tm(mu)[:, 1], ta(mu)[:, 2])


@pytest.mark.parametrize("theta,rate", [(1.0, 1.0), (0.5, 2.0)])
def test_time_stepping_converges_at_the_scheme_order(theta, rate):
    mu = [0.3, 0.5, 1.0, 5e-3]
    ref = AdvectionDiffusion(n=12, t_final=0.3, n_steps=1280, theta=0.5).solve(mu)[:, -1]
    errs = [np.linalg.norm(AdvectionDiffusion(n=12, t_final=0.3, n_steps=s, theta=theta).solve(mu)[:, -1] - ref)
            for s in (20, 40, 80)]
    rates = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    assert np.all(np.abs(rates - rate) < 0.15), rates


def test_solution_is_linear_in_the_amplitude():
    p = AdvectionDiffusion(n=16, n_steps=10)
    u1 = p.solve([0.3, 0.5, 0.1, 2e-3])
    u2 = p.solve([0.3, 0.5, 10.0, 2e-3])
    assert np.max(np.abs(u2 - 100 * u1)) <= 1e-12 * np.max(np.abs(u2))
    assert p.expand(u1).shape == (17 * 17, 11) and np.all(p.expand(u1)[0] == 0)


def test_supg_removes_the_outflow_undershoot_of_galerkin():
    mu = [0.8, 0.5, 1.0, 1e-3]  # Pe = 15 per cell; source close to the outflow wall
    out = {}
    for supg in (True, False):
        p = AdvectionDiffusion(n=24, n_steps=40, t_final=2.0, supg=supg, bounds={"x_s": (0.1, 0.9)})
        U = p.solve(mu)
        out[supg] = -U.min() / U.max()
    assert out[True] < 0.01 < 0.1 < out[False]


def test_bad_input():
    p = AdvectionDiffusion(n=8)
    with pytest.raises(ParameterError, match="kappa"):
        p.solve([0.3, 0.5, 1.0, 1.0])
    with pytest.raises(ParameterError, match="4 entries|takes 4"):
        p.load([0.3, 0.5])
    with pytest.raises(ShapeError, match="velocity"):
        AdvectionDiffusion(n=8, velocity=(1.0,))
    with pytest.raises(ShapeError, match="theta"):
        AdvectionDiffusion(n=8, theta=2.0)
