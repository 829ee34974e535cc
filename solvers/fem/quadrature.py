"""Gauss quadrature on reference cells, of any order.

Reference cells: interval [0,1], triangle (0,0),(1,0),(0,1), tetrahedron
(0,0,0),(1,0,0),(0,1,0),(0,0,1), quadrilateral [0,1]^2 and hexahedron [0,1]^3.
Tensor cells use Gauss-Legendre products. Simplices use the classical symmetric
rules for orders 1, 2 (and 4 on triangles), and collapsed Gauss-Jacobi (Stroud
conical product) rules above that: positive weights, exact to the asked order.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.special import roots_jacobi, roots_legendre

from rom.errors import MeshError


@dataclass(frozen=True)
class QuadratureRule:
    """points: (nq, tdim) float64 reference coordinates; weights: (nq,) float64, summing to the cell volume."""

    points: np.ndarray
    weights: np.ndarray
    order: int


def _gauss_legendre01(n: int):
    t, w = roots_legendre(n)
    return 0.5 * (t + 1.0), 0.5 * w


def _gauss_jacobi01(n: int, alpha: int):
    # weight (1 - x)^alpha on [0, 1]
    t, w = roots_jacobi(n, alpha, 0)
    return 0.5 * (t + 1.0), w / 2.0 ** (alpha + 1)


def _tensor(n: int, dim: int):
    x, w = _gauss_legendre01(n)
    grids = np.meshgrid(*([x] * dim), indexing="ij")
    wgrids = np.meshgrid(*([w] * dim), indexing="ij")
    pts = np.stack([g.ravel(order="F") for g in grids], axis=1)
    wts = np.prod(np.stack([g.ravel(order="F") for g in wgrids], axis=1), axis=1)
    return pts, wts


def _collapsed_triangle(n: int):
    u, wu = _gauss_legendre01(n)
    v, wv = _gauss_jacobi01(n, 1)
    U, V = np.meshgrid(u, v, indexing="ij")
    W = np.outer(wu, wv)
    return np.stack([(U * (1 - V)).ravel(), V.ravel()], axis=1), W.ravel()


def _collapsed_tetra(n: int):
    u, wu = _gauss_legendre01(n)
    v, wv = _gauss_jacobi01(n, 1)
    s, ws = _gauss_jacobi01(n, 2)
    U, V, S = np.meshgrid(u, v, s, indexing="ij")
    W = wu[:, None, None] * wv[None, :, None] * ws[None, None, :]
    pts = np.stack([(U * (1 - V) * (1 - S)).ravel(), (V * (1 - S)).ravel(), S.ravel()], axis=1)
    return pts, W.ravel()


def _triangle_symmetric(order: int):
    if order <= 1:
        return np.array([[1 / 3, 1 / 3]]), np.array([0.5])
    if order == 2:
        p = np.array([[1 / 6, 1 / 6], [2 / 3, 1 / 6], [1 / 6, 2 / 3]])
        return p, np.full(3, 1 / 6)
    # order 4: six points on two orbits
    a, b = 0.445948490915965, 0.091576213509771
    wa, wb = 0.223381589678011 / 2, 0.109951743655322 / 2
    p = np.array([[a, a], [1 - 2 * a, a], [a, 1 - 2 * a], [b, b], [1 - 2 * b, b], [b, 1 - 2 * b]])
    return p, np.array([wa] * 3 + [wb] * 3)


def _tetra_symmetric(order: int):
    if order <= 1:
        return np.array([[0.25, 0.25, 0.25]]), np.array([1 / 6])
    a = 0.1381966011250105
    b = 1 - 3 * a
    p = np.array([[a, a, a], [b, a, a], [a, b, a], [a, a, b]])
    return p, np.full(4, 1 / 24)


@lru_cache(maxsize=None)
def gauss(cell_type: str, order: int) -> QuadratureRule:
    """Quadrature rule exact for polynomials of total (simplices) or per-direction
    (tensor cells) degree `order` on the reference `cell_type`."""
    order = max(int(order), 0)
    n = order // 2 + 1
    if cell_type == "vertex":
        pts, wts = np.zeros((1, 0)), np.ones(1)
    elif cell_type == "line":
        pts, wts = _tensor(n, 1)
    elif cell_type == "quad":
        pts, wts = _tensor(n, 2)
    elif cell_type == "hexahedron":
        pts, wts = _tensor(n, 3)
    elif cell_type == "triangle":
        pts, wts = _triangle_symmetric(order) if order in (0, 1, 2, 3, 4) and order != 3 else _collapsed_triangle(n)
    elif cell_type == "tetra":
        pts, wts = _tetra_symmetric(order) if order <= 2 else _collapsed_tetra(n)
    else:
        raise MeshError(f"no quadrature for cell type {cell_type!r}; use one of line, triangle, quad, tetra, hexahedron")
    pts = np.ascontiguousarray(pts, dtype=np.float64)
    wts = np.ascontiguousarray(wts, dtype=np.float64)
    pts.setflags(write=False)
    wts.setflags(write=False)
    return QuadratureRule(pts, wts, order)
