"""PETSc backend of LinearSolver: MPIAIJ matrices from each rank's CSR rows, KSP/PC.

The matrix arrives as this rank's rows (scipy CSR, shape (n_owned, n_global), global
column indices), which is exactly PETSc's MPIAIJ CSR input: preallocation is exact and
no entry is communicated. Options: the LinearSolver's own (method, preconditioner,
tolerances) first, then `petsc_options` (a dict, e.g. {"ksp_type": "bcgs"}) and the
command line (-ksp_monitor, -pc_type ...), which override them.
"""

from __future__ import annotations

import sys

import numpy as np

from rom.errors import ConvergenceError, SingularSystemError
from rom.parallel import world
from solvers.linalg.linear import split_petsc_args

import petsc4py


petsc4py.init(sys.argv[:1] + split_petsc_args(sys.argv[1:])[1])  # a no-op once PETSc is initialized
from petsc4py import PETSc  # noqa: E402

_KSP = {"cg": "cg", "minres": "minres", "gmres": "gmres", "direct": "preonly"}
_PC = {"amg": "gamg", "jacobi": "jacobi", None: "none"}


def has_mumps() -> bool:
    return bool(PETSc.Sys.hasExternalPackage("mumps"))


class PetscBackend:
    """KSP on an MPIAIJ matrix built from the rows each rank owns."""

    _count = 0

    def __init__(self, opts):
        self.o = opts
        self.comm = opts.comm or world()
        self.pcomm = PETSc.COMM_WORLD if self.comm.mpi_comm is not None else PETSc.COMM_SELF
        self.A = None
        PetscBackend._count += 1
        self.prefix = f"romtk{PetscBackend._count}_"

    def setup(self, A) -> None:
        n_own, n = A.shape
        if self.A is not None and self.A.shape == A.shape and self.M is not None:
            self.M.zeroEntries()
            self.M.setValuesCSR(A.indptr.astype(PETSc.IntType), A.indices.astype(PETSc.IntType), A.data)
            self.M.assemble()
        else:
            self.M = PETSc.Mat().createAIJ(size=((n_own, n), (n_own, n)),
                                           csr=(A.indptr.astype(PETSc.IntType), A.indices.astype(PETSc.IntType),
                                                A.data),
                                           comm=self.pcomm)
            self.M.setOption(PETSc.Mat.Option.NEW_NONZERO_ALLOCATION_ERR, True)
            self.M.assemble()
        self.A = A
        o = self.o
        ksp = PETSc.KSP().create(comm=self.pcomm)
        ksp.setOptionsPrefix(self.prefix)
        ksp.setOperators(self.M)
        ksp.setType(_KSP[o.method])
        pc = ksp.getPC()
        if o.method == "direct":
            if self.comm.size == 1:
                pc.setType("lu")
            elif has_mumps():
                pc.setType("lu")
                pc.setFactorSolverType("mumps")
            else:  # no parallel direct solver in this build: every rank factors the whole matrix
                pc.setType("redundant")
        else:
            pc.setType(_PC[o.preconditioner])
            ksp.setTolerances(rtol=o.rtol, atol=o.atol, max_it=o.maxiter or 10000)
            if o.method == "cg":  # rtol on the true residual, as in the scipy backend
                ksp.setNormType(PETSc.KSP.NormType.UNPRECONDITIONED)
            if o.method == "gmres":
                ksp.setGMRESRestart(o.restart)
        if o.near_nullspace is not None:
            B = np.asarray(o.near_nullspace)
            if B.shape[0] == n:  # given in full: keep this rank's rows
                start = self.M.getOwnershipRange()[0]
                B = B[start:start + n_own]
            vecs = []
            for j in range(B.shape[1]):
                v = self.M.createVecRight()
                v.setArray(B[:, j])
                vecs.append(v)
            self.M.setNearNullSpace(PETSc.NullSpace().create(vectors=vecs, comm=self.pcomm))
        opts = PETSc.Options()
        for k, v in (o.petsc_options or {}).items():
            opts.setValue(self.prefix + k.lstrip("-"), v)
        ksp.setFromOptions()
        ksp.setConvergenceHistory()
        try:
            ksp.setUp()
        except PETSc.Error as exc:
            raise SingularSystemError(
                f"PETSc could not set up the solver ({exc}); a zero pivot means a singular system: "
                "add a Dirichlet condition (or fix one dof per rigid-body mode)"
            ) from None
        self.ksp = ksp

    def solve(self, b: np.ndarray, x0=None):
        from solvers.linalg.linear import SolveInfo

        if b.ndim == 2:
            cols = [self.solve(b[:, j])[0] for j in range(b.shape[1])]
            return np.stack(cols, axis=1), SolveInfo(self.o.method)
        n_own, n = self.A.shape
        bv = PETSc.Vec().createMPI((n_own, n), comm=self.pcomm) if self.comm.size > 1 else \
            PETSc.Vec().createSeq(n_own)
        bv.setArray(b)
        xv = bv.duplicate()
        if x0 is not None:
            xv.setArray(x0)
            self.ksp.setInitialGuessNonzero(True)
        try:
            self.ksp.solve(bv, xv)
        except PETSc.Error as exc:
            raise SingularSystemError(f"PETSc solve failed ({exc}); check that the system is not singular") from None
        reason = self.ksp.getConvergedReason()
        hist = list(self.ksp.getConvergenceHistory())
        x = xv.getArray().copy()
        rv = bv.duplicate()
        self.M.mult(xv, rv)
        rv.axpy(-1.0, bv)
        bn = bv.norm()
        rel = float(rv.norm() / (bn if bn > 0 else 1.0))
        if reason == PETSc.KSP.ConvergedReason.DIVERGED_PCSETUP_FAILED:
            raise SingularSystemError(
                f"the preconditioner/factorization failed ({self.ksp.getPC().getType()}): for a direct solve this "
                "is a zero pivot, i.e. a singular system (pure Neumann or a free body); add a Dirichlet condition "
                "(or fix one dof per rigid-body mode)"
            )
        if reason < 0 or not np.isfinite(rel):
            raise ConvergenceError(
                f"PETSc KSP {self.ksp.getType()}/{self.ksp.getPC().getType()} failed (reason {reason}) after "
                f"{self.ksp.getIterationNumber()} iterations at relative residual {rel:.2e}; change method, "
                "preconditioner or tolerances (petsc_options or the command line)",
                hist,
            )
        return x, SolveInfo(self.o.method, int(self.ksp.getIterationNumber()), rel, history=hist)
