"""Structured generators: counts, tags, orientation, measure, predicates, hashing."""

import numpy as np
import pytest

from rom.errors import BoundaryError, MeshError, ShapeError
from solvers.mesh import Mesh, box, interval, rectangle


def _signed_areas(mesh):
    p = mesh.points[mesh.cells]
    a, b = p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]
    return 0.5 * (a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0])


def _signed_tet_volumes(mesh):
    p = mesh.points[mesh.cells]
    return np.einsum("ij,ij->i", np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]), p[:, 3] - p[:, 0]) / 6


def _shoelace(mesh):
    x, y = mesh.points[mesh.cells, 0], mesh.points[mesh.cells, 1]
    return 0.5 * (x * np.roll(y, -1, axis=1) - np.roll(x, -1, axis=1) * y).sum(axis=1)


@pytest.mark.parametrize("make,n_cells,n_points", [
    (lambda: interval(7), 7, 8),
    (lambda: rectangle(3, 5), 2 * 15, 4 * 6),
    (lambda: rectangle(3, 5, cell_type="quad"), 15, 4 * 6),
    (lambda: box(2, 3, 4), 6 * 24, 3 * 4 * 5),
    (lambda: box(2, 3, 4, cell_type="hexahedron"), 24, 3 * 4 * 5),
])
def test_generators_make_the_expected_numbers_of_cells_and_points(make, n_cells, n_points):
    mesh = make()
    assert (mesh.n_cells, mesh.n_points) == (n_cells, n_points)
    assert len(np.unique(mesh.cells)) == n_points  # no orphan points


def test_triangles_and_tetrahedra_are_positively_oriented_and_fill_the_box():
    tri = rectangle(4, 3, lower=(-1.0, 2.0), upper=(3.0, 5.0))
    assert (_signed_areas(tri) > 0).all()
    assert np.isclose(_signed_areas(tri).sum(), 4.0 * 3.0)
    tet = box(3, 2, 2, lower=(0, 0, 0), upper=(2.0, 1.0, 0.5))
    assert (_signed_tet_volumes(tet) > 0).all()
    assert np.isclose(_signed_tet_volumes(tet).sum(), 1.0)


def test_quads_are_counterclockwise_and_fill_the_rectangle():
    q = rectangle(5, 2, lower=(0, 0), upper=(2.0, 3.0), cell_type="quad")
    assert (_shoelace(q) > 0).all()
    assert np.isclose(_shoelace(q).sum(), 6.0)


@pytest.mark.parametrize("make,expected", [
    (lambda: interval(4), {"left": 1, "right": 1, "boundary": 2}),
    (lambda: rectangle(3, 5), {"left": 5, "right": 5, "bottom": 3, "top": 3, "boundary": 16}),
    (lambda: rectangle(3, 5, cell_type="quad"), {"left": 5, "bottom": 3, "boundary": 16}),
    # each square side of a tetrahedral box is cut into two triangles
    (lambda: box(2, 3, 4), {"left": 24, "front": 16, "bottom": 12, "boundary": 2 * 2 * (6 + 12 + 8)}),
    (lambda: box(2, 3, 4, cell_type="hexahedron"), {"left": 12, "back": 8, "top": 6, "boundary": 2 * (6 + 12 + 8)}),
])
def test_sides_are_tagged_with_one_facet_per_boundary_cell_face(make, expected):
    mesh = make()
    assert len(mesh.boundary_facets) == expected["boundary"]
    for name, count in expected.items():
        assert len(mesh.boundary(name)) == count


def test_side_tags_hold_exactly_the_facets_on_that_side():
    mesh = box(2, 2, 3, lower=(0, 0, -1), upper=(1, 2, 1))
    for name, axis, value in [("left", 0, 0), ("right", 0, 1), ("front", 1, 0), ("back", 1, 2),
                              ("bottom", 2, -1), ("top", 2, 1)]:
        verts = mesh.points[mesh.facet_vertices(mesh.boundary(name))]
        assert np.allclose(verts[..., axis], value)


@pytest.mark.parametrize("make", [lambda: rectangle(3, 2), lambda: rectangle(2, 3, cell_type="quad")])
def test_boundary_facets_are_ordered_with_outward_normals_in_2d(make):
    mesh = make()
    bf = mesh.boundary_facets
    p = mesh.points[mesh.facet_vertices(bf)]
    t = p[:, 1] - p[:, 0]
    normal = np.stack([t[:, 1], -t[:, 0]], axis=1)  # right-hand rule: outward for counterclockwise cells
    out = mesh.facet_midpoints(bf) - mesh.centroids[bf[:, 0]]
    assert (np.einsum("ij,ij->i", normal, out) > 0).all()


def test_predicates_tag_regions_by_centroid_and_boundaries_by_facet_midpoint():
    mesh = rectangle(4, 4).tag_region("west", lambda x: x[:, 0] < 0.5)
    assert len(mesh.region("west")) == 16  # half of the 32 triangles
    mesh.tag_boundary("south_west", lambda x: (x[:, 1] < 1e-12) & (x[:, 0] < 0.5))
    assert len(mesh.boundary("south_west")) == 2
    with pytest.raises(ShapeError, match="predicate"):
        mesh.tag_region("bad", lambda x: np.ones(3, dtype=bool))
    with pytest.raises(BoundaryError, match="nowhere"):
        mesh.boundary("nowhere")


def test_hash_is_stable_and_changes_when_a_point_moves():
    a, b = rectangle(3, 3), rectangle(3, 3)
    assert a.hash() == b.hash() and len(a.hash()) == 64
    b.points[4, 0] += 1e-9
    assert a.hash() != b.hash()
    assert rectangle(3, 3, cell_type="quad").hash() != a.hash()


def test_bad_generator_arguments_are_refused():
    with pytest.raises(MeshError, match="nx=0"):
        rectangle(0, 2)
    with pytest.raises(MeshError, match="hexagon"):
        rectangle(2, 2, cell_type="hexagon")
    with pytest.raises(MeshError, match="unknown cell type"):
        Mesh(np.zeros((3, 2)), [[0, 1, 2]], "polygon")
