"""Lagrange reference elements: nodal basis of P_k / Q_k, consistent facet numbering."""

import itertools

import numpy as np
import pytest

from solvers.cells import FACETS, REFERENCE_VERTICES, entities
from solvers.fem import lagrange

CELLS = ["line", "triangle", "tetra", "quad", "hexahedron"]
SIMPLEX = {"line": True, "triangle": True, "tetra": True, "quad": False, "hexahedron": False}
ELEMENTS = [(c, k) for c in CELLS for k in (1, 2)]
# dimension of P_k in d variables is C(k+d, d); of Q_k it is (k+1)^d
DIM = {("line", 1): 2, ("line", 2): 3, ("triangle", 1): 3, ("triangle", 2): 6, ("tetra", 1): 4, ("tetra", 2): 10,
       ("quad", 1): 4, ("quad", 2): 9, ("hexahedron", 1): 8, ("hexahedron", 2): 27}


def _random_points(cell, n=25, seed=0):
    rng = np.random.default_rng(seed)
    d = REFERENCE_VERTICES[cell].shape[1]
    x = rng.random((n, d))
    if SIMPLEX[cell]:
        x = x[x.sum(axis=1) <= 1]
    return x


def _space_monomials(cell, k):
    d = REFERENCE_VERTICES[cell].shape[1]
    return [e for e in itertools.product(range(k + 1), repeat=d) if not SIMPLEX[cell] or sum(e) <= k]


@pytest.mark.parametrize("cell,k", ELEMENTS)
def test_number_of_basis_functions_is_the_dimension_of_the_polynomial_space(cell, k):
    assert lagrange(cell, k).n_basis == DIM[(cell, k)] == len(_space_monomials(cell, k))


@pytest.mark.parametrize("cell,k", ELEMENTS)
def test_basis_is_nodal_phi_i_at_node_j_is_kronecker_delta(cell, k):
    el = lagrange(cell, k)
    np.testing.assert_allclose(el.tabulate(el.nodes), np.eye(el.n_basis), atol=1e-12)


@pytest.mark.parametrize("cell,k", ELEMENTS)
def test_basis_is_a_partition_of_unity_and_its_gradients_sum_to_zero(cell, k):
    el = lagrange(cell, k)
    x = _random_points(cell)
    np.testing.assert_allclose(el.tabulate(x).sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(el.tabulate_grad(x).sum(axis=1), 0.0, atol=1e-11)


@pytest.mark.parametrize("cell,k", ELEMENTS)
def test_interpolation_reproduces_every_polynomial_of_the_space_and_its_gradient(cell, k):
    el = lagrange(cell, k)
    x = _random_points(cell, seed=1)
    for e in _space_monomials(cell, k):
        e = np.array(e)
        p = lambda y: np.prod(y**e, axis=1)  # noqa: E731
        assert np.allclose(el.tabulate(x) @ p(el.nodes), p(x), atol=1e-12)
        grad = np.stack([e[i] * np.prod(x ** np.where(np.arange(len(e)) == i, np.maximum(e - 1, 0), e), axis=1)
                         for i in range(len(e))], axis=1)
        assert np.allclose(np.einsum("pbd,b->pd", el.tabulate_grad(x), p(el.nodes)), grad, atol=1e-11)


@pytest.mark.parametrize("cell", ["triangle", "tetra", "quad", "hexahedron"])
def test_degree_two_does_not_reproduce_a_polynomial_outside_its_space(cell):
    """P2 misses x^3 (and Q2 misses x^3 too): interpolation is exact only on the space."""
    el = lagrange(cell, 2)
    x = _random_points(cell, seed=2)
    p = lambda y: y[:, 0] ** 3  # noqa: E731
    assert np.abs(el.tabulate(x) @ p(el.nodes) - p(x)).max() > 1e-3


@pytest.mark.parametrize("cell,k", [e for e in ELEMENTS if e[0] != "line"])
def test_facet_dofs_are_the_nodes_lying_on_the_facet_in_the_facet_elements_order(cell, k):
    el = lagrange(cell, k)
    verts = REFERENCE_VERTICES[cell]
    ftype = {"triangle": "line", "quad": "line", "tetra": "triangle", "hexahedron": "quad"}[cell]
    fel = lagrange(ftype, k)
    fd = el.facet_dofs
    assert fd.shape == (len(FACETS[cell]), fel.n_basis)
    for f, fverts in enumerate(FACETS[cell]):
        P = verts[list(fverts)]  # facet vertices, in the facet's own order
        # the facet's nodes mapped by its own (affine / bilinear) geometry land on the cell nodes fd[f]
        geo = lagrange(ftype, 1).tabulate(fel.nodes) @ P
        np.testing.assert_allclose(el.nodes[fd[f]], geo, atol=1e-14)
        # and no other cell node lies on the facet's plane
        n = np.linalg.svd(P[1:] - P[0])[2][-1]
        on = np.flatnonzero(np.abs((el.nodes - P[0]) @ n) < 1e-12)
        assert sorted(on) == sorted(fd[f])


@pytest.mark.parametrize("cell,k", ELEMENTS)
def test_node_entities_place_each_node_at_the_midpoint_of_its_entity(cell, k):
    el = lagrange(cell, k)
    for node, (dim, idx) in zip(el.nodes, el.node_entities):
        verts = entities(cell, dim)[idx]
        np.testing.assert_allclose(node, REFERENCE_VERTICES[cell][list(verts)].mean(axis=0), atol=1e-15)
