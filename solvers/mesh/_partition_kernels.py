"""Numba kernels of the cell partitioner (pure functions on arrays)."""

import numpy as np
from numba import njit


@njit(cache=True)
def centroids_t(points, cells):
    """Cell centroids, coordinate-major: (dim, ne) float64, the vertex average of each cell.
    Coordinate-major so that each bisection reads one contiguous row."""
    ne, k = cells.shape
    dim = points.shape[1]
    out = np.zeros((dim, ne))
    inv = 1.0 / k
    for e in range(ne):
        for d in range(dim):
            s = 0.0
            for i in range(k):
                s += points[cells[e, i], d]
            out[d, e] = s * inv
    return out
