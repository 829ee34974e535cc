"""PETSc backend of LinearSolver: MPIAIJ/MPIBAIJ matrices from each rank's CSR rows, KSP/PC.

The matrix arrives as this rank's rows (scipy CSR, shape (n_owned, n_global), global
column indices), which is exactly PETSc's MPIAIJ CSR input: preallocation is exact and
no entry is communicated. With block_size > 1 (vector spaces, dofs interleaved per node)
the same rows become an MPIBAIJ matrix: each node-node coupling is one dense block, the
block CSR is read off the dof CSR (preallocation exact again), and GAMG, which takes
AIJ only, gets AIJ with the block size set, so it aggregates nodes instead of single dofs.

Options: the LinearSolver's own (method, preconditioner, tolerances) and the GAMG defaults
below first, then `petsc_options` (a dict, e.g. {"ksp_type": "bcgs"}) and the command line
(-ksp_monitor, -pc_type ...), which override them.

Vectors cross without copies: the right-hand side and the solution are PETSc vectors
wrapped around the rank's numpy rows (`as_vec`), and `as_rows` views a PETSc vector's rows
as numpy.
"""

from __future__ import annotations

import sys

import numpy as np

from rom.errors import ShapeError, SingularSystemError
from rom.parallel import world
from solvers.linalg.linear import diagnose, singular_message, split_petsc_args

import petsc4py


petsc4py.init(sys.argv[:1] + split_petsc_args(sys.argv[1:])[1])  # a no-op once PETSc is initialized
from petsc4py import PETSc  # noqa: E402

_KSP = {"cg": "cg", "minres": "minres", "gmres": "gmres", "direct": "preonly"}
_PC = {"amg": "gamg", "jacobi": "jacobi", None: "none"}
_REASONS = {int(getattr(PETSc.KSP.ConvergedReason, k)): k for k in dir(PETSc.KSP.ConvergedReason)
            if k.isupper() and isinstance(getattr(PETSc.KSP.ConvergedReason, k), int)}
# a failed preconditioner set-up (a zero pivot in LU): -11, named DIVERGED_PCSETUP_FAILED in older
# petsc4py and DIVERGED_PC_FAILED in newer
_PC_FAILED = int(getattr(PETSc.KSP.ConvergedReason, "DIVERGED_PC_FAILED",
                         getattr(PETSc.KSP.ConvergedReason, "DIVERGED_PCSETUP_FAILED", -11)))
# the iteration limit: -3, DIVERGED_MAX_IT in petsc4py 3.26, DIVERGED_ITS before
_MAX_IT = int(getattr(PETSc.KSP.ConvergedReason, "DIVERGED_MAX_IT", getattr(PETSc.KSP.ConvergedReason, "DIVERGED_ITS", -3)))

# GAMG options set before petsc_options and the command line (which override them); figures
# in docs/parallel.md. What matters most is the block size (LinearSolver(block_size=...)): GAMG
# then aggregates nodes. A new matrix on the same pattern keeps the prolongators.
# Vector problems (GAMG_BLOCK_DEFAULTS): a threshold of 0.01 took 3D elasticity at 1M dofs from
# 36 to 22 iterations for 4% more set-up, and aggressive coarsening on two levels gives smaller
# Galerkin products, which scale worst on MPIAIJ (26 iterations; 2 ranks 24.6 s instead of
# 31.4 s, 1 rank 42.8 s instead of 46.3 s).
# Scalar problems (GAMG_SCALAR_DEFAULTS): the threshold halves Poisson's iterations but costs
# more set-up than it saves; MIS-2 coarsening instead of squaring the graph (whose symbolic
# product does not scale) saved set-up on 1 and 2 ranks for 22 iterations instead of 20.
GAMG_DEFAULTS: dict[str, str] = {
    "pc_gamg_reuse_interpolation": "true",
}
GAMG_BLOCK_DEFAULTS: dict[str, str] = {
    "pc_gamg_threshold": "0.01",
    "pc_gamg_aggressive_coarsening": "2",
}
GAMG_SCALAR_DEFAULTS: dict[str, str] = {
    "pc_gamg_aggressive_square_graph": "false",
}

# Read by PETSc without any prefix while GAMG builds its levels (the Galerkin products P^T A P
# it creates carry none), so they are set for the set-up only and removed afterwards; a value
# the user put in the database (command line, PETSC_OPTIONS) is left alone. On one process the
# "rap" product (R = P^T formed once, then R A P) measured 2x faster than the default on 3D
# elasticity, where the smoothed prolongators of six rigid-body modes make P^T A P most of the
# set-up; MPIAIJ has no such variant, so nothing is set under MPI.
GAMG_SETUP_OPTIONS_SERIAL: dict[str, str] = {
    "matptap_via": "rap",
}


class _setup_options:
    """Context: the given unprefixed PETSc options in the database, for a set-up only."""

    def __init__(self, values: dict[str, str]):
        self.values = values
        self.added: list[str] = []

    def __enter__(self):
        opts = PETSc.Options()
        for k, v in self.values.items():
            if not opts.hasName(k):
                opts.setValue(k, v)
                self.added.append(k)
        return self

    def __exit__(self, *exc):
        opts = PETSc.Options()
        for k in self.added:
            opts.delValue(k)
        return False


def as_vec(rows: np.ndarray, n_global: int | None = None, comm=None, block_size: int = 1):
    """A PETSc vector on this rank's rows (n_owned,) float64, sharing their memory (no copy).
    The array must stay alive as long as the vector; a non-contiguous, non-float64 or
    read-only array is copied first. comm: a PETSc communicator (default COMM_WORLD)."""
    rows = np.asarray(rows)
    if rows.dtype != np.float64 or not rows.flags.c_contiguous or not rows.flags.writeable:
        rows = np.array(rows, dtype=np.float64)
    comm = PETSc.COMM_WORLD if comm is None else comm
    n = PETSc.DECIDE if n_global is None else int(n_global)
    return PETSc.Vec().createWithArray(rows, size=(len(rows), n), bsize=block_size, comm=comm)


def as_rows(vec) -> np.ndarray:
    """This rank's rows of a PETSc vector as a numpy view of its memory (no copy)."""
    return vec.getArray()


def _block_csr(A, bs: int):
    """(indptr, indices) of the bs x bs block CSR of this rank's rows A, checked to be node-
    interleaved: the bs rows of a node have equal lengths and every block is complete."""
    n_own = A.shape[0]
    lengths = np.diff(A.indptr)
    if n_own % bs or A.shape[1] % bs:
        raise ShapeError(f"block_size={bs} but the matrix has {n_own} owned rows of {A.shape[1]}; "
                         "use block_size=1 or the Space's ncomp")
    L = lengths.reshape(-1, bs)
    if (L != L[:, :1]).any() or (L[:, 0] % bs).any():
        raise ShapeError(f"block_size={bs}: the rows of a node do not hold complete {bs} x {bs} blocks; "
                         "assemble on a vector Space (dofs node * ncomp + c) or use block_size=1")
    bptr = (A.indptr[::bs] // (bs * bs)).astype(PETSc.IntType)
    first = bs * np.arange(int(bptr[-1]), dtype=np.int64) + (bs * bs - bs) * np.repeat(
        bptr[:-1].astype(np.int64), L[:, 0] // bs)
    cols = A.indices[first]
    if (cols % bs).any():
        raise ShapeError(f"block_size={bs}: blocks do not start at a node's first dof; use block_size=1")
    return bptr, (cols // bs).astype(PETSc.IntType)


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
        self.M = None
        self.ksp = None
        PetscBackend._count += 1
        self.prefix = f"romtk{PetscBackend._count}_"

    def _fill(self, A, blocked: bool) -> None:
        """Create the PETSc matrix from this rank's CSR rows (exact preallocation: the pattern is
        known), or refill it with new values on the same pattern (no allocation)."""
        n_own, n = A.shape
        bs = self.o.block_size
        indptr, indices = A.indptr.astype(PETSc.IntType, copy=False), A.indices.astype(PETSc.IntType, copy=False)
        same = (self.M is not None and self.A.shape == A.shape and self.A.nnz == A.nnz
                and (self.M.getType().endswith("baij")) == blocked)
        if blocked:
            if not same:
                self._bcsr = _block_csr(A, bs)
                self.M = PETSc.Mat().createBAIJ(size=((n_own, n), (n_own, n)), bsize=bs, csr=self._bcsr,
                                                comm=self.pcomm)
                self.M.setOption(PETSc.Mat.Option.NEW_NONZERO_ALLOCATION_ERR, True)
            else:
                self.M.zeroEntries()
            # values row by row into the preallocated blocks (the CSR is dof-ordered, not block-ordered)
            self.M.setValuesCSR(indptr, indices, A.data)
        else:
            if not same:
                if bs > 1:
                    _block_csr(A, bs)  # the same check: the block size must describe the rows
                self.M = PETSc.Mat().createAIJ(size=((n_own, n), (n_own, n)), bsize=bs,
                                               csr=(indptr, indices, A.data), comm=self.pcomm)
                self.M.setOption(PETSc.Mat.Option.NEW_NONZERO_ALLOCATION_ERR, True)
            else:
                self.M.zeroEntries()
                self.M.setValuesCSR(indptr, indices, A.data)
        self.M.assemble()

    def _options(self) -> str:
        """Put this solver's options in PETSc's database (GAMG defaults, then petsc_options; the
        command line keeps precedence for options it names) and return the PC type in force."""
        o = self.o
        opts = PETSc.Options()
        for k, v in (o.petsc_options or {}).items():
            opts.setValue(self.prefix + k.lstrip("-"), v)
        pc_type = opts.getString(self.prefix + "pc_type", "lu" if o.method == "direct" else _PC[o.preconditioner])
        if pc_type == "gamg":
            for k, v in (GAMG_DEFAULTS | (GAMG_BLOCK_DEFAULTS if o.block_size > 1 else GAMG_SCALAR_DEFAULTS)).items():
                if not opts.hasName(self.prefix + k):
                    opts.setValue(self.prefix + k, v)
        return pc_type

    def setup(self, A) -> None:
        n_own, n = A.shape
        o = self.o
        pc_type = self._options()
        # BAIJ where the preconditioner takes it; GAMG (PETSc 3.26) has no graph of a BAIJ matrix,
        # so it gets AIJ carrying the block size, which it aggregates by nodes just the same
        blocked = o.block_size > 1 and o.method != "direct" and pc_type in ("jacobi", "none", "pbjacobi", "bjacobi")
        M_before = self.M
        self._fill(A, blocked)
        self.A = A
        if self.ksp is not None and self.M is M_before:
            # same pattern, new values: keep the KSP; the PC is rebuilt on the new operator (GAMG
            # reuses its prolongators: pc_gamg_reuse_interpolation)
            self.ksp.setOperators(self.M)
            self._setup_ksp(self.ksp)
            return
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
            ksp.setTolerances(rtol=o.rtol, atol=o.atol, max_it=o.maxiter)
            if o.method == "cg":  # rtol on the true residual, as in the scipy backend
                ksp.setNormType(PETSc.KSP.NormType.UNPRECONDITIONED)
            if o.method == "gmres":
                ksp.setGMRESRestart(o.restart)
        if o.near_nullspace is not None:
            B = np.asarray(o.near_nullspace)
            if B.shape[0] == n:  # given in full: keep this rank's rows
                start = self.M.getOwnershipRange()[0]
                B = B[start:start + n_own]
            vecs = [as_vec(B[:, j], n, self.pcomm, o.block_size) for j in range(B.shape[1])]
            self.M.setNearNullSpace(PETSc.NullSpace().create(vectors=vecs, comm=self.pcomm))
        ksp.setFromOptions()
        if o.method != "direct":  # the command line may have changed them: the residual check uses these
            o.rtol, o.atol, _, o.maxiter = ksp.getTolerances()
        ksp.setConvergenceHistory(reset=True)  # each solve's own residual norms
        self._setup_ksp(ksp)
        self.ksp = ksp

    def _setup_ksp(self, ksp) -> None:
        serial = self.comm.size == 1 and ksp.getPC().getType() == "gamg"
        try:
            with _setup_options(GAMG_SETUP_OPTIONS_SERIAL if serial else {}):
                ksp.setUp()
        except PETSc.Error as exc:
            # an error need not reach every rank, so the matrix is examined (collectively) on one only
            cause = diagnose(self.A, near_nullspace=self.o.near_nullspace) if self.comm.size == 1 else ""
            raise SingularSystemError(
                f"PETSc could not set up the solver ({exc}); " + (cause or (
                    "if it hit a zero pivot the system is singular: call solvers.linalg.diagnose(A) for the "
                    "cause (a pure Neumann problem, a zero coefficient, a degenerate cell)"))
            ) from None

    def norm_kind(self) -> str:
        """The residual norm the KSP stops on (key of linear.SLACK): after setFromOptions, so an
        option that changes the KSP type or its norm is taken into account."""
        if self.o.method == "direct":
            return "direct"
        unprec = self.ksp.getNormType() == PETSc.KSP.NormType.UNPRECONDITIONED
        return "unpreconditioned" if unprec else "preconditioned"

    def norm(self, v: np.ndarray) -> float:
        """Global 2-norm of a vector given by this rank's rows (collective)."""
        return float(np.sqrt(self.comm.allreduce(float(v @ v), "sum")))

    def residual(self, x: np.ndarray, b: np.ndarray) -> np.ndarray:
        """This rank's rows of b - A x (collective: A's product with the distributed x)."""
        n = self.A.shape[1]
        r = np.array(b, dtype=np.float64)
        rv = as_vec(r, n, self.pcomm, self.o.block_size)
        ax = self.M.createVecLeft()
        self.M.mult(as_vec(x, n, self.pcomm, self.o.block_size), ax)
        rv.axpy(-1.0, ax)
        return r

    def run(self, b: np.ndarray, x0, rtol: float, atol: float, maxiter: int):
        """One KSP solve: (x rows, iterations, history, failure), failure None when KSP reports
        convergence (reason > 0), else why it stopped. A failed LU raises SingularSystemError."""
        o = self.o
        n = self.A.shape[1]
        ksp = self.ksp
        if o.method != "direct":
            ksp.setTolerances(rtol=rtol, atol=atol, max_it=maxiter)
        bv = as_vec(b, n, self.pcomm, o.block_size)
        # the solution is written straight into x (no copy back)
        x = np.zeros(len(b)) if x0 is None else np.array(x0, dtype=np.float64)
        xv = as_vec(x, n, self.pcomm, o.block_size)
        ksp.setInitialGuessNonzero(x0 is not None and o.method != "direct")  # preonly refuses a guess
        try:
            ksp.solve(bv, xv)
        except PETSc.Error as exc:
            return x, 0, [], f"failed in PETSc ({exc})"
        reason = int(ksp.getConvergedReason())
        its = int(ksp.getIterationNumber())
        bn = self.norm(b) or 1.0
        hist = [float(h) / bn for h in ksp.getConvergenceHistory()]
        if reason > 0:
            return x, its, hist, None
        if reason == _PC_FAILED and o.method == "direct":
            raise SingularSystemError(singular_message(
                f"the factorization ({ksp.getPC().getType()}) failed: a zero pivot", self.A, start=o._start,
                comm=self.comm, near_nullspace=o.near_nullspace))
        if reason == _MAX_IT:
            return x, its, hist, f"reached maxiter={maxiter}"
        return x, its, hist, f"diverged (KSP reason {_REASONS.get(reason, reason)})"
