"""Proper orthogonal decomposition (POD) of snapshot matrices.

A snapshot matrix `S` is `(n_dofs_local, m)` float64: the rows this rank owns of
`m` snapshots (column j is snapshot j). The inner product is `(u, v)_M = u^T M v`
with `M` a sparse symmetric positive definite matrix (the FE mass or H1 matrix) or
the identity when `inner=None`. POD returns modes `Phi` `(n_dofs_local, N)` with
`Phi^T M Phi = I` (to 1e-12) and singular values `sigma` `(N,)` in decreasing
order, such that `Phi` spans the best N-dimensional approximation of the columns
of S in the M-norm (Schmidt-Eckart-Young), and

    ||S - Phi Phi^T M S||_{M,F}^2 = sum_{k > N} sigma_k^2.

Variants (`method=`), all BLAS-3, all distributed over `comm` by rows:

* ``"snapshots"`` (default): Gram matrix `G = S^T M S` (one allreduce), `eigh`,
  modes `S V Lambda^{-1/2}`. Fastest; resolves singular values down to about
  `sqrt(m eps) sigma_1`. When the requested count or tolerance needs more than
  that, it falls back to ``"svd"`` (see `pod` and docs/methods/pod.md).
* ``"svd"``: thin SVD through a QR factorization: `S = Q R` (LAPACK Householder
  QR on one rank, TSQR on several), then `Q^T M Q = L L^T`, SVD of `L^T R`,
  modes `Q L^{-T} U_r`. Accurate to `eps sigma_1` (times a factor of cond(M)^{1/2}).
* ``"tsqr"``: the same, always through TSQR (one gather of the m x m R factors).
* ``"randomized"``: randomized range finder (Halko, Martinsson, Tropp 2011) with
  oversampling and power iterations, in the M inner product.

`IncrementalPOD` (Brand's truncated SVD update, card H / 0.2) builds a basis from
blocks of columns in bounded memory; `pod_streaming` feeds it from an iterable
(e.g. `SnapshotStore.iter_blocks`). `pod_two_level` compresses each trajectory of
a time series first, then across trajectories.

Truncation (card 0.1): with `tol` in (0, 1), N is the larger of
`#{k : sigma_k > tol sigma_1}` and the smallest N whose discarded energy
`sum_{k>N} sigma_k^2` is at most `tol^2 sum_k sigma_k^2`; with `n_modes`, N is
at most `n_modes`; neither keeps every numerically nonzero mode. The discarded
energy is summed from the smallest value up, never as total - cumsum (which cancels
to eps * total); every method goes through `truncation_rank` (docs/methods/pod.md).
"""

from __future__ import annotations

import functools
import logging
import math
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
from threadpoolctl import ThreadpoolController

from rom import _fpenv, _tall_kernels
from rom.errors import RomError, ShapeError
from rom.parallel import Comm, world

__all__ = [
    "pod",
    "IncrementalPOD",
    "pod_streaming",
    "pod_two_level",
    "truncation_rank",
    "unseen_energy",
    "projection_error",
    "InnerProduct",
    "PODArgumentError",
]

_EPS = np.finfo(np.float64).eps
_METHODS = ("snapshots", "svd", "tsqr", "randomized")
# Rows per block when M is applied blockwise: bounds the extra memory of M S to
# about _ROW_BLOCK * m doubles, and keeps each block in the last-level cache range.
_ROW_BLOCK = 32768


# ---------------------------------------------------------------------------- inner product
class InnerProduct:
    """The matrix M of the inner product, applied to row-distributed blocks.

    matrix : scipy sparse (n_local, n_local) -- serial, or rank-local on purpose --
        or (n_local, n_global) -- the rows this rank owns with global column
        numbers, ranks owning contiguous row ranges in rank order; the values a
        row needs from other ranks are exchanged once per application (halo).
        None means the identity.

    `apply(X)` returns `M X` for `X` `(n_local, k)`; `gram(X, Y)` returns the
    global `X^T M Y` (one allreduce).
    """

    def __init__(self, matrix, n_local: int, comm: Comm, *, check: bool = True):
        self.comm = comm
        self.n_local = n_local
        self.matrix = None
        self._halo = None
        if matrix is None:
            return
        if not sp.issparse(matrix):
            raise ShapeError(
                f"inner has type {type(matrix).__name__}; pass a scipy.sparse matrix "
                "(e.g. the FE mass matrix) or None for the Euclidean inner product"
            )
        matrix = sp.csr_matrix(matrix, dtype=np.float64)
        counts = np.asarray(comm.allgather(n_local), dtype=np.int64)
        n_global = int(counts.sum())
        if matrix.shape[0] != n_local or matrix.shape[1] not in (n_local, n_global):
            raise ShapeError(
                f"inner has shape {matrix.shape} but the snapshots have {n_local} rows on this rank "
                f"({n_global} in all); pass the ({n_local}, {n_local}) matrix, or this rank's rows "
                f"({n_local}, {n_global}) of the global one"
            )
        if check:
            self._check_spd(matrix, counts)
        if matrix.shape[1] == n_local or comm.size == 1:
            self.matrix = matrix
        else:
            self.matrix = self._setup_halo(matrix, counts)

    def _check_spd(self, matrix, counts) -> None:
        offset = int(counts[: self.comm.rank].sum())
        square = matrix.shape[1] == matrix.shape[0]
        local = matrix if square else matrix[:, offset : offset + self.n_local]
        diag = local.diagonal()
        if diag.size and not np.all(diag > 0):
            k = int(np.argmin(diag))
            raise ShapeError(
                f"inner is not positive definite: diagonal entry {k} is {diag[k]:.3g}; "
                "pass a symmetric positive definite matrix (mass or H1 matrix with Dirichlet rows kept)"
            )
        if square:
            asym = abs(matrix - matrix.T)
            scale = abs(matrix).max() if matrix.nnz else 0.0
            if asym.nnz and asym.max() > 1e-10 * scale:
                raise ShapeError(
                    f"inner is not symmetric (max |M - M^T| = {asym.max():.3g}, max |M| = {scale:.3g}); "
                    "pass a symmetric positive definite matrix, e.g. 0.5 * (M + M.T)"
                )
        if not np.all(np.isfinite(matrix.data)):
            raise ShapeError("inner has NaN or Inf entries; assemble it again")

    def _setup_halo(self, matrix, counts):
        """Renumber columns to [owned rows | ghost rows] and plan the exchange."""
        comm = self.comm
        offsets = np.concatenate([[0], np.cumsum(counts)])
        lo, hi = offsets[comm.rank], offsets[comm.rank + 1]
        cols = np.unique(matrix.indices)
        ghosts = cols[(cols < lo) | (cols >= hi)]
        owner = np.searchsorted(offsets, ghosts, side="right") - 1
        requests = [ghosts[owner == r] - offsets[r] for r in range(comm.size)]
        # What every other rank needs from me, as local row numbers.
        self._send = comm.alltoall(requests)
        self._recv_counts = [len(r) for r in requests]
        colmap = np.empty(int(offsets[-1]), dtype=np.int64)
        colmap[lo:hi] = np.arange(hi - lo)
        colmap[ghosts] = (hi - lo) + np.arange(ghosts.size)  # ghosts sorted by owner, then index
        compact = sp.csr_matrix(
            (matrix.data, colmap[matrix.indices], matrix.indptr),
            shape=(matrix.shape[0], int(hi - lo + ghosts.size)),
        )
        self._halo = True
        return compact

    def _extended(self, X: np.ndarray) -> np.ndarray:
        if self._halo is None:
            return X
        received = self.comm.alltoall([X[idx] for idx in self._send])
        return np.vstack([X] + [b for b in received if len(b)])

    @property
    def is_identity(self) -> bool:
        return self.matrix is None

    def apply(self, X: np.ndarray) -> np.ndarray:
        """M X for X (n_local, k); the identity returns X itself (no copy)."""
        if self.matrix is None:
            return X
        return np.asarray(self.matrix @ self._extended(X))

    def gram(self, X: np.ndarray, Y: np.ndarray | None = None) -> np.ndarray:
        """Global X^T M Y (Y = X by default), summed over ranks with one allreduce.

        With Y = X and M = I this is a symmetric rank-k update (numpy's syrk
        path); with M it is computed in row blocks of M so that no full copy of
        M X is held.
        """
        sym = Y is None
        Y = X if sym else Y
        if self.matrix is None:
            G = _syrk(X) if sym else X.T @ Y
        else:
            Yext = self._extended(Y)
            G = np.zeros((X.shape[1], Y.shape[1]))
            for b0 in range(0, X.shape[0], _ROW_BLOCK):
                b1 = min(b0 + _ROW_BLOCK, X.shape[0])
                G += X[b0:b1].T @ np.asarray(self.matrix[b0:b1] @ Yext)
        G = self.comm.allreduce(G, "sum")
        if sym:
            G = 0.5 * (G + G.T)
        return G

    def norms2(self, X: np.ndarray) -> np.ndarray:
        """Squared M-norms of the columns of X, global."""
        if self.matrix is None:
            local = np.einsum("ij,ij->j", X, X)
        else:
            local = np.einsum("ij,ij->j", X, self.apply(X))
        return self.comm.allreduce(local, "sum")


def _syrk(X: np.ndarray) -> np.ndarray:
    """X^T X (m, m) for X (n, m), exactly symmetric, once per row slab (`_row_slabs`).

    Tall float64 X with unit column stride and m <= _KERNEL_MAX_COLS goes to the packed
    kernel of `rom._tall_kernels` (2 cores, 1e6 x 500: 0.96 of the square-GEMM rate; 4e5 x
    1000 and 2e5 x 2000: 0.94, where OpenBLAS's dsyrk reaches 0.73 and 0.84); the rest to
    numpy's X.T @ X, which calls dsyrk (half the flops of a GEMM). Past 2000 columns the
    kernel was not measured. `_tall_kernel` decides, and logs why numpy's product runs.
    """
    m = X.shape[1]
    kernel = _tall_kernel(X)
    if kernel is None:
        parts = _row_slabs(lambda Y: Y.T @ Y, X)
        return sum(parts[1:], parts[0])
    fn, width = kernel
    parts = _row_slabs(lambda Y: _tall_kernels.gram_lower(Y, fn, width), X)
    L = np.tril(sum(parts[1:], parts[0])[:m, :m])
    return L + np.tril(L, -1).T


def _tall_kernel(X: np.ndarray, W: np.ndarray | None = None):
    """The `rom._tall_kernels` kernel for a product with the tall X (n, k), or None where
    numpy's product runs instead: for X^T X (W None) the pair (Gram function, lanes), for
    X @ W the passes of `_times_passes(W)`.

    The kernels are an optional accelerator, and every way to numpy is logged on the logger
    "rom.pod" (`_numpy_instead`): switched off (ROMTK_TALL_KERNELS=0), a CPU they were not
    tuned for or LLVM cannot target, a shape outside their measured range, a failed compile.
    """
    switch = os.environ.get("ROMTK_TALL_KERNELS", "").strip()
    if switch not in ("", "0", "1"):
        raise RomError(f"ROMTK_TALL_KERNELS={switch!r}; set it to 0 (numpy's products only) or 1, or leave it unset")
    if switch == "0":
        return _numpy_instead("disabled", "switched off by ROMTK_TALL_KERNELS=0")
    why = _tall_kernels.unavailable()
    if why is not None:
        return _numpy_instead("cpu", why)
    why = _shape_refusal(X, _KERNEL_MAX_COLS if W is None else None)
    if why is not None:
        return _numpy_instead("shape", why)
    if W is None:
        fn, width = _tall_kernels.compiled()
        if fn is None:
            return _numpy_instead("compile", f"the Gram kernel failed to compile: {width}")
        return fn, width
    passes, why = _times_passes(W)
    if passes is None:
        return _numpy_instead("compile" if W.shape[1] else "shape", why)
    return passes


def _numpy_instead(kind: str, why: str) -> None:
    """Log why numpy's product runs instead of a tall kernel: at INFO the first time for each
    kind of reason in this process, at DEBUG afterwards (a POD asks at every product)."""
    _log.log(logging.DEBUG if kind in _TOLD else logging.INFO,
             "tall products through numpy, not rom._tall_kernels: %s", why)
    _TOLD.add(kind)
    return None


_log = logging.getLogger("rom.pod")
_TOLD: set[str] = set()  # kinds of reason (`_tall_kernel`) already logged at INFO


def _shape_refusal(X: np.ndarray, max_cols: int | None = None) -> str | None:
    """Why X does not suit `rom._tall_kernels` (None where it does): the kernels take tall
    float64 rows with unit column stride, up to `max_cols` columns."""
    n, k = X.shape
    if X.dtype != np.float64:
        return f"the matrix is {X.dtype}, the kernels take float64"
    if n < _KERNEL_MIN_ROWS:
        return f"the matrix has {n} rows, under the {_KERNEL_MIN_ROWS} from which the kernels pay"
    if k == 0 or (max_cols is not None and k > max_cols):
        return f"the matrix has {k} columns, outside 1..{max_cols} where the Gram kernel was measured"
    if not (X.strides[1] == X.itemsize and X.strides[0] % X.itemsize == 0 and X.strides[0] > 0):
        return f"the matrix's strides {X.strides} are not rows of contiguous float64"
    return None


def _kernel_applies(X: np.ndarray, max_cols: int | None = None) -> bool:
    """Whether X suits `rom._tall_kernels` on this CPU (the shape and CPU tests of `_tall_kernel`)."""
    return _tall_kernels.tuned() and _shape_refusal(X, max_cols) is None


_KERNEL_MIN_ROWS = 1024  # below, numpy's call costs less than the kernel's G and panel buffers
_KERNEL_MAX_COLS = 2000  # the widest the kernel was timed at (docs/benchmarks.md)


def _times(X: np.ndarray, W: np.ndarray) -> np.ndarray:
    """X @ W (n, l) for a tall X (n, k) and a small W (k, l), by row slabs (`_row_slabs`).

    Tall float64 X with unit column stride goes to `rom._tall_kernels.times` (1e6 x 500 times
    500 x 50 on 2 cores: 0.36-0.43 s, numpy's matmul through OpenBLAS 0.78 s).
    """
    out = np.empty((X.shape[0], W.shape[1]))
    passes = _tall_kernel(X, W)
    _row_slabs(lambda Xs, Os: _times_into(Xs, W, Os, passes), X, out)
    return out


def _times_into(X: np.ndarray, W: np.ndarray, out: np.ndarray, passes: list | None) -> None:
    """out = X @ W on the calling thread, through the kernel passes of `_times_passes(W)`
    or, where None, numpy's matmul."""
    if passes is None:
        np.matmul(X, W, out=out)
        return
    for Vp, a, b, fn in passes:
        _tall_kernels.times(X, Vp, b - a, out[:, a:b], fn)


def _times_passes(W: np.ndarray) -> tuple[list | None, str]:
    """([(packed columns a:b of W, a, b, kernel)], "") in groups of at most _TIMES_GROUP_VECTORS
    vectors (one register tile), or (None, why) where no kernel can be built."""
    width = _tall_kernels.lanes()
    if width is None or W.shape[1] == 0:
        return None, "LLVM cannot target this CPU" if width is None else "the product has no columns"
    group = _TIMES_GROUP_VECTORS * width
    passes = []
    for a in range(0, W.shape[1], group):
        b = min(a + group, W.shape[1])
        fn, detail = _tall_kernels.compiled_times(-(-(b - a) // width))  # detail: lanes, or why it failed
        if fn is None:
            return None, f"the product kernel failed to compile: {detail}"
        passes.append((_tall_kernels.pack_right(np.asarray(W[:, a:b], dtype=np.float64), width), a, b, fn))
    return passes, ""


_TIMES_GROUP_VECTORS = 7  # output vectors per pass of `times` over X (7 x 3 rows: 21 accumulators)


def _row_slabs(fn, *arrays) -> list:
    """[fn(*slabs)] over row slabs of `arrays` (equal row counts), one slab per BLAS thread,
    each on one BLAS thread with subnormals flushed to zero on it (`rom._fpenv`).

    Why: OpenBLAS threads tall-skinny products poorly (2 cores, X^T X of 1e6 x 100: 0.16 s
    threaded, 0.13 s split; 1e6 x 500: 3.09 s and 2.91 s), and snapshots that decay through the
    whole floating-point range (a travelling pulse) make partial sums subnormal, which x86
    handles in microcode (the 50 modes of 1e5 x 100 pulses: 55 ms threaded, 20 ms by slabs). Flushing
    changes results only below 2.2e-308 in absolute value. Small arrays take one plain call.
    """
    X = arrays[0]
    if X.size < _SLAB_MIN:
        return [fn(*arrays)]
    nt = max(1, min(_blas_threads(), X.shape[0] // 2))
    cut = np.linspace(0, X.shape[0], nt + 1).astype(np.int64)

    def run(k):
        with _fpenv.flushed_on_this_thread():
            return fn(*(a[cut[k]:cut[k + 1]] for a in arrays))

    with _blas().limit(limits=1, user_api="blas"):
        return [run(0)] if nt == 1 else list(_pool(nt).map(run, range(nt)))


_SLAB_MIN = 1 << 16  # elements: below, the thread hand-off costs more than it can save
_POOLS: dict = {}


def _blas_threads() -> int:
    """Threads the loaded BLAS libraries may use now (honours threadpool_limits and
    OPENBLAS_NUM_THREADS)."""
    return max((c.num_threads for c in _blas().select(user_api="blas").lib_controllers), default=1)


@functools.lru_cache(maxsize=None)
def _blas() -> ThreadpoolController:
    """The process's BLAS libraries, found once: a fresh threadpool_info/threadpool_limits scans
    every loaded library (about 1 ms, twice per product: 8 ms of a 1e5 x 100 POD's 90 ms)."""
    return ThreadpoolController()


def _pool(n: int) -> ThreadPoolExecutor:
    if n not in _POOLS:
        _POOLS[n] = ThreadPoolExecutor(n, thread_name_prefix="romtk-slabs")
    return _POOLS[n]


# ---------------------------------------------------------------------------- validation
def _check_snapshots(snapshots, comm: Comm, name: str = "snapshots", scan: bool = True) -> np.ndarray:
    """Snapshots as a 2-D float64 array; NaN/Inf columns refused.

    scan=False skips the pass over the data: the caller then checks a small
    result that any NaN/Inf would reach (the Gram diagonal, R, column norms) and
    calls `_refuse_nonfinite` when it is not finite.
    """
    S = np.asarray(snapshots)
    if S.ndim == 1:
        S = S[:, None]
    if S.ndim != 2:
        raise ShapeError(f"{name} has shape {S.shape}; pass a (n_dofs, n_snapshots) array, one snapshot per column")
    if not np.issubdtype(S.dtype, np.floating) and not np.issubdtype(S.dtype, np.integer):
        raise ShapeError(f"{name} has dtype {S.dtype}; pass real floating-point snapshots")
    S = np.asarray(S, dtype=np.float64, order="F" if S.flags.f_contiguous and not S.flags.c_contiguous else "C")
    m = S.shape[1]
    m_all = comm.allgather(m)
    if len(set(m_all)) != 1:
        raise ShapeError(f"{name} has {m} columns on rank {comm.rank} but {m_all} across ranks; every rank holds the same snapshots")
    if m == 0:
        raise ShapeError(f"{name} has no columns (an empty store?); generate snapshots first")
    if scan:
        _refuse_nonfinite(S, comm, name)
    return S


def _refuse_nonfinite(S: np.ndarray, comm: Comm, name: str = "snapshots") -> None:
    """Raise ShapeError naming the columns of S with NaN/Inf (on every rank), if any."""
    bad = np.zeros(S.shape[1], dtype=np.int64)
    for b0 in range(0, S.shape[0], _ROW_BLOCK):  # blockwise: no (n, m) boolean temporary
        bad |= ~np.isfinite(S[b0 : b0 + _ROW_BLOCK]).all(axis=0)
    bad = comm.allreduce(bad, "max")
    if bad.any():
        cols = np.flatnonzero(bad)
        raise ShapeError(
            f"{name} column(s) {cols[:10].tolist()}{'...' if cols.size > 10 else ''} contain NaN or Inf; "
            "drop those snapshots (e.g. failed solves) before POD"
        )


def _check_truncation(n_modes, tol) -> None:
    if n_modes is not None:
        if isinstance(n_modes, bool) or not isinstance(n_modes, (int, np.integer)) or n_modes < 1:
            raise PODArgumentError(f"n_modes={n_modes!r}; pass a positive integer or None")
    if tol is not None:
        if not (isinstance(tol, (float, int, np.floating, np.integer)) and 0.0 < float(tol) < 1.0):
            raise PODArgumentError(f"tol={tol!r} is a relative energy tolerance; pass a number in (0, 1), e.g. 1e-6")


class PODArgumentError(RomError, ValueError):
    """A bad POD argument: method, n_modes or tol out of range."""


# ---------------------------------------------------------------------------- truncation
def truncation_rank(sigma: np.ndarray, n_modes: int | None = None, tol: float | None = None,
                    total_energy: float | None = None, rank_tol: float | None = None, *,
                    tail_energy: float | None = None) -> int:
    """Number N of modes to keep from decreasing singular values `sigma` (card 0.1).

    total_energy : sum of all squared singular values of the data (default
        sum(sigma**2) + tail_energy); pass it when `sigma` is itself truncated.
    tail_energy : the energy beyond the last value of `sigma`, summed directly (>= 0),
        when the caller knows it (the unresolved Gram eigenvalues, what a streaming POD
        discarded). Without it, and with `total_energy`, it is the difference
        total_energy - sum(sigma**2), which cancels: that difference is known only to within
        `_subtraction_allowance` (a few eps total_energy), and the rule then takes it at its
        upper end (difference + allowance), so that a tolerance below that resolution keeps
        every value of `sigma` rather than too few.
    rank_tol : relative level under which sigma_k / sigma_1 counts as zero
        (numerical rank); default 0, keep all positive ones.

    The energy discarded by keeping k values is summed from the smallest value up (a
    reversed cumulative sum of non-negative terms, relative error below len(sigma) eps), never
    as total - cumsum: it is exactly 0 when nothing is discarded, and correct to a few digits
    down to tol = 1e-15.
    """
    sigma = np.asarray(sigma, dtype=np.float64)
    if sigma.size == 0 or not sigma[0] > 0:
        return 0
    floor = sigma[0] * (rank_tol or 0.0)
    rank = int(np.count_nonzero(sigma > floor))
    N = rank
    if tol is not None:
        e = sigma**2
        unseen, total = unseen_energy(e, total_energy, tail_energy)
        # discarded[k] = energy left out when keeping k modes, k = 0..len
        discarded = np.concatenate([np.cumsum(e[::-1])[::-1], [0.0]]) + unseen
        ok = np.flatnonzero(discarded <= tol**2 * total)
        n_energy = int(ok[0]) if ok.size else sigma.size
        n_ratio = int(np.count_nonzero(sigma > tol * sigma[0]))
        N = min(rank, max(n_energy, n_ratio))
    if n_modes is not None:
        N = min(N, int(n_modes))
    return max(N, 1)


def unseen_energy(e: np.ndarray, total_energy: float | None = None,
                  tail_energy: float | None = None) -> tuple[float, float]:
    """(an upper estimate of the energy beyond the squared values `e`, the total energy).

    tail_energy given: it is the unseen energy (summed directly by the caller). Else with
    total_energy: max(total - fsum(e), 0) plus `_subtraction_allowance`, the round-off
    allowance of that difference. Neither: 0 (e is the whole spectrum).
    """
    seen = math.fsum(e)
    if tail_energy is not None:
        unseen = max(float(tail_energy), 0.0)
        return unseen, (seen + unseen if total_energy is None else float(total_energy))
    if total_energy is None:
        return 0.0, seen
    total = float(total_energy)
    return max(total - seen, 0.0) + _subtraction_allowance(total, len(e)), total


def _subtraction_allowance(total: float, n_values: int) -> float:
    """Round-off allowance of total - sum_k sigma_k^2 when the two come from different
    computations (norms of the snapshots; an SVD or eigensolver): each carries a relative error of
    order eps, the sum of n values one that grows like sqrt(n) when the errors do not align.
    Taken as 8 (1 + sqrt(n)) eps total: 3.4e-14 total for n = 300 (tolerances above 1.9e-7 are
    resolved). An allowance, not a proven bound."""
    return 8.0 * (1.0 + math.sqrt(n_values)) * _EPS * total


# ---------------------------------------------------------------------------- helpers
def _sign_fix(V: np.ndarray) -> np.ndarray:
    """Signs (+-1 per column) making the largest-magnitude entry of each column of V positive."""
    idx = np.argmax(np.abs(V), axis=0)
    s = np.sign(V[idx, np.arange(V.shape[1])])
    s[s == 0] = 1.0
    return s


def _reorthonormalize(Phi: np.ndarray, ip: InnerProduct, target: float = 1e-13) -> np.ndarray:
    """Make Phi M-orthonormal to round-off with at most two Cholesky-QR passes.

    Phi is already close to orthonormal (a POD/SVD output), so Cholesky of the
    small Gram matrix is safe and each pass squares the orthogonality defect.
    The span and column order are kept (triangular correction).
    """
    for _ in range(2):
        G = ip.gram(Phi)
        defect = np.max(np.abs(G - np.eye(G.shape[0]))) if G.size else 0.0
        if defect <= target:
            break
        Phi = _right_mul_inv_lt(np.ascontiguousarray(Phi), np.linalg.cholesky(G))
        if defect < 1e-4:
            # Cholesky QR of a matrix with cond <= (1 + 1e-4)/(1 - 1e-4) leaves a defect of
            # a few eps (Yamamoto et al. 2015): no second Gram pass to confirm it
            break
    return np.ascontiguousarray(Phi)


def _right_mul_inv_lt(X: np.ndarray, L: np.ndarray) -> np.ndarray:
    """X L^{-T} in place for C-contiguous X (n, k), L (k, k) lower triangular.

    The small inverse L^{-1} is formed explicitly (L is well conditioned here:
    cond(L) = cond(X^T M X)^{1/2}), then each row slab (`_row_slabs`) is multiplied
    block by block into a small buffer and copied back: no copy of X, no triangular
    solve with n right-hand sides. The product is `rom._tall_kernels.times` where X suits
    it (1e6 x 50 on two threads: 0.06-0.07 s, numpy's matmul 0.11-0.14 s), numpy's matmul
    otherwise; not scipy's dtrmm: scipy's BLAS wrappers hold the GIL, so slabs of dtrmm ran
    one after the other (1e6 x 50 on two threads: 0.33 s, as on one).
    """
    Linv = sla.solve_triangular(L, np.eye(L.shape[0]), lower=True, check_finite=False)
    if not X.flags.c_contiguous:
        return _times(X, Linv.T)
    Lt = np.ascontiguousarray(Linv.T)
    passes = _tall_kernel(X, Lt)

    def blocks(Xs):
        buf = np.empty((min(_CORRECTION_ROWS, Xs.shape[0]), Lt.shape[1]))
        for b0 in range(0, Xs.shape[0], _CORRECTION_ROWS):
            Xb = Xs[b0:b0 + _CORRECTION_ROWS]
            out = buf[:Xb.shape[0]]
            _times_into(Xb, Lt, out, passes)
            Xb[...] = out

    _row_slabs(blocks, X)
    return X


_CORRECTION_ROWS = 2048  # rows per block of the in-place correction: block and buffer stay in L2 (4096: 0.07-0.08 s)


def _qr_local(S: np.ndarray, comm: Comm) -> tuple[np.ndarray, np.ndarray]:
    """Q (n_local, m) with orthonormal columns (Euclidean, global) and R (m, m) with S = Q R.

    One rank: LAPACK Householder QR. Several: TSQR with a single stage
    (local QR, allgather of the R factors, QR of their stack).
    """
    m = S.shape[1]
    Q1, R1 = sla.qr(S, mode="economic", check_finite=False)
    if comm.size == 1:
        if R1.shape[0] < m:  # fewer rows than columns
            R1 = np.vstack([R1, np.zeros((m - R1.shape[0], m))])
            Q1 = np.hstack([Q1, np.zeros((Q1.shape[0], m - Q1.shape[1]))])
        return Q1, R1
    Rs = comm.allgather(R1)
    Q2, R = sla.qr(np.vstack(Rs), mode="economic", check_finite=False)
    start = sum(r.shape[0] for r in Rs[: comm.rank])
    Q = Q1 @ Q2[start : start + R1.shape[0]]
    if R.shape[0] < m:
        R = np.vstack([R, np.zeros((m - R.shape[0], m))])
        Q = np.hstack([Q, np.zeros((Q.shape[0], m - Q.shape[1]))])
    return Q, R


# ---------------------------------------------------------------------------- batch POD
def _pod_gram(S, ip, comm, n_modes, tol):
    """Method of snapshots; returns None when the request is below its accuracy."""
    m = S.shape[1]
    G = ip.gram(S)
    if not np.all(np.isfinite(np.diag(G))):
        _refuse_nonfinite(S, comm)
    lam, V = sla.eigh(G, check_finite=False)
    lam, V = comm.bcast((lam[::-1], V[:, ::-1]), root=0)
    if not lam[0] > 0:
        return np.zeros((S.shape[0], 0)), np.zeros(0)
    # Eigenvalues of G carry an absolute rounding error of a few eps lambda_1 (forming
    # G, then eigh): below `floor`, sigma_k / sigma_1 < sqrt(10 eps) ~ 5e-8, they are noise.
    floor = 10.0 * _EPS * lam[0]
    resolved = int(np.count_nonzero(lam > floor))
    total = math.fsum(np.clip(lam, 0.0, None))
    sigma = np.sqrt(np.clip(lam[:resolved], 0.0, None))
    # the unresolved eigenvalues' energy, summed directly (no total - sum(resolved))
    N = truncation_rank(sigma, n_modes, tol, total_energy=total,
                        tail_energy=math.fsum(np.clip(lam[resolved:], 0.0, None)))
    # The error energy asked for (tol^2 ||S||^2, or what the N modes leave out) must
    # stand above that noise, else the Gram route cannot deliver it: use the SVD route.
    # With tol, the discarded energy is a sum of the m - N trailing eigenvalues, each known
    # to about `floor`: tol^2 ||S||^2 below (m - N) floor is not resolved (1000 x 300 snapshots
    # with sigma_k = 10^(-13.5 k / 299) at tol 3e-8: 163 modes and error 4.4e-8 without this).
    if tol is not None:
        unresolved = tol**2 * total < floor * max(m - N, 1)
    else:
        unresolved = resolved < m and float(np.sum(np.clip(lam[N:], 0.0, None))) < floor
    if unresolved or (resolved < m and n_modes is not None and n_modes > resolved):
        return None
    V = V[:, :N]
    V = V * _sign_fix(V)
    Phi = _times(S, V / sigma[:N])
    return _reorthonormalize(Phi, ip), sigma[:N].copy()


def _pod_svd(S, ip, comm, n_modes, tol):
    """Thin SVD through QR (LAPACK or TSQR) and the small factor of Q^T M Q."""
    m = S.shape[1]
    Q, R = _qr_local(S, comm)
    if not np.all(np.isfinite(R)):
        _refuse_nonfinite(S, comm)
    if ip.is_identity:
        W = R
    else:
        C = ip.gram(Q)
        # Q spans the columns of S; C = Q^T M Q is SPD when Q has full column
        # rank. Columns of Q that are zero (more snapshots than rows) get a unit
        # diagonal so the factorization exists; R has zero rows there.
        zero = np.diag(C) <= 0
        C[zero, zero] = 1.0
        L = np.linalg.cholesky(C)
        W = L.T @ R
    Ur, s, Vt = sla.svd(W, full_matrices=False, check_finite=False, lapack_driver="gesdd")
    Ur, s, Vt = comm.bcast((Ur, s, Vt), root=0)
    N = truncation_rank(s, n_modes, tol, rank_tol=max(S.shape[0] * comm.size, m) * _EPS)
    if s.size == 0 or not s[0] > 0:
        return np.zeros((S.shape[0], 0)), np.zeros(0)
    V = Vt[:N].T
    sign = _sign_fix(V)
    Uk = Ur[:, :N] * sign
    if not ip.is_identity:
        Uk = sla.solve_triangular(L.T, Uk, lower=False, check_finite=False)
    Phi = Q @ Uk
    return _reorthonormalize(Phi, ip), s[:N].copy()


def _pod_randomized(S, ip, comm, n_modes, tol, oversampling, power_iterations, seed):
    """Randomized range finder in the M inner product (Halko et al. 2011, alg. 4.4/5.1)."""
    m = S.shape[1]
    rng = np.random.default_rng(seed)
    norms2 = ip.norms2(S)
    if not np.all(np.isfinite(norms2)):
        _refuse_nonfinite(S, comm)
    total = float(np.sum(norms2))
    k = m if n_modes is None and tol is None else min(m, (n_modes or 10) + oversampling)
    while True:
        Omega = comm.bcast(rng.standard_normal((m, k)), root=0)
        Q = _m_orthonormal(S @ Omega, ip, comm)
        for _ in range(power_iterations):
            Z = comm.allreduce(S.T @ ip.apply(Q), "sum")  # (m, k) = S^T M Q
            Z, _ = np.linalg.qr(Z)
            Q = _m_orthonormal(S @ Z, ip, comm)
        B = ip.gram(Q, S)  # (k, m) = Q^T M S
        Ub, s, Vt = sla.svd(B, full_matrices=False, check_finite=False)
        Ub, s, Vt = comm.bcast((Ub, s, Vt), root=0)
        # the energy outside range(Q) is total - sum(s^2): taken at the upper end of its round-off
        # allowance (`unseen_energy`), so a tol below that resolution grows k up to m
        captured_all = k >= m or tol is None or unseen_energy(s**2, total)[0] <= 0.25 * tol**2 * total
        if captured_all:
            break
        k = min(m, 2 * k)
    N = truncation_rank(s, n_modes, tol, total_energy=total if k < m else None,
                        rank_tol=max(S.shape[0] * comm.size, m) * _EPS)
    if n_modes is None and tol is None:
        N = truncation_rank(s, None, None, rank_tol=max(S.shape[0] * comm.size, m) * _EPS)
    sign = _sign_fix(Vt[:N].T)
    Phi = Q @ (Ub[:, :N] * sign)
    return _reorthonormalize(Phi, ip), s[:N].copy()


def _m_orthonormal(Y: np.ndarray, ip: InnerProduct, comm: Comm) -> np.ndarray:
    """An M-orthonormal basis of range(Y) (Y full column rank in exact arithmetic).

    Euclidean QR (LAPACK/TSQR) first, so the conditioning of Y does not matter,
    then the Cholesky factor of Q^T M Q; columns that vanished are dropped.
    """
    Q, R = _qr_local(Y, comm)
    keep = np.abs(np.diag(R)) > max(Y.shape) * _EPS * (np.abs(np.diag(R)).max() if R.size else 0.0)
    Q = Q[:, keep]
    if not ip.is_identity:
        L = np.linalg.cholesky(ip.gram(Q))
        Q = sla.solve_triangular(L, Q.T, lower=True, check_finite=False).T
    return _reorthonormalize(np.ascontiguousarray(Q), ip)


def pod(snapshots, inner=None, n_modes: int | None = None, tol: float | None = None,
        method: str = "snapshots", comm: Comm | None = None, *, oversampling: int = 10,
        power_iterations: int = 2, seed=None) -> tuple[np.ndarray, np.ndarray]:
    """POD basis of the snapshots in the inner product of `inner`.

    Parameters
    ----------
    snapshots : (n_dofs_local, m) float64
        Snapshot j in column j; under MPI, the rows this rank owns.
    inner : scipy sparse SPD matrix or None
        M of `(u, v)_M = u^T M v`: (n_local, n_local), or this rank's rows
        (n_local, n_global) of the global matrix. None: Euclidean.
    n_modes : int, optional
        Keep at most this many modes.
    tol : float in (0, 1), optional
        Relative energy tolerance: the relative M-norm projection error
        ||S - Phi Phi^T M S||_F / ||S||_F is at most `tol` (card 0.1 rule).
    method : "snapshots" | "svd" | "tsqr" | "randomized"
        See the module docstring. "snapshots" falls back to "svd" when the
        request needs singular values below its resolution
        (sigma_k < ~sqrt(10 m eps) sigma_1), or when tol^2 times the total energy
        is below the rounding noise of the m - N discarded Gram eigenvalues
        ((m - N) 10 eps lambda_1).
    comm : Comm, optional
        Communicator over which rows are distributed (default: `world()`).
    oversampling, power_iterations, seed :
        For method="randomized" only.

    Returns
    -------
    modes : (n_dofs_local, N) float64, M-orthonormal to 1e-12 (globally).
    singular_values : (N,) float64, decreasing, in the M-norm.
    """
    comm = world() if comm is None else comm
    if method not in _METHODS:
        raise PODArgumentError(f"method={method!r}; use one of {_METHODS}")
    _check_truncation(n_modes, tol)
    S = _check_snapshots(snapshots, comm, scan=False)
    ip = InnerProduct(inner, S.shape[0], comm)
    if method == "snapshots":
        out = _pod_gram(S, ip, comm, n_modes, tol)
        if out is not None:
            return out
        method = "svd"
    if method == "randomized":
        return _pod_randomized(S, ip, comm, n_modes, tol, int(oversampling), int(power_iterations), seed)
    return _pod_svd(S, ip, comm, n_modes, tol)


def projection_error(snapshots, modes, inner=None, comm: Comm | None = None, relative: bool = True) -> float:
    """||S - Phi Phi^T M S||_{M,F} (divided by ||S||_{M,F} when `relative`).

    Computed as sqrt(||S||^2 - ||Phi^T M S||^2) only when that is well above
    round-off; otherwise from the residual itself.
    """
    comm = world() if comm is None else comm
    S = _check_snapshots(snapshots, comm)
    ip = InnerProduct(inner, S.shape[0], comm, check=False)
    C = ip.gram(np.asarray(modes, dtype=np.float64), S)
    R = S - modes @ C
    err = float(np.sqrt(np.sum(ip.norms2(R))))
    if relative:
        err /= float(np.sqrt(np.sum(ip.norms2(S))))
    return err


# ---------------------------------------------------------------------------- streaming POD
class IncrementalPOD:
    """POD built from blocks of snapshots with Brand's truncated-SVD update (card H, 0.2).

    Only the left factor is kept: modes `U` (n_local, k), M-orthonormal, and
    singular values `sigma` (k,). For a new block C (n_local, s):

    1. A = U^T M C, P = C - U A, orthogonalized twice (classical Gram-Schmidt
       with reorthogonalization);
    2. P = Q R_p with Q M-orthonormal (small Gram eigendecomposition, directions
       below round-off of P dropped, then one Cholesky-QR pass against U and Q);
    3. K = [[diag(sigma), A], [0, R_p]]; SVD K = F Theta G^T;
    4. U <- [U Q] F[:, :k'], sigma <- Theta[:k'].

    k' keeps the cumulative discarded energy below `(stream_tol)^2` times the
    energy seen (stream_tol = tol / 10 by default, so the final truncation to
    `tol` dominates), and at most `max_modes`. Memory: U, one block, and at most
    one more (n_local, s) work array; `pod_streaming(..., overwrite_blocks=True)`
    hands each block over so that it is freed inside the update (about two
    blocks plus two bases at the peak).

    Parameters
    ----------
    inner : sparse SPD matrix or None, as in `pod`.
    tol, n_modes : final truncation (as in `pod`), applied by `result()`.
    stream_tol : per-update truncation tolerance (default tol / 10; 0 keeps all
        numerically nonzero directions).
    max_modes : cap on the kept rank during streaming (default: no cap beyond
        the one stream_tol implies, or 2 n_modes + 10 when only n_modes is given).
    """

    def __init__(self, inner=None, tol: float | None = None, n_modes: int | None = None,
                 comm: Comm | None = None, *, stream_tol: float | None = None, max_modes: int | None = None):
        _check_truncation(n_modes, tol)
        if stream_tol is not None and not (0.0 <= float(stream_tol) < 1.0):
            raise PODArgumentError(f"stream_tol={stream_tol!r}; pass a number in [0, 1) or None")
        if max_modes is not None and (not isinstance(max_modes, (int, np.integer)) or max_modes < 1):
            raise PODArgumentError(f"max_modes={max_modes!r}; pass a positive integer or None")
        self.comm = world() if comm is None else comm
        self._inner = inner
        self.tol, self.n_modes = tol, n_modes
        self.stream_tol = (tol / 10.0 if tol is not None else 0.0) if stream_tol is None else float(stream_tol)
        if max_modes is None and tol is None and n_modes is not None:
            max_modes = 2 * n_modes + 10
        self.max_modes = max_modes
        self.ip: InnerProduct | None = None
        self.U: np.ndarray | None = None
        self.sigma = np.zeros(0)
        self.total_energy = 0.0
        self.discarded_energy = 0.0
        self.n_snapshots = 0

    def _keep(self, theta: np.ndarray) -> int:
        e = theta**2
        tail = np.concatenate([np.cumsum(e[::-1])[::-1], [0.0]])  # tail[k] = energy beyond k modes
        budget = self.stream_tol**2 * self.total_energy - self.discarded_energy
        floor = theta[0] * max(self.ip.n_local * self.comm.size, theta.size) * _EPS if theta.size else 0.0
        k = int(np.count_nonzero(theta > floor))
        ok = np.flatnonzero(tail[: k + 1] <= max(budget, 0.0))
        if ok.size:
            k = int(ok[0])
        if self.max_modes is not None:
            k = min(k, self.max_modes)
        return max(k, 1)

    def update(self, block, overwrite: bool = False) -> "IncrementalPOD":
        """Add the snapshots of `block` (n_local, s); `overwrite=True` lets it be used as work space."""
        return self._update([block], overwrite)

    def _update(self, holder: list, overwrite: bool) -> "IncrementalPOD":
        """`holder` = [block]; the block is popped so that it can be freed mid-update."""
        block = holder.pop()
        C = _check_snapshots(block, self.comm, name="block", scan=False)
        if self.ip is None:
            self.ip = InnerProduct(self._inner, C.shape[0], self.comm)
        elif C.shape[0] != self.ip.n_local:
            raise ShapeError(f"block has {C.shape[0]} rows, earlier blocks had {self.ip.n_local}; pass blocks of the same field")
        ip = self.ip
        norms2 = ip.norms2(C)
        if not np.all(np.isfinite(norms2)):
            _refuse_nonfinite(C, self.comm, "block")
        self.total_energy += float(np.sum(norms2))
        self.n_snapshots += C.shape[1]
        P = C if (overwrite and C is block and C.flags.c_contiguous) else np.array(C, order="C")
        del block, C
        U = self.U if self.U is not None else np.zeros((P.shape[0], 0))
        k0 = U.shape[1]
        # Classical Gram-Schmidt against U, twice, in place (no (n, s) temporary).
        A = ip.gram(U, P)
        _gemm_accumulate(U, A, P, alpha=-1.0)
        A2 = ip.gram(U, P)
        _gemm_accumulate(U, A2, P, alpha=-1.0)
        A += A2
        Q, Rp, X = self._orthonormal_complement(P, U)
        del P  # the block's memory goes here
        A += X
        K = np.zeros((k0 + Q.shape[1], k0 + A.shape[1]))
        K[:k0, :k0] = np.diag(self.sigma)
        K[:k0, k0:] = A
        K[k0:, k0:] = Rp
        F, theta, _ = sla.svd(K, full_matrices=False, check_finite=False, lapack_driver="gesdd")
        F, theta = self.comm.bcast((F, theta), root=0)
        k = self._keep(theta)
        self.discarded_energy += float(np.sum(theta[k:] ** 2))
        newU = np.ascontiguousarray(Q @ F[k0:, :k])
        del Q
        _gemm_accumulate(U, np.ascontiguousarray(F[:k0, :k]), newU)
        self.U = U = None  # free the old basis before re-orthonormalizing the new one
        self.U = _reorthonormalize(newU, ip, target=1e-13)
        self.sigma = theta[:k].copy()
        return self

    def _orthonormal_complement(self, P, U):
        """Q (M-orthonormal, orthogonal to U), R_p and a correction X with P = Q R_p + U X."""
        ip = self.ip
        G = ip.gram(P)
        lam, V = sla.eigh(G, check_finite=False)
        lam, V = self.comm.bcast((lam[::-1], V[:, ::-1]), root=0)
        # Directions of P under the rounding level of the blocks seen are noise.
        floor = max(lam[0] if lam.size else 0.0, 0.0) * P.shape[1] * _EPS * 10
        floor = max(floor, (self.total_energy / max(self.n_snapshots, 1)) * _EPS**2)
        r = int(np.count_nonzero(lam > floor))
        self.discarded_energy += math.fsum(np.clip(lam[r:], 0.0, None))  # dropped directions are discarded energy
        if r == 0:
            return np.zeros((P.shape[0], 0)), np.zeros((0, P.shape[1])), np.zeros((U.shape[1], P.shape[1]))
        s = np.sqrt(lam[:r])
        Q = P @ (V[:, :r] / s)
        Rp = s[:, None] * V[:, :r].T
        # One more pass: remove what is left along U, then make Q orthonormal.
        Q = np.ascontiguousarray(Q)
        X = ip.gram(U, Q)
        _gemm_accumulate(U, X, Q, alpha=-1.0)
        L = np.linalg.cholesky(ip.gram(Q))
        Q = _right_mul_inv_lt(Q, L)
        return Q, L.T @ Rp, X @ Rp

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """(modes (n_local, N), singular values (N,)) truncated by tol / n_modes."""
        if self.U is None:
            raise ShapeError("IncrementalPOD has seen no snapshots (an empty store?); call update(block) first")
        N = truncation_rank(self.sigma, self.n_modes, self.tol, total_energy=self.total_energy,
                            tail_energy=self.discarded_energy)
        return self.U[:, :N].copy(), self.sigma[:N].copy()


def _unit_zero_diag(C: np.ndarray) -> np.ndarray:
    zero = np.diag(C) <= 0
    C[zero, zero] = 1.0
    return C


def _gemm_accumulate(U: np.ndarray, F: np.ndarray, out: np.ndarray, alpha: float = 1.0) -> None:
    """out += alpha U @ F without an (n, q) temporary (BLAS dgemm with beta=1 on the transposes).

    U (n, k), F (k, q), out (n, q), all C-contiguous: their transposes are
    Fortran-contiguous, so out^T = alpha F^T U^T + out^T runs in place.
    """
    if F.shape[0] == 0 or F.shape[1] == 0:
        return
    if not (U.flags.c_contiguous and out.flags.c_contiguous):
        out += alpha * (U @ F)
        return
    res = sla.blas.dgemm(alpha, np.asfortranarray(F.T), U.T, beta=1.0, c=out.T, overwrite_c=True)
    if not np.shares_memory(res, out):
        out[...] = res.T


def pod_streaming(blocks: Iterable, inner=None, n_modes: int | None = None, tol: float | None = None,
                  comm: Comm | None = None, *, overwrite_blocks: bool = False,
                  stream_tol: float | None = None, max_modes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """POD of the columns of a stream of blocks (n_local, s_i), in bounded memory.

    blocks : any iterable of 2-D arrays, e.g. `SnapshotStore.iter_blocks(...)`.
    overwrite_blocks : the blocks are fresh arrays that may serve as work space
        (saves one block of memory).
    Other arguments as in `pod` and `IncrementalPOD`.
    """
    inc = IncrementalPOD(inner, tol=tol, n_modes=n_modes, comm=comm, stream_tol=stream_tol, max_modes=max_modes)
    it = iter(blocks)
    while True:
        holder = [next(it, None)]
        if holder[0] is None:
            break
        inc._update(holder, overwrite_blocks)  # pops the block: it is freed inside the update
    return inc.result()


def pod_two_level(trajectories: Iterable, inner=None, n_modes: int | None = None, tol: float | None = None,
                  comm: Comm | None = None, *, tol_trajectory: float | None = None,
                  method: str = "snapshots") -> tuple[np.ndarray, np.ndarray]:
    """Two-level POD of time series: each trajectory first, then across trajectories.

    trajectories : iterable of (n_local, n_steps_i) arrays (time steps as columns).
    Level 1 compresses trajectory i to Phi_i diag(sigma_i) with tolerance
    `tol_trajectory` (default tol / sqrt(2)); level 2 is a POD of
    [Phi_1 diag(sigma_1), Phi_2 diag(sigma_2), ...] with tolerance tol / sqrt(2),
    so the relative error on the whole set stays below `tol`
    (e^2 <= tol_1^2 + tol_2^2). Without `tol`, level 1 keeps every numerically
    nonzero mode. Memory: the level-1 bases plus one trajectory.
    """
    _check_truncation(n_modes, tol)
    if tol_trajectory is not None:
        _check_truncation(None, tol_trajectory)
    comm = world() if comm is None else comm
    t1 = tol_trajectory if tol_trajectory is not None else (tol / np.sqrt(2.0) if tol is not None else None)
    t2 = tol / np.sqrt(2.0) if tol is not None else None
    scaled = []
    for i, traj in enumerate(trajectories):
        T = _check_snapshots(traj, comm, name=f"trajectory {i}")
        Phi, s = pod(T, inner, tol=t1, method=method, comm=comm)
        scaled.append(Phi * s)
    if not scaled:
        raise ShapeError("trajectories is empty; pass at least one (n_dofs, n_steps) array")
    return pod(np.hstack(scaled), inner, n_modes=n_modes, tol=t2, method=method, comm=comm)
