"""PETSc backend: exact preallocation, options, agreement with scipy (serial and 2 ranks)."""

import numpy as np
import pytest

from rom.errors import ConvergenceError, ShapeError, SingularSystemError
from rom.parallel import Comm, world
from solvers.fem import Space, diffusion, load
from solvers.fem.bc import DirichletBC, apply_dirichlet
from solvers.linalg import LinearSolver
from solvers.mesh import box

pytestmark = pytest.mark.mpi


def _system(comm=None):
    V = Space(box(6, 5, 4), 2, comm=comm)
    A, b = diffusion(V, 1.0), load(V, 1.0)
    apply_dirichlet(A, b, DirichletBC(V, "boundary"))
    return V, A, b


def test_matrix_is_created_without_a_single_malloc():
    V, A, b = _system()
    s = LinearSolver("cg", "amg", backend="petsc").setup(A)
    from petsc4py import PETSc

    info = s._impl.M.getInfo(PETSc.Mat.InfoType.LOCAL)
    assert world().allreduce(float(info["mallocs"]), op="max") == 0.0
    assert world().allreduce(float(info["nz_allocated"] - A.nnz), op="max") == 0.0  # exact: nothing unused


def test_petsc_options_dict_reaches_the_ksp():
    V, A, b = _system()
    s = LinearSolver("cg", "amg", backend="petsc", petsc_options={"ksp_type": "bcgs", "pc_type": "jacobi"})
    x = s(A, b)
    assert s._impl.ksp.getType() == "bcgs" and s._impl.ksp.getPC().getType() == "jacobi"
    Vs, As, bs = _system(Comm(None))
    ref = LinearSolver("direct", comm=Comm(None))(As, bs)
    full = V.to_serial(V.gather(x))
    assert world().allreduce(float(np.linalg.norm(full - ref) / np.linalg.norm(ref)), op="max") < 1e-8


def test_petsc_direct_and_gamg_agree_with_scipy():
    V, A, b = _system()
    Vs, As, bs = _system(Comm(None))
    ref = LinearSolver("direct", comm=Comm(None))(As, bs)
    for method in ("direct", "cg"):
        s = LinearSolver(method, "amg", rtol=1e-12, backend="petsc")
        full = V.to_serial(V.gather(s(A, b)))
        err = world().allreduce(float(np.linalg.norm(full - ref) / np.linalg.norm(ref)), op="max")
        assert err < (1e-12 if method == "direct" else 1e-9)
        assert s.info.residual < 1e-9


def test_petsc_refuses_a_singular_system():
    V = Space(box(3, 3, 3), 1)
    with pytest.raises(SingularSystemError):
        LinearSolver("direct", backend="petsc")(diffusion(V), load(V, 1.0))


def test_petsc_krylov_on_a_pure_neumann_system_raises_and_names_neumann():
    """No silent answer from a singular system: GAMG-CG and Jacobi-GMRES either stop on a KSP
    divergence reason or report convergence short of the true residual; both raise, and the
    message names the cause, found collectively from every rank's rows (A @ 1 = 0)."""
    V = Space(box(4, 4, 4), 1)
    A, b = diffusion(V), load(V, 1.0)
    for method, prec in (("cg", "amg"), ("gmres", "jacobi")):
        with pytest.raises(ConvergenceError, match="pure Neumann"):
            LinearSolver(method, prec, maxiter=200, backend="petsc")(A, b)


def test_petsc_reported_convergence_is_checked_against_the_true_residual():
    """preonly + Jacobi reports convergence (CONVERGED_ITS) after one application of D^-1: the
    KSP reason alone would let x = D^-1 b through."""
    V, A, b = _system()
    s = LinearSolver("gmres", "jacobi", rtol=1e-8, backend="petsc",
                     petsc_options={"ksp_type": "preonly", "pc_type": "jacobi"})
    with pytest.raises(ConvergenceError, match="reported convergence, but the true residual misses"):
        s(A, b)
    assert s._impl.ksp.getConvergedReason() > 0


def test_petsc_direct_solve_names_a_zero_coefficient():
    V = Space(box(3, 3, 3), 1)
    A, b = diffusion(V, 0.0), load(V, 1.0)
    apply_dirichlet(A, b, DirichletBC(V, "boundary"))
    with pytest.raises(SingularSystemError, match="zero coefficient") as info:
        LinearSolver("direct", backend="petsc")(A, b)
    assert "Neumann" not in str(info.value)


def test_a_degenerate_cell_is_refused_on_every_rank():
    """The collapsed cell's rows live on one rank; every rank raises (no hang)."""
    from solvers.mesh import Mesh, rectangle

    m = rectangle(8, 8)
    pts = m.points.copy()
    c = m.cells[5]
    pts[c[2]] = 0.5 * (pts[c[0]] + pts[c[1]])  # zero area
    V = Space(Mesh(pts, m.cells, m.cell_type, m.regions, m.boundaries), 1)
    A = diffusion(V)
    with pytest.raises(SingularSystemError, match="degenerate cell"):
        LinearSolver("cg", "amg", backend="petsc").setup(A)


def _elasticity(comm=None):
    from solvers.fem import elasticity, lame

    V = Space(box(5, 4, 3), 1, (3,), comm=comm)
    A, b = elasticity(V, *lame(1.0, 0.3)), load(V, [0.0, 0.0, -1.0])
    apply_dirichlet(A, b, DirichletBC(V, "left"))
    return V, A, b


def test_vector_space_matrix_is_block_aij_without_a_single_malloc():
    from petsc4py import PETSc

    V, A, b = _elasticity()
    s = LinearSolver("cg", "jacobi", rtol=1e-10, backend="petsc", block_size=3).setup(A)
    M = s._impl.M
    assert M.getType().endswith("baij") and M.getBlockSize() == 3
    info = M.getInfo(PETSc.Mat.InfoType.LOCAL)
    assert world().allreduce(float(info["mallocs"]), op="max") == 0.0
    assert world().allreduce(float(info["nz_allocated"] - A.nnz), op="max") == 0.0
    Vs, As, bs = _elasticity(Comm(None))
    ref = LinearSolver("direct", comm=Comm(None))(As, bs)
    full = V.to_serial(V.gather(s.solve(b)))
    assert world().allreduce(float(np.linalg.norm(full - ref) / np.linalg.norm(ref)), op="max") < 1e-8


def test_gamg_aggregates_nodes_of_a_vector_space():
    """GAMG takes AIJ only: the matrix carries the block size instead, preallocated exactly."""
    from petsc4py import PETSc

    from solvers.linalg import rigid_body_modes

    V, A, b = _elasticity()
    s = LinearSolver("cg", "amg", rtol=1e-10, backend="petsc", block_size=3,
                     near_nullspace=rigid_body_modes(V.node_coords)).setup(A)
    M = s._impl.M
    assert M.getType().endswith("aij") and not M.getType().endswith("baij") and M.getBlockSize() == 3
    assert world().allreduce(float(M.getInfo(PETSc.Mat.InfoType.LOCAL)["mallocs"]), op="max") == 0.0
    Vs, As, bs = _elasticity(Comm(None))
    ref = LinearSolver("direct", comm=Comm(None))(As, bs)
    full = V.to_serial(V.gather(s.solve(b)))
    assert world().allreduce(float(np.linalg.norm(full - ref) / np.linalg.norm(ref)), op="max") < 1e-8


def test_a_block_size_that_does_not_describe_the_rows_is_refused():
    V, A, b = _system()  # scalar P2: rows of one "node" of 3 dofs are not 3 x 3 blocks
    with pytest.raises(ShapeError, match="block_size"):
        LinearSolver("cg", "jacobi", backend="petsc", block_size=3).setup(A)


def test_vectors_cross_between_numpy_and_petsc_without_copies():
    from solvers.linalg.petsc_backend import as_rows, as_vec

    V, A, b = _system()
    rows = np.arange(V.n_owned, dtype=np.float64)
    v = as_vec(rows, V.n_dofs)
    assert v.getSize() == V.n_dofs and v.getLocalSize() == V.n_owned
    v.scale(2.0)  # PETSc writes into the numpy rows
    np.testing.assert_array_equal(rows, 2.0 * np.arange(V.n_owned))
    view = as_rows(v)
    assert np.shares_memory(view, rows)
    s = LinearSolver("cg", "amg", rtol=1e-10, backend="petsc").setup(A)
    x = s.solve(b)
    assert x.shape == (V.n_owned,) and s.info.residual < 1e-9


def test_a_new_matrix_on_the_same_pattern_reuses_the_matrix_and_the_krylov_solver():
    V, A, b = _system()
    s = LinearSolver("cg", "amg", rtol=1e-12, backend="petsc").setup(A)
    M, ksp = s._impl.M, s._impl.ksp
    x1 = s.solve(b)
    A2 = A.copy()
    A2.data *= 4.0
    x2 = s.setup(A2).solve(b)
    assert s._impl.M is M and s._impl.ksp is ksp
    err = world().allreduce(float(np.abs(4.0 * x2 - x1).max() / np.abs(x1).max()), op="max")
    assert err < 1e-9


def test_serial_gamg_setup_options_are_read_during_setup_only(monkeypatch):
    """On one process GAMG's Galerkin products take GAMG_SETUP_OPTIONS_SERIAL for the set-up
    only: a bad value there fails the set-up (so it is read), a good one is gone afterwards,
    and a value the user put in the database is left as it was."""
    from petsc4py import PETSc

    from solvers.linalg import petsc_backend as pb

    serial = Comm(None)
    V, A, b = _system(serial)
    ref = LinearSolver("direct", comm=serial)(A, b)
    monkeypatch.setattr(pb, "GAMG_SETUP_OPTIONS_SERIAL", {"matptap_via": "no_such_product"})
    with pytest.raises(SingularSystemError, match="matptap_via"):
        LinearSolver("cg", "amg", backend="petsc", comm=serial).setup(A)
    monkeypatch.undo()
    opts = PETSc.Options()
    assert not opts.hasName("matptap_via")
    x = LinearSolver("cg", "amg", rtol=1e-10, backend="petsc", comm=serial)(A, b)
    assert not opts.hasName("matptap_via")
    assert np.linalg.norm(x - ref) <= 1e-8 * np.linalg.norm(ref)
    opts.setValue("matptap_via", "scalable")
    try:
        LinearSolver("cg", "amg", backend="petsc", comm=serial)(A, b)
        assert opts.getString("matptap_via") == "scalable"
    finally:
        opts.delValue("matptap_via")
