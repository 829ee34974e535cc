"""Numba kernels against slow numpy references and structural properties."""

from pathlib import Path

import numba
import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from solvers.fem import Space, diffusion, elasticity, lame, mass
from solvers.fem import _kernels as K
from solvers.fem import assembly as asm
from solvers.mesh import Mesh, box, rectangle


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


def _random_simplex_mesh(dim, n, seed):
    """A perturbed structured simplex mesh with shuffled vertices and cells."""
    rng = np.random.default_rng(seed)
    mesh = rectangle(n, n + 1) if dim == 2 else box(n, n, n + 1)
    mesh.points[:] += rng.uniform(-0.15, 0.15, mesh.points.shape) / n
    vperm = rng.permutation(mesh.n_points)
    pts = np.empty_like(mesh.points)
    pts[vperm] = mesh.points
    mesh.points[:] = pts
    mesh.cells[:] = vperm[mesh.cells][rng.permutation(mesh.n_cells)]
    return Mesh(mesh.points, mesh.cells, mesh.cell_type)


def _generic(V, form, coef, order, local=False):
    """The generic blocked kernel with the coefficient given at every quadrature point."""
    tab = V.tabulation(order)
    c = np.ascontiguousarray(np.repeat(coef[:, None], tab.nq, axis=1))
    e4 = np.zeros((0, 0, 0, 0))
    return asm._run_bilinear(V, tab, form, c, c, e4, e4, e4, e4, None, local)


@settings(max_examples=30, deadline=None)
@given(st.sampled_from([2, 3]), st.integers(1, 2), st.integers(1, 4), st.booleans(), st.booleans(),
       st.integers(0, 10**6))
def test_simplex_kernel_equals_the_generic_kernel_on_random_meshes_and_coefficients(dim, degree, n, vector, is_mass,
                                                                                      seed):
    mesh = _random_simplex_mesh(dim, n, seed)
    V = Space(mesh, degree, (dim,) if vector else ())
    coef = 10.0 ** np.random.default_rng(seed + 1).uniform(-3, 3, mesh.n_cells)
    form, fn = (K.FORM_MASS, mass) if is_mass else (K.FORM_DIFFUSION, diffusion)
    order = 2 * degree if is_mass else 2 * (degree - 1)
    assert asm._simplex_coefficient(V, V.tabulation(order), form, np.broadcast_to(coef[:, None], (mesh.n_cells, 1)))\
        is not None
    fast = fn(V, coef)
    ref = _generic(V, form, coef, order)
    assert (fast.indices == ref.indices).all()
    scale = np.abs(ref.data).max()
    np.testing.assert_allclose(fast.data, ref.data, rtol=0, atol=1e-12 * scale)
    # re-assembly into the same matrix and element matrices agree too
    np.testing.assert_allclose(fn(V, coef, out=fast).data, ref.data, rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(fn(V, coef, local=True), _generic(V, form, coef, order, local=True), rtol=0,
                               atol=1e-12 * scale)


@settings(max_examples=30, deadline=None)
@given(st.sampled_from([2, 3]), st.integers(1, 2), st.integers(1, 4), st.booleans(), st.booleans(),
       st.integers(0, 10**6))
def test_simplex_load_kernel_equals_the_generic_kernel(dim, degree, n, vector, constant, seed):
    """The value-only affine-simplex kernel (loads) against `linear`, per cell and assembled,
    for a constant and for values given at every quadrature point."""
    mesh = _random_simplex_mesh(dim, n, seed)
    V = Space(mesh, degree, (dim,) if vector else ())
    tab = V.tabulation()
    assert asm._affine_simplex(V, tab)
    nc, rng = V.ncomp, np.random.default_rng(seed + 1)
    S = rng.uniform(-1, 1, nc) if constant else rng.uniform(-1, 1, (mesh.n_cells, tab.nq, nc))
    fast_cell = asm.residual(V, S=S, per="cell")
    fast = asm.residual(V, S=S)
    Sa = np.ascontiguousarray(np.broadcast_to(S, (mesh.n_cells, tab.nq, nc)))
    ref_cell = np.empty_like(fast_cell)
    ref = np.zeros(V.n_dofs)
    for mode in (0, 1):
        outs = [ref if mode == 0 else np.zeros(0), ref_cell if mode == 1 else np.empty((0, 0)), np.empty((0, 0, 0))]
        K.linear(mesh.points, mesh.cells, tab.dphig, True, V.cell_nodes, nc, tab.phi, tab.dphi, tab.rule.weights,
                 Sa, np.zeros((0, 0, 0, 0)), mode, *outs)
    scale = np.abs(ref_cell).max()
    np.testing.assert_allclose(fast_cell, ref_cell, rtol=0, atol=1e-13 * scale)
    np.testing.assert_allclose(fast, ref, rtol=0, atol=1e-12 * scale)


def test_coefficients_varying_inside_cells_take_the_generic_kernel():
    V = Space(rectangle(3, 3), 2)
    tab = V.tabulation()
    per_qp = np.random.default_rng(0).uniform(1, 2, (V.mesh.n_cells, tab.nq))
    assert asm._simplex_coefficient(V, tab, K.FORM_DIFFUSION, per_qp) is None
    assert asm._simplex_coefficient(V, tab, K.FORM_ELASTICITY, per_qp[:, :1]) is None
    np.testing.assert_allclose(diffusion(V, per_qp).toarray(),
                               _slow_stiffness_qp(V, per_qp), atol=1e-12)


def _slow_stiffness_qp(V, kappa_qp):
    tab = V.tabulation()
    X = V.mesh.points
    A = np.zeros((V.n_dofs, V.n_dofs))
    for e, cell in enumerate(V.mesh.cells):
        for q, wq in enumerate(tab.rule.weights):
            J = X[cell].T @ tab.dphig[q]
            G = tab.dphi[q] @ np.linalg.inv(J)
            A[np.ix_(V.cell_dofs[e], V.cell_dofs[e])] += kappa_qp[e, q] * wq * abs(np.linalg.det(J)) * G @ G.T
    return A


@settings(max_examples=20, deadline=None)
@given(st.sampled_from([2, 3]), st.integers(1, 6), st.integers(1, 4), st.booleans(), st.integers(0, 10**6))
def test_chunk_colouring_never_puts_two_chunks_sharing_a_dof_in_one_colour(dim, n, nthreads, shuffle, seed):
    mesh = rectangle(n, 2 * n) if dim == 2 else box(n, n, 2)
    if shuffle:
        mesh = _random_simplex_mesh(dim, n, seed)
    V = Space(mesh, 2)
    order, ptr, size = K.chunk_coloring(V.cell_dofs, V.n_dofs, nthreads)
    assert sorted(order) == list(range(-(-mesh.n_cells // size)))
    for c in range(len(ptr) - 1):
        seen = np.zeros(V.n_dofs, dtype=int)
        for b in order[ptr[c]:ptr[c + 1]]:
            seen[np.unique(V.cell_dofs[b * size:(b + 1) * size])] += 1
        assert seen.max() <= 1


def test_a_swept_mesh_gets_two_colours_of_long_chunks():
    V = Space(rectangle(40, 40), 2)
    order, ptr, size = K.chunk_coloring(V.cell_dofs, V.n_dofs, 2)
    assert size == V.mesh.n_cells // 16 and len(ptr) - 1 == 2 and np.diff(ptr).min() >= 2


def test_simplex_kernels_load_from_the_disk_cache_in_a_new_process(tmp_path):
    """The specialized mass/diffusion kernels (scatter and row-by-row first matrices) are compiled
    once per machine, not once per process: a second interpreter finds every one it uses in
    Numba's on-disk cache."""
    import os
    import subprocess
    import sys

    code = ("import numba\n"
            "from solvers.fem import Space, diffusion, mass, _kernels as K, _row_assembly as R\n"
            "from solvers.mesh import box, rectangle\n"
            "for m in (rectangle(3, 3), box(2, 2, 2)):\n"
            "    V = Space(m, 1); diffusion(V, 1.0); mass(V, 1.0)\n"  # first by rows, then scattered
            "    W = Space(m, 1); mass(W, 1.0); diffusion(W, 1.0)\n"
            "for ks in (K._SIMPLEX_KERNELS, R._ROW_KERNELS):\n"
            "    print(sum(len(k.stats.cache_hits) for k in ks.values()),\n"
            "          sum(len(k.stats.cache_misses) for k in ks.values()), len(ks))\n")
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    root = str(Path(__file__).resolve().parents[2])
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=root,
                           check=True).stdout.split() for _ in range(2)]
    counts = np.array(runs[1], dtype=int).reshape(2, 3)
    for hits, misses, n in counts:
        assert n == 4 and misses == 0 and hits == n, runs


def test_prefetch_hint_changes_no_value_and_refuses_what_it_cannot_address():
    from numba import njit
    from numba.core.errors import TypingError

    from solvers.fem._prefetch import prefetch_write

    @njit
    def scatter(data, pos, val):
        for k in range(pos.shape[0]):
            if k + 4 < pos.shape[0]:
                prefetch_write(data, pos[k + 4])
            data[pos[k]] += val[k]

    rng = np.random.default_rng(3)
    pos = rng.integers(0, 1000, 5000)
    val = rng.standard_normal(5000)
    data = np.zeros(1000)
    scatter(data, pos, val)
    ref = np.zeros(1000)
    np.add.at(ref, pos, val)  # same order of additions per slot, so bitwise equal
    np.testing.assert_array_equal(data, ref)

    @njit
    def on_2d(a):
        prefetch_write(a, 0)

    with pytest.raises(TypingError):
        on_2d(np.zeros((2, 2)))


@settings(max_examples=30, deadline=None)
@given(nb=st.integers(1, 10), ncomp=st.integers(1, 3), npairs=st.integers(1, 6), sym=st.booleans(),
       seed=st.integers(0, 2**16))
def test_simplex_tables_rebuild_every_entry_the_scatter_adds(nb, ncomp, npairs, sym, seed):
    """The packed tensor and (qlist, vlist) of the simplex kernel give, for every map column
    scattered, the reference-tensor entry of its node pair: the full map's same-component entries
    (each once, none between components), or the symmetric map's pairs a <= b then components."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((npairs, nb, nb))
    A = A + A.transpose(0, 2, 1)  # the tensors of simplex_tensor are symmetric in (a, b)
    Apk, qlist, vlist, packed = K._simplex_tables(nb, ncomp, A, sym)
    assert Apk.shape[1] % 8 == 0 and not Apk[:, nb * (nb + 1) // 2:].any()
    if sym:
        pairs = [(a, b) for a in range(nb) for b in range(a, nb) for _ in range(ncomp)]
        assert qlist.tolist() == list(range(len(pairs)))
    else:
        nbd = nb * ncomp
        pairs = [(i // ncomp, j // ncomp) for i in range(nbd) for j in range(nbd) if i % ncomp == j % ncomp]
        want = [i * nbd + j for i in range(nbd) for j in range(nbd) if i % ncomp == j % ncomp]
        assert qlist.tolist() == want
    a, b = np.array(pairs).T
    np.testing.assert_array_equal(Apk[:, vlist], A[:, a, b])
    np.testing.assert_array_equal(packed, packed.T)
