"""Array kernels of the reduced-basis method: pure functions on numpy arrays, vectorized over
parameters (a leading axis m). No objects, no FOM; the Python layer in rom.rb / rom.reduced
validates inputs and calls these.
"""

from __future__ import annotations

import numpy as np


def assemble_reduced(theta: np.ndarray, ops: np.ndarray) -> np.ndarray:
    """sum_q theta[..., q] ops[q]: theta (m, Q), ops (Q, N, N) -> (m, N, N)."""
    return np.tensordot(theta, ops, axes=1)


def reduced_solve(theta: np.ndarray, theta_f: np.ndarray, ops: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Galerkin coefficients u (m, N) from theta (m, Q), theta_f (m, P), ops (Q, N, N), rhs (P, N).
    Cost O(m (Q N^2 + N^3)), independent of the FOM size."""
    A = assemble_reduced(theta, ops)
    b = theta_f @ rhs
    return np.linalg.solve(A, b[..., None])[..., 0]


def residual_coefficients(theta: np.ndarray, theta_f: np.ndarray, u: np.ndarray) -> np.ndarray:
    """c (m, P + N Q) such that r(mu) = sum_k c_k g_k with the residual terms ordered
    g = [f_1..f_P, A_1 xi_1..A_Q xi_1, A_1 xi_2, ...] (basis-vector major, so the first P + N' Q
    terms are those of the nested basis of size N')."""
    m = theta.shape[0]
    au = -(u[:, :, None] * theta[:, None, :]).reshape(m, -1)
    return np.concatenate([theta_f, au], axis=1)


def x_gram_schmidt(V: np.ndarray, XV: np.ndarray, v: np.ndarray, X, passes: int = 2):
    """X-orthogonalize v (n,) against the X-orthonormal columns of V (n, k) (XV = X V), twice
    (Gram-Schmidt twice, Giraud et al.). Returns (w, coefficients (k,), X-norm of w, X w)."""
    coef = np.zeros(V.shape[1])
    w = v.copy()
    for _ in range(passes):
        if V.shape[1]:
            h = XV.T @ w
            w -= V @ h
            coef += h
    Xw = X @ w
    return w, coef, float(np.sqrt(max(w @ Xw, 0.0))), Xw


def x_block_project(V: np.ndarray, XV: np.ndarray, G: np.ndarray, passes: int = 2):
    """Remove from every column of G (n, k) its X-projection on the X-orthonormal columns of
    V (n, r) (XV = X V), `passes` times: block classical Gram-Schmidt twice, two matrix-matrix
    products per pass instead of 2k matrix-vector ones. Each column is projected on its own,
    so twice is enough column by column. Returns (B = G - V C (n, k), C (r, k))."""
    B = np.array(G, dtype=np.float64, order="F", copy=True)
    C = np.zeros((V.shape[1], B.shape[1]))
    if V.shape[1]:
        for _ in range(passes):
            H = XV.T @ B
            B -= V @ H
            C += H
    return B, C


def matvec_extended(A, x: np.ndarray) -> np.ndarray:
    """A @ x for CSR A (n, n) and x (n,) accumulated in extended precision (np.longdouble, 80-bit
    on x86) and rounded once: the terms A_q xi of the residual then carry a relative error eps
    per entry instead of eps |A| |xi|, which lowers the accuracy floor of the estimator (card E).
    Offline only; where longdouble is double this is an ordinary product."""
    prod = A.data.astype(np.longdouble) * x.astype(np.longdouble)[A.indices]
    out = np.zeros(A.shape[0])
    rows = np.flatnonzero(np.diff(A.indptr))       # reduceat needs the starts of non-empty rows only
    if rows.size:
        out[rows] = np.add.reduceat(prod, A.indptr[rows]).astype(np.float64)
    return out


def min_theta_bound(theta: np.ndarray, theta_bar: np.ndarray, alpha_bar: float) -> np.ndarray:
    """alpha_LB(mu) = alpha(mu_bar) min_q theta_q(mu) / theta_q(mu_bar): theta (m, Q) -> (m,)."""
    return alpha_bar * np.min(theta / theta_bar, axis=1)
