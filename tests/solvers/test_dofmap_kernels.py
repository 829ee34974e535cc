"""Distributed dof-map kernels against numpy references (ownership, numbering, owned-row sparsity)."""

import numpy as np
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from solvers.fem import Space
from solvers.fem import _dofmap_kernels as D
from solvers.mesh import box, rectangle
from solvers.mesh.partition import partition_cells


def _reference_pattern(dofs, n):
    nb = dofs.shape[1]
    rows = np.repeat(dofs, nb, axis=1).ravel()
    cols = np.tile(dofs, (1, nb)).ravel()
    A = sp.coo_matrix((np.ones(rows.size), (rows, cols)), shape=(n, n)).tocsr()
    A.sum_duplicates()
    A.sort_indices()
    return A


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 8), st.integers(1, 8), st.integers(1, 5), st.integers(0, 10**6))
def test_owners_numbering_and_touching_cells_match_numpy(nx, ny, nparts, seed):
    mesh = rectangle(nx, ny)
    nparts = min(nparts, mesh.n_cells)
    part = np.random.default_rng(seed).integers(0, nparts, mesh.n_cells).astype(np.int32)
    owner = D.node_owner(mesh.cells, part, mesh.n_points, nparts)
    ref = np.full(mesh.n_points, nparts, dtype=np.int32)
    np.minimum.at(ref, mesh.cells.ravel(), np.repeat(part, mesh.cells.shape[1]))
    np.testing.assert_array_equal(owner, ref)
    new, ranges = D.owner_numbering(owner, nparts)
    order = np.lexsort((np.arange(mesh.n_points), owner))  # by owner, then old number
    np.testing.assert_array_equal(new[order], np.arange(mesh.n_points))
    np.testing.assert_array_equal(ranges, np.concatenate([[0], np.cumsum(np.bincount(owner, minlength=nparts))]))
    geo = mesh.cells[:, ::-1].copy()  # any per-cell rows: they must be gathered along
    for p in range(nparts):
        n0, n1 = ranges[p], ranges[p + 1]
        cells, lgeo, lnodes, colmap, lo, hi = D.rank_cells(mesh.cells, geo, owner, new, n0, n1, p)
        np.testing.assert_array_equal(cells, np.flatnonzero((owner[mesh.cells] == p).any(axis=1)))
        np.testing.assert_array_equal(lgeo, geo[cells])
        gnodes = new[mesh.cells[cells]]
        ghosts = np.setdiff1d(gnodes, np.arange(n0, n1))
        np.testing.assert_array_equal(colmap, np.union1d(ghosts, np.arange(n0, n1)))
        assert hi - lo == n1 - n0 and (colmap[lo:hi] == np.arange(n0, n1)).all()
        np.testing.assert_array_equal(colmap[lnodes], gnodes)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 6), st.integers(1, 6), st.integers(1, 3), st.integers(1, 3), st.integers(0, 10**6),
       st.sampled_from(["rows", "cells", None]), st.booleans())
def test_owned_rows_pattern_and_scatter_map_match_a_coo_reference(nx, ny, nc, nthreads, seed, by, p2):
    """Rows lo..hi of the pattern, in a compact local numbering mapped back by colmap; the
    incidence and the row sweeps split over 1-3 chunks give the same arrays; the scatter map
    written row by row or cell by cell is the same (P1 or P2 triangles)."""
    rng = np.random.default_rng(seed)
    mesh = rectangle(nx, ny)
    space = Space(mesh, 2 if p2 else 1)
    cells = space.cell_nodes
    n = space.n_nodes
    colmap = np.sort(rng.choice(3 * n, n, replace=False))  # increasing global ids of local nodes
    lo, hi = np.sort(rng.integers(0, n + 1, 2))
    indptr, indices, dmap = D.owned_pattern(cells, n, lo, hi, colmap, nc, nthreads, by=by)
    gdofs = (colmap[cells][:, :, None] * nc + np.arange(nc)).reshape(mesh.n_cells, -1)
    R = _reference_pattern(gdofs, 3 * n * nc)
    rows = colmap[lo:hi, None] * nc + np.arange(nc)
    Rs = R[rows.ravel()]
    np.testing.assert_array_equal(indptr, Rs.indptr)
    np.testing.assert_array_equal(indices, Rs.indices)
    nbd = gdofs.shape[1]
    erow = np.repeat(gdofs, nbd, axis=1)
    ecol = np.tile(gdofs, (1, nbd))
    owned = (erow >= colmap[lo] * nc) & (erow < colmap[hi - 1] * nc + nc) if hi > lo else np.zeros_like(erow, bool)
    assert ((dmap >= 0) == owned).all()
    row_of_slot = rows.ravel()[np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))]
    assert (indices[dmap[owned]] == ecol[owned]).all()
    assert (row_of_slot[dmap[owned]] == erow[owned]).all()


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 6), st.integers(1, 6), st.integers(1, 3), st.integers(0, 10**6))
def test_symmetric_scatter_and_mirror_equal_the_full_scatter_on_owned_rows(nx, ny, nc, seed):
    """Rows lo..hi of a contiguous global range: adding each coupling once through the symmetric
    map, then mirroring, gives the matrix rows that scattering both triangles gives."""
    from solvers.fem import _kernels as K

    rng = np.random.default_rng(seed)
    mesh = rectangle(nx, ny)
    n, nb = mesh.n_points, 3
    colmap = np.arange(n) + int(rng.integers(0, 5))
    lo, hi = np.sort(rng.integers(0, n + 1, 2))
    indptr, indices, dmap = D.owned_pattern(mesh.cells, n, lo, hi, colmap, nc, 1)
    smap, mlo, diag, mptr, src = D.symmetric_scatter(indptr, indices, dmap, mesh.cells, nc, int(colmap[0] + lo) * nc)
    # symmetric element matrices, the identity across components: S[e, a, b] I_nc
    S = rng.standard_normal((mesh.n_cells, nb, nb))
    S = S + S.transpose(0, 2, 1)
    full = np.kron(S, np.eye(nc)).reshape(mesh.n_cells, -1)
    ref = np.zeros(len(indices))
    np.add.at(ref, dmap[dmap >= 0], full[dmap >= 0])
    ia, ib = np.triu_indices(nb)
    once = np.repeat(S[:, ia, ib], nc, axis=1)  # (a, b, c) in smap order
    data = rng.standard_normal(len(indices))  # what a previous assembly left
    K.zero_unmirrored(indptr, mlo, diag, data)
    np.add.at(data, smap[smap >= 0], once[smap >= 0])
    K.mirror_lower(mlo, diag, mptr, src, data)
    np.testing.assert_allclose(data, ref, rtol=0, atol=1e-13)


def test_block_pattern_is_the_node_level_pattern_of_a_vector_space():
    V = Space(box(3, 2, 2), 1, (3,))
    indptr, indices, _ = V.pattern
    bptr, bind = V.block_pattern
    B = sp.csr_matrix((np.ones(len(indices)), indices, indptr), shape=(V.n_dofs, V.n_dofs)).tobsr((3, 3))
    np.testing.assert_array_equal(bptr, B.indptr)
    np.testing.assert_array_equal(bind, B.indices)
    assert B.nnz == 9 * len(bind)  # every node-node coupling is a full 3 x 3 block


def test_partition_is_computed_once_per_mesh_and_part_count():
    mesh = box(4, 4, 4)
    assert partition_cells(mesh, 3) is partition_cells(mesh, 3)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 6), st.integers(1, 6), st.booleans(), st.integers(0, 10**6))
def test_edge_numbering_is_a_numbering_of_the_distinct_vertex_pairs(nx, ny, three_d, seed):
    """Two cell edges get the same node iff they join the same two vertices; the ids are
    0..count-1 and ordered by the lower vertex (so vertex-ordered meshes give local edge rows)."""
    from solvers.fem.elements import entities

    mesh = box(nx, ny, 2) if three_d else rectangle(nx, ny)
    perm = np.random.default_rng(seed).permutation(mesh.n_points)
    cells = perm[mesh.cells]
    ends = np.array(entities(mesh.cell_type, 1), dtype=np.int64)
    nl = len(ends)
    out = np.full((len(cells), nl + 1), -7, dtype=np.int64)
    cols = np.arange(1, nl + 1)
    cols[0] = -1  # local edge 0 has no node: nothing written, still numbered
    lst = np.empty(len(cells) * nl, dtype=np.int32)
    count = D.number_edges(cells, ends, mesh.n_points, lst, out, cols, 100)
    a, b = cells[:, ends[:, 0]], cells[:, ends[:, 1]]
    pairs = np.stack([np.minimum(a, b), np.maximum(a, b)], axis=2).reshape(-1, 2)
    uniq, inv = np.unique(pairs, axis=0, return_inverse=True)
    assert count == len(uniq)
    np.testing.assert_array_equal(out[:, :2], -7)  # column 0 unused, column 1 is edge 0's
    got = (out[:, 2:] - 100).ravel()
    ref = inv.reshape(-1, nl)[:, 1:].ravel()
    # same partition of the cell edges: the map ref -> got is one to one
    m = {}
    for r, g in zip(ref, got):
        assert m.setdefault(r, g) == g
    assert len(set(m.values())) == len(m)
    assert got.min() >= 0 and got.max() < count
    lower = pairs.reshape(-1, nl, 2)[:, 1:, 0].ravel()
    order = np.argsort(got, kind="stable")
    assert np.all(np.diff(lower[order]) >= 0)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 30), min_size=0, max_size=40), st.integers(1, 8))
def test_row_split_partitions_the_rows_with_balanced_incidence(counts, nthreads):
    ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    cuts = [D.row_split(ptr, t, nthreads) for t in range(nthreads)]
    assert cuts[0][0] == 0 and cuts[-1][1] == len(counts)
    for (a0, a1), (b0, b1) in zip(cuts, cuts[1:]):
        assert a0 <= a1 == b0 <= b1
    total = ptr[-1]
    for t, (r0, r1) in enumerate(cuts):  # each share within one row of total / nthreads
        assert ptr[r1] - ptr[r0] <= total / nthreads + max(counts, default=0) + 1e-9
