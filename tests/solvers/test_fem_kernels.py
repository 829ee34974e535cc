"""Numba kernels against slow numpy references and structural properties."""

import numba
import numpy as np
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from solvers.fem import Space, diffusion, elasticity, lame, mass
from solvers.fem import _kernels as K
from solvers.mesh import box, rectangle


def _reference_pattern(dofs, n):
    ne, nb = dofs.shape
    rows = np.repeat(dofs, nb, axis=1).ravel()
    cols = np.tile(dofs, (1, nb)).ravel()
    A = sp.coo_matrix((np.ones(rows.size), (rows, cols)), shape=(n, n)).tocsr()
    A.sum_duplicates()
    A.sort_indices()
    return A


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 6), st.integers(1, 6), st.sampled_from(["triangle", "quad"]), st.integers(1, 2),
       st.integers(1, 2), st.integers(0, 10**6))
def test_csr_pattern_and_scatter_map_match_a_coo_reference(nx, ny, cell, degree, ncomp, seed):
    mesh = rectangle(nx, ny, cell_type=cell)
    # a random vertex renumbering must not matter
    perm = np.random.default_rng(seed).permutation(mesh.n_points)
    mesh.cells[:] = perm[mesh.cells]
    pts = np.empty_like(mesh.points)
    pts[perm] = mesh.points
    mesh.points[:] = pts
    V = Space(mesh, degree, (ncomp,) if ncomp > 1 else ())
    indptr, indices, dmap = V.pattern
    R = _reference_pattern(V.cell_dofs, V.n_dofs)
    np.testing.assert_array_equal(indptr, R.indptr)
    np.testing.assert_array_equal(indices, R.indices)
    # the map sends entry (i, j) of cell e to the CSR slot of (dofs[e,i], dofs[e,j])
    d = V.cell_dofs
    nbd = d.shape[1]
    rows = np.repeat(d, nbd, axis=1)
    cols = np.tile(d, (1, nbd))
    assert (indices[dmap] == cols).all()
    row_of_slot = np.repeat(np.arange(V.n_dofs), np.diff(indptr))
    assert (row_of_slot[dmap] == rows).all()


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 40), st.integers(1, 40), st.integers(1, 3))
def test_block_colouring_never_puts_two_blocks_sharing_a_dof_in_one_colour(nx, ny, block):
    V = Space(rectangle(nx, ny), 2)
    order, ptr = K.block_coloring(V.cell_dofs, V.n_dofs, block)
    assert sorted(order) == list(range(-(-V.mesh.n_cells // block)))
    for c in range(len(ptr) - 1):
        seen = np.zeros(V.n_dofs, dtype=int)
        for b in order[ptr[c]:ptr[c + 1]]:
            dofs = np.unique(V.cell_dofs[b * block:(b + 1) * block])
            seen[dofs] += 1
        assert seen.max() <= 1


def _slow_stiffness(V, kappa):
    """Element-by-element numpy reference (small meshes only)."""
    tab = V.tabulation(V.degree * 2)
    X = V.mesh.points
    A = np.zeros((V.n_dofs, V.n_dofs))
    for e, cell in enumerate(V.mesh.cells):
        for q, wq in enumerate(tab.rule.weights):
            J = X[cell].T @ tab.dphig[q]
            G = tab.dphi[q] @ np.linalg.inv(J)
            Ke = kappa[e] * wq * abs(np.linalg.det(J)) * G @ G.T
            A[np.ix_(V.cell_dofs[e], V.cell_dofs[e])] += Ke
    return A


def test_blocked_kernel_equals_element_by_element_reference():
    for mesh in (rectangle(3, 2, cell_type="quad"), box(2, 1, 1)):
        mesh.points[:] += 0.05 * np.sin(7 * mesh.points[:, ::-1])
        V = Space(mesh, 2)
        kappa = 1 + np.arange(mesh.n_cells) % 3
        np.testing.assert_allclose(diffusion(V, kappa, order=4).toarray(), _slow_stiffness(V, kappa), atol=1e-12)


def test_one_thread_and_all_threads_assemble_the_same_matrix():
    V = Space(box(6, 5, 4), 2, (3,))
    lam, mu = lame(2.0, 0.3)
    n = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        A1, M1 = elasticity(V, lam, mu), mass(V, 3.0)
    finally:
        numba.set_num_threads(n)
    A2, M2 = elasticity(V, lam, mu), mass(V, 3.0)
    np.testing.assert_allclose(A1.data, A2.data, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(M1.data, M2.data, rtol=1e-13, atol=1e-17)


def test_reassembly_refills_in_place_and_keeps_the_pattern():
    V = Space(rectangle(10, 10), 1)
    A = diffusion(V, 1.0)
    data, indices = A.data, A.indices
    B = diffusion(V, 2.0, out=A)
    assert B is A and A.data is data and A.indices is indices
    np.testing.assert_allclose(A.data, 2 * diffusion(V, 1.0).data)
