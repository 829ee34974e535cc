"""Point location in a mesh and evaluation of fields at arbitrary points."""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from rom.errors import MeshError, RomError, ShapeError
from solvers.fem import _locate_kernels as K
from solvers.fem.elements import SIMPLEX
from solvers.fem.space import Space
from solvers.mesh import Mesh


class PointLocator:
    """Finds the cell and reference coordinates of points (npts, dim) in a mesh.

    Candidates come from a k-d tree on cell centroids; each candidate is tested exactly
    (affine inverse on simplices, Newton on Q1 maps). Built once per mesh, reused.
    """

    def __init__(self, mesh: Mesh, k: int = 12):
        if mesh.tdim != mesh.dim:
            raise MeshError(f"point location needs a volume mesh; this one has {mesh.tdim}D cells in {mesh.dim}D")
        self.mesh = mesh
        self.k = min(int(k), mesh.n_cells)
        self.tree = cKDTree(mesh.centroids)
        self.simplex = SIMPLEX[mesh.cell_type]

    def locate(self, points, tol: float = 1e-10):
        """cells (npts,) int64 (-1 where outside), xi (npts, dim) reference coordinates, and
        outside (npts,): how far outside the reference cell the best candidate is (0 inside)."""
        m = self.mesh
        pts = np.ascontiguousarray(points, dtype=np.float64)
        if pts.ndim != 2 or pts.shape[1] != m.dim:
            raise ShapeError(f"points has shape {pts.shape}, expected (npts, {m.dim})")
        k = self.k
        cells = np.full(len(pts), -1, dtype=np.int64)
        xi = np.zeros_like(pts)
        out = np.full(len(pts), np.inf)
        todo = np.arange(len(pts))
        while todo.size:
            _, cand = self.tree.query(pts[todo], k=k)
            cand = np.asarray(cand, dtype=np.int64).reshape(len(todo), -1)
            cand[cand >= m.n_cells] = -1
            c, x, o = K.locate(m.points, m.cells, self.simplex, pts[todo], cand, tol)
            better = o < out[todo]
            cells[todo[better]], xi[todo[better]], out[todo[better]] = c[better], x[better], o[better]
            if k >= m.n_cells or k >= 8 * self.k:
                break
            todo = todo[out[todo] > tol]
            k = min(4 * k, m.n_cells)
        return cells, xi, out


def evaluate(space: Space, u, points, *, locator: PointLocator | None = None, clamp: bool = False,
             tol: float = 1e-10) -> np.ndarray:
    """Values of field u (n_dofs,) at points (npts, dim): (npts,) scalar or (npts, ncomp).

    Points outside the mesh raise RomError unless clamp=True, which evaluates them at the
    nearest point of the nearest candidate cell (in reference coordinates).
    """
    u = np.asarray(u, dtype=np.float64)
    if u.shape != (space.n_dofs,):
        raise ShapeError(f"field has shape {u.shape}, expected ({space.n_dofs},)")
    loc = locator or PointLocator(space.mesh)
    cells, xi, out = loc.locate(points, tol)
    bad = out > tol
    if bad.any() and not clamp:
        raise RomError(
            f"{int(bad.sum())} of {len(out)} points lie outside the mesh (first: {np.asarray(points)[bad][0]}); "
            "pass clamp=True to extrapolate from the nearest cell"
        )
    if bad.any():
        if loc.simplex:
            xi[bad] = np.clip(xi[bad], 0.0, 1.0)
            s = xi[bad].sum(axis=1, keepdims=True)
            xi[bad] = np.where(s > 1.0, xi[bad] / s, xi[bad])
        else:
            xi[bad] = np.clip(xi[bad], 0.0, 1.0)
    phi = space.element.tabulate(xi)  # (npts, nb)
    nodes = space.cell_nodes[cells]  # (npts, nb)
    nc = space.ncomp
    U = u.reshape(-1, nc)[nodes]  # (npts, nb, nc)
    vals = np.einsum("pb,pbc->pc", phi, U)
    return vals[:, 0] if nc == 1 else vals

