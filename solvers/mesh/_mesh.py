"""The Mesh: points, cells of one type, tagged boundary facets and cell regions."""

from __future__ import annotations

import hashlib
from functools import cached_property
from typing import Callable

import numpy as np

from rom.errors import BoundaryError, MeshError, ShapeError
from solvers.cells import FACETS, FACET_TYPE, N_VERTICES, TDIM

Predicate = Callable[[np.ndarray], np.ndarray]


class Mesh:
    """A conforming mesh of a single cell type.

    points: (n, dim) float64, metres (or the problem's length unit).
    cells: (ne, k) int64 vertex indices, VTK/meshio vertex order, positively oriented.
    cell_type: meshio name: "line", "triangle", "quad", "tetra" or "hexahedron".
    regions: name -> (m,) int64 cell indices (cell regions, e.g. materials).
    boundaries: name -> (m, 2) int64 rows (cell, local facet) of tagged boundary facets.
    """

    def __init__(self, points, cells, cell_type: str, regions=None, boundaries=None):
        if cell_type not in FACETS:
            raise MeshError(
                f"unknown cell type {cell_type!r}; romtk meshes hold one of "
                f"{', '.join(sorted(FACETS))} (convert or split the mesh first)"
            )
        points = np.ascontiguousarray(points, dtype=np.float64)
        if points.ndim == 1:
            points = points[:, None]
        cells = np.ascontiguousarray(cells, dtype=np.int64)
        k = N_VERTICES[cell_type]
        if cells.ndim != 2 or cells.shape[1] != k:
            raise ShapeError(f"cells has shape {cells.shape}; a {cell_type} mesh needs (n_cells, {k})")
        if points.ndim != 2 or not (TDIM[cell_type] <= points.shape[1] <= 3):
            raise ShapeError(
                f"points has shape {points.shape}; a {cell_type} mesh needs (n, d) with "
                f"{TDIM[cell_type]} <= d <= 3"
            )
        if cells.size and (cells.min() < 0 or cells.max() >= len(points)):
            raise MeshError(
                f"cells refer to vertex {cells.min() if cells.min() < 0 else cells.max()} but the mesh "
                f"has {len(points)} points; the cell array does not match the points"
            )
        if not np.isfinite(points).all():
            raise MeshError("points contain NaN or infinite coordinates; fix the mesh file")
        self.points = points
        self.cells = cells
        self.cell_type = cell_type
        self.regions: dict[str, np.ndarray] = {
            k: np.asarray(v, dtype=np.int64) for k, v in (regions or {}).items()
        }
        self.boundaries: dict[str, np.ndarray] = {
            k: np.asarray(v, dtype=np.int64).reshape(-1, 2) for k, v in (boundaries or {}).items()
        }

    # -- sizes -----------------------------------------------------------------
    @property
    def dim(self) -> int:
        """Geometric dimension (columns of points)."""
        return self.points.shape[1]

    @property
    def tdim(self) -> int:
        """Topological dimension of the cells."""
        return TDIM[self.cell_type]

    @property
    def n_points(self) -> int:
        return len(self.points)

    @property
    def n_cells(self) -> int:
        return len(self.cells)

    @property
    def facet_type(self) -> str:
        return FACET_TYPE[self.cell_type]

    def __repr__(self) -> str:
        return (
            f"Mesh({self.n_cells} {self.cell_type} cells, {self.n_points} points in {self.dim}D, "
            f"regions={sorted(self.regions)}, boundaries={sorted(self.boundaries)})"
        )

    # -- topology ----------------------------------------------------------------
    @cached_property
    def boundary_facets(self) -> np.ndarray:
        """(nbf, 2) int64 rows (cell, local facet) of the facets that belong to one cell only."""
        lf = np.array(FACETS[self.cell_type], dtype=np.int64)
        nf = len(lf)
        fv = self.cells[:, lf].reshape(-1, lf.shape[1])
        key = np.sort(fv, axis=1)
        order = np.lexsort(key.T[::-1])
        ks = key[order]
        new = np.ones(len(ks), dtype=bool)
        new[1:] = (ks[1:] != ks[:-1]).any(axis=1)
        starts = np.flatnonzero(new)
        counts = np.diff(np.append(starts, len(ks)))
        single = order[starts[counts == 1]]
        single.sort()
        return np.stack([single // nf, single % nf], axis=1)

    def facet_vertices(self, facets: np.ndarray) -> np.ndarray:
        """Vertex indices (m, kf) of facets given as (m, 2) rows (cell, local facet)."""
        lf = np.array(FACETS[self.cell_type], dtype=np.int64)
        return self.cells[facets[:, 0][:, None], lf[facets[:, 1]]]

    def facet_midpoints(self, facets: np.ndarray) -> np.ndarray:
        return self.points[self.facet_vertices(facets)].mean(axis=1)

    @cached_property
    def centroids(self) -> np.ndarray:
        """(ne, dim) float64 vertex averages of the cells."""
        return self.points[self.cells].mean(axis=1)

    # -- numbering ---------------------------------------------------------------
    def renumbered(self, point_order=None, cell_order=None) -> "Mesh":
        """The same mesh with points and cells renumbered; regions and boundary facets move
        with their cells (a boundary row keeps its local facet: cells keep their vertex order).

        point_order (n_points,), cell_order (n_cells,): permutations, new point i = old point
        point_order[i], new cell j = old cell cell_order[j]. Both None: the sweep of
        `solvers.mesh.partition.locality_order` (what `read_mesh` applies), which parallel
        assembly needs to colour cells in few colours; one None: that numbering unchanged."""
        if point_order is None and cell_order is None:
            from solvers.mesh.partition import locality_order

            point_order, cell_order = locality_order(self.cells, self.n_points)
        pord = _permutation(point_order, self.n_points, "point_order")
        cord = _permutation(cell_order, self.n_cells, "cell_order")
        new_point = np.empty(self.n_points, dtype=np.int64)
        new_point[pord] = np.arange(self.n_points)
        new_cell = np.empty(self.n_cells, dtype=np.int64)
        new_cell[cord] = np.arange(self.n_cells)
        boundaries = {}
        for name, rows in self.boundaries.items():
            moved = np.stack([new_cell[rows[:, 0]], rows[:, 1]], axis=1)
            boundaries[name] = moved[np.lexsort((moved[:, 1], moved[:, 0]))]
        regions = {name: np.sort(new_cell[idx]) for name, idx in self.regions.items()}
        return Mesh(self.points[pord], new_point[self.cells[cord]], self.cell_type, regions, boundaries)

    # -- tags --------------------------------------------------------------------
    def tag_boundary(self, name: str, predicate: Predicate | None = None) -> "Mesh":
        """Tag the boundary facets whose midpoint x (m, dim) satisfies `predicate(x)`
        (all boundary facets if None). Returns self, for chaining."""
        bf = self.boundary_facets
        if predicate is None:
            self.boundaries[name] = bf.copy()
            return self
        mask = np.asarray(predicate(self.facet_midpoints(bf)), dtype=bool)
        if mask.shape != (len(bf),):
            raise ShapeError(f"boundary predicate for {name!r} returned shape {mask.shape}, expected ({len(bf)},)")
        self.boundaries[name] = bf[mask]
        return self

    def tag_region(self, name: str, predicate: Predicate) -> "Mesh":
        """Tag the cells whose centroid x (ne, dim) satisfies `predicate(x)`."""
        mask = np.asarray(predicate(self.centroids), dtype=bool)
        if mask.shape != (self.n_cells,):
            raise ShapeError(f"region predicate for {name!r} returned shape {mask.shape}, expected ({self.n_cells},)")
        self.regions[name] = np.flatnonzero(mask)
        return self

    def boundary(self, name: str) -> np.ndarray:
        """(m, 2) int64 rows (cell, local facet) of boundary tag `name`."""
        try:
            return self.boundaries[name]
        except KeyError:
            raise BoundaryError(
                f"boundary tag {name!r} does not exist; this mesh has {sorted(self.boundaries) or 'none'}"
                " (add one with Mesh.tag_boundary)"
            ) from None

    def region(self, name: str) -> np.ndarray:
        """(m,) int64 cell indices of region `name`."""
        try:
            return self.regions[name]
        except KeyError:
            raise BoundaryError(
                f"region tag {name!r} does not exist; this mesh has {sorted(self.regions) or 'none'}"
                " (add one with Mesh.tag_region)"
            ) from None

    def boundary_dofs_vertices(self, name: str) -> np.ndarray:
        """Sorted unique vertex indices on boundary tag `name`."""
        return np.unique(self.facet_vertices(self.boundary(name)))

    def hash(self) -> str:
        """SHA-256 of cell type, points and cells: identifies the mesh in stores."""
        h = hashlib.sha256(self.cell_type.encode())
        h.update(self.points.tobytes())
        h.update(self.cells.tobytes())
        return h.hexdigest()


def _permutation(order, n: int, name: str) -> np.ndarray:
    """order as (n,) int64 if it is a permutation of range(n), else MeshError naming it."""
    if order is None:
        return np.arange(n, dtype=np.int64)
    order = np.asarray(order)
    if order.shape != (n,) or not np.issubdtype(order.dtype, np.integer):
        raise MeshError(f"{name} has shape {order.shape} and dtype {order.dtype}; give ({n},) integers, "
                        f"a permutation of range({n})")
    order = order.astype(np.int64)
    seen = np.zeros(n, dtype=bool)
    inside = (order >= 0) & (order < n)
    seen[order[inside]] = True
    if not inside.all() or not seen.all():
        raise MeshError(f"{name} is not a permutation of range({n}): it repeats or leaves out "
                        f"{int(np.flatnonzero(~seen)[0])}; give each index exactly once")
    return order
