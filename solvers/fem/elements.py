"""Lagrange reference elements: P1/P2 on simplices, Q1/Q2 on tensor cells.

Each element is described by its reference nodes and the mesh entity
(dimension, local index) each node sits on; the basis is the nodal basis of the
polynomial space (P_k or Q_k), obtained by inverting the Vandermonde matrix of
monomials at the nodes. Node orderings follow VTK/meshio (line3, triangle6,
tetra10, quad9, hexahedron27), so P2/Q2 fields export without renumbering.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from rom.errors import MeshError

from solvers.cells import (  # noqa: F401  (re-exported: the element tables live with the cells)
    EDGES,
    FACET_TYPE,
    FACETS,
    N_VERTICES,
    REFERENCE_VERTICES,
    SIMPLEX,
    TDIM,
    entities,
)


def _monomial_exponents(cell_type: str, degree: int) -> np.ndarray:
    tdim = TDIM[cell_type]
    rng = range(degree + 1)
    exps = [e for e in itertools.product(rng, repeat=tdim) if SIMPLEX[cell_type] is False or sum(e) <= degree]
    return np.array(exps, dtype=np.int64).reshape(-1, tdim)


@dataclass(frozen=True, eq=False)
class Element:
    """A scalar Lagrange element on a reference cell.

    nodes: (nb, tdim) float64 reference coordinates of the nodes.
    node_entities: (nb, 2) int64, (entity dimension, local entity index) per node.
    """

    cell_type: str
    degree: int
    nodes: np.ndarray
    node_entities: np.ndarray
    _exps: np.ndarray = field(repr=False)
    _coeffs: np.ndarray = field(repr=False)

    @property
    def tdim(self) -> int:
        return TDIM[self.cell_type]

    @property
    def n_basis(self) -> int:
        return len(self.nodes)

    @property
    def name(self) -> str:
        return ("P" if SIMPLEX[self.cell_type] else "Q") + str(self.degree)

    def _monomials(self, X: np.ndarray, deriv: tuple[int, ...]) -> np.ndarray:
        exps = self._exps - np.array(deriv, dtype=np.int64)
        coef = np.ones(len(exps))
        for d, k in enumerate(deriv):
            for j in range(k):
                coef *= self._exps[:, d] - j
        valid = (exps >= 0).all(axis=1)
        out = np.zeros((len(X), len(exps)))
        e = np.where(valid[:, None], exps, 0)
        out[:, valid] = coef[valid] * np.prod(X[:, None, :] ** e[None, valid, :], axis=2)
        return out

    def tabulate(self, X) -> np.ndarray:
        """Basis values at reference points X (npts, tdim): (npts, nb) float64."""
        X = np.atleast_2d(np.asarray(X, dtype=np.float64))
        return self._monomials(X, (0,) * self.tdim) @ self._coeffs

    def tabulate_grad(self, X) -> np.ndarray:
        """Reference gradients at X (npts, tdim): (npts, nb, tdim) float64."""
        X = np.atleast_2d(np.asarray(X, dtype=np.float64))
        if self.tdim == 0:
            return np.zeros((len(X), self.n_basis, 0))
        cols = []
        for d in range(self.tdim):
            der = tuple(1 if k == d else 0 for k in range(self.tdim))
            cols.append(self._monomials(X, der) @ self._coeffs)
        return np.stack(cols, axis=2)

    def dofs_on(self, dim: int, index: int) -> np.ndarray:
        """Local node indices sitting on local entity (dim, index)."""
        m = (self.node_entities[:, 0] == dim) & (self.node_entities[:, 1] == index)
        return np.flatnonzero(m)

    @property
    def facet_dofs(self) -> np.ndarray:
        """(n_facets, nb_facet) int64: for each local facet, the cell-local nodes in the
        order of the facet's own reference element, so that facet quadrature reuses it."""
        return _facet_dofs(self.cell_type, self.degree)


def _entity_midpoint(cell_type, verts):
    return REFERENCE_VERTICES[cell_type][list(verts)].mean(axis=0)


@lru_cache(maxsize=None)
def lagrange(cell_type: str, degree: int) -> Element:
    """The P_k (simplices) or Q_k (quad/hex) Lagrange element, k in {1, 2}."""
    if cell_type not in TDIM or cell_type == "vertex" and degree != 0:
        if cell_type != "vertex":
            raise MeshError(
                f"unknown cell type {cell_type!r}; romtk knows line, triangle, quad, tetra and hexahedron"
            )
    if cell_type == "vertex":
        return Element("vertex", degree, np.zeros((1, 0)), np.zeros((1, 2), np.int64),
                       np.zeros((1, 0), np.int64), np.ones((1, 1)))
    if degree not in (1, 2):
        raise MeshError(f"Lagrange degree {degree} is not available; use 1 or 2")
    tdim = TDIM[cell_type]
    nodes, ents = [], []
    for i, v in enumerate(REFERENCE_VERTICES[cell_type]):
        nodes.append(v)
        ents.append((0, i))
    if degree == 2:
        for dim in range(1, tdim + 1):
            for j, verts in enumerate(entities(cell_type, dim)):
                # simplices carry P2 nodes on edges only; tensor cells on every entity
                if SIMPLEX[cell_type] and dim > 1:
                    continue
                nodes.append(_entity_midpoint(cell_type, verts))
                ents.append((dim, j))
    nodes = np.array(nodes, dtype=np.float64).reshape(-1, tdim)
    exps = _monomial_exponents(cell_type, degree)
    V = np.prod(nodes[:, None, :] ** exps[None, :, :], axis=2)
    coeffs = np.linalg.inv(V)
    el = Element(cell_type, degree, nodes, np.array(ents, dtype=np.int64), exps, coeffs)
    for a in (el.nodes, el.node_entities, el._coeffs):
        a.setflags(write=False)
    return el


@lru_cache(maxsize=None)
def _facet_dofs(cell_type: str, degree: int) -> np.ndarray:
    cell_el = lagrange(cell_type, degree)
    ftype = FACET_TYPE[cell_type]
    fel = lagrange(ftype, degree) if ftype != "vertex" else lagrange("vertex", 0)
    out = []
    for fverts in FACETS[cell_type]:
        row = []
        for dim, idx in fel.node_entities:
            local = entities(ftype, dim)[idx] if ftype != "vertex" else (0,)
            cell_set = frozenset(fverts[k] for k in local)
            cell_idx = [j for j, e in enumerate(entities(cell_type, dim)) if frozenset(e) == cell_set]
            row.append(int(cell_el.dofs_on(dim, cell_idx[0])[0]))
        out.append(row)
    arr = np.array(out, dtype=np.int64)
    arr.setflags(write=False)
    return arr
