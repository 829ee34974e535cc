"""Sparse linear solvers: direct with factorization reuse, Krylov with AMG."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as sla

from rom.errors import ConvergenceError, ShapeError, SingularSystemError
from rom.parallel import world

log = logging.getLogger(__name__)

METHODS = ("direct", "cg", "minres", "gmres")
PETSC_PREFIXES = ("-ksp", "-pc", "-mat", "-vec", "-log", "-romtk", "-mg", "-snes", "-info", "-malloc", "-help",
                  "-options", "-mpi", "-on_error")


def split_petsc_args(argv: list[str]) -> tuple[list[str], list[str]]:
    """Split command-line arguments into (the script's own, PETSc options with their values),
    so that case scripts accept e.g. `-romtk1_ksp_monitor -romtk1_ksp_type bcgs`."""
    own, petsc, after_option = [], [], False
    for arg in argv:
        if arg.startswith(PETSC_PREFIXES):
            petsc.append(arg)
            after_option = True
        elif after_option and not arg.startswith("-"):
            petsc.append(arg)
            after_option = False
        else:
            own.append(arg)
            after_option = False
    return own, petsc
PRECONDITIONERS = (None, "amg", "jacobi")


@dataclass
class SolveInfo:
    """What the last solve did: iterations (0 for direct), final relative residual, seconds."""

    method: str
    iterations: int = 0
    residual: float = float("nan")
    seconds: float = 0.0
    history: list = field(default_factory=list)


def rigid_body_modes(coords: np.ndarray) -> np.ndarray:
    """Rigid-body modes of a displacement space with interleaved dofs (node*dim + c):
    (n_nodes*dim, 3) in 2D, (n_nodes*dim, 6) in 3D. coords: (n_nodes, dim) node coordinates."""
    x = np.asarray(coords, dtype=np.float64)
    n, d = x.shape
    if d == 1:
        return np.ones((n, 1))
    xc = x - x.mean(axis=0)
    if d == 2:
        B = np.zeros((n, 2, 3))
        B[:, 0, 0] = 1
        B[:, 1, 1] = 1
        B[:, 0, 2] = -xc[:, 1]
        B[:, 1, 2] = xc[:, 0]
        return B.reshape(2 * n, 3)
    B = np.zeros((n, 3, 6))
    for c in range(3):
        B[:, c, c] = 1
    B[:, 0, 3], B[:, 1, 3] = -xc[:, 1], xc[:, 0]
    B[:, 1, 4], B[:, 2, 4] = -xc[:, 2], xc[:, 1]
    B[:, 0, 5], B[:, 2, 5] = xc[:, 2], -xc[:, 0]
    return B.reshape(3 * n, 6)


# The true residual ||b - A x|| must reach SLACK[norm] * max(rtol ||b||, atol). Krylov methods
# stop on their own residual estimate: CG on the recursively updated unpreconditioned residual
# (drifts from the true one by rounding only), MINRES and GMRES on a preconditioned norm, which
# can under-state the true residual by the preconditioner's condition number. A miss is first
# corrected from the current x (CORRECTIONS times, within the maxiter budget), then refused.
SLACK = {"unpreconditioned": 2.0, "preconditioned": 10.0, "direct": 1.0}
CORRECTIONS = 2
DEFAULT_MAXITER = 10000


def _norm_kind(method: str) -> str:
    """Which residual norm the scipy backend's method stops on (key of SLACK)."""
    return {"direct": "direct", "cg": "unpreconditioned"}.get(method, "preconditioned")


class _ScipyBackend:
    """SuperLU for "direct"; scipy Krylov methods with pyamg/Jacobi preconditioning."""

    def __init__(self, opts: "LinearSolver"):
        self.o = opts
        self.lu = None
        self.M = None
        self.A = None
        self.start = 0

    def setup(self, A: sp.csr_matrix) -> None:
        self.A = A
        o = self.o
        if o.method == "direct":
            try:
                self.lu = sla.splu(A.tocsc(), permc_spec="COLAMD")
            except RuntimeError as exc:  # SuperLU: "Factor is exactly singular"
                raise SingularSystemError(singular_message(str(exc), A, near_nullspace=o.near_nullspace)) from None
            d = np.abs(self.lu.U.diagonal())
            if d.size and (not np.isfinite(d).all() or d.min() <= 1e-13 * d.max()):
                raise SingularSystemError(singular_message(f"pivot ratio {d.min() / d.max():.1e}", A,
                                                           near_nullspace=o.near_nullspace))
            return
        if o.preconditioner == "amg":
            import pyamg

            # sparse LU on the coarsest level: pyamg's default dense pseudo-inverse is computed lazily
            # at the first V-cycle and costs seconds when aggregation stalls at a few thousand dofs
            try:
                ml = pyamg.smoothed_aggregation_solver(A, B=o.near_nullspace, max_coarse=500, coarse_solver="splu")
            except (ValueError, ArithmeticError, RuntimeError, np.linalg.LinAlgError) as exc:
                raise ConvergenceError(f"pyamg could not build the AMG preconditioner ({exc}). "
                                       + o._advice(A, self.start)) from None
            self.M = ml.aspreconditioner(cycle="V")
        elif o.preconditioner == "jacobi":
            d = A.diagonal()
            if not (d != 0).all():
                raise ConvergenceError(
                    f"preconditioner='jacobi' divides by the diagonal, which is zero at {int((d == 0).sum())} dofs. "
                    + o._advice(A, self.start))
            dinv = 1.0 / d
            self.M = sla.LinearOperator(A.shape, matvec=lambda x: dinv * x)
        else:
            self.M = None

    def residual(self, x: np.ndarray, b: np.ndarray) -> np.ndarray:
        return b - self.A @ x

    def norm(self, v: np.ndarray):
        """2-norm of v (n,), or of each column of v (n, k)."""
        return np.linalg.norm(v, axis=0)

    def norm_kind(self) -> str:
        return _norm_kind(self.o.method)

    def run(self, b, x0, rtol: float, atol: float, maxiter: int):
        """One solve of A x = b by the method itself: (x, iterations, history, failure), failure
        None when the method reports convergence by its own criterion, else why it stopped."""
        o = self.o
        if o.method == "direct":
            return self.lu.solve(b), 0, [], None
        history: list[float] = []
        A = self.A
        bnorm = float(np.linalg.norm(b)) or 1.0

        def cb(xk):
            if o.method == "gmres":  # callback gets the preconditioned residual norm
                history.append(float(xk))
            else:
                history.append(float(np.linalg.norm(b - A @ xk) / bnorm) if o.record_history else np.nan)

        kw = dict(rtol=rtol, M=self.M, x0=x0, callback=cb)
        try:
            with np.errstate(all="ignore"):  # a breakdown shows as a non-finite residual, checked by the caller
                if o.method == "cg":
                    x, info = sla.cg(A, b, atol=atol, maxiter=maxiter, **kw)
                elif o.method == "minres":  # stops on ||r||_M^-1 <= rtol (||A|| ||x|| + ||b||); no atol
                    x, info = sla.minres(A, b, maxiter=maxiter, **kw)
                else:  # scipy counts GMRES's maxiter in restart cycles
                    restart = min(o.restart, maxiter)
                    x, info = sla.gmres(A, b, atol=atol, restart=restart, maxiter=-(-maxiter // restart),
                                        callback_type="pr_norm", **kw)
        except (ValueError, ArithmeticError, RuntimeError) as exc:
            # MINRES: "indefinite preconditioner"; pyamg's coarsest LU, factored at the first V-cycle:
            # "Factor is exactly singular"
            return np.zeros_like(b) if x0 is None else x0, len(history), history, f"broke down ({exc})"
        if info > 0:
            return x, len(history), history, f"reached maxiter={maxiter}"
        if info < 0:
            return x, len(history), history, f"broke down (scipy info {info})"
        return x, len(history), history, None


def _dofs(idx: np.ndarray, distributed: bool) -> str:
    shown = ", ".join(str(int(i)) for i in idx[:5])
    return f"dofs [{shown}{', ...' if idx.size > 5 else ''}]" + (" on this rank" if distributed else "")


def diagnose(A, *, start: int = 0, comm=None, near_nullspace=None) -> str:
    """The structural cause of a singular or non-convergent system, read off the matrix, as a
    sentence with the fix; "" when none is found. Tells apart, in this order:

    - non-finite entries: a degenerate cell (zero area or volume gives inf/NaN in its rows) or
      a non-finite coefficient;
    - all-zero rows, then zero or negative diagonal entries: a zero or negative coefficient
      (k0 <= 0) on the cells around those dofs;
    - A @ 1 = 0 (relative to max_i sum_j |a_ij|, 1e-10): a pure Neumann problem (constants in the
      null space), or for a displacement space a body free to translate;
    - A @ B[:, j] = 0 for a column of near_nullspace: a free rigid-body mode.

    A: this rank's rows (n_owned, n) of the CSR matrix, first row global index `start`; comm:
    a rom.parallel.Comm; with several ranks the call is collective (every rank gets the answer).
    """
    A = sp.csr_matrix(A)
    n_own, n = A.shape
    dist = comm is not None and comm.size > 1
    red = comm.allreduce if dist else (lambda v, op: v)
    rows = np.repeat(np.arange(n_own), np.diff(A.indptr))
    bad_rows = np.unique(rows[~np.isfinite(A.data)]) + start
    nbad = red(int(bad_rows.size), "sum")
    if nbad:
        return (f"{nbad} of {n} rows hold inf or NaN entries ({_dofs(bad_rows, dist)}): a degenerate cell (zero area "
                "or volume: a collapsed cell or a repeated vertex) or a non-finite coefficient; check the mesh with "
                "solvers.mesh.check_cells(mesh) and the coefficient values")
    absA = abs(A)
    rowmax = absA.max(axis=1).toarray().ravel() if n_own else np.zeros(0)
    scale = red(float(rowmax.max()) if n_own else 0.0, "max")
    zero_rows = np.flatnonzero(rowmax <= 1e-14 * scale) + start
    nz = red(int(zero_rows.size), "sum")
    if nz:
        return (f"{nz} of {n} rows are all zero ({_dofs(zero_rows, dist)}): a zero coefficient (e.g. "
                "k0 = 0) on every cell around them, or dofs that no cell touches; make the coefficient positive "
                "(or give those dofs a Dirichlet value)")
    diag = A.diagonal(k=start)  # A[i, start + i]
    nonpos = np.flatnonzero(diag <= 0) + start
    npos = red(int(nonpos.size), "sum")
    if npos:
        return (f"{npos} of {n} diagonal entries are zero or negative ({_dofs(nonpos, dist)}, smallest "
                f"{red(float(diag.min()) if n_own else np.inf, 'min'):.2e}): for a diffusion or elasticity operator, a zero or negative "
                "coefficient (k0 <= 0); check the coefficient's sign and units (an indefinite operator such as "
                "Helmholtz needs method='gmres', 'minres' or 'direct', not CG)")
    rowsum = np.asarray(absA.sum(axis=1)).ravel()
    norm_inf = red(float(rowsum.max()) if n_own else 0.0, "max")
    a1 = red(float(np.abs(A @ np.ones(n)).max()) if n_own else 0.0, "max")
    if a1 <= 1e-10 * norm_inf:
        return (f"A @ 1 = 0 (max |A @ 1| = {a1:.1e}, ||A||_inf = {norm_inf:.1e}): constants are in the null space, "
                "a pure Neumann problem (or a body free to translate); add a Dirichlet condition on some boundary "
                "(or fix one dof)")
    B = None if near_nullspace is None else np.asarray(near_nullspace, dtype=np.float64).reshape(
        len(near_nullspace), -1)
    if B is not None and B.shape[0] == n:  # given in full: A's columns are global
        AB = np.linalg.norm(A @ B, axis=0) if n_own else np.zeros(B.shape[1])
        col = np.sqrt(red(AB**2, "sum")) / np.maximum(np.linalg.norm(B, axis=0), 1e-300)
        free = np.flatnonzero(col <= 1e-10 * norm_inf)
        if free.size:
            return (f"A @ near_nullspace[:, {free.tolist()}] = 0: the body is free to move in those rigid-body "
                    "modes; fix one dof per mode (e.g. a Dirichlet condition on a boundary)")
    return ""


def singular_message(detail: str, A=None, *, start: int = 0, comm=None, near_nullspace=None) -> str:
    """Message of a SingularSystemError: what the solver saw, then the cause found in A (see diagnose)."""
    cause = diagnose(A, start=start, comm=comm, near_nullspace=near_nullspace) if A is not None else ""
    return f"the linear system is singular ({detail}): " + (cause or _NO_CAUSE)


_NO_CAUSE = ("no structural cause found (no inf/NaN, every row and diagonal entry nonzero, A @ 1 != 0): check the "
             "boundary conditions (a body free to move needs one fixed dof per rigid-body mode) and the coefficients")


def _petsc_backend(opts):
    try:
        from solvers.linalg.petsc_backend import PetscBackend
    except ImportError as exc:
        raise ShapeError(
            f"backend='petsc' needs petsc4py, which does not import here ({exc}); run `make mpi` "
            "(or install petsc4py against your cluster's PETSc)"
        ) from None
    return PetscBackend(opts)


BACKENDS = {"scipy": _ScipyBackend, "petsc": _petsc_backend}


class LinearSolver:
    """Solve A x = b for sparse A, reusing the factorization or preconditioner across solves.

    method: "direct" (sparse LU), "cg" (SPD), "minres" (symmetric), "gmres".
    preconditioner: "amg" (smoothed aggregation; pass near_nullspace, e.g. rigid_body_modes,
    for elasticity), "jacobi" or None. rtol, atol: the solve must reach
    ||b - A x|| <= max(rtol ||b||, atol) (atol absolute, in b's units). maxiter: Krylov
    iterations in all (GMRES: inner iterations, every restart counted), default 10000.
    backend: "scipy" (one process) or "petsc" (petsc4py; KSP/PC, MPI-distributed rows);
    default: scipy on one rank, petsc under mpirun. petsc_options: extra PETSc options (dict),
    the command line overrides them. comm: the communicator (default rom.parallel.world()).
    block_size: dofs per node when they are interleaved per node (dof node * k + c, as on a vector
    Space: pass Space.ncomp); the PETSc backend then stores k x k blocks (BAIJ) and GAMG
    aggregates nodes. 1 (default): no block structure assumed.

    Every solve checks the true residual, whatever the method's own stopping test says:
    ||b - A x|| <= slack * max(rtol ||b||, atol), slack = SLACK[...]: 1 for direct solves,
    2 for a method stopping on the unpreconditioned residual (CG), 10 for one stopping on a
    preconditioned norm (MINRES, GMRES, which can under-state the true residual). A miss is
    corrected from the current x (at most CORRECTIONS solves for the residual: iterative
    refinement for LU, Krylov within the maxiter budget); if it still misses, or the method
    fails, ConvergenceError carries the residual history and the cause found in A (diagnose).
    A singular factorization raises SingularSystemError; b = 0 gives x = 0.
    """

    def __init__(self, method: str = "direct", preconditioner: str | None = "amg", *, rtol: float = 1e-10,
                 atol: float = 0.0, maxiter: int | None = None, restart: int = 50, near_nullspace=None,
                 backend: str | None = None, record_history: bool = True, petsc_options: dict | None = None,
                 comm=None, block_size: int = 1):
        if method not in METHODS:
            raise ShapeError(f"method={method!r}: use one of {METHODS}")
        if preconditioner not in PRECONDITIONERS:
            raise ShapeError(f"preconditioner={preconditioner!r}: use one of {PRECONDITIONERS}")
        if not (np.isfinite(rtol) and rtol >= 0 and np.isfinite(atol) and atol >= 0 and rtol + atol > 0):
            raise ShapeError(f"rtol={rtol!r}, atol={atol!r}: give finite tolerances >= 0, not both 0 (e.g. rtol=1e-10)")
        if maxiter is not None and (int(maxiter) != maxiter or maxiter < 1):
            raise ShapeError(f"maxiter={maxiter!r}: give a number of iterations >= 1, or None for {DEFAULT_MAXITER}")
        self.comm = comm or world()
        if backend is None:
            backend = "petsc" if self.comm.size > 1 else "scipy"
        if backend not in BACKENDS:
            raise ShapeError(f"backend={backend!r} is not available; installed backends: {sorted(BACKENDS)}")
        self.method, self.preconditioner = method, preconditioner
        self.rtol, self.atol, self.restart = float(rtol), float(atol), restart
        self.maxiter = DEFAULT_MAXITER if maxiter is None else int(maxiter)
        self.near_nullspace = near_nullspace
        if int(block_size) != block_size or block_size < 1:
            raise ShapeError(f"block_size={block_size!r}: give the number of dofs per node (Space.ncomp), >= 1")
        self.block_size = int(block_size)
        self.record_history = record_history
        self.petsc_options = petsc_options
        self.backend = backend
        self._impl = BACKENDS[backend](self)
        self.info: SolveInfo | None = None
        self.setup_seconds = 0.0
        self._start = 0

    def setup(self, A) -> "LinearSolver":
        """Factorize (direct) or build the preconditioner for A; later solves reuse it.
        A: sparse (n, n), or this rank's rows (n_owned, n) when distributed. A matrix holding
        inf or NaN (a degenerate cell) raises SingularSystemError naming the cause."""
        if not sp.issparse(A) or (self.comm.size == 1 and A.shape[0] != A.shape[1]):
            raise ShapeError(f"A must be a square sparse matrix; got {type(A).__name__} of shape {A.shape}")
        if self.comm.size > 1 and self.backend == "scipy":
            raise ShapeError("the scipy backend runs on one process; under mpirun use backend='petsc'")
        A = sp.csr_matrix(A)
        self._start = sum(self.comm.allgather(A.shape[0])[:self.comm.rank]) if self.comm.size > 1 else 0
        if self.comm.allreduce(int((~np.isfinite(A.data)).sum()), "sum"):
            raise SingularSystemError(singular_message("A holds inf or NaN", A, start=self._start, comm=self.comm))
        t = time.perf_counter()
        self._impl.setup(A)
        self.setup_seconds = time.perf_counter() - t
        return self

    def solve(self, b, x0=None) -> np.ndarray:
        """Solve with the operator given to setup. b: (n,) or (n, k) float64; x0: initial guess
        (n,) for Krylov methods. Returns x meeting the residual check of the class docstring."""
        if self._impl.A is None:
            raise ShapeError("call setup(A) before solve(b)")
        b = np.asarray(b, dtype=np.float64)
        if b.ndim not in (1, 2) or b.shape[0] != self._impl.A.shape[0]:
            raise ShapeError(f"b has shape {b.shape}; the operator has {self._impl.A.shape[0]} rows: give (n,) or (n, k)")
        if x0 is not None and np.shape(x0) != b.shape:
            raise ShapeError(f"x0 has shape {np.shape(x0)}, b {b.shape}: give the initial guess in b's shape")
        if not self.comm.allreduce(int(np.isfinite(b).all()), "min"):
            raise ShapeError("b holds inf or NaN; check the load and boundary values")
        t = time.perf_counter()
        if b.ndim == 2 and not (self.method == "direct" and self.backend == "scipy"):
            cols, infos = [], []
            for j in range(b.shape[1]):
                cols.append(self._solve(b[:, j], x0 if x0 is None else np.asarray(x0)[:, j]))
                infos.append(self._last)
            x = np.stack(cols, axis=1)
            info = SolveInfo(self.method, sum(i.iterations for i in infos), max((i.residual for i in infos), default=0.0),
                             history=[h for i in infos for h in i.history])
        else:
            x = self._solve(b, x0)
            info = self._last
        info.seconds = time.perf_counter() - t
        self.info = info
        log.debug("%s: %d iterations, relative residual %.2e, %.3f s", info.method, info.iterations,
                  info.residual, info.seconds)
        return x

    def _solve(self, b: np.ndarray, x0) -> np.ndarray:
        """One right-hand side (or, for the scipy LU, a block of them), residual checked."""
        impl = self._impl
        bnorm = impl.norm(b)
        if np.all(bnorm == 0):
            self._last = SolveInfo(self.method, 0, 0.0)
            return np.zeros_like(b)
        goal = np.maximum(self.rtol * bnorm, self.atol)
        target = SLACK[impl.norm_kind()] * goal
        r_before = bnorm if x0 is None else impl.norm(impl.residual(np.asarray(x0, dtype=np.float64), b))
        ask = float(np.min(goal / np.where(r_before > 0, r_before, 1.0)))
        x, its, history, failure = impl.run(b, x0, self.rtol, self.atol, self.maxiter)
        rnorm = impl.norm(impl.residual(x, b))
        for _ in range(CORRECTIONS):
            if failure is not None or np.all(rnorm <= target) or not np.all(np.isfinite(rnorm)):
                break
            if self.method != "direct" and its >= self.maxiter:
                failure = f"reached maxiter={self.maxiter}"
                break
            # correct from x: solve A dx = r, asking the goal relative to ||r|| divided by the factor by
            # which the last solve's own test under-stated its true residual (MINRES's test is relative to
            # ||A|| ||x|| + ||b||), within the iterations left
            understated = max(1.0, float(np.max(rnorm / np.where(r_before > 0, r_before, 1.0))) / ask)
            ask = max(float(np.min(goal / rnorm)) / understated, 1e-15)
            r_before = rnorm
            dx, k, h, failure = impl.run(impl.residual(x, b), None, ask, 0.0, self.maxiter - its)
            its, history = its + k, history + h
            if failure is None:
                x = x + dx
                rnorm = impl.norm(impl.residual(x, b))
        rel = np.max(rnorm / np.where(bnorm > 0, bnorm, 1.0))
        if failure is None and np.all(np.isfinite(rnorm)) and np.all(rnorm <= target):
            self._last = SolveInfo(self.method, its, float(rel), history=history)
            return x
        if self.method == "direct":  # SingularSystemError when A shows why, or LU gives no finite x
            cause = diagnose(impl.A, start=self._start, comm=self.comm, near_nullspace=self.near_nullspace)
            if cause or not np.isfinite(rel):
                raise SingularSystemError(f"the linear system is singular (LU gives relative residual {rel:.2e} "
                                          f"after {CORRECTIONS} refinement steps): " + (cause or _NO_CAUSE))
        what = failure or "the method reported convergence, but the true residual misses"
        slack = SLACK[impl.norm_kind()]
        raise ConvergenceError(
            f"{self._name()}: {what} after {its} iterations: true relative residual ||b - A x|| / ||b|| = {rel:.2e}, "
            f"asked {np.max(goal / np.where(bnorm > 0, bnorm, 1.0)):.1e} (rtol={self.rtol:.0e}, atol={self.atol:.0e}, "
            f"slack {slack:g}). " + self._advice(impl.A, self._start),
            history,
        )

    def _name(self) -> str:
        if self.method == "direct":
            return f"direct solve ({self.backend})"
        return f"{self.method.upper()} with preconditioner={self.preconditioner!r} ({self.backend})"

    def _advice(self, A, start: int = 0) -> str:
        """The cause found in A when there is one, else what to change in this configuration."""
        cause = diagnose(A, start=start, comm=self.comm, near_nullspace=self.near_nullspace)
        if cause:
            return "Cause: " + cause
        tips = [f"raise maxiter (now {self.maxiter})"] if self.method != "direct" else []
        if self.method != "direct" and self.preconditioner != "amg":
            tips.append("use preconditioner='amg'")
        if self.preconditioner == "amg" and self.near_nullspace is None and self.block_size > 1:
            tips.append("pass near_nullspace=rigid_body_modes(V.node_coords)")
        if self.method == "cg":
            tips.append("use method='gmres' if A is not symmetric positive definite")
        if self.method == "gmres":
            tips.append(f"raise restart (now {self.restart})")
        if self.method != "direct":
            tips.append("use method='direct'")
        else:
            tips.append("the matrix is ill-conditioned: check the coefficients' units and contrast")
        return "No structural cause found in A (no zero row, no inf/NaN, A @ 1 != 0); " + ", ".join(tips)

    def __call__(self, A, b, x0=None) -> np.ndarray:
        """setup(A) then solve(b)."""
        return self.setup(A).solve(b, x0)
