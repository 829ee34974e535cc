"""Numba kernels for the ARD radial covariances: pure functions on arrays.

Conventions shared by every kernel:
  Xs    (n, dim) float64 inputs already divided by the length scales, so that
        q_ij = sum_a (Xs_ia - Xs_ja)^2 and k_ij = g(q_ij)
  kind  SE (exp(-q/2)), M12, M32 or M52 (Matérn nu = 1/2, 3/2, 5/2), unit variance
Symmetric (n, n) matrices are C-ordered and only their lower triangle (i >= j) is
written or read, so that the same memory, seen as Fortran-ordered, is the upper
triangle LAPACK works on. Loops over pairs i > j run over rows r and n-1-r together
(n - 1 pairs per iteration), which balances the threads of `prange`.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

SE = 0
M12 = 1
M32 = 2
M52 = 3
TINY = 1e-100  # a unit-variance value below this is counted as negligible by gram_lower


@njit(cache=True, inline="always")
def _g(kind, q):
    if kind == SE:
        return np.exp(-0.5 * q)
    if kind == M12:
        return np.exp(-np.sqrt(q))
    if kind == M32:
        s = np.sqrt(3.0 * q)
        return (1.0 + s) * np.exp(-s)
    s = np.sqrt(5.0 * q)
    return (1.0 + s + s * s / 3.0) * np.exp(-s)


@njit(cache=True, inline="always")
def _g_g1(kind, q):
    """g(q) and g'(q); g' is taken as 0 where it is singular (Matérn 1/2 at q = 0)."""
    if kind == SE:
        e = np.exp(-0.5 * q)
        return e, -0.5 * e
    if kind == M12:
        r = np.sqrt(q)
        e = np.exp(-r)
        return e, (-e / (2.0 * r) if r > 0.0 else 0.0)
    if kind == M32:
        s = np.sqrt(3.0 * q)
        e = np.exp(-s)
        return (1.0 + s) * e, -1.5 * e
    s = np.sqrt(5.0 * q)
    e = np.exp(-s)
    return (1.0 + s + s * s / 3.0) * e, -(5.0 / 6.0) * (1.0 + s) * e


@njit(cache=True, parallel=True)
def cross(Xs, Ys, kind, K):
    """K[i, j] = g(q(Xs_i, Ys_j)), K (n, m) written in full."""
    n, m, dim = Xs.shape[0], Ys.shape[0], Xs.shape[1]
    for i in prange(n):
        for j in range(m):
            q = 0.0
            for a in range(dim):
                d = Xs[i, a] - Ys[j, a]
                q += d * d
            K[i, j] = _g(kind, q)


@njit(cache=True, inline="always")
def _gram_row(Xs, kind, variance, add, K, i):
    dim = Xs.shape[1]
    tiny = 0
    for j in range(i):
        q = 0.0
        for a in range(dim):
            d = Xs[i, a] - Xs[j, a]
            q += d * d
        g = _g(kind, q)
        tiny += g < TINY
        v = variance * g
        if add:
            K[i, j] += v
        else:
            K[i, j] = v
    if add:
        K[i, i] += variance * _g(kind, 0.0)
    else:
        K[i, i] = variance * _g(kind, 0.0)
    return tiny


@njit(cache=True, parallel=True)
def gram_lower(Xs, kind, variance, add, K):
    """Lower triangle of variance * g(q) into K (n, n): assigned, or added when `add`.
    Returns the number of pairs i > j with g < TINY."""
    n = Xs.shape[0]
    tiny = 0
    for r in prange((n + 1) // 2):
        tiny += _gram_row(Xs, kind, variance, add, K, r)
        if n - 1 - r != r:
            tiny += _gram_row(Xs, kind, variance, add, K, n - 1 - r)
    return tiny


@njit(cache=True, inline="always")
def _contract_row(Xs, kind, W, i, acc, d):
    dim = Xs.shape[1]
    for j in range(i):
        q = 0.0
        for a in range(dim):
            d[a] = Xs[i, a] - Xs[j, a]
            q += d[a] * d[a]
        g, g1 = _g_g1(kind, q)
        w = W[i, j]
        acc[0] += w * g
        wg1 = w * g1
        for a in range(dim):
            acc[1 + a] += wg1 * d[a] * d[a]


@njit(cache=True, parallel=True)
def contract_lower(Xs, kind, W):
    """For symmetric W (n, n), of which only the lower triangle is read:
    s[0] = sum_ij W_ij g(q_ij) and s[1 + a] = sum_ij W_ij g'(q_ij) (Xs_ia - Xs_ja)^2, (1 + dim,).

    For k = c g(q) with q in the length scales l, dk/dlog c = c g and dk/dlog l_a = -2 c g' d_a^2,
    so one pass gives the gradient in every log-hyperparameter of the term.
    """
    n, dim = Xs.shape
    m = (n + 1) // 2
    part = np.zeros((m, 1 + dim))
    for r in prange(m):
        d = np.empty(dim)
        acc = part[r]
        _contract_row(Xs, kind, W, r, acc, d)
        if n - 1 - r != r:
            _contract_row(Xs, kind, W, n - 1 - r, acc, d)
    s = 2.0 * part.sum(axis=0)
    tr = 0.0
    for i in range(n):
        tr += W[i, i]
    s[0] += _g(kind, 0.0) * tr
    return s
