"""Cell partitioning for distributed meshes: recursive coordinate bisection (RCB).

RCB splits the cell centroids along the longest extent of their bounding box at the
count that keeps parts balanced, recursively, until there are `nparts` parts. It needs no
extra dependency, is deterministic (every rank computes the same partition from the same
mesh), costs O(ne log P) (selection, not sorting, finds each cut), and gives compact parts
on the structured and gmsh meshes romtk targets. A graph partitioner (METIS) cuts fewer edges on meshes with thin features or
strong anisotropy; that is where RCB would be worth replacing.
"""

from __future__ import annotations

import numpy as np

from rom.errors import MeshError
from solvers.mesh._partition_kernels import centroids_t
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from solvers.mesh._mesh import Mesh


def _smallest(x: np.ndarray, k: int) -> np.ndarray:
    """Mask (m,) of the k smallest entries of x, ties broken by position: the first k of a stable
    sort, found in O(m) by selection instead of sorting."""
    m = len(x)
    if k <= 0 or k >= m:
        return np.full(m, k >= m)
    v = np.partition(x, k - 1)[k - 1]
    left = x < v
    need = k - int(np.count_nonzero(left))
    left[np.flatnonzero(x == v)[:need]] = True
    return left


def rcb(points: np.ndarray, nparts: int) -> np.ndarray:
    """Part index (n,) int32 of each point (points (n, dim)), parts of sizes differing by at most one."""
    pts = np.asarray(points, dtype=np.float64)
    n = len(pts)
    if nparts < 1 or nparts > max(n, 1):
        raise MeshError(f"cannot split {n} cells into {nparts} parts; use 1 <= nparts <= {n}")
    return _rcb(np.ascontiguousarray(pts.T), nparts)


def _rcb(xt: np.ndarray, nparts: int) -> np.ndarray:
    """RCB on coordinate-major points xt (dim, n)."""
    n = xt.shape[1]
    part = np.zeros(n, dtype=np.int32)
    # index sets stay ascending (boolean selection keeps order), so "ties broken by position"
    # is "ties broken by index": the split is deterministic and the same on every rank
    stack = [(None, 0, nparts)]  # None: all points
    while stack:
        idx, first, k = stack.pop()
        if k == 1:
            part[slice(None) if idx is None else idx] = first
            continue
        kl = k // 2
        sub = xt if idx is None else xt[:, idx]
        axis = int(np.argmax(sub.max(axis=1) - sub.min(axis=1)))
        m = sub.shape[1]
        left = _smallest(sub[axis], int(round(m * kl / k)))
        if kl == 1 and k == 2:  # both halves are parts: no index sets needed
            sel = np.where(left, first, first + 1).astype(np.int32)
            if idx is None:
                part[:] = sel
            else:
                part[idx] = sel
            continue
        idx = np.arange(n) if idx is None else idx
        stack.append((idx[left], first, kl))
        stack.append((idx[~left], first + kl, k - kl))
    return part


def partition_cells(mesh: Mesh, nparts: int) -> np.ndarray:
    """Part (rank) of each cell (ne,) int32, by RCB on the cell centroids. Computed once per mesh
    and part count: every space built on the mesh afterwards reuses it."""
    cache = mesh.__dict__.setdefault("_partitions", {})
    if nparts not in cache:
        if nparts < 1 or nparts > mesh.n_cells:
            raise MeshError(f"cannot split {mesh.n_cells} cells into {nparts} parts; use 1 <= nparts <= {mesh.n_cells}")
        cache[nparts] = _rcb(centroids_t(mesh.points, mesh.cells), nparts)
    return cache[nparts]
