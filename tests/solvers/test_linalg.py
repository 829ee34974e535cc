"""Linear solvers and Newton: agreement between methods, reuse, and failures reported."""

import numpy as np
import pytest
import scipy.sparse as sp

from rom.errors import ConvergenceError, ShapeError, SingularSystemError
from solvers.fem import Space, diffusion, elasticity, lame, load
from solvers.fem.bc import DirichletBC, apply_dirichlet
from solvers.linalg import LinearSolver, newton, rigid_body_modes
from solvers.mesh import box, rectangle


def _poisson(n=24):
    V = Space(rectangle(n, n), 1)
    A, b = diffusion(V), load(V, 1.0)
    apply_dirichlet(A, b, DirichletBC(V, "boundary"))
    return A, b


@pytest.mark.parametrize("method,prec", [("cg", "amg"), ("cg", "jacobi"), ("minres", "amg"), ("gmres", "amg"),
                                         ("gmres", None)])
def test_krylov_methods_agree_with_direct(method, prec):
    A, b = _poisson()
    x = LinearSolver("direct")(A, b)
    s = LinearSolver(method, prec, rtol=1e-11, maxiter=2000)
    y = s(A, b)
    assert np.linalg.norm(y - x) <= 1e-8 * np.linalg.norm(x)
    assert s.info.iterations > 0 and s.info.residual <= 1e-8


def test_amg_cg_needs_few_iterations_on_poisson():
    A, b = _poisson(64)
    s = LinearSolver("cg", "amg", rtol=1e-8)
    s(A, b)
    assert s.info.iterations <= 20


def test_factorization_is_reused_for_several_right_hand_sides():
    A, b = _poisson()
    s = LinearSolver("direct").setup(A)
    lu = s._impl.lu
    B = np.stack([b, 2 * b, -b], axis=1)
    X = s.solve(B)
    assert s._impl.lu is lu
    np.testing.assert_allclose(X[:, 1], 2 * X[:, 0], rtol=1e-12)
    np.testing.assert_allclose(A @ X, B, atol=1e-12)


def test_pure_neumann_problem_is_reported_as_singular():
    V = Space(rectangle(10, 10), 1)
    with pytest.raises(SingularSystemError, match="Dirichlet"):
        LinearSolver("direct")(diffusion(V), load(V, 1.0))


def test_exactly_singular_matrix_is_reported():
    A = sp.csr_matrix(np.array([[1.0, 1.0], [1.0, 1.0]]))
    with pytest.raises(SingularSystemError):
        LinearSolver("direct").setup(A)


def test_iterative_failure_carries_the_residual_history():
    A, b = _poisson(40)
    with pytest.raises(ConvergenceError) as info:
        LinearSolver("cg", None, rtol=1e-12, maxiter=3)(A, b)
    assert len(info.value.history) == 3


def test_rigid_body_modes_are_the_elasticity_kernel_in_3d():
    V = Space(box(2, 2, 2), 1, (3,))
    lam, mu = lame(1.0, 0.3)
    K = elasticity(V, lam, mu)
    R = rigid_body_modes(V.node_coords)
    assert R.shape == (V.n_dofs, 6)
    assert np.abs(K @ R).max() < 1e-12
    assert np.linalg.matrix_rank(R) == 6


def test_amg_cg_with_near_nullspace_solves_elasticity():
    V = Space(rectangle(30, 30), 1, (2,))
    lam, mu = lame(1.0, 0.3)
    K, f = elasticity(V, lam, mu), load(V, [0.0, -1.0])
    apply_dirichlet(K, f, DirichletBC(V, "left"))
    x = LinearSolver("direct")(K, f)
    s = LinearSolver("cg", "amg", rtol=1e-10, near_nullspace=rigid_body_modes(V.node_coords))
    y = s(K, f)
    assert np.linalg.norm(y - x) <= 1e-7 * np.linalg.norm(x)


def test_bad_options_and_inputs_are_refused():
    with pytest.raises(ShapeError, match="method"):
        LinearSolver("qr")
    with pytest.raises(ShapeError, match="backend"):
        LinearSolver(backend="magma")
    with pytest.raises(ShapeError, match="block_size"):
        LinearSolver(block_size=0)
    A, b = _poisson(4)
    with pytest.raises(ShapeError, match="setup"):
        LinearSolver().solve(b)
    with pytest.raises(ShapeError, match="rows"):
        LinearSolver().setup(A).solve(b[:-1])


def test_newton_converges_quadratically_on_a_scalar_equation():
    # F(u) = u^3 - 2: the order estimate log(e_{k+1}/e_k)/log(e_k/e_{k-1}) tends to 2
    res = newton(lambda u: u**3 - 2, lambda u: sp.csr_matrix(np.diag(3 * u**2)), np.array([1.0]),
                 rtol=1e-15, atol=1e-15)
    np.testing.assert_allclose(res.u, [2 ** (1 / 3)], rtol=1e-14)
    e = np.abs(np.array(res.history))[:-1]
    p = np.log(e[2:] / e[1:-1]) / np.log(e[1:-1] / e[:-2])
    assert p[-1] > 1.8


def test_newton_reports_divergence_with_history():
    # F(u) = sqrt(u) - 2 from u0 = 25: the full Newton step lands at u = -5, where F is NaN
    f = lambda u: np.sqrt(u) - 2.0  # noqa: E731
    j = lambda u: sp.csr_matrix(np.diag(0.5 / np.sqrt(u)))  # noqa: E731
    with pytest.raises(ConvergenceError, match="diverged") as info:
        with np.errstate(invalid="ignore"):
            newton(f, j, np.array([25.0]), line_search=False, maxiter=5)
    assert info.value.history.size >= 1


def test_newton_reports_non_convergence_within_maxiter():
    with pytest.raises(ConvergenceError, match="did not converge") as info:
        newton(lambda u: np.arctan(u), lambda u: sp.csr_matrix(np.diag(1 / (1 + u**2))), np.array([1.0]),
               maxiter=1)
    assert len(info.value.history) == 2


def test_petsc_options_are_split_from_a_script_command_line():
    from solvers.linalg import split_petsc_args

    own, petsc = split_petsc_args(["--n", "60", "-romtk1_ksp_type", "bcgs", "--solver", "cg", "-ksp_monitor"])
    assert own == ["--n", "60", "--solver", "cg"]
    assert petsc == ["-romtk1_ksp_type", "bcgs", "-ksp_monitor"]
