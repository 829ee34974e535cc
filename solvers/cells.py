"""Reference cells: vertices, edges, facets and their orderings (VTK/meshio).

A leaf module (numpy only) shared by meshes and finite elements.
"""

from __future__ import annotations

import numpy as np

# Reference vertices, local edges and local facets of each cell type (VTK order).
REFERENCE_VERTICES = {
    "vertex": np.zeros((1, 0)),
    "line": np.array([[0.0], [1.0]]),
    "triangle": np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]),
    "quad": np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]),
    "tetra": np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]]),
    "hexahedron": np.array(
        [[0.0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 1], [1, 0, 1], [1, 1, 1], [0, 1, 1]]
    ),
}
EDGES = {
    "vertex": (),
    "line": ((0, 1),),
    "triangle": ((0, 1), (1, 2), (2, 0)),
    "quad": ((0, 1), (1, 2), (2, 3), (3, 0)),
    "tetra": ((0, 1), (1, 2), (2, 0), (0, 3), (1, 3), (2, 3)),
    "hexahedron": (
        (0, 1), (1, 2), (2, 3), (3, 0), (4, 5), (5, 6), (6, 7), (7, 4), (0, 4), (1, 5), (2, 6), (3, 7),
    ),
}
# Facets are ordered so that their normal (right-hand rule) points outwards.
FACETS = {
    "line": ((0,), (1,)),
    "triangle": ((0, 1), (1, 2), (2, 0)),
    "quad": ((0, 1), (1, 2), (2, 3), (3, 0)),
    "tetra": ((0, 2, 1), (0, 1, 3), (1, 2, 3), (0, 3, 2)),
    "hexahedron": ((0, 1, 5, 4), (1, 2, 6, 5), (2, 3, 7, 6), (3, 0, 4, 7), (0, 3, 2, 1), (4, 5, 6, 7)),
}
FACET_TYPE = {"line": "vertex", "triangle": "line", "quad": "line", "tetra": "triangle", "hexahedron": "quad"}
TDIM = {"vertex": 0, "line": 1, "triangle": 2, "quad": 2, "tetra": 3, "hexahedron": 3}
SIMPLEX = {"vertex": True, "line": True, "triangle": True, "tetra": True, "quad": False, "hexahedron": False}
N_VERTICES = {k: len(v) for k, v in REFERENCE_VERTICES.items()}


def _faces(cell_type: str):
    """2D entities of a 3D cell (the facets), or the cell itself in 2D."""
    if TDIM[cell_type] == 3:
        return FACETS[cell_type]
    if TDIM[cell_type] == 2:
        return (tuple(range(N_VERTICES[cell_type])),)
    return ()


def entities(cell_type: str, dim: int):
    """Local entities of dimension `dim` as tuples of local vertex indices."""
    tdim = TDIM[cell_type]
    if dim == 0:
        return tuple((i,) for i in range(N_VERTICES[cell_type]))
    if dim == 1:
        return EDGES[cell_type]
    if dim == 2:
        return _faces(cell_type)
    if dim == 3 and tdim == 3:
        return (tuple(range(N_VERTICES[cell_type])),)
    return ()
