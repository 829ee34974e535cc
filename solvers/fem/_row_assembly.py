"""A space's first mass or diffusion matrix, assembled row by row with its CSR columns.

The sweep over the rows that sorts each row's columns (`_dofmap_kernels`) visits every
(cell, local node) of the row. On an affine simplex with a coefficient constant per cell an
element-matrix row is a few dozen flops (`_kernels.simplex_kernel`), so the same sweep sums
the row's values as well, at the positions its sorted columns give. Data is then written once,
in order: no zeroing pass, no scatter map, no colouring. The map that re-assembly scatters
through is built from the finished columns when a second matrix is assembled
(`Space.pattern`). 2D P2 on 2M triangles, space and first matrix: 2.4-2.9 s by pattern,
map and scatter, 1.6-2.0 s by rows (docs/fem.md).

Scalar spaces only (one component): vector mass matrices keep the scatter path.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from solvers.fem import _dofmap_kernels
from solvers.fem._dofmap_kernels import row_columns, row_split
from solvers.fem._kernels import _simplex_geometry

_ROW_KERNELS: dict = {}


def row_kernel(dim: int, nb: int, is_mass: bool, A: np.ndarray):
    """The row-by-row kernel for simplices of dimension `dim` with `nb` nodes and the reference
    tensor A (npairs, nb, nb) of `_kernels.simplex_tensor`, compiled in as a constant:

        kernel(X, geo, coef, nodes, n_local, ptr, inc, nptr, maxlen, colmap, indices, data, T, rowtype)

    fills indices and data (nnz,) of the rows of `_dofmap_kernels.csr_rows`."""
    # the upper triangle mirrored, as the scatter kernel adds it: the quadrature sums of A are
    # symmetric only to round-off, and rows i and j must get the same bits for (i, j) and (j, i)
    A = np.ascontiguousarray(np.triu(A) + np.triu(A, 1).transpose(0, 2, 1))
    key = (dim, nb, bool(is_mass), A.shape, A.tobytes())
    if key not in _ROW_KERNELS:
        _ROW_KERNELS[key] = _make_row_kernel(dim, nb, bool(is_mass), A)
    return _ROW_KERNELS[key]


def _make_row_kernel(dim, nb, is_mass, A):
    npairs = A.shape[0]

    @njit(cache=True, parallel=True, fastmath=True)
    def kernel(X, geo, coef, nodes, n_local, ptr, inc, nptr, maxlen, colmap, indices, data, T, rowtype):
        for t in prange(T):
            marker = np.full(n_local, -1, dtype=rowtype.dtype)
            where = np.zeros(n_local, dtype=np.int32)
            cols = np.empty(maxlen, dtype=np.int64)
            acc = np.empty(maxlen, dtype=np.float64)
            r0, r1 = row_split(ptr, t, T)
            for r in range(r0, r1):
                m = row_columns(nodes, ptr, inc, r, marker, cols)
                base = nptr[r]
                for k in range(m):
                    where[cols[k]] = k
                    indices[base + k] = colmap[cols[k]]
                    acc[k] = 0.0
                for p in range(ptr[r], ptr[r + 1]):
                    e = inc[p] // nb
                    i = inc[p] - e * nb
                    g = _simplex_geometry(X, geo, e, dim)  # |det J|, then the r_s . r_t
                    s = coef[e] * g[0] if is_mass else coef[e] / g[0]
                    for j in range(nb):
                        v = 0.0
                        if is_mass:
                            v = A[0, i, j]
                        else:
                            for q in range(npairs):
                                v += g[1 + q] * A[q, i, j]
                        acc[where[nodes[e, j]]] += s * v
                for k in range(m):
                    data[base + k] = acc[k]

    return kernel


def first_matrix(X, geo, coef, nodes, n_local, lo, hi, colmap, dim, is_mass, A, nthreads):
    """(indptr, indices, data) of a scalar mass (is_mass) or diffusion matrix on the rows of local
    nodes lo..hi-1: indptr and indices as `_dofmap_kernels.owned_pattern` gives them (nc = 1),
    data (nnz,) float64. X (n_points, dim) vertex coordinates, geo (ne, dim+1) cell vertices,
    coef (ne,) per cell, nodes (ne, nb) local nodes, colmap (n_local,) their global numbers."""
    ptr, inc, length, nptr, indptr, rowtype = _dofmap_kernels.csr_rows(nodes, n_local, lo, hi, 1, nthreads)
    indices = np.empty(int(indptr[-1]), dtype=indptr.dtype)
    data = np.empty(len(indices))
    kernel = row_kernel(dim, nodes.shape[1], is_mass, A)
    kernel(X, geo, coef, nodes, n_local, ptr, inc, nptr, int(length.max(initial=0)), colmap, indices, data,
           nthreads, rowtype)
    return indptr, indices, data
