"""Every LinearSolver either meets its residual tolerance or says it did not; singular systems
are diagnosed (pure Neumann, zero coefficient, degenerate cell); Newton meets its tolerance or
raises.

The rule under test, for finite A and b: `solve` returns x with
||b - A x|| <= slack * max(rtol ||b||, atol), slack 1 for "direct", 2 for "cg", 10 for "minres"
and "gmres" (the residual is recomputed here from A, b and x), or raises ConvergenceError; a
direct solve may instead raise SingularSystemError, and only a direct solve may. Set-up counts
as part of the solve (a Jacobi preconditioner on a zero diagonal fails there).
"""

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rom.errors import ConvergenceError, SingularSystemError
from solvers.fem import Space, diffusion, load, mass
from solvers.fem.bc import DirichletBC, apply_dirichlet
from solvers.linalg import LinearSolver, diagnose, newton
from solvers.mesh import Mesh, rectangle

SLACK = {"direct": 1.0, "cg": 2.0, "minres": 10.0, "gmres": 10.0}
CONFIGS = [("direct", None)] + [(m, p) for m in ("cg", "minres", "gmres") for p in (None, "amg", "jacobi")]


def _random_system(seed: int, n: int, kind: str):
    """A = Q diag(lam) Q^T (n, n) CSR with eigenvalues lam chosen by kind, and a random b."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    lam = np.logspace(0, rng.uniform(0, 6), n)
    if kind == "indefinite":
        lam *= np.where(rng.random(n) < 0.4, -1.0, 1.0)
        lam[0] = -abs(lam[0])
    elif kind == "singular":
        lam[: rng.integers(1, 3)] = 0.0
    A = sp.csr_matrix((Q * lam) @ Q.T)
    return A, rng.standard_normal(n)


def _fe_system(seed: int, n: int, kind: str):
    """P1 systems on an n x n rectangle: random positive conductivity per cell with Dirichlet
    (SPD), the same without any Dirichlet condition (pure Neumann, singular), or the Dirichlet
    stiffness shifted by -sigma M past its lowest eigenvalues (indefinite, Helmholtz-like)."""
    rng = np.random.default_rng(seed)
    V = Space(rectangle(n, n), 1)
    kappa = 10.0 ** rng.uniform(-2, 2, V.mesh.n_cells)
    A, b = diffusion(V, kappa), load(V, 1.0) + 0.1 * rng.standard_normal(V.n_dofs)
    if kind == "indefinite":
        A = (A - 60.0 * mass(V)).tocsr()
    if kind != "singular":
        apply_dirichlet(A, b, DirichletBC(V, "boundary"))
    return A, b


def _outcome(method, prec, A, b, rtol, atol, maxiter):
    """'solved' after checking the true residual independently, or the error's class name."""
    s = LinearSolver(method, prec, rtol=rtol, atol=atol, maxiter=maxiter)
    try:
        x = s(A, b)
    except ConvergenceError as exc:
        assert str(exc)  # a message, and the history it carries is an array
        assert exc.history.ndim == 1
        return "ConvergenceError"
    except SingularSystemError:
        assert method == "direct", f"{method}/{prec} raised SingularSystemError; only direct solves may"
        return "SingularSystemError"
    r = np.linalg.norm(b - A @ x)
    allowed = SLACK[method] * max(rtol * np.linalg.norm(b), atol)
    assert np.isfinite(x).all() and r <= allowed, (
        f"{method}/{prec} returned x with ||b - A x|| = {r:.3e} > {allowed:.3e}")
    assert s.info.residual == pytest.approx(r / np.linalg.norm(b), rel=1e-6, abs=1e-300)
    return "solved"


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(4, 30), kind=st.sampled_from(["spd", "indefinite", "singular"]),
       rtol=st.sampled_from([1e-6, 1e-10]), atol=st.sampled_from([0.0, 1e-8]),
       maxiter=st.sampled_from([3, 40, 500]))
def test_every_configuration_meets_its_tolerance_or_raises_on_random_systems(seed, n, kind, rtol, atol, maxiter):
    A, b = _random_system(seed, n, kind)
    outcomes = {(m, p): _outcome(m, p, A, b, rtol, atol, maxiter) for m, p in CONFIGS}
    if kind == "spd":  # a nonsingular system with cond <= 1e6: LU must solve it, and so must
        assert outcomes[("direct", None)] == "solved"  # unpreconditioned CG when allowed the iterations
        if maxiter == 500:
            assert outcomes[("cg", None)] == "solved"
            assert outcomes[("gmres", None)] == "solved"


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(8, 16), kind=st.sampled_from(["spd", "indefinite", "singular"]),
       rtol=st.sampled_from([1e-6, 1e-10]))
def test_every_configuration_meets_its_tolerance_or_raises_on_assembled_systems(seed, n, kind, rtol):
    A, b = _fe_system(seed, n, kind)
    outcomes = {(m, p): _outcome(m, p, A, b, rtol, 0.0, 300) for m, p in CONFIGS}
    if kind == "spd":
        assert outcomes[("direct", None)] == outcomes[("cg", "amg")] == "solved"
    if kind == "singular":  # b = load + noise is not orthogonal to the constants: no solution
        assert set(outcomes.values()) <= {"ConvergenceError", "SingularSystemError"}


def test_cg_on_a_pure_neumann_system_raises_and_names_neumann():
    """The defect: CG (+AMG) returned |x| ~ 1e15 with a true relative residual above 1."""
    V = Space(rectangle(10, 10), 1)
    A, b = diffusion(V), load(V, 1.0)
    for method, prec in (("cg", None), ("cg", "amg"), ("minres", "amg"), ("minres", None), ("gmres", "amg")):
        with pytest.raises(ConvergenceError, match="pure Neumann") as info:
            LinearSolver(method, prec, maxiter=300)(A, b)
        assert info.value.history.size > 0 or method == "minres"
    with pytest.raises(SingularSystemError, match="pure Neumann"):
        LinearSolver("direct")(A, b)


def test_a_zero_coefficient_is_not_called_neumann():
    V = Space(rectangle(8, 8), 1)
    A, b = diffusion(V, 0.0), load(V, 1.0)
    apply_dirichlet(A, b, DirichletBC(V, "boundary"))
    for method, prec in (("direct", None), ("cg", "amg")):
        with pytest.raises((SingularSystemError, ConvergenceError), match="zero coefficient") as info:
            LinearSolver(method, prec, maxiter=200)(A, b)
        assert "Neumann" not in str(info.value)
    # zero on the left half only: the dofs inside that half (no cell with k > 0 around them) have
    # all-zero rows, and they are the ones named
    x = V.mesh.points[V.mesh.cells].mean(axis=1)[:, 0]
    A = diffusion(V, np.where(x < 0.5, 0.0, 1.0))
    rows = np.abs(A).max(axis=1).toarray().ravel()
    left = np.flatnonzero(V.mesh.points[:, 0] < 0.5 - 1e-9)  # P1: dof = vertex
    assert set(np.flatnonzero(rows == 0)) == set(left)
    cause = diagnose(A)
    assert f"{left.size} of {V.n_dofs} rows are all zero" in cause and "zero coefficient" in cause


def test_a_negative_coefficient_is_named():
    V = Space(rectangle(6, 6), 1)
    A, b = diffusion(V, -2.0), load(V, 1.0)
    cause = diagnose(A)
    assert "zero or negative" in cause and "Neumann" not in cause
    assert f"{V.n_dofs} of {V.n_dofs} diagonal entries" in cause


def test_a_collapsed_cell_is_named_a_degenerate_cell():
    m = rectangle(4, 4)
    pts = m.points.copy()
    c = m.cells[5]
    pts[c[2]] = 0.5 * (pts[c[0]] + pts[c[1]])  # the third vertex on the first edge: zero area
    V = Space(Mesh(pts, m.cells, m.cell_type, m.regions, m.boundaries), 1)
    A, b = diffusion(V), load(V, 1.0)
    apply_dirichlet(A, b, DirichletBC(V, "boundary"))
    for method, prec in (("direct", None), ("cg", "amg"), ("gmres", "jacobi")):
        with pytest.raises(SingularSystemError, match="degenerate cell") as info:
            LinearSolver(method, prec).setup(A)
        assert "Neumann" not in str(info.value)
    bad = np.unique(np.nonzero(~np.isfinite(A.toarray()))[0])
    assert set(bad) <= set(c.tolist()) and bad.size > 0  # the rows named belong to the collapsed cell
    assert f"dofs [{', '.join(map(str, bad))}]" in diagnose(A)


def test_a_failing_gmres_with_amg_does_not_recommend_amg():
    V = Space(rectangle(30, 30), 1)
    A, b = diffusion(V), load(V, 1.0)
    apply_dirichlet(A, b, DirichletBC(V, "boundary"))
    with pytest.raises(ConvergenceError) as info:
        LinearSolver("gmres", "amg", rtol=1e-14, maxiter=2)(A, b)
    msg = str(info.value)
    assert "use preconditioner='amg'" not in msg and "maxiter" in msg and "Neumann" not in msg
    with pytest.raises(ConvergenceError, match="use preconditioner='amg'"):
        LinearSolver("gmres", None, rtol=1e-14, maxiter=2)(A, b)


def test_gmres_maxiter_counts_inner_iterations():
    """scipy counts GMRES's maxiter in restart cycles; LinearSolver's means iterations."""
    V = Space(rectangle(30, 30), 1)
    A, b = diffusion(V), load(V, 1.0)
    apply_dirichlet(A, b, DirichletBC(V, "boundary"))
    with pytest.raises(ConvergenceError, match="maxiter=30") as info:
        LinearSolver("gmres", None, rtol=1e-12, restart=50, maxiter=30)(A, b)
    assert info.value.history.size <= 30


def test_minres_stopping_early_on_its_own_test_is_corrected():
    """scipy's MINRES stops on ||r|| <= rtol (||A|| ||x|| + ||b||): on diag(1e-6 .. 1) it reports
    convergence at a true relative residual of ~3e-2 for rtol 1e-8; the solver corrects from x."""
    import scipy.sparse.linalg as sla

    n = 200
    A, b = sp.diags(np.logspace(-6, 0, n)).tocsr(), np.ones(n)
    raw, info = sla.minres(A, b, rtol=1e-8)
    assert info == 0 and np.linalg.norm(b - A @ raw) > 1e3 * 1e-8 * np.linalg.norm(b)  # scipy's verdict alone
    s = LinearSolver("minres", None, rtol=1e-8)
    x = s(A, b)
    assert np.linalg.norm(b - A @ x) <= 10 * 1e-8 * np.linalg.norm(b)
    xs = 1.0 / A.diagonal()  # the error is at most cond(A) = 1e6 times the relative residual
    assert np.linalg.norm(x - xs) <= 1e6 * 10 * 1e-8 * np.linalg.norm(xs)


def test_zero_right_hand_side_gives_zero():
    V = Space(rectangle(5, 5), 1)
    A, _ = diffusion(V), None
    A = A + mass(V)
    for method, prec in CONFIGS:
        s = LinearSolver(method, prec)
        x = s(A, np.zeros(V.n_dofs))
        assert np.array_equal(x, np.zeros(V.n_dofs)) and s.info.residual == 0.0


def test_atol_is_absolute():
    A = sp.diags(np.linspace(1.0, 100.0, 50)).tocsr()
    b = 1e6 * np.ones(50)
    s = LinearSolver("cg", None, rtol=0.0, atol=1e-3)
    x = s(A, b)
    assert np.linalg.norm(b - A @ x) <= 2 * 1e-3
    np.testing.assert_allclose(x, b / A.diagonal(), rtol=1e-8)


# -- Newton -------------------------------------------------------------------------------------
@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 12), c=st.floats(0.0, 5.0),
       maxiter=st.integers(1, 30), rtol=st.sampled_from([1e-6, 1e-12]))
def test_newton_meets_its_tolerance_or_raises(seed, n, c, maxiter, rtol):
    """F(u) = A u + c u^3 - f with A SPD: monotone, so Newton with line search converges; with few
    iterations it must say it did not. A returned u satisfies ||F(u)|| <= max(atol, rtol ||F(u0)||),
    recomputed here."""
    rng = np.random.default_rng(seed)
    G = rng.standard_normal((n, n))
    A = G @ G.T + n * np.eye(n)
    f = 10 * rng.standard_normal(n)
    F = lambda u: A @ u + c * u**3 - f  # noqa: E731
    J = lambda u: sp.csr_matrix(A + np.diag(3 * c * u**2))  # noqa: E731
    u0 = np.zeros(n)
    atol = 1e-13
    try:
        res = newton(F, J, u0, rtol=rtol, atol=atol, maxiter=maxiter)
    except ConvergenceError as exc:
        assert exc.history.size >= 1 and exc.history[-1] > max(atol, rtol * np.linalg.norm(F(u0)))
        assert maxiter < 30  # the full budget always suffices for this monotone problem
        return
    assert np.linalg.norm(F(res.u)) <= max(atol, rtol * np.linalg.norm(F(u0)))
    assert res.history[-1] == pytest.approx(np.linalg.norm(F(res.u)))


def test_newton_raises_when_the_linear_solve_misses_its_tolerance():
    """A singular tangent (pure Neumann) solved by CG: before the true-residual check CG returned a
    step of size ~1e15 and Newton went on with it; now the linear failure ends Newton at once."""
    V = Space(rectangle(6, 6), 1)
    K, f = diffusion(V), load(V, 1.0)
    with pytest.raises(ConvergenceError, match="linear solve failed.*pure Neumann") as info:
        newton(lambda u: K @ u - f, lambda u: K, np.zeros(V.n_dofs), linear_solver=LinearSolver("cg", "amg"))
    assert info.value.history.size == 1


def test_newton_refuses_a_non_finite_initial_residual():
    with pytest.raises(ConvergenceError, match="not finite"):
        with np.errstate(invalid="ignore"):
            newton(lambda u: np.log(u), lambda u: sp.csr_matrix(np.diag(1 / u)), np.array([-1.0]))


def test_tolerances_that_cannot_be_checked_are_refused():
    from rom.errors import ShapeError

    for kw in ({"rtol": -1e-8}, {"rtol": 0.0, "atol": 0.0}, {"atol": float("nan")}, {"maxiter": 0}):
        with pytest.raises(ShapeError, match="rtol|maxiter"):
            LinearSolver("cg", None, **kw)
    A = sp.identity(3, format="csr")
    with pytest.raises(ShapeError, match="inf or NaN"):
        LinearSolver("direct")(A, np.array([1.0, np.nan, 0.0]))
    with pytest.raises(ShapeError, match="x0"):
        LinearSolver("cg", None)(A, np.ones(3), x0=np.ones(2))
