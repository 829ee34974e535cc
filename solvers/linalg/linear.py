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


class _ScipyBackend:
    """SuperLU for "direct"; scipy Krylov methods with pyamg/Jacobi preconditioning."""

    def __init__(self, opts: "LinearSolver"):
        self.o = opts
        self.lu = None
        self.M = None
        self.A = None

    def setup(self, A: sp.csr_matrix) -> None:
        self.A = A
        if self.o.method == "direct":
            try:
                self.lu = sla.splu(A.tocsc(), permc_spec="COLAMD")
            except RuntimeError as exc:  # SuperLU: "Factor is exactly singular"
                raise SingularSystemError(_singular_message(str(exc))) from None
            d = np.abs(self.lu.U.diagonal())
            if d.size and (not np.isfinite(d).all() or d.min() <= 1e-13 * d.max()):
                raise SingularSystemError(_singular_message(f"pivot ratio {d.min() / d.max():.1e}"))
            return
        if self.o.preconditioner == "amg":
            import pyamg

            B = self.o.near_nullspace
            # sparse LU on the coarsest level: pyamg's default dense pseudo-inverse is computed lazily
            # at the first V-cycle and costs seconds when aggregation stalls at a few thousand dofs
            ml = pyamg.smoothed_aggregation_solver(A, B=B, max_coarse=500, coarse_solver="splu")
            self.M = ml.aspreconditioner(cycle="V")
        elif self.o.preconditioner == "jacobi":
            dinv = 1.0 / A.diagonal()
            self.M = sla.LinearOperator(A.shape, matvec=lambda x: dinv * x)
        else:
            self.M = None

    def solve(self, b: np.ndarray, x0=None) -> tuple[np.ndarray, SolveInfo]:
        o = self.o
        if o.method == "direct":
            x = self.lu.solve(b)
            r = _relres(self.A, x, b)
            if not np.isfinite(x).all():
                raise SingularSystemError(_singular_message("non-finite solution"))
            return x, SolveInfo("direct", 0, r)
        if b.ndim == 2:
            cols = [self.solve(b[:, j])[0] for j in range(b.shape[1])]
            return np.stack(cols, axis=1), SolveInfo(o.method)
        history: list[float] = []
        bnorm = np.linalg.norm(b) or 1.0
        A = self.A

        def cb(xk):
            if o.method == "gmres":  # callback gets the preconditioned residual norm
                history.append(float(xk))
            else:
                history.append(float(np.linalg.norm(b - A @ xk) / bnorm) if o.record_history else np.nan)

        kw = dict(rtol=o.rtol, atol=o.atol * bnorm, maxiter=o.maxiter, M=self.M, x0=x0)
        if o.method == "cg":
            x, info = sla.cg(A, b, callback=cb, **kw)
        elif o.method == "minres":
            kw.pop("atol")
            x, info = sla.minres(A, b, callback=cb, **kw)
        else:
            x, info = sla.gmres(A, b, callback=cb, callback_type="pr_norm", restart=o.restart, **kw)
        r = _relres(A, x, b)
        it = len(history)
        # scipy measures convergence in the preconditioned norm (MINRES/GMRES); info is its verdict,
        # the true residual r is reported in SolveInfo
        if info != 0 or not np.isfinite(r):
            raise ConvergenceError(
                f"{o.method.upper()} with preconditioner {o.preconditioner} stopped after {it} iterations at "
                f"relative residual {r:.2e} (asked {o.rtol:.0e}); raise maxiter, use preconditioner='amg' "
                "(with near_nullspace for elasticity) or method='direct'",
                history,
            )
        return x, SolveInfo(o.method, it, r, history=history)


def _relres(A, x, b) -> float:
    bn = np.linalg.norm(b)
    return float(np.linalg.norm(A @ x - b) / (bn if bn > 0 else 1.0))


def _singular_message(detail: str) -> str:
    return (
        f"the linear system is singular ({detail}): a pure Neumann problem or a body free to move "
        "has no unique solution; add a Dirichlet condition (or fix one dof per rigid-body mode)"
    )


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
    for elasticity), "jacobi" or None. rtol/atol: relative/absolute residual tolerances.
    backend: "scipy" (one process) or "petsc" (petsc4py; KSP/PC, MPI-distributed rows);
    default: scipy on one rank, petsc under mpirun. petsc_options: extra PETSc options (dict),
    the command line overrides them. comm: the communicator (default rom.parallel.world()).
    block_size: dofs per node when they are interleaved per node (dof node * k + c, as on a vector
    Space: pass Space.ncomp); the PETSc backend then stores k x k blocks (BAIJ) and GAMG
    aggregates nodes. 1 (default): no block structure assumed.
    """

    def __init__(self, method: str = "direct", preconditioner: str | None = "amg", *, rtol: float = 1e-10,
                 atol: float = 0.0, maxiter: int | None = None, restart: int = 50, near_nullspace=None,
                 backend: str | None = None, record_history: bool = True, petsc_options: dict | None = None,
                 comm=None, block_size: int = 1):
        if method not in METHODS:
            raise ShapeError(f"method={method!r}: use one of {METHODS}")
        if preconditioner not in PRECONDITIONERS:
            raise ShapeError(f"preconditioner={preconditioner!r}: use one of {PRECONDITIONERS}")
        self.comm = comm or world()
        if backend is None:
            backend = "petsc" if self.comm.size > 1 else "scipy"
        if backend not in BACKENDS:
            raise ShapeError(f"backend={backend!r} is not available; installed backends: {sorted(BACKENDS)}")
        self.method, self.preconditioner = method, preconditioner
        self.rtol, self.atol, self.maxiter, self.restart = rtol, atol, maxiter, restart
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

    def setup(self, A) -> "LinearSolver":
        """Factorize (direct) or build the preconditioner for A; later solves reuse it.
        A: sparse (n, n), or this rank's rows (n_owned, n) when distributed."""
        if not sp.issparse(A) or (self.comm.size == 1 and A.shape[0] != A.shape[1]):
            raise ShapeError(f"A must be a square sparse matrix; got {type(A).__name__} of shape {A.shape}")
        if self.comm.size > 1 and self.backend == "scipy":
            raise ShapeError("the scipy backend runs on one process; under mpirun use backend='petsc'")
        t = time.perf_counter()
        self._impl.setup(sp.csr_matrix(A))
        self.setup_seconds = time.perf_counter() - t
        return self

    def solve(self, b, x0=None) -> np.ndarray:
        """Solve with the operator given to setup. b: (n,) or (n, k) float64."""
        if self._impl.A is None:
            raise ShapeError("call setup(A) before solve(b)")
        b = np.asarray(b, dtype=np.float64)
        if self._impl.A is not None and b.shape[0] != self._impl.A.shape[0]:
            raise ShapeError(f"b has {b.shape[0]} rows, the operator {self._impl.A.shape[0]}")
        t = time.perf_counter()
        x, info = self._impl.solve(b, x0)
        info.seconds = time.perf_counter() - t
        self.info = info
        log.debug("%s: %d iterations, relative residual %.2e, %.3f s", info.method, info.iterations,
                  info.residual, info.seconds)
        return x

    def __call__(self, A, b, x0=None) -> np.ndarray:
        """setup(A) then solve(b)."""
        return self.setup(A).solve(b, x0)
