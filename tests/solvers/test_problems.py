"""Physics: thermal block, nonlinear heat, elasticity and heat boundary conditions against
analytic solutions, identities, and bad input."""

import numpy as np
import pytest

from rom.errors import BoundaryError, ConvergenceError, ParameterError
from solvers.fem import Space, diffusion, post
from solvers.fem.locate import evaluate
from solvers.mesh import interval, rectangle
from solvers.problems import Heat, LinearElasticity, NonlinearHeat, ThermalBlock, linear_conductivity


@pytest.fixture(scope="module")
def block():
    return ThermalBlock((3, 3), n=30)


def test_thermal_block_affine_sum_equals_direct_assembly(block):
    mu = np.linspace(0.1, 1.0, 9)
    A = block.matrix(mu)
    k = np.empty(block.mesh.n_cells)
    for j in range(3):
        for i in range(3):
            k[block.mesh.region(block.block_name(i, j))] = mu[j * 3 + i]
    K = diffusion(block.space, k)
    free = np.setdiff1d(np.arange(block.space.n_dofs), block.bc.dofs)
    diff = (A - K)[free][:, free]
    assert abs(diff).max() < 1e-12


def test_thermal_block_scaling_identity(block):
    # A(c mu) = c A(mu): the temperature scales as 1/c
    mu = np.full(9, 0.4)
    u1, u2 = block.solve(mu), block.solve(2 * mu)
    np.testing.assert_allclose(u1, 2 * u2, rtol=1e-10, atol=1e-14)


def test_thermal_block_uniform_conductivity_matches_the_series_solution():
    # -Lap u = 1 on the unit square, u = 0: u(1/2, 1/2) = 0.0736713532814 (Fourier series)
    p = ThermalBlock((3, 3), n=60, degree=2)
    u = p.solve(np.ones(9))
    centre = evaluate(p.space, u, np.array([[0.5, 0.5]]))[0]
    assert abs(centre - 0.0736713532814) < 1e-6


def test_thermal_block_parameter_errors_name_the_parameter(block):
    with pytest.raises(ParameterError, match="takes 9"):
        block.solve(np.ones(8))
    with pytest.raises(ParameterError, match=r"mu\[1\] \(mu_1_0\) = nan is NaN"):
        block.solve(np.r_[1.0, np.nan, np.ones(7)])
    with pytest.raises(ParameterError, match=r"mu\[8\] \(mu_2_2\) = 2.0 lies outside the box \[0.1, 1.0\]"):
        block.solve(np.r_[np.ones(8), 2.0])


def test_nonlinear_heat_matches_kirchhoff_solution_and_converges_quadratically():
    k0, beta, f = 2.0, 0.5, 3.0
    k, dk = linear_conductivity(k0, beta)
    p = NonlinearHeat(interval(64), k, dk, degree=2, source=f, dirichlet={"left": 1.0, "right": 2.0})
    T = p.solve(rtol=1e-14, atol=1e-11)
    # Kirchhoff: Phi(T) = k0 (T + beta T^2/2) solves -Phi'' = f, so Phi is known in closed form
    phi = lambda t: k0 * (t + beta * t**2 / 2)  # noqa: E731
    x = p.space.node_coords[:, 0]
    P = phi(1.0) * (1 - x) + phi(2.0) * x + f * x * (1 - x) / 2
    exact = (-1 + np.sqrt(1 + 2 * beta * P / k0)) / beta
    assert np.abs(T - exact).max() < 1e-7
    h = np.array(p.last.history)
    h = h[h > 1e-9 * h[0]]
    order = np.log(h[2:] / h[1:-1]) / np.log(h[1:-1] / h[:-2])
    assert order[-1] > 1.7


def test_nonlinear_heat_tangent_matches_finite_differences():
    k = lambda T: 1 + T**2  # noqa: E731
    dk = lambda T: 2 * T  # noqa: E731
    p = NonlinearHeat(rectangle(6, 5), k, dk, degree=2, source=1.0, dirichlet={"left": 0.5})
    rng = np.random.default_rng(1)
    T = rng.random(p.space.n_dofs)
    d = rng.standard_normal(p.space.n_dofs)
    for bc in p.bcs:
        T[bc.dofs] = bc.values
        d[bc.dofs] = 0.0
    eps = 1e-6
    fd = (p.residual(T + eps * d) - p.residual(T - eps * d)) / (2 * eps)
    np.testing.assert_allclose(p.jacobian(T) @ d, fd, rtol=1e-7, atol=1e-8)


def test_nonlinear_heat_reports_newton_divergence():
    # conductivity sqrt(1 - T) is undefined above T = 1: Newton cannot reach T = 3 on the boundary
    k = lambda T: np.sqrt(1 - T)  # noqa: E731
    dk = lambda T: -0.5 / np.sqrt(1 - T)  # noqa: E731
    p = NonlinearHeat(interval(10), k, dk, dirichlet={"left": 0.0, "right": 3.0})
    with np.errstate(invalid="ignore", divide="ignore"), pytest.raises(ConvergenceError) as info:
        p.solve()
    assert len(info.value.history) >= 1


def test_heat_robin_and_neumann_match_the_1d_analytic_solution():
    # -T'' = 0 on (0,1); T(0) = 1; at x=1: T' = h (T_ext - T) => T = 1 + a x, a = h (T_ext - 1)/(1 + h)
    h, T_ext = 3.0, 5.0
    p = Heat(interval(8), degree=1, dirichlet={"left": 1.0}, robin={"right": (h, T_ext)})
    T = p.solve()
    a = h * (T_ext - 1) / (1 + h)
    np.testing.assert_allclose(T, 1 + a * p.space.node_coords[:, 0], rtol=1e-12)
    # Neumann flux q into the domain at x = 1: T = 1 + q x
    p = Heat(interval(8), degree=2, dirichlet={"left": 1.0}, neumann={"right": 0.7})
    np.testing.assert_allclose(p.solve(), 1 + 0.7 * p.space.node_coords[:, 0], rtol=1e-12)


def test_heat_unknown_boundary_tag_is_refused_before_assembly():
    with pytest.raises(BoundaryError, match="'lid' does not exist"):
        Heat(rectangle(4, 4), dirichlet={"lid": 0.0})


def test_elasticity_uniaxial_tension_is_exact():
    # bar pulled by traction t on x=1, rollers on x=0 and y=0: u_x = t x / E', sigma_xx = t
    E, nu, t = 200e9, 0.3, 1e6
    mesh = rectangle(6, 3, cell_type="quad")
    p = LinearElasticity(mesh, 2, E=E, nu=nu, plane="stress", traction={"right": [t, 0.0]},
                         dirichlet={("left", 0): 0.0, ("bottom", 1): 0.0})
    u = p.solve()
    x = p.space.node_coords
    np.testing.assert_allclose(u[0::2], t * x[:, 0] / E, atol=1e-12 * t / E * 10)
    np.testing.assert_allclose(u[1::2], -nu * t * x[:, 1] / E, atol=1e-12 * t / E * 10)
    s = p.stress(u)
    np.testing.assert_allclose(s[..., 0, 0], t, rtol=1e-9)
    assert np.abs(s[..., 1, 1]).max() < 1e-6 * t


def test_elasticity_affine_terms_reproduce_the_assembled_stiffness():
    mesh = rectangle(8, 4)
    mesh.tag_region("a", lambda x: x[:, 0] < 0.5).tag_region("b", lambda x: x[:, 0] >= 0.5)
    E = {"a": 2.0, "b": 5.0}
    p = LinearElasticity(mesh, 1, E=E, nu=0.25, dirichlet={"left": [0.0, 0.0]}, body_force=[0.0, -1.0])
    K, f = p.assemble()
    aff = p.affine_terms(["a", "b"])
    assert abs(aff.matrix([2.0, 5.0]) - K).max() < 1e-12
    np.testing.assert_allclose(aff.vector([2.0, 5.0]), f, atol=1e-14)
    np.testing.assert_allclose(p.solve(), p.solver(aff.matrix([2.0, 5.0]), f), rtol=1e-12)


def test_errornorm_of_the_discrete_solution_decreases_with_h():
    errs = []
    for n in (8, 16):
        V = Space(rectangle(n, n), 1)
        p = Heat(V.mesh, source=lambda x: 2 * np.pi**2 * np.sin(np.pi * x[..., 0]) * np.sin(np.pi * x[..., 1]),
                 dirichlet={"boundary": 0.0})
        u = p.solve()
        errs.append(post.errornorm(p.space, u, lambda x: np.sin(np.pi * x[..., 0]) * np.sin(np.pi * x[..., 1])))
    assert 3.5 < errs[0] / errs[1] < 4.5
