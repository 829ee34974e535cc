"""Structured mesh generators, with their sides tagged.

Tags: interval "left"/"right"; rectangle "left", "right" (x), "bottom", "top" (y);
box "left", "right" (x), "front", "back" (y), "bottom", "top" (z); every mesh
also has "boundary" (all boundary facets).
"""

from __future__ import annotations

import numpy as np

from rom.errors import MeshError
from solvers.mesh._mesh import Mesh

_KUHN = np.array([[0, 1, 2, 6], [0, 2, 3, 6], [0, 3, 7, 6], [0, 7, 4, 6], [0, 4, 5, 6], [0, 5, 1, 6]])


def _check_counts(**n):
    for k, v in n.items():
        if int(v) != v or v < 1:
            raise MeshError(f"{k}={v!r}: the number of cells per direction must be a positive integer")


def _tag_sides(mesh: Mesh, lo, hi, names) -> Mesh:
    tol = 1e-10 * max(1.0, float(np.max(np.abs(np.r_[lo, hi]))))
    for d, (a, b) in enumerate(names):
        mesh.tag_boundary(a, lambda x, d=d: np.abs(x[:, d] - lo[d]) < tol)
        mesh.tag_boundary(b, lambda x, d=d: np.abs(x[:, d] - hi[d]) < tol)
    return mesh.tag_boundary("boundary")


def interval(n: int, a: float = 0.0, b: float = 1.0) -> Mesh:
    """[a, b] split into n equal line cells."""
    _check_counts(n=n)
    x = np.linspace(a, b, n + 1)[:, None]
    cells = np.stack([np.arange(n), np.arange(1, n + 1)], axis=1)
    return _tag_sides(Mesh(x, cells, "line"), [a], [b], [("left", "right")])


def rectangle(nx: int, ny: int, lower=(0.0, 0.0), upper=(1.0, 1.0), cell_type: str = "triangle") -> Mesh:
    """[lower, upper] with nx*ny squares, each a quad or two triangles (cut along (0,0)-(1,1))."""
    _check_counts(nx=nx, ny=ny)
    x = np.linspace(lower[0], upper[0], nx + 1)
    y = np.linspace(lower[1], upper[1], ny + 1)
    X, Y = np.meshgrid(x, y, indexing="xy")
    pts = np.stack([X.ravel(), Y.ravel()], axis=1)
    i, j = np.meshgrid(np.arange(nx), np.arange(ny), indexing="xy")
    v0 = (i + j * (nx + 1)).ravel()
    quad = np.stack([v0, v0 + 1, v0 + nx + 2, v0 + nx + 1], axis=1)
    if cell_type == "quad":
        cells = quad
    elif cell_type == "triangle":
        cells = np.stack([quad[:, [0, 1, 2]], quad[:, [0, 2, 3]]], axis=1).reshape(-1, 3)
    else:
        raise MeshError(f"rectangle cell_type {cell_type!r}: use 'triangle' or 'quad'")
    return _tag_sides(Mesh(pts, cells, cell_type), lower, upper, [("left", "right"), ("bottom", "top")])


def box(nx: int, ny: int, nz: int, lower=(0.0, 0.0, 0.0), upper=(1.0, 1.0, 1.0),
        cell_type: str = "tetra") -> Mesh:
    """[lower, upper] with nx*ny*nz cubes, each a hexahedron or six tetrahedra (Kuhn split,
    conforming across cubes)."""
    _check_counts(nx=nx, ny=ny, nz=nz)
    axes = [np.linspace(lower[d], upper[d], n + 1) for d, n in enumerate((nx, ny, nz))]
    Z, Y, X = np.meshgrid(axes[2], axes[1], axes[0], indexing="ij")
    pts = np.stack([X.ravel(), Y.ravel(), Z.ravel()], axis=1)
    k, j, i = np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx), indexing="ij")
    sx, sy = 1, nx + 1
    sz = (nx + 1) * (ny + 1)
    v0 = (i * sx + j * sy + k * sz).ravel()
    hexa = np.stack([v0, v0 + sx, v0 + sx + sy, v0 + sy,
                     v0 + sz, v0 + sx + sz, v0 + sx + sy + sz, v0 + sy + sz], axis=1)
    if cell_type == "hexahedron":
        cells = hexa
    elif cell_type == "tetra":
        cells = hexa[:, _KUHN].reshape(-1, 4)
        p = pts[cells]
        vol = np.einsum("ij,ij->i", np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]), p[:, 3] - p[:, 0])
        neg = vol < 0
        cells[neg] = cells[neg][:, [0, 2, 1, 3]]
    else:
        raise MeshError(f"box cell_type {cell_type!r}: use 'tetra' or 'hexahedron'")
    names = [("left", "right"), ("front", "back"), ("bottom", "top")]
    return _tag_sides(Mesh(pts, cells, cell_type), lower, upper, names)
