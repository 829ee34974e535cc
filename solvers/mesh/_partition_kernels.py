"""Numba kernels of the cell partitioner (pure functions on arrays)."""

import numpy as np
from numba import njit


@njit(cache=True)
def centroid_coord(points, cells, axis, idx, every):
    """Coordinate `axis` of the vertex average of cells idx (m,), or of every cell when `every`:
    (m,) float64. One coordinate at a time: a bisection needs only the one it cuts along."""
    k = cells.shape[1]
    m = cells.shape[0] if every else idx.shape[0]
    out = np.empty(m)
    inv = 1.0 / k
    for j in range(m):
        e = j if every else idx[j]
        s = 0.0
        for i in range(k):
            s += points[cells[e, i], axis]
        out[j] = s * inv
    return out


@njit(cache=True)
def assign_halves(part, idx, every, x, v, k, a, b):
    """part[item j] = a for the k smallest x (ties at the cut value v broken by position), b for
    the rest; item j is idx[j], or j when `every`. The last bisection of a branch in two passes
    over x, with no mask or index set."""
    below = 0
    for j in range(x.shape[0]):
        if x[j] < v:
            below += 1
    ties = k - below
    for j in range(x.shape[0]):
        left = x[j] < v
        if not left and x[j] == v and ties > 0:
            left = True
            ties -= 1
        part[j if every else idx[j]] = a if left else b


@njit(cache=True)
def bounds(points):
    """(2, dim) float64 lower and upper corner of the points (n, dim) (numpy's reduction along
    the short axis of a C-ordered array is strided and several times slower)."""
    n, dim = points.shape
    out = np.empty((2, dim))
    out[0, :] = np.inf
    out[1, :] = -np.inf
    for i in range(n):
        for d in range(dim):
            v = points[i, d]
            if v < out[0, d]:
                out[0, d] = v
            if v > out[1, d]:
                out[1, d] = v
    return out
