"""Certified reduced basis for affine linear coercive problems: offline reductor and weak greedy.

`Reductor(affine, X)` keeps the FOM-side data: the X-orthonormal basis V (n, N), the Riesz
representers X^{-1} g of the residual terms g = [f_p, A_q xi_n] (one sparse factorization of
X, reused for every right-hand side), and the data of the three residual-norm formulas of
card E (Gram matrix, X-orthonormalized representers, EIM of the representer map). `model()`
returns the FOM-free `ReducedModel`; `greedy()` builds the basis by a weak greedy on the bound.
See docs/methods/rb.md.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as sla

from rom import _rb_kernels as K
from rom.eim import eim
from rom.errors import ShapeError, SingularSystemError, StoreError
from rom.h5io import atomic, create_checked, expect_format, put, read_array, reading
from rom.parallel import Comm, world
from rom.parameters import check_mu
from rom.reduced import ESTIMATORS, ReducedModel, residual_norm_from, stability_from
from rom.scm import scm

log = logging.getLogger(__name__)
STABILITY = ("min_theta", "scm", "constant")


def _symmetric_lu(A, name: str):
    """SuperLU of a symmetric matrix A (n, n) with a symmetric fill-reducing ordering (minimum
    degree on A + A^T) and diagonal pivots: on 2D Laplacians about half the fill of COLAMD, so a
    faster factorization and about 3x faster solves. No factor is formed for a pivot check;
    SuperLU's exact-singularity error and non-finite solutions (`_finite`) are the checks."""
    try:
        return sla.splu(sp.csc_matrix(A), permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0,
                        options={"SymmetricMode": True})
    except RuntimeError as exc:  # "Factor is exactly singular"
        raise SingularSystemError(f"{name} is singular ({exc}); it must be symmetric positive definite "
                                  "(check its Dirichlet conditions)") from None


def _finite(x: np.ndarray, name: str) -> np.ndarray:
    if not np.isfinite(x).all():
        raise SingularSystemError(f"{name} gave a non-finite solution: the matrix is singular or nearly so; "
                                  "check that it is symmetric positive definite")
    return x


def _exprs(theta) -> tuple:
    ex = getattr(theta, "expressions", None)
    if ex is None:
        raise ShapeError("theta must hold expressions of rom.coefficients (e.g. a solvers.problems.base.Theta) so "
                         "that the reduced model can store it as data; write them as Theta(('mu[0]', ...))")
    return tuple(ex)


class Reductor:
    """Offline RB data for A(mu) u = f(mu) with an affine decomposition.

    affine: AffineDecomposition (Q symmetric CSR (n, n), Theta strings, P loads (n,));
    inner_product: X, SPD sparse (n, n); lower/upper: (p,) parameter box;
    outputs: (L, n) functionals l (an output equal to the single constant load is compliant);
    stability: "min_theta" (needs theta_q(mu) > 0 and A_q SPSD: the caller asserts it),
    "scm" (successive constraint method on `scm_training`), or "constant" with `alpha`;
    mu_bar: reference parameter of min-theta (default: the upper corner of the box);
    names: (p,) parameter names, carried into the reduced model and its error messages
    (default mu0, mu1, ...).
    """

    def __init__(self, affine, inner_product, lower, upper, *, outputs=None, stability: str = "min_theta",
                 mu_bar=None, scm_training=None, scm_tol: float = 0.5, alpha: float | None = None,
                 names=None):
        given = [sp.csr_matrix(A) for A in affine.operators]
        # the products A_q xi and A_q^T xi skip stored zeros (an operator assembled on the whole
        # pattern but living on one subdomain, a Dirichlet identity term); A(mu) keeps the pattern
        self.ops = [A.copy() for A in given]
        for A in self.ops:
            A.eliminate_zeros()
        self.f = np.stack([np.asarray(f, dtype=np.float64) for f in affine.rhs], axis=1)
        n = self.f.shape[0]
        X = inner_product
        if not sp.issparse(X) or X.shape != (n, n):
            raise ShapeError(f"inner_product must be a sparse ({n}, {n}) matrix; got {type(X).__name__} "
                             f"{getattr(X, 'shape', None)}")
        if any(A.shape != (n, n) for A in self.ops):
            raise ShapeError(f"every affine operator must be ({n}, {n}), the size of the loads")
        self.theta, self.theta_f = affine.theta, affine.theta_f
        self.theta_s, self.theta_f_s = _exprs(affine.theta), _exprs(affine.theta_f)
        self.lower = np.asarray(lower, dtype=float).ravel()
        self.upper = np.asarray(upper, dtype=float).ravel()
        if self.lower.shape != self.upper.shape or (self.lower > self.upper).any():
            raise ShapeError(f"lower {self.lower} and upper {self.upper} must be (p,) with lower <= upper")
        p = self.lower.size
        self.names = tuple(f"mu{i}" for i in range(p)) if names is None else tuple(str(n) for n in names)
        if len(self.names) != p:
            raise ShapeError(f"names has {len(self.names)} entries for a {p}-parameter box; give one name per "
                             "parameter or none")
        self.X = sp.csr_matrix(X)
        self._Xlu = _symmetric_lu(self.X, "inner_product")   # one factorization, every Riesz representer
        self._pattern, self._op_data = _common_pattern(given)
        self._condensed = None          # built at the first FOM solve (False: not applicable)
        self.Q, self.P = len(self.ops), self.f.shape[1]
        L = np.zeros((0, n)) if outputs is None else np.atleast_2d(np.asarray(outputs, dtype=float))
        if L.shape[1] != n:
            raise ShapeError(f"outputs has shape {L.shape}; give (L, {n}) functionals")
        self.L = L
        const_f = self.P == 1 and self.theta_f_s == ("1",)
        self.compliant = np.array([const_f and np.array_equal(l, self.f[:, 0]) for l in L], dtype=bool)
        RL = self._riesz(L.T) if len(L) else np.zeros((n, 0))
        self.output_dual_norms = np.sqrt(np.maximum(np.einsum("ij,ij->j", RL, L.T), 0.0))
        # basis and FOM-side estimator data, all grown by `extend`
        self._cols = {name: np.zeros((n, 0), order="F") for name in ("V", "XV", "R", "W", "XW")}
        self._count = dict.fromkeys(self._cols, 0)
        self.red_ops = np.zeros((self.Q, 0, 0))
        self.red_rhs = np.zeros((self.P, 0))
        self.red_out = np.zeros((len(L), 0))
        self.T = np.zeros((0, 0))
        self.rows_at = []               # rank of W after term k
        self._add_terms(self.f)
        self.stability = self._stability(stability, mu_bar, scm_training, scm_tol, alpha)

    def _riesz(self, G: np.ndarray) -> np.ndarray:
        """Riesz representers X^{-1} G (n, k) of the columns of G (n, k): one multi-RHS solve."""
        return _finite(self._Xlu.solve(np.asfortranarray(G, dtype=np.float64)), "inner_product")

    def reserve(self, size: int, max_bytes: float = 2.0**30) -> None:
        """Allocate the column stores for a basis of `size` vectors at once (the greedy knows its
        max_size), so that the buffers are not regrown while it runs. Skipped when that would
        take more than max_bytes (a large max_size that a tolerance may never reach): the
        stores then grow by doubling."""
        size = int(size)
        K = self.n_terms(size)
        if 8.0 * self.f.shape[0] * (2 * size + 3 * K) > max_bytes:
            return
        for name, cols in (("V", size), ("XV", size), ("R", K), ("W", K), ("XW", K)):
            self._grow(name, cols)

    # ----------------------------------------------------------------- stability
    def _stability(self, kind, mu_bar, scm_training, scm_tol, alpha) -> dict:
        if kind not in STABILITY:
            raise ShapeError(f"stability={kind!r}: use one of {STABILITY}")
        if kind == "constant":
            if alpha is None or not alpha > 0:
                raise ShapeError(f"stability='constant' needs alpha > 0 (a known coercivity lower bound); got {alpha}")
            return {"kind": "constant", "alpha": float(alpha)}
        if kind == "min_theta":
            mu_bar = self.upper if mu_bar is None else np.asarray(mu_bar, dtype=float)
            tb = np.asarray(self.theta(mu_bar), dtype=float)
            if not (tb > 0).all():
                raise ShapeError(f"min-theta needs theta_q(mu_bar) > 0 for every q; theta(mu_bar) = {tb}. "
                                 "Use stability='scm'")
            A = sum(t * Aq for t, Aq in zip(tb, self.ops))
            D = (A - self.X).tocsr()
            if D.nnz == 0 or abs(D).max() <= 1e-14 * abs(self.X).max():
                alpha_bar = 1.0  # X is the energy product at mu_bar: alpha(mu_bar) = 1 exactly
            else:
                alpha_bar = float(sla.eigsh(A.tocsc(), k=1, M=self.X.tocsc(), sigma=0.0, which="LM", tol=1e-12,
                                            return_eigenvectors=False)[0])
            return {"kind": "min_theta", "theta_bar": tb, "alpha_bar": alpha_bar * (1 - 1e-10)}
        if scm_training is None:
            raise ShapeError("stability='scm' needs scm_training: (m, p) parameters for the SCM greedy")
        b = scm(self.ops, self.theta, self.X, scm_training, tol=scm_tol)
        return {"kind": "scm", "box": b.box, "theta_c": b.theta_c, "alpha_c": b.alpha_c, "y_c": b.y_c}

    # ----------------------------------------------------------------- column stores
    # V (n, N) basis and XV = X V; R (n, K) representers X^{-1} g_k; W (n, r) X-orthonormal
    # representers (R = W T) and XW = X W. Column-major buffers with doubling capacity, so
    # appending a column does not copy the whole array.
    def _grow(self, name: str, cols: int) -> None:
        buf, k = self._cols[name], self._count[name]
        if cols > buf.shape[1]:
            new = np.empty((buf.shape[0], cols), order="F")
            new[:, :k] = buf[:, :k]
            self._cols[name] = new

    def _append(self, name: str, cols: np.ndarray) -> None:
        cols = cols.reshape(cols.shape[0], -1)
        k = self._count[name]
        if k + cols.shape[1] > self._cols[name].shape[1]:
            self._grow(name, max(2 * self._cols[name].shape[1], k + cols.shape[1], 8))
        self._cols[name][:, k:k + cols.shape[1]] = cols
        self._count[name] = k + cols.shape[1]

    V = property(lambda self: self._cols["V"][:, : self._count["V"]])
    XV = property(lambda self: self._cols["XV"][:, : self._count["XV"]])
    R = property(lambda self: self._cols["R"][:, : self._count["R"]])
    W = property(lambda self: self._cols["W"][:, : self._count["W"]])
    XW = property(lambda self: self._cols["XW"][:, : self._count["XW"]])

    # ----------------------------------------------------------------- basis
    @property
    def size(self) -> int:
        return self.V.shape[1]

    def _add_terms(self, G: np.ndarray) -> None:
        """Append residual terms G (n, k): representers (F1, F3) and X-QR columns (F2)."""
        RG = self._riesz(G)
        k0, k = self.R.shape[1], G.shape[1]
        self._append("R", RG)
        # F2: X-QR with Gram-Schmidt twice; a term in the span of the previous ones adds no row.
        # The block is first projected off the previous W at once (block CGS2), then its columns
        # one by one off the columns this block adds.
        r0 = r = self.T.shape[0]
        T = np.zeros((r0 + k, self.T.shape[1] + k))
        T[:r0, :k0] = self.T
        B, T[:r0, k0:] = K.x_block_project(self.W, self.XW, RG)
        nb = np.sqrt(np.maximum(np.einsum("ij,ij->j", B, self.X @ B), 0.0))
        for j in range(k):
            col = k0 + j
            w, coef, nrm, Xw = K.x_gram_schmidt(self.W[:, r0:], self.XW[:, r0:], B[:, j], self.X)
            T[r0:r, col] = coef
            if nrm < 0.1 * nb[j]:  # cancellation within the block: once more against all of W (twice is enough)
                w, coef, nrm, Xw = K.x_gram_schmidt(self.W, self.XW, w, self.X)
                T[:r, col] += coef
            ref = np.sqrt(max(RG[:, j] @ G[:, j], 0.0))
            if nrm > 1e-14 * ref and nrm > 0:
                self._append("W", w / nrm)
                self._append("XW", Xw / nrm)
                T[r, col] = nrm
                r += 1
            self.rows_at.append(r)
        self.T = T[:r]

    def extend(self, U) -> int:
        """Add the fields U (n,) or (n, k) to the basis after X-orthogonalization (twice); a field
        already in the span (relative X-norm < 1e-12) is skipped. Returns how many were added."""
        U = np.asarray(U, dtype=np.float64)
        U = U[:, None] if U.ndim == 1 else U
        if U.ndim != 2 or U.shape[0] != self.V.shape[0]:
            raise ShapeError(f"U has shape {U.shape}; give fields (n,) or (n, k) with n = {self.V.shape[0]}")
        added = 0
        for u in U.T:
            ref = np.sqrt(max(u @ (self.X @ u), 0.0))
            w, _, nrm, Xw = K.x_gram_schmidt(self.V, self.XV, u, self.X)
            if ref == 0 or nrm <= 1e-12 * ref:
                log.info("RB: field skipped, already in the span (relative norm %.1e)", nrm / max(ref, 1e-300))
                continue
            self._add_basis_vector(w / nrm, Xw / nrm)
            added += 1
        return added

    def _add_basis_vector(self, xi: np.ndarray, Xxi: np.ndarray) -> None:
        N = self.size
        Axi = np.stack([K.matvec_extended(A, xi) for A in self.ops], axis=1)   # (n, Q)
        ops = np.zeros((self.Q, N + 1, N + 1))
        ops[:, :N, :N] = self.red_ops
        ops[:, :N, N] = (self.V.T @ Axi).T
        ops[:, N, :N] = np.stack([self.V.T @ (A.T @ xi) for A in self.ops])
        ops[:, N, N] = xi @ Axi
        self.red_ops = ops
        self.red_rhs = np.column_stack([self.red_rhs, self.f.T @ xi])
        self.red_out = np.column_stack([self.red_out, self.L @ xi])
        self._append("V", xi)
        self._append("XV", Xxi)
        self._add_terms(Axi)

    # ----------------------------------------------------------------- online model
    def n_terms(self, N: int) -> int:
        return self.P + self.Q * N

    def estimator_data(self, N: int, method: str, eim_training=None, eim_rtol: float = 1e-10) -> dict:
        k = self.n_terms(N)
        if method == "gram":  # F1: the usual Gram matrix G^T X G of the representers
            R = self.R[:, :k]
            M = R.T @ (self.X @ R)
            return {"method": "gram", "gram": 0.5 * (M + M.T)}
        if method == "orthonormalized":
            return {"method": "orthonormalized", "T": self.T[: self.rows_at[k - 1], :k].copy()}
        if method == "eim":
            return self._eim_data(N, eim_training, eim_rtol)
        raise ShapeError(f"estimator={method!r}: use one of {ESTIMATORS}")

    def _eim_data(self, N, training, rtol) -> dict:
        """F3 (card E): EIM of the representer map mu -> X^{-1} r(mu) over `training`; stores the
        representers' values at the magic points (d, K), the interpolation matrix B (d, d) and
        the upper factor R_z (d, d) of the X-Gram matrix of the EIM basis (||sum l z||_X = ||R_z l||)."""
        if training is None:
            raise ShapeError("estimator='eim' needs eim_training: (m, p) parameters to train the EIM on")
        training = self.check_parameters(training, "eim_training")
        k = self.n_terms(N)
        th, thf = self.theta(training), self.theta_f(training)
        u = K.reduced_solve(th, thf, self.red_ops[:, :N, :N], self.red_rhs[:, :N])
        c = K.residual_coefficients(th, thf, u)
        E = self.R[:, :k] @ c.T                                          # representers (n, m)
        nrm = np.abs(E).max(axis=0)
        interp = eim(E / np.where(nrm > 0, nrm, 1.0), rtol=rtol)         # directions only (stabilized)
        Z = interp.basis
        G = Z.T @ (self.X @ Z)
        Rz = np.linalg.cholesky(0.5 * (G + G.T)).T
        return {"method": "eim", "point_values": self.R[interp.points, :k].copy(), "B": interp.B.copy(), "R": Rz}

    def model(self, N: int | None = None, estimator: str = "orthonormalized", eim_training=None,
              keep_basis: bool = True) -> ReducedModel:
        """The online model of the first N basis vectors (default all) with the chosen
        residual-norm formula ("gram", "orthonormalized" or "eim")."""
        N = self.size if N is None else int(N)
        if not 0 < N <= self.size:
            raise ShapeError(f"N={N}: the basis has {self.size} vectors; give 1 <= N <= {self.size}")
        return ReducedModel(
            operators=self.red_ops[:, :N, :N].copy(), rhs=self.red_rhs[:, :N].copy(), theta=self.theta_s,
            theta_f=self.theta_f_s, lower=self.lower, upper=self.upper,
            estimator=self.estimator_data(N, estimator, eim_training), stability=dict(self.stability),
            outputs=self.red_out[:, :N].copy(), output_dual_norms=self.output_dual_norms.copy(),
            compliant=self.compliant.copy(), basis=self.V[:, :N].copy() if keep_basis else None,
            names=self.names)

    def check_parameters(self, mu, name="training") -> np.ndarray:
        """Parameters (m, p) (or one (p,)) inside the box, by `rom.parameters.check_mu`."""
        return check_mu(mu, self.lower, self.upper, self.names, argument=name)[0]

    def fom_solve(self, mu) -> np.ndarray:
        """FOM solution (n,) at mu. When the operators live on subdomains that meet on a small
        interface (`_Condensation`: the thermal block, any piecewise-constant coefficient), by
        static condensation on factorizations made once; otherwise, or if its residual is not
        at round-off, A(mu) filled on the common pattern of the A_q (one small matrix product)
        and a sparse LU with a symmetric ordering (A(mu) is symmetric here; about 1.7x faster
        than COLAMD on 2D Laplacians)."""
        mu = np.asarray(mu, dtype=float)
        th = np.asarray(self.theta(mu), dtype=float).ravel()
        thf = np.asarray(self.theta_f(mu), dtype=float).ravel()
        if self._condensed is None:
            self._condensed = _Condensation.build(self.ops, self.f) or False
        if self._condensed and (th != 0).all():
            u = self._condensed.solve(th, thf)
            f = self.f @ thf
            r = f - sum(t * (A @ u) for t, A in zip(th, self.ops))
            if np.isfinite(u).all() and np.linalg.norm(r) <= 1e-10 * np.linalg.norm(f):
                return u
            log.info("RB: condensed FOM solve at mu=%s not at round-off; solving with the full LU", mu.tolist())
        indptr, indices = self._pattern
        n = self.f.shape[0]
        A = sp.csr_matrix((th @ self._op_data, indices, indptr), shape=(n, n)).tocsc()
        lu = _symmetric_lu(A, f"A(mu) at mu={mu.tolist()}")
        return _finite(lu.solve(self.f @ thf), "A(mu)")


class _Condensation:
    """Static condensation of A(mu) = sum_q theta_q A_q when the operators have private dofs.

    A dof whose row and column appear in one operator A_q only is private to q; the others form
    the interface G. Ordering the private dofs I_q first, A(mu) = [[D, B], [C, E]] with the
    diagonal blocks D_q = theta_q A_q[I_q, I_q], B_q = theta_q A_q[I_q, G], C_q = theta_q A_q[G, I_q],
    E = sum_p theta_p A_p[G, G], so the Schur complement and the condensed load are affine too:

        S(mu) = sum_q theta_q S_q,   S_q = A_q[G, G] - A_q[G, I_q] A_q[I_q, I_q]^{-1} A_q[I_q, G],
        g(mu) = sum_p theta^f_p g_p,  g_p = f_p[G] - sum_q A_q[G, I_q] A_q[I_q, I_q]^{-1} f_p[I_q],
        u[G] = S(mu)^{-1} g(mu),  u[I_q] = A_q[I_q, I_q]^{-1} (f(mu)[I_q] / theta_q - A_q[I_q, G] u[G]).

    Offline: one sparse LU per private block and solves for the interface columns it touches;
    per parameter: a dense (|G|, |G|) solve and one triangular solve pair per block. Built only
    when the interface is small (|G| <= n/4, Q |G|^2 <= 2.5e7 doubles)."""

    def __init__(self, n, gamma, S, g, blocks):
        self.n, self.gamma, self.S, self.g, self.blocks = n, gamma, S, g, blocks

    @classmethod
    def build(cls, ops, F) -> "_Condensation | None":
        """ops: Q CSR (n, n) without stored zeros; F: loads (n, P). None when not applicable."""
        n, Q = ops[0].shape[0], len(ops)
        touch = np.stack([(np.diff(A.indptr) > 0) | (np.bincount(A.indices, minlength=n) > 0) for A in ops])
        owner = np.where(touch.sum(axis=0) == 1, touch.argmax(axis=0), -1)
        gamma = np.flatnonzero(owner < 0)
        g = gamma.size
        if g == 0 or g > n // 4 or Q * g * g > 2.5e7:
            return None
        S = np.stack([A[gamma][:, gamma].toarray() for A in ops])
        G = F[gamma].copy()
        blocks = []
        try:
            for q, A in enumerate(ops):
                I = np.flatnonzero(owner == q)
                if I.size == 0:
                    continue
                rows = A[I]
                lu = _symmetric_lu(rows[:, I], "a private block")
                B = rows[:, gamma].tocsc()
                C = A[gamma][:, I].tocsr()
                cq, rq = np.flatnonzero(np.diff(B.indptr)), np.flatnonzero(np.diff(C.indptr))
                Y = lu.solve(np.asfortranarray(F[I]))
                if cq.size and rq.size:
                    S[q][np.ix_(rq, cq)] -= C[rq] @ lu.solve(B[:, cq].toarray(order="F"))
                G -= C @ Y
                blocks.append((q, I, lu, B, Y))
        except SingularSystemError:
            return None
        if not (np.isfinite(S).all() and np.isfinite(G).all()):
            return None
        return cls(n, gamma, S, G, blocks)

    def solve(self, theta: np.ndarray, theta_f: np.ndarray) -> np.ndarray:
        try:
            ug = np.linalg.solve(np.tensordot(theta, self.S, axes=1), self.g @ theta_f)
        except np.linalg.LinAlgError:
            return np.full(self.n, np.nan)
        u = np.empty(self.n)
        u[self.gamma] = ug
        for q, I, lu, B, Y in self.blocks:
            u[I] = (Y @ theta_f) / theta[q] - lu.solve(B @ ug)
        return u


def _common_pattern(ops) -> tuple:
    """The union sparsity pattern of the CSR matrices ops (Q of them, (n, n)) as CSR
    (indptr, indices), and every operator's values on it (Q, nnz): A(mu) = sum_q theta_q A_q is
    then one (Q,) @ (Q, nnz) product instead of Q sparse additions per parameter. Operators
    assembled on one pattern (the usual case) share it as is."""
    A0 = ops[0]
    if all(np.array_equal(A.indptr, A0.indptr) and np.array_equal(A.indices, A0.indices) for A in ops[1:]):
        return (A0.indptr, A0.indices), np.stack([A.data for A in ops])
    n = A0.shape[0]
    keys = [np.repeat(np.arange(n, dtype=np.int64), np.diff(A.indptr)) * n + A.indices for A in ops]
    union = np.unique(np.concatenate(keys))
    data = np.stack([np.bincount(np.searchsorted(union, k), weights=A.data, minlength=union.size)
                     for A, k in zip(ops, keys)])
    idx = np.int32 if union.size < np.iinfo(np.int32).max else np.int64
    indptr = np.zeros(n + 1, dtype=idx)
    np.cumsum(np.bincount(union // n, minlength=n), out=indptr[1:])
    return (indptr, (union % n).astype(idx)), data


# ===================================================================== greedy
@dataclass
class GreedyResult:
    """model: the final ReducedModel; reductor: the offline data; history: one dict per iteration
    (N, max estimate, parameter index and value, seconds)."""

    model: ReducedModel
    reductor: Reductor
    history: list = field(default_factory=list)

    @property
    def max_estimates(self) -> np.ndarray:
        return np.array([h["max_estimate"] for h in self.history])


def _training_estimates(red: Reductor, train: np.ndarray, alpha: np.ndarray, target: str, estimator: str,
                        comm: Comm) -> np.ndarray:
    """Estimator over the training set in one vectorized pass (einsum over (m, Q, N)); the
    training set is split across ranks and the pieces gathered."""
    part = slice(comm.rank, None, comm.size)
    th, thf = red.theta(train[part]), red.theta_f(train[part])
    N = red.size
    u = K.reduced_solve(th, thf, red.red_ops, red.red_rhs)
    r = residual_norm_from(red.estimator_data(N, estimator), K.residual_coefficients(th, thf, u))
    a = alpha[part]
    est = {"x_norm": r / a, "energy": r / np.sqrt(a), "residual": r}[target]
    out = np.empty(train.shape[0])
    for rank, piece in enumerate(comm.allgather(est)):
        out[rank::comm.size] = piece
    return out


def greedy(reductor: Reductor, training, *, tol: float = 1e-6, max_size: int = 50, estimator: str = "orthonormalized",
           target: str = "energy", relative: bool = False, checkpoint=None, plot=None, eim_training=None,
           comm: Comm | None = None) -> GreedyResult:
    """Weak greedy on the error bound over `training` (m, p): at each step solve the FOM at the
    parameter of largest bound, add it (X-Gram-Schmidt twice) and update the estimator data.
    Stops when the max bound <= tol (relative to the bound at N=0's field norm when relative)
    or at max_size. target: "energy", "x_norm" or "residual". The greedy runs with `estimator`
    ("gram" or "orthonormalized"; for "eim" the loop uses "orthonormalized" and the final model
    the EIM formula trained on eim_training or the training set). checkpoint: HDF5 path; the
    basis and history are written after every step and a rerun resumes from them. plot: PNG path
    of the convergence curve."""
    comm = comm or world()
    train = reductor.check_parameters(training)
    if target not in ("energy", "x_norm", "residual"):
        raise ShapeError(f"target={target!r}: use 'energy', 'x_norm' or 'residual'")
    if estimator not in ESTIMATORS:
        raise ShapeError(f"estimator={estimator!r}: use one of {ESTIMATORS}")
    if not tol >= 0 or int(max_size) < 1:
        raise ShapeError(f"tol={tol}, max_size={max_size}: give tol >= 0 and max_size >= 1")
    loop_est = "orthonormalized" if estimator == "eim" else estimator
    alpha = stability_from(reductor.stability, reductor.theta(train))
    reductor.reserve(max_size)
    history: list = []
    if checkpoint is not None and Path(checkpoint).exists():
        history = _resume(reductor, checkpoint)
    scale = 1.0
    if relative:
        u0 = reductor.fom_solve(train[0])
        scale = float(np.sqrt(u0 @ (reductor.X @ u0)))
    while reductor.size < max_size:
        t0 = time.perf_counter()
        if reductor.size == 0:
            j, emax = 0, np.inf
        else:
            est = _training_estimates(reductor, train, alpha, target, loop_est, comm)
            j = int(np.argmax(est))
            emax = float(est[j])
            history[-1]["max_estimate"] = emax
            log.info("greedy: N=%d max estimate %.3e at mu=%s", reductor.size, emax / scale, train[j])
            if emax <= tol * scale:
                break
        added = reductor.extend(reductor.fom_solve(train[j]))
        history.append({"N": reductor.size, "index": j, "mu": train[j].tolist(), "max_estimate": float("nan"),
                        "seconds": time.perf_counter() - t0})
        if not added:
            log.info("greedy: the selected snapshot is already in the span; stopping")
            break
        if checkpoint is not None and comm.is_root:
            _save_checkpoint(reductor, history, checkpoint)
    if reductor.size and np.isnan(history[-1]["max_estimate"]):
        est = _training_estimates(reductor, train, alpha, target, loop_est, comm)
        history[-1]["max_estimate"] = float(est.max())
    if checkpoint is not None and comm.is_root:
        _save_checkpoint(reductor, history, checkpoint)
    if plot is not None and comm.is_root:
        plot_convergence(history, plot, scale)
    model = reductor.model(estimator=estimator, eim_training=eim_training if eim_training is not None else train)
    return GreedyResult(model, reductor, history)


def _save_checkpoint(red: Reductor, history: list, path) -> None:
    with atomic(path) as tmp, create_checked(tmp) as h:
        h.attrs["format"] = "romtk.greedy/1"
        put(h, "basis", red.V)
        put(h, "index", np.array([e["index"] for e in history], dtype=np.int64))
        put(h, "mu", np.array([e["mu"] for e in history]))
        put(h, "max_estimate", np.array([e["max_estimate"] for e in history]))
        put(h, "seconds", np.array([e["seconds"] for e in history]))


def _resume(red: Reductor, path) -> list:
    V, hist = read_checkpoint(path)
    if red.size:
        raise StoreError("resume needs an empty Reductor; build a fresh one for the checkpoint")
    if V.shape[0] != red.V.shape[0]:
        raise StoreError(f"checkpoint {path} has fields of size {V.shape[0]}, this problem {red.V.shape[0]}; "
                         "remove it or use the matching problem")
    red.extend(V)
    log.info("greedy: resumed from %s with N=%d", path, red.size)
    return hist


def read_checkpoint(path) -> tuple[np.ndarray, list]:
    """The basis (n, N) and history (N entries) of a greedy checkpoint; StoreError when damaged."""
    fix = "remove it to start afresh"
    with reading(path, "romtk greedy checkpoint", fix) as h:
        expect_format(h, "romtk.greedy/1", "romtk greedy checkpoint", f"{fix}, or pass another checkpoint path")
        V = read_array(h, "basis", ndim=2, finite=True)
        k = V.shape[1]
        index = read_array(h, "index", shape=(k,), dtype=np.int64)
        mu = read_array(h, "mu", shape=(k, None), finite=True)
        est = read_array(h, "max_estimate", shape=(k,))
        secs = read_array(h, "seconds", shape=(k,), finite=True)
    # only the last estimate may be pending (NaN): it is computed after the checkpoint is written
    if np.any(index < 0) or not np.all(np.isfinite(est[:-1])) or np.any(np.isinf(est)) or np.any(est < 0):
        raise StoreError(f"{path}: negative training indices or estimates, or a missing estimate before the last; "
                         f"the checkpoint is damaged: {fix}")
    hist = [{"N": j + 1, "index": int(i), "mu": list(m), "max_estimate": float(e), "seconds": float(t)}
            for j, (i, m, e, t) in enumerate(zip(index, mu, est, secs))]
    return V, hist


def plot_convergence(history: list, path, scale: float = 1.0) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    N = [h["N"] for h in history]
    e = [h["max_estimate"] / scale for h in history]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.semilogy(N, e, "o-")
    ax.set_xlabel("basis size N")
    ax.set_ylabel("max error bound over training set")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
