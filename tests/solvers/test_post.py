"""Post-processing: exact on the fields the space represents."""

import numpy as np
import pytest

from solvers.fem import Space, post
from solvers.mesh import box, rectangle

MESHES = [("triangle", 1), ("triangle", 2), ("quad", 1), ("quad", 2), ("tetra", 1), ("tetra", 2),
          ("hexahedron", 1), ("hexahedron", 2)]


def space(cell, k, vector=False, seed=3):
    m = rectangle(4, 3, cell_type=cell) if cell in ("triangle", "quad") else box(2, 2, 3, cell_type=cell)
    inner = ((m.points > 1e-12) & (m.points < 1 - 1e-12)).all(axis=1)
    m.points[inner] += 0.06 * np.random.default_rng(seed).uniform(-1, 1, (inner.sum(), m.dim))
    return Space(m, k, (m.dim,) if vector else ())


@pytest.mark.parametrize("cell,k", MESHES)
def test_nodal_average_of_a_constant_is_that_constant(cell, k):
    V = space(cell, k)
    ne, nq = V.mesh.n_cells, V.nq
    np.testing.assert_allclose(post.nodal_average(V, np.full((ne, nq), 2.5)), 2.5, rtol=1e-14)
    t = np.broadcast_to(np.array([[1.0, 2.0], [3.0, 4.0]]), (ne, nq, 2, 2))
    np.testing.assert_allclose(post.nodal_average(V, t), np.broadcast_to(t[0, 0], (V.n_nodes, 2, 2)), rtol=1e-14)


@pytest.mark.parametrize("cell,k", MESHES)
def test_gradient_of_a_linear_field_is_exact_at_every_quadrature_point(cell, k):
    V = space(cell, k)
    c = np.array([0.5, -2.0, 1.5])[: V.mesh.dim]
    u = 1.0 + V.node_coords @ c
    np.testing.assert_allclose(post.gradient(V, u), np.broadcast_to(c, (V.mesh.n_cells, V.nq, V.mesh.dim)),
                               atol=1e-12)
    val, _, _ = post.at_quadrature(V, u, gradient=False)
    np.testing.assert_allclose(val[..., 0], 1.0 + V.quadrature_points() @ c, atol=1e-12)


@pytest.mark.parametrize("cell,k", MESHES)
def test_strain_and_stress_of_an_affine_displacement_are_exact(cell, k):
    V = space(cell, k, vector=True)
    d = V.mesh.dim
    G = np.random.default_rng(0).standard_normal((d, d))
    u = (V.node_coords @ G.T + 0.3).ravel()  # u(x) = G x + 0.3
    eps = 0.5 * (G + G.T)
    np.testing.assert_allclose(post.strain(V, u), np.broadcast_to(eps, (V.mesh.n_cells, V.nq, d, d)), atol=1e-12)
    lam, mu = 1.4, 0.6
    sig = lam * np.trace(eps) * np.eye(d) + 2 * mu * eps
    np.testing.assert_allclose(post.stress(V, u, lam, mu), np.broadcast_to(sig, (V.mesh.n_cells, V.nq, d, d)),
                               atol=1e-12)


@pytest.mark.parametrize("cell,k", MESHES)
def test_errornorm_of_the_interpolant_of_a_polynomial_of_the_space_is_zero(cell, k):
    V = space(cell, k)
    d = V.mesh.dim
    c = np.array([0.5, -2.0, 1.5])[:d]
    # on distorted quads/hexes the mapped Q_k space holds P_k (not Q_k): use total degree k
    if k == 1:
        p = lambda x: 1.0 + x @ c  # noqa: E731
        dp = lambda x: np.broadcast_to(c, x.shape)  # noqa: E731
    else:
        p = lambda x: 1.0 + x @ c + (x @ c) ** 2 - x[..., 0] * x[..., 1]  # noqa: E731
        dp = lambda x: c * (1 + 2 * (x @ c))[..., None] - np.stack(  # noqa: E731
            [x[..., 1], x[..., 0]] + [0 * x[..., 0]] * (d - 2), -1)
    u = p(V.node_coords)
    for kind in ("L2", "H1semi", "H1"):
        assert post.errornorm(V, u, p, dp, kind=kind) < 1e-12
    # and is not zero for a polynomial outside the space
    q = lambda x: x[..., 0] ** (k + 1)  # noqa: E731
    assert post.errornorm(V, q(V.node_coords), q) > 1e-4


@pytest.mark.parametrize("cell,k", MESHES)
def test_norms_and_integrals_equal_their_closed_forms(cell, k):
    V = space(cell, k)
    x = V.node_coords[:, 0]  # on the unit square/cube: ||x||_L2^2 = 1/3, |x|_H1^2 = 1
    assert post.norm(V, x, "L2") == pytest.approx(np.sqrt(1 / 3), rel=1e-12)
    assert post.norm(V, x, "H1semi") == pytest.approx(1.0, rel=1e-12)
    assert post.norm(V, x, "H1") == pytest.approx(np.sqrt(4 / 3), rel=1e-12)
    X = V.quadrature_points()
    assert post.integrate(V, X[..., 0] * X[..., -1]) == pytest.approx(1 / 4 if V.mesh.dim > 1 else 1 / 3, rel=1e-12)
