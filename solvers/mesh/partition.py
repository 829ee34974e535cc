"""Cell partitioning for distributed meshes: recursive coordinate bisection (RCB).

RCB splits the cell centroids along the longest side of their box at the count that keeps
parts balanced, recursively (the box of all points, then the halves the cuts leave), until there are `nparts` parts. It needs no
extra dependency, is deterministic (every rank computes the same partition from the same
mesh), costs O(ne log P) (selection, not sorting, finds each cut), and gives compact parts
on the structured and gmsh meshes romtk targets. A graph partitioner (METIS) cuts fewer edges on meshes with thin features or
strong anisotropy; that is where RCB would be worth replacing.
"""

from __future__ import annotations

import numpy as np

from rom.errors import MeshError
from solvers.mesh._partition_kernels import assign_halves, bounds, centroid_coord
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from solvers.mesh._mesh import Mesh


_NONE = np.empty(0, dtype=np.int64)


def _smallest(x: np.ndarray, k: int) -> tuple[np.ndarray, float]:
    """Mask (m,) of the k smallest entries of x, ties broken by position (the first k of a stable
    sort, found in O(m) by selection instead of sorting), and the k-th smallest value (the cut)."""
    m = len(x)
    if k <= 0 or k >= m:
        return np.full(m, k >= m), float(x.min() if k <= 0 else x.max())
    v = np.partition(x, k - 1)[k - 1]
    left = x < v
    need = k - int(np.count_nonzero(left))
    left[np.flatnonzero(x == v)[:need]] = True
    return left, float(v)


def rcb(points: np.ndarray, nparts: int) -> np.ndarray:
    """Part index (n,) int32 of each point (points (n, dim)), parts of sizes differing by at most one."""
    pts = np.asarray(points, dtype=np.float64)
    n = len(pts)
    if nparts < 1 or nparts > max(n, 1):
        raise MeshError(f"cannot split {n} cells into {nparts} parts; use 1 <= nparts <= {n}")
    xt = np.ascontiguousarray(pts.T)
    return _rcb(lambda axis, idx: xt[axis] if idx is None else xt[axis, idx], bounds(pts), n, nparts)


def _rcb(coord, box: np.ndarray, n: int, nparts: int) -> np.ndarray:
    """RCB of n items; coord(axis, idx) gives their coordinates (m,) along axis (idx None: all
    items), box (2, dim) bounds them. Each cut splits its box at the cut value, so the next
    cut's axis costs nothing, and only the coordinate cut along is ever computed."""
    part = np.zeros(n, dtype=np.int32)
    # index sets stay ascending (boolean selection keeps order), so "ties broken by position"
    # is "ties broken by index": the split is deterministic and the same on every rank
    stack = [(None, 0, nparts, box)]  # None: all items
    while stack:
        idx, first, k, box = stack.pop()
        if k == 1:
            part[slice(None) if idx is None else idx] = first
            continue
        kl = k // 2
        axis = int(np.argmax(box[1] - box[0]))
        x = coord(axis, idx)
        kx = int(round(len(x) * kl / k))
        if k == 2:  # both halves are parts: no mask or index sets needed
            v = np.partition(x, kx - 1)[kx - 1] if 0 < kx else -np.inf
            assign_halves(part, _NONE if idx is None else idx, idx is None, x, v, kx, first, first + 1)
            continue
        left, cut = _smallest(x, kx)
        idx = np.arange(n) if idx is None else idx
        lbox, rbox = box.copy(), box.copy()
        lbox[1, axis] = rbox[0, axis] = cut
        stack.append((idx[left], first, kl, lbox))
        stack.append((idx[~left], first + kl, k - kl, rbox))
    return part


def partition_cells(mesh: Mesh, nparts: int) -> np.ndarray:
    """Part (rank) of each cell (ne,) int32, by RCB on the cell centroids. Computed once per mesh
    and part count: every space built on the mesh afterwards reuses it."""
    cache = mesh.__dict__.setdefault("_partitions", {})
    if nparts not in cache:
        if nparts < 1 or nparts > mesh.n_cells:
            raise MeshError(f"cannot split {mesh.n_cells} cells into {nparts} parts; use 1 <= nparts <= {mesh.n_cells}")
        pts, cells = mesh.points, mesh.cells

        def coord(axis, idx):
            return centroid_coord(pts, cells, axis, _NONE if idx is None else idx, idx is None)

        cache[nparts] = _rcb(coord, bounds(pts), mesh.n_cells, nparts)
    return cache[nparts]


def locality_order(cells: np.ndarray, n_points: int) -> tuple[np.ndarray, np.ndarray]:
    """A numbering of points and cells along a sweep through the mesh, for meshes whose
    generator numbers them in no useful order (gmsh's Delaunay and frontal meshers).

    cells: (ne, k) int64 vertex indices into n_points points. Returns (point_order (n_points,),
    cell_order (ne,)) int64: new point i is old point point_order[i], new cell j old cell
    cell_order[j]. Points follow reverse Cuthill-McKee on the vertex graph (scipy.sparse.csgraph),
    cells the lowest new number of their vertices, so consecutive cells lie in one thin front
    that moves through the mesh: neighbouring cells have nearby dof numbers (the scatter of
    assembly stays in cache), and chunks of consecutive cells longer than the front touch only
    the chunks before and after (`_kernels.chunk_coloring` colours them in two colours).
    Deterministic: the same mesh gives the same numbering on every rank."""
    import scipy.sparse as sp
    from scipy.sparse.csgraph import reverse_cuthill_mckee

    ne, k = cells.shape
    incidence = sp.csr_matrix((np.ones(ne * k, dtype=np.int32), cells.ravel(), np.arange(0, ne * k + 1, k)),
                              shape=(ne, n_points))
    graph = (incidence.T @ incidence).tocsr()
    point_order = reverse_cuthill_mckee(graph, symmetric_mode=True).astype(np.int64)
    new = np.empty(n_points, dtype=np.int64)
    new[point_order] = np.arange(n_points)
    cell_order = np.argsort(new[cells].min(axis=1), kind="stable")
    return point_order, cell_order.astype(np.int64)
