"""Cell check: inverted, tangled, degenerate and duplicated cells are refused; a mesh
reversed as a whole is repaired; affine maps scale volumes by their determinant."""

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from rom.errors import MeshError
from solvers.mesh import Mesh, box, cell_volumes, check_cells, interval, rectangle

MAKERS = {
    "line": lambda: interval(5),
    "triangle": lambda: rectangle(3, 2),
    "quad": lambda: rectangle(3, 2, cell_type="quad"),
    "tetra": lambda: box(2, 2, 1),
    "hexahedron": lambda: box(2, 2, 1, cell_type="hexahedron"),
}
# a vertex permutation of each type that reverses orientation (not the one check_cells uses)
REVERSE = {"line": [1, 0], "triangle": [1, 0, 2], "quad": [3, 2, 1, 0], "tetra": [1, 0, 2, 3],
           "hexahedron": [4, 5, 6, 7, 0, 1, 2, 3]}


def _with_cells(mesh, cells):
    return Mesh(mesh.points, cells, mesh.cell_type, regions=mesh.regions, boundaries=mesh.boundaries)


@pytest.mark.parametrize("cell_type", sorted(MAKERS))
def test_generated_meshes_pass_unchanged(cell_type):
    mesh = MAKERS[cell_type]()
    assert check_cells(mesh) is mesh


@pytest.mark.parametrize("cell_type,volume", [("line", 1.0), ("triangle", 1.0), ("quad", 1.0),
                                              ("tetra", 1.0), ("hexahedron", 1.0)])
def test_cell_volumes_sum_to_the_domain_measure(cell_type, volume):
    v = cell_volumes(MAKERS[cell_type]())
    assert (v > 0).all() and np.isclose(v.sum(), volume)


def test_quad_volume_is_exact_for_a_general_quadrilateral():
    pts = np.array([[0.0, 0.0], [3.0, 0.5], [2.5, 2.0], [0.2, 1.5]])
    x, y = pts[:, 0], pts[:, 1]
    shoelace = 0.5 * np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y)
    assert np.isclose(cell_volumes(Mesh(pts, [[0, 1, 2, 3]], "quad"))[0], shoelace)


@pytest.mark.parametrize("cell_type", sorted(MAKERS))
def test_one_inverted_cell_is_refused_and_named(cell_type):
    mesh = MAKERS[cell_type]()
    cells = mesh.cells.copy()
    cells[3] = cells[3][REVERSE[cell_type]]
    with pytest.raises(MeshError, match=r"1 inverted cells \(cells 3; negatively oriented"):
        check_cells(_with_cells(mesh, cells))


def test_a_bowtie_quad_is_refused_as_tangled():
    mesh = rectangle(2, 2, cell_type="quad")
    cells = mesh.cells.copy()
    cells[0] = cells[0][[0, 1, 3, 2]]
    with pytest.raises(MeshError, match=r"1 tangled cells \(cells 0;"):
        check_cells(_with_cells(mesh, cells))


def test_degenerate_cells_are_refused():
    # cell 1 has its third vertex on the line through its first two: zero area
    pts = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [2.0, 0.0]])
    with pytest.raises(MeshError, match=r"1 degenerate cells \(cells 1;"):
        check_cells(Mesh(pts, [[0, 1, 2], [0, 1, 3]], "triangle"))
    mesh = rectangle(2, 2)
    cells = mesh.cells.copy()
    cells[5, 2] = cells[5, 1]  # a repeated vertex
    with pytest.raises(MeshError, match=r"1 degenerate cells \(cells 5; a repeated vertex"):
        check_cells(_with_cells(mesh, cells))


def test_duplicated_cells_are_refused_whatever_their_vertex_order():
    mesh = box(1, 1, 1)
    cells = np.vstack([mesh.cells, mesh.cells[2][[1, 2, 0, 3]]])  # an even permutation: same orientation
    with pytest.raises(MeshError, match=r"1 duplicated cells \(cells 6; same vertices as cells 2\)"):
        check_cells(_with_cells(mesh, cells))


def test_error_lists_only_the_first_offenders_and_counts_the_rest():
    mesh = rectangle(4, 4)
    cells = mesh.cells.copy()
    cells[:10] = cells[:10][:, [1, 0, 2]]
    with pytest.raises(MeshError, match=r"10 inverted cells \(cells 0, 1, 2, 3, 4, \.\.\. \(5 more\); negatively"):
        check_cells(_with_cells(mesh, cells))


@pytest.mark.parametrize("cell_type", sorted(MAKERS))
def test_a_consistently_reversed_mesh_is_reoriented_with_its_tags(cell_type):
    mesh = MAKERS[cell_type]()
    reversed_mesh = _with_cells(mesh, mesh.cells[:, REVERSE[cell_type]])
    assert (cell_volumes(reversed_mesh) < 0).all()
    fixed = check_cells(reversed_mesh)
    assert np.allclose(cell_volumes(fixed), cell_volumes(mesh))
    assert np.array_equal(np.sort(fixed.cells, axis=1), np.sort(mesh.cells, axis=1))
    for name, rows in reversed_mesh.boundaries.items():  # tags keep their facets, renumbered locally
        assert np.array_equal(np.sort(fixed.facet_vertices(fixed.boundary(name)), axis=1),
                              np.sort(reversed_mesh.facet_vertices(rows), axis=1))
    assert np.array_equal(fixed.boundary_facets[:, 0], mesh.boundary_facets[:, 0])


def test_embedded_triangles_have_no_orientation_but_are_checked_for_size():
    mesh = rectangle(2, 2)
    surface = Mesh(np.c_[mesh.points, mesh.points[:, 0] ** 2], mesh.cells[:, [1, 0, 2]], "triangle")
    assert check_cells(surface) is surface
    assert (cell_volumes(surface) > 0).all()


def test_negative_tolerance_is_refused():
    with pytest.raises(MeshError, match="tol=-1"):
        check_cells(rectangle(1, 1), tol=-1)


def _affine_cases(dim):
    return arrays(np.float64, (dim, dim), elements=st.floats(-2, 2)), arrays(np.float64, dim, elements=st.floats(-5, 5))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(data=st.data(), cell_type=st.sampled_from(["triangle", "quad", "tetra", "hexahedron"]))
def test_affine_maps_with_positive_determinant_keep_meshes_valid_and_scale_volumes(data, cell_type):
    mesh = MAKERS[cell_type]()
    A_strategy, b_strategy = _affine_cases(mesh.dim)
    A, b = data.draw(A_strategy), data.draw(b_strategy)
    det = np.linalg.det(A)
    assume(det > 1e-2 and np.linalg.cond(A) < 1e3)
    mapped = Mesh(mesh.points @ A.T + b, mesh.cells, cell_type)
    assert check_cells(mapped) is mapped
    assert np.allclose(cell_volumes(mapped), det * cell_volumes(mesh), rtol=1e-9)
    mirrored = Mesh(mesh.points @ (-A if mesh.dim % 2 else A[:, ::-1]).T, mesh.cells, cell_type)
    assert (cell_volumes(check_cells(mirrored)) > 0).all()
