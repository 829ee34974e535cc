"""Mesh files: meshio/gmsh import with tags, VTU/XDMF export of fields and time series,
and clear errors for files that cannot be meshes."""

import threading
from pathlib import Path

import gmsh
import meshio
import numpy as np
import pytest

from rom.errors import MeshError, ShapeError
from solvers.mesh import box, cell_volumes, read_mesh, rectangle, write_mesh, write_time_series

L_SHAPE = Path(__file__).resolve().parents[2] / "data" / "meshes" / "l_shape.geo"


def _fields(mesh):
    x = mesh.points
    n, d = x.shape
    return {
        "scalar": x[:, 0] * 2.0 + 1.0,
        "vector": x[:, ::-1].copy(),
        "tensor": np.einsum("ni,nj->nij", x, x + 1.0),
    }, {"cell_id": np.arange(mesh.n_cells, dtype=np.float64), "flux": np.ones((mesh.n_cells, d))}


@pytest.mark.parametrize("suffix", [".vtu", ".xdmf"])
@pytest.mark.parametrize("make", [lambda: rectangle(3, 2), lambda: box(2, 1, 1, cell_type="hexahedron")])
def test_written_mesh_and_fields_read_back_through_meshio(tmp_path, suffix, make):
    mesh = make().tag_region("west", lambda x: x[:, 0] < 0.5)
    pdata, cdata = _fields(mesh)
    path = write_mesh(tmp_path / f"m{suffix}", mesh, point_data=pdata, cell_data=cdata)
    back = meshio.read(path)
    d = mesh.dim
    assert np.array_equal(back.points[:, :d], mesh.points) and not back.points[:, d:].any()
    assert np.array_equal(back.cells_dict[mesh.cell_type], mesh.cells)
    assert np.allclose(back.point_data["scalar"], 2 * mesh.points[:, 0] + 1)
    vec = back.point_data["vector"]
    assert vec.shape == (mesh.n_points, 3) and np.allclose(vec[:, :d], mesh.points[:, ::-1]) and not vec[:, d:].any()
    ten = back.point_data["tensor"].reshape(-1, 3, 3)
    assert np.allclose(ten[:, :d, :d], pdata["tensor"]) and not ten[:, d:, :].any() and not ten[:, :, d:].any()
    assert np.allclose(back.cell_data["cell_id"][0], np.arange(mesh.n_cells))
    region = back.cell_data["region"][0]
    assert region.dtype.kind == "i" and np.array_equal(np.flatnonzero(region == 1), mesh.region("west"))
    assert not region[np.setdiff1d(np.arange(mesh.n_cells), mesh.region("west"))].any()
    again = read_mesh(path)  # our reader drops the zero z column of the 2D mesh
    assert np.array_equal(again.points, mesh.points) and np.array_equal(again.cells, mesh.cells)


def test_time_series_xdmf_reads_back_every_step(tmp_path):
    mesh = rectangle(2, 2)
    times = [0.0, 0.5, 1.25]
    steps = [{"u": t * mesh.points[:, 1], "grad": np.tile([0.0, t], (mesh.n_points, 1))} for t in times]
    path = write_time_series(tmp_path / "series.xdmf", mesh, times, steps)
    with meshio.xdmf.TimeSeriesReader(path) as reader:
        points, cells = reader.read_points_cells()
        assert np.array_equal(cells[0].data, mesh.cells) and np.array_equal(points[:, :2], mesh.points)
        assert reader.num_steps == 3
        for k, t in enumerate(times):
            tk, pdata, _ = reader.read_data(k)
            assert tk == t
            assert np.allclose(pdata["u"], t * mesh.points[:, 1])
            assert np.allclose(pdata["grad"], np.c_[np.zeros(mesh.n_points), np.full(mesh.n_points, t),
                                                    np.zeros(mesh.n_points)])


@pytest.mark.parametrize("field,match", [
    ({"u": np.zeros(5)}, r"'u' has shape \(5,\)"),
    ({"v": np.zeros((9, 4))}, r"'v' has shape \(9, 4\)"),
    ({"t": np.zeros((9, 2, 3))}, r"'t' has shape \(9, 2, 3\)"),
    ({"c": np.zeros(9, dtype=complex)}, r"'c' has dtype complex128"),
])
def test_fields_of_the_wrong_shape_are_refused(tmp_path, field, match):
    with pytest.raises(ShapeError, match=match):
        write_mesh(tmp_path / "m.vtu", rectangle(2, 2), point_data=field)  # 9 points


def test_bad_output_names_and_step_counts_are_refused(tmp_path):
    mesh = rectangle(1, 1)
    with pytest.raises(MeshError, match=r"unknown extension '\.png'"):
        write_mesh(tmp_path / "m.png", mesh)
    with pytest.raises(MeshError, match=r"\.xdmf"):
        write_time_series(tmp_path / "m.vtu", mesh, [0.0], [{}])
    with pytest.raises(ShapeError, match="point_data_seq has 1 steps but times has 2"):
        write_time_series(tmp_path / "m.xdmf", mesh, [0.0, 1.0], [{"u": np.zeros(4)}])


def test_gmsh_geo_file_is_meshed_with_its_regions_and_boundaries():
    mesh = read_mesh(L_SHAPE)
    assert mesh.cell_type == "triangle" and mesh.dim == 2
    vol = cell_volumes(mesh)
    assert (vol > 0).all() and np.isclose(vol.sum(), 0.75)
    assert np.isclose(vol[mesh.region("lower")].sum(), 0.5) and np.isclose(vol[mesh.region("upper")].sum(), 0.25)
    assert np.array_equal(np.sort(np.r_[mesh.region("lower"), mesh.region("upper")]), np.arange(mesh.n_cells))
    assert (mesh.centroids[mesh.region("lower"), 1] < 0.5).all()
    lengths = {}
    for name, rows in mesh.boundaries.items():
        p = mesh.points[mesh.facet_vertices(rows)]
        lengths[name] = np.linalg.norm(p[:, 1] - p[:, 0], axis=1).sum()
    assert lengths == pytest.approx({"bottom": 1.0, "reentrant": 1.0, "outer": 2.0})
    assert np.allclose(mesh.facet_midpoints(mesh.boundary("bottom"))[:, 1], 0.0)
    mid = mesh.facet_midpoints(mesh.boundary("reentrant"))
    assert np.allclose(np.minimum(np.abs(mid[:, 0] - 0.5), np.abs(mid[:, 1] - 0.5)), 0.0)
    assert sum(len(r) for r in mesh.boundaries.values()) == len(mesh.boundary_facets)


def _write_msh(path, clockwise=False, recombine=False, order=1):
    """A unit square meshed by gmsh; with `clockwise` its curve loop (and cells) turn clockwise."""
    gmsh.initialize(interruptible=False)
    try:
        gmsh.option.setNumber("General.Terminal", 0)
        g = gmsh.model.geo
        p = [g.addPoint(x, y, 0, 0.25) for x, y in [(0, 0), (1, 0), (1, 1), (0, 1)]]
        if clockwise:
            p = p[::-1]
        lines = [g.addLine(p[i], p[(i + 1) % 4]) for i in range(4)]
        surface = g.addPlaneSurface([g.addCurveLoop(lines)])
        if recombine:
            g.mesh.setRecombine(2, surface)
        g.synchronize()
        gmsh.model.addPhysicalGroup(2, [surface], name="domain")
        gmsh.model.addPhysicalGroup(1, lines, name="sides")
        gmsh.model.mesh.generate(2)
        gmsh.model.mesh.setOrder(order)
        gmsh.write(str(path))
    finally:
        gmsh.finalize()
    return path


@pytest.mark.parametrize("clockwise,recombine,order,cell_type", [
    (False, False, 1, "triangle"), (True, False, 1, "triangle"), (True, True, 1, "quad"), (False, False, 2, "triangle"),
])
def test_gmsh_msh_files_read_positively_oriented_with_tags(tmp_path, clockwise, recombine, order, cell_type):
    mesh = read_mesh(_write_msh(tmp_path / "square.msh", clockwise, recombine, order))
    assert mesh.cell_type == cell_type and mesh.dim == 2
    vol = cell_volumes(mesh)
    assert (vol > 0).all() and np.isclose(vol.sum(), 1.0)
    assert len(mesh.region("domain")) == mesh.n_cells
    assert np.array_equal(mesh.boundary("sides"), mesh.boundary_facets)
    assert len(np.unique(mesh.cells)) == mesh.n_points  # second-order nodes dropped, no orphans


def test_gmsh_reading_works_off_the_main_thread_and_leaves_a_callers_session_alone():
    result = {}
    worker = threading.Thread(target=lambda: result.setdefault("mesh", read_mesh(L_SHAPE)))
    worker.start()
    worker.join()
    assert result["mesh"].n_cells > 0
    gmsh.initialize(interruptible=False)
    try:
        gmsh.model.add("mine")
        assert read_mesh(L_SHAPE).n_cells == result["mesh"].n_cells
        assert gmsh.isInitialized() and gmsh.model.getCurrent() == "mine"
    finally:
        gmsh.finalize()


def test_meshio_cell_sets_become_regions_and_boundaries(tmp_path):
    pts = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [5.0, 5.0]])  # point 4 is unused
    m = meshio.Mesh(pts, [("triangle", np.array([[0, 1, 2], [0, 2, 3]])), ("line", np.array([[1, 2]]))],
                    cell_sets={"first": [np.array([0]), np.array([], int)], "east": [np.array([], int), np.array([0])]})
    meshio.write(tmp_path / "m.inp", m)
    mesh = read_mesh(tmp_path / "m.inp")
    assert mesh.n_points == 4 and np.array_equal(mesh.region("first"), [0])
    assert np.array_equal(np.sort(mesh.facet_vertices(mesh.boundary("east"))[0]), [1, 2])


def test_quadratic_cells_keep_their_vertices(tmp_path):
    pts = np.array([[0.0, 0], [1, 0], [0, 1], [0.5, 0], [0.5, 0.5], [0, 0.5]])
    meshio.write(tmp_path / "p2.vtu", meshio.Mesh(pts, [("triangle6", np.array([[0, 1, 2, 3, 4, 5]]))]))
    mesh = read_mesh(tmp_path / "p2.vtu")
    assert mesh.cell_type == "triangle" and np.array_equal(mesh.points, pts[:3])


def test_missing_garbage_and_unknown_files_are_refused_with_their_path(tmp_path):
    with pytest.raises(MeshError, match=r"'nowhere\.msh' does not exist"):
        read_mesh("nowhere.msh")
    garbage = tmp_path / "garbage.vtu"
    garbage.write_bytes(b"\x00\x13 not a mesh at all")
    with pytest.raises(MeshError, match=r"cannot read mesh file .*garbage\.vtu"):
        read_mesh(garbage)
    unknown = tmp_path / "mesh.foo"
    unknown.write_text("1 2 3")
    with pytest.raises(MeshError, match=r"mesh\.foo"):
        read_mesh(unknown)
    bad_geo = tmp_path / "bad.geo"
    bad_geo.write_text("Point(1) = {0, 0, 0\n")
    with pytest.raises(MeshError, match=r"gmsh cannot read or mesh .*bad\.geo"):
        read_mesh(bad_geo)


def test_unknown_and_mixed_cell_types_are_refused(tmp_path):
    pts = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 1], [0, 1, 1]])
    meshio.write(tmp_path / "wedge.vtu", meshio.Mesh(pts, [("wedge", np.array([[0, 1, 2, 3, 4, 5]]))]))
    with pytest.raises(MeshError, match=r"unknown type 'wedge'"):
        read_mesh(tmp_path / "wedge.vtu")
    sq = np.array([[0.0, 0], [1, 0], [1, 1], [0, 1], [2, 0]])
    meshio.write(tmp_path / "mixed.vtu", meshio.Mesh(sq, [("quad", np.array([[0, 1, 2, 3]])),
                                                          ("triangle", np.array([[1, 4, 2]]))]))
    with pytest.raises(MeshError, match=r"mixes cell types \['quad', 'triangle'\]"):
        read_mesh(tmp_path / "mixed.vtu")


def test_a_file_with_an_inverted_cell_is_refused_with_its_path(tmp_path):
    mesh = rectangle(2, 2)
    cells = mesh.cells.copy()
    cells[1] = cells[1][[1, 0, 2]]
    meshio.write(tmp_path / "bad.vtu", meshio.Mesh(mesh.points, [("triangle", cells)]))
    with pytest.raises(MeshError, match=r"bad\.vtu.*1 inverted cells \(cells 1;"):
        read_mesh(tmp_path / "bad.vtu")
