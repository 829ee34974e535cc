"""Dirichlet conditions by lifting: symmetric systems stay symmetric, the data is imposed
exactly, and a datum the space can represent is reproduced everywhere."""

import numpy as np
import pytest
import scipy.sparse.linalg as sla

from solvers.fem import Space, diffusion, elasticity, load, mass
from solvers.fem.bc import DirichletBC, apply_dirichlet
from solvers.mesh import box, rectangle

MESHES = [("triangle", 1), ("triangle", 2), ("quad", 1), ("quad", 2), ("tetra", 1), ("tetra", 2),
          ("hexahedron", 1), ("hexahedron", 2)]


def mesh(cell, seed=2):
    m = rectangle(5, 4, cell_type=cell) if cell in ("triangle", "quad") else box(3, 2, 2, cell_type=cell)
    inner = ((m.points > 1e-12) & (m.points < 1 - 1e-12)).all(axis=1)
    m.points[inner] += 0.05 * np.random.default_rng(seed).uniform(-1, 1, (inner.sum(), m.dim))
    return m


@pytest.mark.parametrize("cell,k", MESHES)
def test_lifting_keeps_the_matrix_symmetric_and_the_reduced_system_unchanged(cell, k):
    V = Space(mesh(cell), k)
    g = lambda x: 1.0 + x[:, 0] - 2 * x[:, 1]  # noqa: E731
    bc = DirichletBC(V, ["left", "top"], g)
    # one assembly: a re-assembly may differ in the last bit (P1 then takes the symmetric scatter)
    A, b = diffusion(V), load(V, 1.0)
    K0 = A.toarray()
    b0 = b.copy()
    apply_dirichlet(A, b, bc)
    D = A.toarray()
    np.testing.assert_array_equal(D, D.T)
    fixed = bc.dofs
    free = np.setdiff1d(np.arange(V.n_dofs), fixed)
    # constrained rows/columns are identity rows/columns, the free block is untouched
    np.testing.assert_array_equal(D[np.ix_(fixed, fixed)], np.eye(len(fixed)))
    assert np.abs(D[np.ix_(free, fixed)]).max() == 0.0
    np.testing.assert_array_equal(D[np.ix_(free, free)], K0[np.ix_(free, free)])
    # b = b0 - K g on the free rows (the lifting), g on the constrained ones
    gv = np.zeros(V.n_dofs)
    gv[fixed] = g(V.node_coords[fixed])
    np.testing.assert_allclose(b[free], (b0 - K0 @ gv)[free], atol=1e-13)
    np.testing.assert_array_equal(b[fixed], gv[fixed])


@pytest.mark.parametrize("cell,k", MESHES)
def test_a_linear_boundary_datum_gives_the_linear_harmonic_solution_exactly(cell, k):
    V = Space(mesh(cell), k)
    c = np.array([0.3, -1.2, 0.7])[: V.mesh.dim]
    g = lambda x: 2.0 + x @ c  # noqa: E731  harmonic, in every space here
    A, b = diffusion(V), np.zeros(V.n_dofs)
    apply_dirichlet(A, b, DirichletBC(V, "boundary", g))
    u = sla.spsolve(A.tocsc(), b)
    np.testing.assert_allclose(u, g(V.node_coords), atol=1e-12)


@pytest.mark.parametrize("cell,k", [("triangle", 2), ("quad", 1), ("tetra", 1), ("hexahedron", 2)])
def test_componentwise_conditions_impose_only_their_component(cell, k):
    m = mesh(cell)
    d = m.dim
    V = Space(m, k, (d,))
    # u = (a x_0, 0, ...): uniaxial stretch with lateral contraction left free (nu = 0 here)
    bcs = [DirichletBC(V, "left", 0.0, component=0), DirichletBC(V, "right", 0.1, component=0)]
    bcs.append(DirichletBC(V, "bottom", 0.0, component=d - 1))  # y in 2D, z in 3D
    if d == 3:
        bcs.append(DirichletBC(V, "front", 0.0, component=1))
    A, b = elasticity(V, 0.0, 1.0), np.zeros(V.n_dofs)
    K0 = A.toarray()
    apply_dirichlet(A, b, bcs)
    D = A.toarray()
    assert np.abs(D - D.T).max() <= np.abs(K0 - K0.T).max()  # lifting adds no asymmetry (K's own is round-off)
    u = sla.spsolve(A.tocsc(), b).reshape(-1, d)
    np.testing.assert_allclose(u[:, 0], 0.1 * V.node_coords[:, 0], atol=1e-12)
    np.testing.assert_allclose(u[:, 1:], 0.0, atol=1e-12)


def test_mass_matrix_lifting_keeps_positive_definiteness():
    V = Space(mesh("triangle"), 2)
    M = mass(V)
    apply_dirichlet(M, None, DirichletBC(V, "boundary", 1.0))
    assert np.linalg.eigvalsh(M.toarray())[0] > 0
