"""Empirical interpolation: EIM for parametrized functions/vectors (Barrault, Maday, Nguyen,
Patera 2004), DEIM (Chaturantabut, Sorensen 2010), Q-DEIM (Drmac, Gugercin 2016), and the
nonintrusive matrix EIM of Casenave, Ern, Lelievre (card D, arXiv 1307.4330).

All work on snapshot matrices S (n, m): column j is the function/vector at parameter j,
sampled at n points (or dofs, or candidate matrix entries).

Stabilization (card E): the residual of the snapshot picked at each step, which becomes the
next basis vector, is recomputed by re-interpolating the original snapshot with the current
basis (not taken from the residuals updated in place, which accumulate round-off); the running
residuals only rank the candidates. The greedy stops once the largest residual reaches
`rtol * max|S|`, i.e. round-off level with the default rtol.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import scipy.linalg as sl
import scipy.sparse as sp

from rom.errors import ParameterError, ShapeError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Interpolant:
    """basis (n, d) with basis[points] unit lower triangular as stored, zeros and ones exact (EIM),
    or any invertible (DEIM);
    points (d,) int64 magic points; errors (d,) greedy max residuals (sup norm) before each
    addition; lebesgue: ||basis (basis[points])^{-1}||_inf (the EIM Lebesgue constant)."""

    basis: np.ndarray
    points: np.ndarray
    errors: np.ndarray
    columns: np.ndarray | None = None   # snapshot (parameter) index picked at each step

    @property
    def size(self) -> int:
        return self.points.size

    @property
    def B(self) -> np.ndarray:
        return self.basis[self.points]

    @property
    def lebesgue(self) -> float:
        if self.size == 0:
            return 0.0
        return float(np.abs(sl.solve(self.B.T, self.basis.T).T).sum(axis=1).max())

    def coefficients(self, values: np.ndarray) -> np.ndarray:
        """Interpolation coefficients from values at the magic points: (d,) or (d, m)."""
        return sl.solve(self.B, values)

    def __call__(self, values: np.ndarray, d: int | None = None) -> np.ndarray:
        """Interpolant from values at the magic points: (d,) -> (n,), (d, m) -> (n, m);
        d: use only the first d terms."""
        d = self.size if d is None else d
        return self.basis[:, :d] @ sl.solve(self.basis[self.points[:d], :d], values[:d])

    def truncated(self, d: int) -> "Interpolant":
        cols = None if self.columns is None else self.columns[:d]
        return Interpolant(self.basis[:, :d], self.points[:d], self.errors[:d], cols)


def _check_snapshots(S, name="snapshots", dtype=None) -> np.ndarray:
    S = np.asarray(S)
    if S.ndim != 2 or min(S.shape) == 0:
        raise ShapeError(f"{name} has shape {S.shape}; give a 2-D array (n points, m parameters)")
    if not np.isfinite(S).all():
        raise ShapeError(f"{name} contains NaN or inf; remove those snapshots before the interpolation")
    return S.astype(dtype or (np.complex128 if np.iscomplexobj(S) else np.float64))


def _check_stop(tol, max_terms) -> None:
    if tol is not None and not tol >= 0:
        raise ShapeError(f"tol={tol}: give a non-negative tolerance")
    if max_terms is not None and int(max_terms) < 1:
        raise ShapeError(f"max_terms={max_terms}: give at least 1")


def eim(snapshots, tol: float = 0.0, max_terms: int | None = None, rtol: float = 1e-13) -> Interpolant:
    """Greedy EIM on snapshots (n, m) in the sup norm. Stops at max residual <= max(tol,
    rtol*max|S|) or after max_terms. Returns the Interpolant with the q-basis (unit at its point)."""
    S = _check_snapshots(snapshots)
    _check_stop(tol, max_terms)
    n, m = S.shape
    max_terms = min(max_terms or min(n, m), n, m)
    floor = max(tol, rtol * float(np.abs(S).max()))
    basis = np.zeros((n, max_terms), dtype=S.dtype)
    points: list[int] = []
    errors, columns = [], []
    R = S.copy()
    while len(points) < max_terms:
        k = len(points)
        col_err = np.abs(R).max(axis=0)
        j = int(np.argmax(col_err))
        err = float(col_err[j])
        if err <= floor:
            break
        r = S[:, j].copy()
        if k:  # re-interpolate the original snapshot (stabilized)
            P = np.asarray(points)
            r -= basis[:, :k] @ sl.solve_triangular(basis[P, :k], S[P, j], lower=True, unit_diagonal=True)
        i = int(np.argmax(np.abs(r)))
        if np.abs(r[i]) <= floor:
            break
        # the residual vanishes at the earlier magic points in exact arithmetic: store those zeros
        # exactly (round-off there reached 3.4e-8 once divided by r[i]), so basis[points] is unit
        # lower triangular as stored and the triangular solves use the whole matrix
        r[points] = 0.0
        q = r / r[i]
        q[i] = 1.0  # complex division can leave 1 + 1e-17j
        basis[:, k] = q
        R -= np.outer(q, R[i])
        points.append(i)
        errors.append(err)
        columns.append(j)
    basis = basis[:, : len(points)]
    log.info("EIM: %d terms, last greedy error %.3e", len(points), errors[-1] if errors else 0.0)
    return Interpolant(basis, np.asarray(points, dtype=np.int64), np.asarray(errors),
                       np.asarray(columns, dtype=np.int64))


def deim(modes) -> Interpolant:
    """DEIM points for orthonormal modes (n, d): greedy on the interpolation residual of each
    next mode. The basis is the modes themselves."""
    U = _check_snapshots(modes, "modes")
    points = [int(np.argmax(np.abs(U[:, 0])))]
    for k in range(1, U.shape[1]):
        P = np.asarray(points)
        r = U[:, k] - U[:, :k] @ sl.solve(U[P, :k], U[P, k])
        points.append(int(np.argmax(np.abs(r))))
    return Interpolant(U, np.asarray(points, dtype=np.int64), np.zeros(U.shape[1]))


def qdeim(modes) -> Interpolant:
    """Q-DEIM points: the first d pivots of the column-pivoted QR of modes^T (d, n)."""
    U = _check_snapshots(modes, "modes")
    _, _, piv = sl.qr(U.T.conj(), pivoting=True, mode="economic")
    return Interpolant(U, np.asarray(piv[: U.shape[1]], dtype=np.int64), np.zeros(U.shape[1]))


class MatrixEIM:
    """Nonintrusive EIM of a parametrized matrix (card D):
    A(mu) ~ sum_m beta_m(mu) A(mu_m), built from assembled matrices only.

    Offline (`fit`): the matrices A(mu) at the training parameters, given as a callable
    mu (p,) -> sparse or dense (n, n) matrix (a black box), are read on a common set of
    candidate entries (the union of their sparsity patterns, or all entries when dense, or a
    random subset of `max_candidates` of them); EIM on those entry vectors picks parameters
    mu_m and entries (i_l, j_l). Online (`coefficients`): only the d entries A(mu)[i_l, j_l]
    are needed; the d x d system is solved in the q-basis (unit lower triangular, stable), then
    converted to the coefficients beta in the basis of the matrices A(mu_m). cond(B~) of the
    A(mu_m) basis is monitored: above `cond_switch` (default 1e10) the model keeps the q-basis
    and the user combines the q-matrices (`q_matrices`) instead of the A(mu_m).
    """

    def __init__(self, tol: float = 0.0, max_terms: int = 30, rtol: float = 1e-13, max_candidates: int | None = None,
                 cond_switch: float = 1e10, seed: int = 0):
        _check_stop(tol, max_terms)
        self.tol, self.max_terms, self.rtol = tol, int(max_terms), rtol
        self.max_candidates, self.cond_switch, self.seed = max_candidates, cond_switch, seed

    def fit(self, matrix, training) -> "MatrixEIM":
        """matrix: callable mu (p,) -> (n, n) sparse or dense; training: (m, p) parameters."""
        training = np.atleast_2d(np.asarray(training, dtype=float))
        if training.ndim != 2 or not np.isfinite(training).all():
            raise ParameterError(f"training has shape {training.shape} or NaN; give finite (m, p) parameters")
        mats = [matrix(mu) for mu in training]
        rows, cols = self._candidates(mats)
        S = np.stack([self._entries(A, rows, cols) for A in mats], axis=1)
        self.interpolant_ = eim(S, self.tol, self.max_terms, self.rtol)
        d = self.interpolant_.size
        self.rows_, self.cols_ = rows[self.interpolant_.points], cols[self.interpolant_.points]
        # q_k = sum_m S[:, mu_m] C[m, k]: recover the change of basis from the greedy parameters
        self.mu_index_ = self.interpolant_.columns
        self.parameters_ = training[self.mu_index_]
        self.matrices_ = [mats[k] for k in self.mu_index_]
        self.B_tilde_ = S[self.interpolant_.points][:, self.mu_index_]       # A(mu_m)[i_l, j_l] (d, d)
        # q-basis = A(mu_m) basis times C: solve  S[:, idx] C = Q on the magic points
        self.C_ = sl.solve(self.B_tilde_, self.interpolant_.B) if d else np.zeros((0, 0))
        self.cond_ = float(np.linalg.cond(self.B_tilde_)) if d else 1.0
        self.use_q_basis_ = self.cond_ > self.cond_switch
        self._q_full = None
        self._q_full = self.q_matrices() if self.use_q_basis_ else None
        log.info("matrix EIM: d=%d, cond(B~)=%.2e%s", d, self.cond_, " (q-basis kept)" if self.use_q_basis_ else "")
        return self

    def _candidates(self, mats):
        A0 = mats[0]
        if sp.issparse(A0):
            pat = sum(abs(sp.csr_matrix(A)) for A in mats).tocoo()
            rows, cols = pat.row.astype(np.int64), pat.col.astype(np.int64)
        else:
            n1, n2 = np.shape(A0)
            rows, cols = np.divmod(np.arange(n1 * n2, dtype=np.int64), n2)
        if self.max_candidates is not None and rows.size > self.max_candidates:
            keep = np.sort(np.random.default_rng(self.seed).choice(rows.size, self.max_candidates, replace=False))
            rows, cols = rows[keep], cols[keep]
        return rows, cols

    @staticmethod
    def _entries(A, rows, cols) -> np.ndarray:
        if sp.issparse(A):
            return np.asarray(sp.csr_matrix(A)[rows, cols]).ravel()
        return np.asarray(A)[rows, cols]

    @property
    def size(self) -> int:
        return self.interpolant_.size

    def entries(self, matrix_or_entries) -> np.ndarray:
        """The d entries A(mu)[i_l, j_l] from a matrix (sparse/dense) or pass-through (d,)."""
        a = matrix_or_entries
        if sp.issparse(a) or np.ndim(a) == 2:
            return self._entries(a, self.rows_, self.cols_)
        return np.asarray(a)

    def q_coefficients(self, entries, d: int | None = None) -> np.ndarray:
        """Coefficients in the q-basis from the d entries (triangular solve)."""
        d = self.size if d is None else d
        a = self.entries(entries)[:d]
        return sl.solve_triangular(self.interpolant_.B[:d, :d], a, lower=True, unit_diagonal=True)

    def coefficients(self, entries, d: int | None = None) -> np.ndarray:
        """beta (d,) with A(mu) ~ sum_m beta_m A(mu_m): from the d entries A(mu)[i_l, j_l]
        (or from the matrix itself, from which only those entries are read)."""
        d = self.size if d is None else d
        c = self.q_coefficients(entries, d)
        if d == self.size:
            return self.C_ @ c
        B = self.B_tilde_[:d, :d]
        return sl.solve(B, self.interpolant_.B[:d, :d] @ c)

    def q_matrices(self, d: int | None = None) -> list:
        """The q-basis matrices Q_k = sum_m C[m, k] A(mu_m) (for use when cond(B~) is large)."""
        d = self.size if d is None else d
        if d == self.size and getattr(self, "_q_full", None) is not None:
            return self._q_full
        C = self.C_ if d == self.size else sl.solve(self.B_tilde_[:d, :d], self.interpolant_.B[:d, :d])
        return [sum(C[m, k] * self.matrices_[m] for m in range(d)) for k in range(d)]

    def approximate(self, entries, d: int | None = None):
        """sum_m beta_m A(mu_m) (or sum_k c_k Q_k when the q-basis is kept)."""
        d = self.size if d is None else d
        if self.use_q_basis_:
            c = self.q_coefficients(entries, d)
            return sum(ck * Qk for ck, Qk in zip(c, self.q_matrices(d)))
        beta = self.coefficients(entries, d)
        return sum(b * self.matrices_[m] for m, b in enumerate(beta))
