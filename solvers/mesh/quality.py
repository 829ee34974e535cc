"""Cell checks: signed volumes, and refusal of inverted, degenerate or duplicated cells.

Orientation is measured by the Jacobian determinant of the map from the reference cell:
one value per simplex (constant), one per vertex corner for quads and hexahedra (the
determinant of the edge vectors leaving that vertex, which is the bilinear/trilinear
Jacobian there). Cells embedded in a higher space (lines in 2D, triangles in 3D) have no
orientation; only their size and uniqueness are checked.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from rom.errors import MeshError
from solvers.cells import FACETS, REFERENCE_VERTICES, SIMPLEX, TDIM
from solvers.mesh._mesh import Mesh

# Vertex permutation that reverses the orientation of each cell type (and is an involution).
FLIP = {
    "line": (1, 0),
    "triangle": (0, 2, 1),
    "quad": (0, 3, 2, 1),
    "tetra": (0, 2, 1, 3),
    "hexahedron": (0, 3, 2, 1, 4, 7, 6, 5),
}
_SHOWN = 5  # offending cell indices listed in an error message


def _reference_gradients(cell_type: str, X: np.ndarray) -> np.ndarray:
    """(npts, nv, tdim) gradients of the P1 (simplex) or Q1 (tensor cell) vertex basis at X."""
    V = REFERENCE_VERTICES[cell_type]
    nv, tdim = V.shape
    if SIMPLEX[cell_type]:
        g = np.vstack([-np.ones((1, tdim)), np.eye(tdim)])
        return np.broadcast_to(g, (len(X), nv, tdim))
    # Q1: phi_v(X) = prod_d f_vd(X_d), f = X_d at a vertex with coordinate 1, 1 - X_d at 0
    f = np.where(V[None, :, :] == 1.0, X[:, None, :], 1.0 - X[:, None, :])  # (npts, nv, tdim)
    df = 2.0 * V - 1.0
    others = np.stack([np.prod(np.delete(f, k, axis=2), axis=2) for k in range(tdim)], axis=2)
    return df[None] * others


def _jacobians(mesh: Mesh, X: np.ndarray) -> np.ndarray:
    """(ne, npts, dim, tdim) Jacobians of the P1/Q1 geometry map at reference points X."""
    if SIMPLEX[mesh.cell_type]:  # constant: the edges leaving vertex 0
        p = mesh.points[mesh.cells]
        J = (p[:, 1:] - p[:, :1]).transpose(0, 2, 1)
        return np.broadcast_to(J[:, None], (len(J), len(X)) + J.shape[1:])
    dphi = _reference_gradients(mesh.cell_type, X)
    xt = mesh.points[mesh.cells].transpose(0, 2, 1)  # (ne, dim, nv)
    return np.stack([xt @ g for g in dphi], axis=1)  # a few reference points: one product each


def _det(J: np.ndarray) -> np.ndarray:
    """Determinants of a stack of 1x1, 2x2 or 3x3 matrices (closed forms: faster than LU)."""
    n = J.shape[-1]
    if n == 1:
        return J[..., 0, 0].copy()
    if n == 2:
        return J[..., 0, 0] * J[..., 1, 1] - J[..., 0, 1] * J[..., 1, 0]
    a, b, c = J[..., 0, :], J[..., 1, :], J[..., 2, :]
    return (a[..., 0] * (b[..., 1] * c[..., 2] - b[..., 2] * c[..., 1])
            - a[..., 1] * (b[..., 0] * c[..., 2] - b[..., 2] * c[..., 0])
            + a[..., 2] * (b[..., 0] * c[..., 1] - b[..., 1] * c[..., 0]))


def _measure(J: np.ndarray) -> np.ndarray:
    """det J for square J, sqrt(det(J^T J)) (unsigned) for embedded cells; J (..., dim, tdim)."""
    if J.shape[-1] == J.shape[-2]:
        return _det(J)
    return np.sqrt(np.abs(_det(np.einsum("...dt,...ds->...ts", J, J))))


@lru_cache(maxsize=None)
def _gauss2(cell_type: str):
    """2-point-per-direction Gauss rule on [0, 1]^tdim: exact for Q1 Jacobian determinants."""
    g = 0.5 + np.array([-0.5, 0.5]) / np.sqrt(3.0)
    tdim = TDIM[cell_type]
    X = np.stack(np.meshgrid(*([g] * tdim), indexing="ij"), axis=-1).reshape(-1, tdim)
    return X, np.full(len(X), 1.0 / len(X))


def cell_volumes(mesh: Mesh) -> np.ndarray:
    """(ne,) float64 signed cell measures (length, area or volume in the mesh's units).

    Negative for cells oriented clockwise (2D) or left-handed (3D); unsigned for cells
    embedded in a higher-dimensional space (e.g. triangles in 3D). Exact for straight-sided
    simplices, bilinear quads and trilinear hexahedra.
    """
    if SIMPLEX[mesh.cell_type]:
        x0 = REFERENCE_VERTICES[mesh.cell_type][:1]
        return _measure(_jacobians(mesh, x0)[:, 0]) / float(np.prod(np.arange(1, mesh.tdim + 1)))
    X, w = _gauss2(mesh.cell_type)
    return _measure(_jacobians(mesh, X)) @ w


def _corner_dets(mesh: Mesh) -> np.ndarray:
    """(ne, nc) Jacobian determinants at the cell's vertices (nc = 1 for simplices)."""
    X = REFERENCE_VERTICES[mesh.cell_type]
    if SIMPLEX[mesh.cell_type]:
        X = X[:1]
    return _measure(_jacobians(mesh, X))


def _duplicates(cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cells whose vertex set repeats an earlier cell: (later, first) int64 index arrays."""
    key = np.sort(cells, axis=1)
    order = np.lexsort(key.T[::-1])
    ks = key[order]
    same = np.zeros(len(ks), dtype=bool)
    same[1:] = (ks[1:] == ks[:-1]).all(axis=1)
    group_start = np.maximum.accumulate(np.where(same, 0, np.arange(len(ks))))
    first = order[group_start]
    later = order[same]
    return later, first[same]


@lru_cache(maxsize=None)
def _facet_map(cell_type: str) -> np.ndarray:
    """(n_facets,) int64: local facet index after FLIP for each local facet before it."""
    perm = FLIP[cell_type]
    before = [frozenset(f) for f in FACETS[cell_type]]
    after = [frozenset(perm[v] for v in f) for f in FACETS[cell_type]]
    return np.array([after.index(f) for f in before], dtype=np.int64)


def _flip(mesh: Mesh, which: np.ndarray) -> Mesh:
    """A new mesh with the cells `which` reversed; boundary rows follow their facets."""
    cells = mesh.cells.copy()
    cells[which] = cells[which][:, list(FLIP[mesh.cell_type])]
    fmap = _facet_map(mesh.cell_type)
    flipped = np.zeros(mesh.n_cells, dtype=bool)
    flipped[which] = True
    boundaries = {}
    for name, rows in mesh.boundaries.items():
        rows = rows.copy()
        sel = flipped[rows[:, 0]]
        rows[sel, 1] = fmap[rows[sel, 1]]
        boundaries[name] = rows
    return Mesh(mesh.points, cells, mesh.cell_type, regions=mesh.regions, boundaries=boundaries)


def _shown(idx: np.ndarray) -> str:
    more = f", ... ({len(idx) - _SHOWN} more)" if len(idx) > _SHOWN else ""
    return ", ".join(str(int(i)) for i in idx[:_SHOWN]) + more


def _listing(label: str, idx: np.ndarray, detail: str, fix: str) -> str:
    return f"{len(idx)} {label} cells (cells {_shown(idx)}; {detail}): {fix}"


def check_cells(mesh: Mesh, tol: float = 1e-12) -> Mesh:
    """Refuse inverted, degenerate or duplicated cells; repair a consistently reversed mesh.

    tol: a cell is degenerate if it repeats a vertex or |volume| <= tol * (median |volume|).
    Returns `mesh` itself when every cell is positively oriented, or a new Mesh with every
    cell's vertices permuted (FLIP) when all cells are negatively oriented (e.g. a gmsh
    surface meshed with normal -z). Raises MeshError listing counts and the first cells of
    each kind otherwise: mixed orientations (the minority is called inverted), quads/hexes
    whose corner determinants change sign (tangled or non-convex), degenerate and
    duplicated cells.
    """
    if not (np.isfinite(tol) and tol >= 0):
        raise MeshError(f"tol={tol!r}: the degeneracy tolerance must be a finite number >= 0 (e.g. 1e-12)")
    if mesh.n_cells == 0:
        return mesh
    cells = mesh.cells
    key = np.sort(cells, axis=1)
    repeated = (key[:, 1:] == key[:, :-1]).any(axis=1)
    oriented = mesh.dim == mesh.tdim
    dets = _corner_dets(mesh) if oriented else np.ones((mesh.n_cells, 1))
    if oriented and SIMPLEX[mesh.cell_type]:
        vol = dets[:, 0] / float(np.prod(np.arange(1, mesh.tdim + 1)))
    else:
        vol = cell_volumes(mesh)
    typical = np.median(np.abs(vol))
    tangled = (dets > 0).any(axis=1) & (dets < 0).any(axis=1) & ~repeated
    degenerate = repeated | ((np.abs(vol) <= tol * typical) & ~tangled)
    later, first = _duplicates(cells)

    problems = []
    flip_all = False
    if oriented:
        positive = (dets > 0).all(axis=1) & ~degenerate
        negative = (dets < 0).all(axis=1) & ~degenerate
        tangled |= ~(positive | negative | degenerate)  # also a zero corner determinant
        n_pos, n_neg = int(positive.sum()), int(negative.sum())
        if n_neg and n_pos:
            minority, word = (positive, "positively") if n_pos < n_neg else (negative, "negatively")
            problems.append(_listing(
                "inverted", np.flatnonzero(minority),
                f"{word} oriented among {max(n_pos, n_neg)} cells of the other orientation",
                "fix the vertex order of these cells or the mesh generator that produced them",
            ))
        flip_all = n_neg > 0 and n_pos == 0
        if tangled.any():
            problems.append(_listing(
                "tangled", np.flatnonzero(tangled), "the Jacobian determinant changes sign inside them",
                "move their vertices so that every cell is convex",
            ))
    if degenerate.any():
        problems.append(_listing(
            "degenerate", np.flatnonzero(degenerate),
            f"a repeated vertex or |volume| <= tol={tol:g} x median volume {typical:.3g}", "remove them or remesh",
        ))
    if len(later):
        problems.append(_listing(
            "duplicated", later, f"same vertices as cells {_shown(first)}", "remove the repeated cells",
        ))
    if problems:
        raise MeshError(
            f"the {mesh.cell_type} mesh ({mesh.n_cells} cells) has bad cells; " + "; ".join(problems)
        )
    return _flip(mesh, np.arange(mesh.n_cells)) if flip_all else mesh
