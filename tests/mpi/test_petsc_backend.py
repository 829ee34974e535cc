"""PETSc backend: exact preallocation, options, agreement with scipy (serial and 2 ranks)."""

import numpy as np
import pytest

from rom.errors import SingularSystemError
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
