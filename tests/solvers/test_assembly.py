"""Assembled matrices and vectors against integrals known in closed form."""

import numpy as np
import pytest

from solvers.fem import (Space, bilinear_form, boundary_load, boundary_mass, diffusion, elasticity, load, mass,
                         residual)
from solvers.fem import post
from solvers.mesh import Mesh, box, rectangle

MESHES = [("triangle", 1), ("triangle", 2), ("quad", 1), ("quad", 2),
          ("tetra", 1), ("tetra", 2), ("hexahedron", 1), ("hexahedron", 2)]
LOWER, UPPER = np.array([0.0, -1.0, 0.5]), np.array([2.0, 0.5, 1.5])  # a box of volume 3 (area 3 in 2D)


def distorted(cell, n, seed=0, amount=0.25) -> Mesh:
    """[LOWER, UPPER] with n cells per side, interior vertices moved at random by up to
    `amount` cell widths (seeded), boundary vertices on the boundary."""
    m = (rectangle(n, n, LOWER[:2], UPPER[:2], cell) if cell in ("triangle", "quad")
         else box(n, n, n, LOWER, UPPER, cell))
    d = m.dim
    h = (UPPER[:d] - LOWER[:d]) / n
    rng = np.random.default_rng(seed)
    inner = ((m.points > LOWER[:d] + 1e-12) & (m.points < UPPER[:d] - 1e-12)).all(axis=1)
    m.points[inner] += amount * h * rng.uniform(-1, 1, (inner.sum(), d))
    return m


def space(cell, k, shape=False, n=None):
    m = distorted(cell, n or (4 if cell in ("triangle", "quad") else 2))
    return Space(m, k, (m.dim,) if shape else ())


VOLUME = {2: 3.0, 3: 3.0}


@pytest.mark.parametrize("cell,k", MESHES)
def test_mass_matrix_integrates_one_to_the_domain_volume(cell, k):
    V = space(cell, k)
    one = np.ones(V.n_dofs)
    assert one @ mass(V) @ one == pytest.approx(VOLUME[V.mesh.dim], rel=1e-12)
    Vv = space(cell, k, shape=True)
    onev = np.ones(Vv.n_dofs)
    assert onev @ mass(Vv, 2.0) @ onev == pytest.approx(2.0 * Vv.mesh.dim * VOLUME[Vv.mesh.dim], rel=1e-12)


@pytest.mark.parametrize("cell,k", MESHES)
def test_stiffness_kills_constants_and_gives_the_volume_on_a_coordinate_field(cell, k):
    V = space(cell, k)
    K = diffusion(V, 1.0)
    np.testing.assert_allclose(K @ np.ones(V.n_dofs), 0.0, atol=1e-12)
    for d in range(V.mesh.dim):  # |grad x_d|^2 = 1
        x = V.node_coords[:, d]
        assert x @ K @ x == pytest.approx(VOLUME[V.mesh.dim], rel=1e-11)


@pytest.mark.parametrize("cell,k", MESHES)
def test_mass_and_stiffness_are_symmetric_positive_semidefinite_and_mass_is_definite(cell, k):
    V = space(cell, k)
    for A, definite in ((mass(V, 1.5), True), (diffusion(V, 0.7), False)):
        D = A.toarray()
        np.testing.assert_allclose(D, D.T, atol=1e-13 * np.abs(D).max())
        ev = np.linalg.eigvalsh(D)
        assert ev[0] > (1e-10 if definite else -1e-12) * ev[-1]
    # the stiffness nullspace is exactly the constants (connected mesh)
    ev = np.linalg.eigvalsh(diffusion(V).toarray())
    assert (np.abs(ev) < 1e-10 * ev[-1]).sum() == 1


@pytest.mark.parametrize("cell,k", MESHES)
def test_elasticity_kills_exactly_the_rigid_body_modes(cell, k):
    V = space(cell, k, shape=True)
    d = V.mesh.dim
    K = elasticity(V, 1.3, 0.8).toarray()
    np.testing.assert_allclose(K, K.T, atol=1e-13 * np.abs(K).max())
    x = V.node_coords - V.node_coords.mean(axis=0)
    modes = [np.tile(np.eye(d)[i], V.n_nodes) for i in range(d)]  # translations
    pairs = [(0, 1)] if d == 2 else [(0, 1), (1, 2), (0, 2)]
    for i, j in pairs:  # infinitesimal rotations u_i = -x_j, u_j = x_i
        r = np.zeros((V.n_nodes, d))
        r[:, i], r[:, j] = -x[:, j], x[:, i]
        modes.append(r.ravel())
    for r in modes:
        assert np.abs(K @ r).max() < 1e-11 * np.abs(K).max() * np.abs(r).max()
    ev = np.linalg.eigvalsh(K)
    assert (np.abs(ev) < 1e-10 * ev[-1]).sum() == (3 if d == 2 else 6)


@pytest.mark.parametrize("form", [diffusion, mass])
@pytest.mark.parametrize("cell,k", [("triangle", 1), ("triangle", 2), ("tetra", 1), ("tetra", 2)])
def test_first_matrix_by_rows_equals_the_scatter_assembly(cell, k, form):
    """A space's first scalar mass/diffusion matrix is summed row by row with its CSR columns
    (no scatter map); it must equal the scatter path's matrix on the same pattern, and the
    scatter map built afterwards from its columns must equal the one built with the pattern."""
    V = space(cell, k)
    coef = np.linspace(1.0, 3.0, V.mesh.n_cells)
    A = form(V, coef)
    assert "pattern" not in V.__dict__  # no scatter map was needed
    D = A.toarray()
    np.testing.assert_array_equal(D, D.T)  # rows i and j sum (i, j) and (j, i) to the same bits
    W = space(cell, k)
    ref_pattern = W.pattern
    B = form(W, coef)  # pattern first: the scatter path
    np.testing.assert_array_equal(A.indptr, B.indptr)
    np.testing.assert_array_equal(A.indices, B.indices)
    np.testing.assert_allclose(A.data, B.data, rtol=1e-13, atol=1e-15 * np.abs(B.data).max())
    np.testing.assert_array_equal(V.pattern[2], ref_pattern[2])
    assert np.shares_memory(V.pattern[1], A.indices)
    C = form(V, coef)  # second matrix: the scatter path on the map built from A's columns
    np.testing.assert_allclose(C.data, A.data, rtol=1e-13, atol=1e-15 * np.abs(B.data).max())


@pytest.mark.parametrize("cell,k", [("triangle", 2), ("quad", 1), ("tetra", 1), ("hexahedron", 2)])
def test_reassembly_with_out_refills_in_place_and_equals_a_fresh_assembly(cell, k):
    V = space(cell, k)
    kappa1 = np.linspace(1, 2, V.mesh.n_cells)
    A = diffusion(V, kappa1)
    indices, indptr = A.indices, A.indptr
    B = diffusion(V, 3.0 + kappa1**2, out=A)
    assert B is A and B.indices is indices and B.indptr is indptr
    assert np.shares_memory(B.indices, V.pattern[1])  # every matrix views the one pattern
    fresh = diffusion(V, 3.0 + kappa1**2)
    np.testing.assert_array_equal(B.data, fresh.data)
    M = mass(V, 2.0, out=A)
    np.testing.assert_array_equal(M.data, mass(V, 2.0).data)


@pytest.mark.parametrize("cell,k", MESHES)
def test_region_coefficients_weight_each_region_by_its_value(cell, k):
    V = space(cell, k)
    m = V.mesh
    mid = 0.5 * (LOWER[0] + UPPER[0])
    m.tag_region("a", lambda x: x[:, 0] < mid).tag_region("b", lambda x: x[:, 0] >= mid)
    ind_a = np.zeros(m.n_cells)
    ind_a[m.region("a")] = 1.0
    K = diffusion(V, {"a": 2.0, "b": 5.0})
    Ka, Kb = diffusion(V, ind_a), diffusion(V, 1.0 - ind_a)
    np.testing.assert_allclose(K.toarray(), (2.0 * Ka + 5.0 * Kb).toarray(), atol=1e-12)
    x = V.node_coords[:, 1]  # grad y = e_2: x^T K x = 2 |a| + 5 |b|
    vol_a = float(np.ones(V.n_dofs) @ mass(V, ind_a) @ np.ones(V.n_dofs))
    assert x @ K @ x == pytest.approx(2.0 * vol_a + 5.0 * (VOLUME[m.dim] - vol_a), rel=1e-11)


@pytest.mark.parametrize("cell,k", MESHES)
def test_coefficients_given_at_quadrature_points_equal_the_constant_case(cell, k):
    V = space(cell, k)
    ne, nq = V.mesh.n_cells, V.nq
    c = np.full((ne, nq), 1.7)
    for form in (mass, diffusion):
        np.testing.assert_allclose(form(V, c).toarray(), form(V, 1.7, order=2 * k).toarray(), atol=1e-12)
    np.testing.assert_allclose(diffusion(V, lambda x: 1.7 + 0 * x[..., 0]).toarray(),
                               diffusion(V, 1.7).toarray(), atol=1e-12)
    Vv = space(cell, k, shape=True)
    np.testing.assert_allclose(elasticity(Vv, c, 2 * c).toarray(), elasticity(Vv, 1.7, 3.4, order=2 * k).toarray(),
                               atol=1e-12)


@pytest.mark.parametrize("cell,k", MESHES)
def test_local_element_matrices_summed_through_the_dof_map_give_the_global_matrix(cell, k):
    V = space(cell, k, shape=True)
    dofs = V.cell_dofs
    for form, args in ((mass, (1.3,)), (diffusion, (0.4,)), (elasticity, (1.0, 0.5))):
        Ke = form(V, *args, local=True)
        assert Ke.shape == (V.mesh.n_cells, dofs.shape[1], dofs.shape[1])
        G = np.zeros((V.n_dofs, V.n_dofs))
        np.add.at(G, (dofs[:, :, None], dofs[:, None, :]), Ke)
        np.testing.assert_allclose(G, form(V, *args).toarray(), atol=1e-12)


@pytest.mark.parametrize("cell,k", MESHES)
def test_residual_per_qp_sums_to_per_cell_which_scatters_to_global(cell, k):
    V = space(cell, k, shape=True)
    ne, nq, d = V.mesh.n_cells, V.nq, V.mesh.dim
    rng = np.random.default_rng(3)
    S, F = rng.standard_normal((ne, nq, d)), rng.standard_normal((ne, nq, d, d))
    rq = residual(V, S, F, per="qp")
    rc = residual(V, S, F, per="cell")
    rg = residual(V, S, F, per="global")
    assert rq.shape == (ne, nq, V.cell_dofs.shape[1])
    np.testing.assert_allclose(rq.sum(axis=1), rc, atol=1e-12)
    np.testing.assert_allclose(np.bincount(V.cell_dofs.ravel(), rc.ravel(), minlength=V.n_dofs), rg, atol=1e-12)


@pytest.mark.parametrize("cell,k", MESHES)
def test_residual_of_the_flux_kappa_grad_u_equals_the_stiffness_times_u(cell, k):
    V = space(cell, k)
    ne = V.mesh.n_cells
    kappa = 1.0 + np.arange(ne) % 3
    u = np.random.default_rng(4).standard_normal(V.n_dofs)
    g = post.gradient(V, u)  # (ne, nq, dim) at the space's rule
    F = (kappa[:, None, None] * g)[:, :, None, :]
    np.testing.assert_allclose(residual(V, F=F), diffusion(V, kappa, order=2 * k) @ u, atol=1e-11)
    # and for elasticity, the stress is the internal force density
    Vv = space(cell, k, shape=True)
    uv = np.random.default_rng(5).standard_normal(Vv.n_dofs)
    sig = post.stress(Vv, uv, 1.2, 0.7)
    np.testing.assert_allclose(residual(Vv, F=sig), elasticity(Vv, 1.2, 0.7, order=2 * k) @ uv, atol=1e-11)


@pytest.mark.parametrize("cell,k", MESHES)
def test_generic_bilinear_form_with_isotropic_coefficients_equals_the_named_forms(cell, k):
    V = space(cell, k)
    ne, nq, d = V.mesh.n_cells, V.nq, V.mesh.dim
    GG = np.broadcast_to(2.5 * np.eye(d), (ne, nq, d, d))
    VV = np.full((ne, nq, 1, 1), 0.3)
    np.testing.assert_allclose(bilinear_form(V, GG=GG, VV=VV).toarray(),
                               (diffusion(V, 2.5, order=2 * k) + mass(V, 0.3)).toarray(), atol=1e-12)
    Vv = space(cell, k, shape=True)
    lam, mu = 1.1, 0.6
    I = np.eye(d)
    C = (lam * np.einsum("ck,dl->ckdl", I, I) + mu * (np.einsum("cd,kl->ckdl", I, I)
                                                      + np.einsum("cl,kd->ckdl", I, I))).reshape(d * d, d * d)
    np.testing.assert_allclose(bilinear_form(Vv, GG=np.broadcast_to(C, (ne, nq, d * d, d * d))).toarray(),
                               elasticity(Vv, lam, mu, order=2 * k).toarray(), atol=1e-12)


@pytest.mark.parametrize("cell,k", MESHES)
def test_load_of_a_constant_and_of_a_linear_function_integrate_exactly(cell, k):
    V = space(cell, k)
    d = V.mesh.dim
    vol = VOLUME[d]
    assert load(V, 2.0).sum() == pytest.approx(2.0 * vol, rel=1e-12)
    centre = 0.5 * (LOWER[:d] + UPPER[:d])
    assert load(V, lambda x: x[..., 0]).sum() == pytest.approx(centre[0] * vol, rel=1e-12)
    # the load of u = x, tested against the basis, equals M @ x
    x = V.node_coords[:, 0]
    np.testing.assert_allclose(load(V, lambda y: y[..., 0]), mass(V) @ x, atol=1e-13)


@pytest.mark.parametrize("cell,k", MESHES)
def test_neumann_and_robin_terms_of_constants_integrate_to_the_boundary_measure(cell, k):
    V = space(cell, k)
    d = V.mesh.dim
    L = UPPER[:d] - LOWER[:d]
    left = np.prod(L[1:])  # the side x = LOWER[0]
    total = 2 * sum(np.prod(np.delete(L, i)) for i in range(d))
    one = np.ones(V.n_dofs)
    assert boundary_load(V, "left", 3.0).sum() == pytest.approx(3.0 * left, rel=1e-12)
    assert boundary_load(V, "boundary", 1.0).sum() == pytest.approx(total, rel=1e-12)
    assert one @ boundary_mass(V, "left", 2.0) @ one == pytest.approx(2.0 * left, rel=1e-12)
    assert one @ boundary_mass(V, "boundary", 1.0) @ one == pytest.approx(total, rel=1e-12)
    # a linear datum: int_left y ds = centre_y * |left|
    cy = 0.5 * (LOWER[1] + UPPER[1])
    assert boundary_load(V, "left", lambda x: x[..., 1]).sum() == pytest.approx(cy * left, rel=1e-12)
    # Robin matrix is symmetric PSD, in the space's pattern, and supported on the side's dofs only
    R = boundary_mass(V, "left", 1.0)
    assert np.shares_memory(R.indices, V.pattern[1])
    Rd = R.toarray()
    np.testing.assert_allclose(Rd, Rd.T, atol=1e-14)
    side = V.boundary_dofs("left")
    off = np.setdiff1d(np.arange(V.n_dofs), side)
    assert np.abs(Rd[off]).max() == 0.0 and np.linalg.eigvalsh(Rd)[0] > -1e-14


@pytest.mark.parametrize("cell,k", [("triangle", 1), ("quad", 2), ("tetra", 2), ("hexahedron", 1)])
def test_vector_neumann_load_of_a_constant_traction_gives_the_resultant_force(cell, k):
    V = space(cell, k, shape=True)
    d = V.mesh.dim
    L = UPPER[:d] - LOWER[:d]
    t = np.arange(1.0, d + 1)
    f = boundary_load(V, "right", t).reshape(-1, d).sum(axis=0)
    np.testing.assert_allclose(f, t * np.prod(L[1:]), rtol=1e-12)
    # the vector Robin term acts on each component alone: e_c^T R e_c = h |side|, e_c^T R e_d = 0
    R = boundary_mass(V, "right", 2.0)
    E = np.kron(np.ones(V.n_nodes)[:, None], np.eye(d))  # (n_dofs, d): constant unit fields
    np.testing.assert_allclose(E.T @ (R @ E), 2.0 * np.prod(L[1:]) * np.eye(d), atol=1e-12)
