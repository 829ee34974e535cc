"""Point location and evaluation: exact on fields the space reproduces."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rom.errors import RomError, ShapeError
from solvers.fem import Space
from solvers.fem.locate import PointLocator, evaluate
from solvers.mesh import box, rectangle

MESHES = {
    "triangle": lambda: rectangle(7, 5),
    "quad": lambda: rectangle(6, 4, cell_type="quad"),
    "tetra": lambda: box(3, 3, 2),
    "hexahedron": lambda: box(3, 2, 2, cell_type="hexahedron"),
}


def _distort(mesh, amp=0.08):
    x = mesh.points
    interior = np.all((x > 1e-12) & (x < 1 - 1e-12), axis=1)
    x[interior] += amp * np.sin(5 * x[interior][:, ::-1]) / mesh.dim
    return mesh


@pytest.mark.parametrize("cell", list(MESHES))
@pytest.mark.parametrize("degree", [1, 2])
def test_evaluation_reproduces_polynomials_of_the_space(cell, degree):
    mesh = MESHES[cell]()
    if cell in ("triangle", "tetra"):
        _distort(mesh)  # straight-sided distortion keeps P_k exact
    V = Space(mesh, degree)
    f = (lambda x: 1 + x.sum(1) + 2 * x[:, 0] ** 2 - x[:, 0] * x[:, -1]) if degree == 2 and cell in ("triangle", "tetra") \
        else (lambda x: 1 + 2 * x[:, 0] - x[:, -1] + (x[:, 0] * x[:, -1] if degree == 2 else 0))
    pts = np.random.default_rng(3).random((300, mesh.dim))
    np.testing.assert_allclose(evaluate(V, f(V.node_coords), pts), f(pts), atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(st.floats(0.05, 0.95), st.floats(0.05, 0.95))
def test_located_reference_coordinates_map_back_to_the_point(x, y):
    mesh = _distort(rectangle(9, 7, cell_type="quad"), 0.05)
    loc = PointLocator(mesh)
    cells, xi, out = loc.locate(np.array([[x, y]]))
    assert out[0] == 0.0
    from solvers.fem.elements import lagrange

    phi = lagrange("quad", 1).tabulate(xi)
    np.testing.assert_allclose(phi @ mesh.points[mesh.cells[cells[0]]], [[x, y]], atol=1e-12)


def test_vector_fields_evaluate_per_component():
    V = Space(rectangle(4, 4), 1, (2,))
    x = V.node_coords
    u = np.stack([x[:, 0], 2 * x[:, 1]], axis=1).ravel()
    pts = np.array([[0.3, 0.6], [0.9, 0.1]])
    np.testing.assert_allclose(evaluate(V, u, pts), np.stack([pts[:, 0], 2 * pts[:, 1]], axis=1), atol=1e-14)


def test_points_outside_are_refused_or_clamped():
    V = Space(rectangle(4, 4), 1)
    u = V.node_coords[:, 0].copy()
    with pytest.raises(RomError, match="outside the mesh"):
        evaluate(V, u, np.array([[1.5, 0.5]]))
    np.testing.assert_allclose(evaluate(V, u, np.array([[1.5, 0.5]]), clamp=True), [1.0], atol=1e-12)


def test_wrong_shapes_are_refused():
    V = Space(rectangle(2, 2), 1)
    with pytest.raises(ShapeError):
        evaluate(V, np.zeros(3), np.zeros((1, 2)))
    with pytest.raises(ShapeError):
        evaluate(V, np.zeros(V.n_dofs), np.zeros((1, 3)))
