"""Assembly on unstructured gmsh meshes in any cell order: the block colouring takes as many
colours as the numbering needs, and read_mesh renumbers along a sweep so that it needs few.

Meshes come from the gmsh API (a disc with a size field, a thin plate of tetrahedra) with
points and cells in gmsh's own order, shuffled, or renumbered (`Mesh.renumbered`). The same
matrix on two numberings is the same operator: the dofs are matched by coordinates and
component. scikit-fem, on the same mesh, gives the reference matrices.
"""

import numpy as np
import pytest
import scipy.sparse as sp
import skfem
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial import cKDTree
from skfem.models.elasticity import linear_elasticity
from skfem.models.poisson import laplace

from rom.errors import MeshError
from solvers.fem import Space, _kernels as K, bilinear_form, diffusion, elasticity, lame, mass
from solvers.linalg import LinearSolver
from solvers.mesh import Mesh, check_cells, read_mesh, rectangle
from solvers.problems.elasticity import LinearElasticity
from solvers.problems.nonlinear_heat import NonlinearHeat, linear_conductivity

LAM, MU = lame(2.0, 0.3)
_MESHES: dict = {}


def _gmsh_mesh(kind: str, h: float) -> Mesh:
    """Points and cells exactly in gmsh's order (no renumbering), all boundary facets tagged.

    kind "disc": unit disc, size h (1 + 4 |x - (0.3, 0)|^2) from a MathEval field (about
    2.5 / h^2 triangles); "plate": 1 x 1 x 0.1 box of tetrahedra of size h."""
    key = (kind, h)
    if key not in _MESHES:
        import gmsh

        gmsh.initialize(interruptible=False)
        try:
            gmsh.option.setNumber("General.Terminal", 0)
            gmsh.model.add(kind)
            occ = gmsh.model.occ
            if kind == "disc":
                occ.addDisk(0, 0, 0, 1, 1)
                occ.synchronize()
                field = gmsh.model.mesh.field.add("MathEval")
                gmsh.model.mesh.field.setString(field, "F", f"{h} * (1 + 4 * ((x - 0.3)^2 + y^2))")
                gmsh.model.mesh.field.setAsBackgroundMesh(field)
                for opt in ("MeshSizeExtendFromBoundary", "MeshSizeFromPoints", "MeshSizeFromCurvature"):
                    gmsh.option.setNumber(f"Mesh.{opt}", 0)
            else:
                occ.addBox(0, 0, 0, 1, 1, 0.1)
                occ.synchronize()
                gmsh.option.setNumber("Mesh.MeshSizeMin", h)
                gmsh.option.setNumber("Mesh.MeshSizeMax", h)
            dim = 2 if kind == "disc" else 3
            gmsh.model.mesh.generate(dim)
            tags, coords, _ = gmsh.model.mesh.getNodes()
            etype = 2 if dim == 2 else 4  # 3-node triangle, 4-node tetrahedron
            _, nodes = gmsh.model.mesh.getElementsByType(etype)
        finally:
            gmsh.finalize()
        index = np.zeros(int(tags.max()) + 1, dtype=np.int64)
        index[tags.astype(np.int64)] = np.arange(len(tags))
        cells = index[nodes.astype(np.int64)].reshape(-1, dim + 1)
        used, cells = np.unique(cells, return_inverse=True)  # keeps gmsh's relative point order
        points = coords.reshape(-1, 3)[used, :dim]
        _MESHES[key] = check_cells(Mesh(points, cells.reshape(-1, dim + 1), "triangle" if dim == 2 else "tetra"))
    mesh = _MESHES[key]
    return Mesh(mesh.points, mesh.cells, mesh.cell_type).tag_boundary("boundary")


def _shuffled(mesh: Mesh, seed: int = 0) -> Mesh:
    rng = np.random.default_rng(seed)
    return mesh.renumbered(rng.permutation(mesh.n_points), rng.permutation(mesh.n_cells))


def _dof_map(V: Space, W: Space) -> np.ndarray:
    """m[i] = the dof of W at the node and component of dof i of V."""
    dist, j = cKDTree(W.node_coords).query(V.node_coords)
    assert dist.max() < 1e-12
    c = np.arange(V.ncomp)
    m = (j[:, None] * V.ncomp + c).ravel()
    assert len(np.unique(m)) == V.n_dofs == W.n_dofs
    return m


def _same_operator(A: sp.spmatrix, B: sp.spmatrix, m: np.ndarray, rtol: float = 1e-12):
    """A[i, j] == B[m[i], m[j]] to round-off relative to the largest entry."""
    D = (A - B[m][:, m]).tocsr()
    scale = abs(A).max()
    assert abs(D).max() <= rtol * scale


def _colouring_is_valid(dofs: np.ndarray, n: int, order: np.ndarray, ptr: np.ndarray, size: int) -> int:
    """Number of colours; asserts every block appears once and no two blocks of one colour share a dof."""
    assert sorted(order) == list(range(-(-len(dofs) // size)))
    for c in range(len(ptr) - 1):
        seen = np.zeros(n, dtype=int)
        for b in order[ptr[c]:ptr[c + 1]]:
            seen[np.unique(dofs[b * size:(b + 1) * size])] += 1
        assert seen.max() <= 1
    return len(ptr) - 1


# -- colouring ---------------------------------------------------------------------------
def test_colouring_of_gmsh_ordered_cells_takes_more_than_64_colours_and_stays_exact():
    """gmsh's Delaunay cell order: almost every block of 128 cells touches every other, so
    the colouring needs about one colour per block (80 > 64 here; the old bit mask gave up)."""
    V = Space(_gmsh_mesh("disc", 0.012), 2)
    order, ptr = K.block_coloring(V.cell_dofs, V.n_dofs, K._BLOCK)
    assert _colouring_is_valid(V.cell_dofs, V.n_dofs, order, ptr, K._BLOCK) > 64


def test_a_space_on_a_poorly_numbered_mesh_says_how_to_renumber(caplog):
    mesh = _gmsh_mesh("disc", 0.012)
    for m, says in ((mesh, True), (mesh.renumbered(), False)):
        caplog.clear()
        with caplog.at_level("INFO", logger="solvers.fem.space"):
            V = Space(m, 1, (2,))
            elasticity(V, LAM, MU)  # block colours
            diffusion(V)  # chunk colours
        assert ("mesh.renumbered()" in caplog.text) is says


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10**6), st.integers(4, 24), st.sampled_from([1, 2]))
def test_colouring_of_shuffled_cells_never_puts_two_blocks_sharing_a_dof_in_one_colour(seed, block, degree):
    mesh = rectangle(24, 24)
    V = Space(mesh.renumbered(None, np.random.default_rng(seed).permutation(mesh.n_cells)), degree)
    order, ptr = K.block_coloring(V.cell_dofs, V.n_dofs, block)
    _colouring_is_valid(V.cell_dofs, V.n_dofs, order, ptr, block)


def test_read_mesh_numbers_cells_along_a_sweep_two_colours_of_long_chunks(tmp_path):
    """The same disc read from a .geo file: renumbered on import, chunks of ne/16 cells in two colours."""
    geo = tmp_path / "disc.geo"
    geo.write_text('SetFactory("OpenCASCADE");\nDisk(1) = {0, 0, 0, 1, 1};\n'
                   'Field[1] = MathEval;\nField[1].F = "0.012 * (1 + 4 * ((x - 0.3)^2 + y^2))";\n'
                   "Background Field = 1;\nMesh.MeshSizeExtendFromBoundary = 0;\n"
                   "Mesh.MeshSizeFromPoints = 0;\nMesh.MeshSizeFromCurvature = 0;\n")
    mesh = read_mesh(geo)
    assert mesh.n_cells > 64 * K._BLOCK
    V = Space(mesh, 2)
    order, ptr, size = K.chunk_coloring(V.cell_dofs, V.n_dofs, 2)
    assert _colouring_is_valid(V.cell_dofs, V.n_dofs, order, ptr, size) == 2
    assert size == -(-mesh.n_cells // 16)


# -- renumbering ---------------------------------------------------------------------------
def test_renumbering_moves_boundary_facets_and_regions_with_their_cells():
    mesh = _gmsh_mesh("plate", 0.2).tag_boundary("top", lambda x: x[:, 2] > 0.1 - 1e-9)
    mesh.tag_region("left", lambda x: x[:, 0] < 0.5)
    for other in (mesh.renumbered(), _shuffled(mesh, 3)):
        assert np.allclose(np.sort(other.centroids, axis=0), np.sort(mesh.centroids, axis=0))
        for name in ("boundary", "top"):
            a, b = mesh.facet_midpoints(mesh.boundary(name)), other.facet_midpoints(other.boundary(name))
            assert len(a) == len(b) and cKDTree(a).query(b)[0].max() < 1e-12
            # the tagged facets are still boundary facets, with the outward local facet number
            assert {tuple(r) for r in other.boundary(name)} <= {tuple(r) for r in other.boundary_facets}
        a, b = mesh.centroids[mesh.region("left")], other.centroids[other.region("left")]
        assert len(a) == len(b) and cKDTree(a).query(b)[0].max() < 1e-12
        assert (check_cells(other) is other)  # orientation kept


def test_renumbering_refuses_an_order_that_is_not_a_permutation():
    mesh = rectangle(2, 2)
    with pytest.raises(MeshError, match=r"cell_order is not a permutation of range\(8\)"):
        mesh.renumbered(None, [0, 1, 2, 3, 4, 5, 6, 6])
    with pytest.raises(MeshError, match=r"point_order has shape \(3,\)"):
        mesh.renumbered([0, 1, 2])


# -- matrices on any numbering -----------------------------------------------------------------
@pytest.mark.parametrize("kind,h,degree", [("disc", 0.012, 1), ("disc", 0.012, 2), ("plate", 0.035, 1),
                                           ("plate", 0.05, 2)])
def test_every_matrix_is_the_same_operator_in_gmsh_shuffled_and_swept_order(kind, h, degree):
    """Mass, diffusion (first matrix by rows, then scattered), elasticity and a generic
    bilinear form, scalar and vector, on 10k triangles / 4k-13k tetrahedra in three numberings."""
    base = _gmsh_mesh(kind, h)
    d = base.dim
    meshes = [base, _shuffled(base), base.renumbered()]
    results = []
    for mesh in meshes:
        V, W = Space(mesh, degree), Space(mesh, degree, (d,))
        kap = 1.0 + mesh.centroids[:, 0] ** 2  # per cell, follows the cells
        GG = np.broadcast_to((1.0 + mesh.centroids[:, 0])[:, None, None, None] * np.eye(d), (mesh.n_cells, V.nq, d, d))
        VV = np.broadcast_to(np.full((1, 1, 1, 1), 2.0), (mesh.n_cells, V.nq, 1, 1))
        mats = (diffusion(V, kap), diffusion(V, 2.0 * kap), mass(V), bilinear_form(V, GG=GG, VV=VV))
        vmats = (diffusion(W, kap), elasticity(W, LAM, MU), mass(W, kap))
        results.append((V, W, mats, vmats))
    V0, W0, mats0, vmats0 = results[0]
    assert np.allclose(mats0[1].data, 2.0 * mats0[0].data, rtol=1e-13)
    for V, W, mats, vmats in results[1:]:
        m, mw = _dof_map(V0, V), _dof_map(W0, W)
        for A, B in zip(mats0, mats):
            _same_operator(A, B, m)
        for A, B in zip(vmats0, vmats):
            _same_operator(A, B, mw)


@pytest.mark.parametrize("kind,h,degree", [("disc", 0.012, 1), ("disc", 0.012, 2), ("plate", 0.035, 1),
                                           ("plate", 0.07, 2)])
def test_diffusion_and_elasticity_on_gmsh_order_equal_scikit_fem(kind, h, degree):
    mesh = _shuffled(_gmsh_mesh(kind, h), 5) if kind == "plate" and degree == 2 else _gmsh_mesh(kind, h)
    d = mesh.dim
    sk_mesh = (skfem.MeshTri if d == 2 else skfem.MeshTet)(mesh.points.T.copy(), mesh.cells.T.copy())
    el = {(2, 1): skfem.ElementTriP1, (2, 2): skfem.ElementTriP2, (3, 1): skfem.ElementTetP1,
          (3, 2): skfem.ElementTetP2}[(d, degree)]()
    for vector in (False, True):
        V = Space(mesh, degree, (d,) if vector else ())
        sk = skfem.Basis(sk_mesh, skfem.ElementVector(el) if vector else el, intorder=2 * degree)
        comps = sk.split_indices() if vector else [np.arange(sk.N)]
        perm = np.empty(V.n_dofs, dtype=np.int64)
        for c, idx in enumerate(comps):
            dist, j = cKDTree(sk.doflocs[:, idx].T).query(V.node_coords)
            assert dist.max() < 1e-12
            perm[np.arange(V.n_nodes) * V.ncomp + c] = idx[j]
        if vector:
            ours, ref = elasticity(V, LAM, MU), linear_elasticity(LAM, MU).assemble(sk)
        else:
            diffusion(V)  # the first matrix goes row by row; the second is scattered by colour
            ours, ref = diffusion(V), laplace.assemble(sk)
        _same_operator(ours, ref.tocsr(), perm, rtol=1e-10)


# -- acceptance: 50k cells in gmsh's order ------------------------------------------------------
def test_p2_elasticity_on_50k_gmsh_triangles_in_gmsh_order_reproduces_an_affine_displacement():
    """Patch test: with u = G x + c on the whole boundary and no body force, the exact solution
    is affine, which P2 holds exactly; the discrete solution equals it at every node."""
    mesh = _gmsh_mesh("disc", 0.005)
    assert mesh.n_cells >= 50_000
    G, c = np.array([[1e-3, 2e-3], [-5e-4, 3e-3]]), np.array([1e-3, -2e-3])
    exact = lambda x: x @ G.T + c  # noqa: E731
    prob = LinearElasticity(mesh, degree=2, E=2.0, nu=0.3, dirichlet={"boundary": exact},
                            solver=LinearSolver("cg", rtol=1e-12))  # AMG: SuperLU takes minutes here
    u = prob.solve().reshape(-1, 2)
    assert np.abs(u - exact(prob.space.node_coords)).max() < 1e-8 * np.abs(exact(prob.space.node_coords)).max()


def test_newton_with_bilinear_form_jacobians_on_50k_gmsh_triangles_in_gmsh_order():
    """k(T) = 1 + T/2, T = 1 + 0.3 x - 0.2 y: -div(k grad T) = -k'(T) |grad T|^2 = -0.065, a
    constant source; the affine T is in the P1 space and every integral is exact, so Newton's
    (bilinear_form) iterates converge quadratically to it."""
    mesh = _gmsh_mesh("disc", 0.005)
    assert mesh.n_cells >= 50_000
    a = np.array([0.3, -0.2])
    exact = lambda x: 1.0 + x @ a  # noqa: E731
    k, dk = linear_conductivity(1.0, 0.5)
    prob = NonlinearHeat(mesh, k, dk, degree=1, source=-0.5 * (a @ a), dirichlet={"boundary": exact})
    T = prob.solve(rtol=1e-12)
    assert prob.last.converged and prob.last.iterations <= 6
    assert np.abs(T - exact(prob.space.node_coords)).max() < 1e-9
