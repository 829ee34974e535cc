"""Numba kernels of the distributed dof map: node ownership, numbering, owned-row sparsity.

Pure functions on arrays. The Space (solvers/fem/space.py) calls them; each is tested against a
numpy reference in tests/solvers/test_dofmap_kernels.py.
"""

import numpy as np
from numba import njit, prange


@njit(cache=True)
def number_edges(cells, ends, n, lst, out, cols, offset):
    """Number the edges of the cells and write their nodes: out[e, cols[l]] = offset + id of
    local edge l of cell e (nothing where cols[l] < 0), whose vertices are cells[e, ends[l, 0]] and cells[e, ends[l, 1]];
    returns the number of edges. Ids follow the lower vertex, then first appearance.

    Linear time and little memory (five arrays of n or ne*nl entries): bucket the cell edges by
    their lower vertex (a counting sort into lst (ne*nl,), int32 or int64), then a marker on the
    upper vertex finds each edge's first appearance in its bucket. Writing `out` in place saves
    the (ne, nl) id arrays and the stacking of a numpy route (2D P2 on 2M triangles: 0.28 s for
    the ids alone, of which half were numpy temporaries)."""
    ne = cells.shape[0]
    nl = ends.shape[0]
    ptr = np.zeros(n + 1, dtype=np.int64)
    for e in range(ne):
        for l in range(nl):
            ptr[min(cells[e, ends[l, 0]], cells[e, ends[l, 1]]) + 1] += 1
    for v in range(n):
        ptr[v + 1] += ptr[v]
    fill = ptr[:n].copy()
    for e in range(ne):
        for l in range(nl):
            v = min(cells[e, ends[l, 0]], cells[e, ends[l, 1]])
            lst[fill[v]] = e * nl + l
            fill[v] += 1
    marker = fill  # reused: one entry per vertex, the bucket last seen at each upper vertex
    marker[:] = -1
    last = np.empty(n, dtype=np.int64)
    count = 0
    for v in range(n):
        for p in range(ptr[v], ptr[v + 1]):
            k = lst[p]
            e = k // nl
            l = k - e * nl
            w = max(cells[e, ends[l, 0]], cells[e, ends[l, 1]])
            if marker[w] != v:
                marker[w] = v
                last[w] = count
                count += 1
            if cols[l] >= 0:
                out[e, cols[l]] = offset + last[w]
    return count


@njit(cache=True)
def node_owner(cell_nodes, part, n_nodes, nparts):
    """Owner (n_nodes,) int32 of each node: the lowest part among the cells around it
    (nparts for a node in no cell). One pass over the cells."""
    owner = np.full(n_nodes, nparts, dtype=np.int32)
    ne, nb = cell_nodes.shape
    for e in range(ne):
        p = part[e]
        for i in range(nb):
            n = cell_nodes[e, i]
            if p < owner[n]:
                owner[n] = p
    return owner


@njit(cache=True)
def owner_numbering(owner, nparts):
    """Renumbering new (n,) int64 that makes each part's nodes a contiguous range, in part order,
    keeping the old order within a part; and ranges (nparts+1,) int64 of those ranges."""
    n = owner.shape[0]
    ranges = np.zeros(nparts + 1, dtype=np.int64)
    for i in range(n):
        ranges[owner[i] + 1] += 1
    for p in range(nparts):
        ranges[p + 1] += ranges[p]
    fill = ranges[:nparts].copy()
    new = np.empty(n, dtype=np.int64)
    for i in range(n):
        new[i] = fill[owner[i]]
        fill[owner[i]] += 1
    return new, ranges


@njit(cache=True)
def rank_cells(cell_nodes, geo, owner, new, n0, n1, p):
    """What part p assembles, in two passes over the cells: the cells touching a node it owns.

    cell_nodes (ne, nb) serial node numbers, geo (ne, ng) vertex ids, owner (n_nodes,) part of
    each serial node, new (n_nodes,) its number in the distributed numbering, [n0, n1) the range
    part p owns there. Returns cells (m,) increasing, their geo (m, ng), their local nodes
    (m, nb), colmap (n_local,) the global node of each local id (increasing: ghosts below n0,
    the owned range, ghosts above n1) and lo, hi the owned local ids. Ghosts are marked in an
    array over all nodes, so they come out sorted without a sort."""
    ne, nb = cell_nodes.shape
    ng = geo.shape[1]
    keep = np.zeros(ne, dtype=np.bool_)
    m = 0
    for e in range(ne):
        for i in range(nb):
            if owner[cell_nodes[e, i]] == p:
                keep[e] = True
                m += 1
                break
    cells = np.empty(m, dtype=np.int64)
    lgeo = np.empty((m, ng), dtype=np.int64)
    lid = np.zeros(owner.shape[0], dtype=np.int64)  # 1 marks a ghost (global id), then its local id
    k = 0
    for e in range(ne):
        if keep[e]:
            cells[k] = e
            for i in range(ng):
                lgeo[k, i] = geo[e, i]
            for i in range(nb):
                g = new[cell_nodes[e, i]]
                if g < n0 or g >= n1:
                    lid[g] = 1
            k += 1
    lo = 0
    for g in range(n0):
        lo += lid[g]
    hi = lo + n1 - n0
    n_local = hi
    for g in range(n1, lid.shape[0]):
        n_local += lid[g]
    colmap = np.empty(n_local, dtype=np.int64)
    j = 0
    for g in range(lid.shape[0]):
        if n0 <= g < n1:
            colmap[j] = g
            j += 1
        elif lid[g]:
            lid[g] = j
            colmap[j] = g
            j += 1
    lnodes = np.empty((m, nb), dtype=np.int64)
    for k in range(m):
        for i in range(nb):
            g = new[cell_nodes[cells[k], i]]
            lnodes[k, i] = g - n0 + lo if n0 <= g < n1 else lid[g]
    return cells, lgeo, lnodes, colmap, lo, hi


def _row_incidence(nodes, lo, hi, nthreads):
    """(cell, local node) incidence of rows lo..hi-1 as CSR: ptr (hi-lo+1,) int64, inc = e*nb + i
    (int32 while ne*nb fits, halving the traffic of the passes that read it), cells increasing
    within a row. A counting sort over cell chunks, one per thread: each thread counts its chunk's
    entries per row, and its offsets in a row follow those of the chunks before it."""
    ne, nb = nodes.shape
    # the per-chunk offsets take chunks * rows int64: at most about the size of the incidence
    chunks = max(1, min(nthreads, ne * nb // max(1, 2 * (hi - lo))))
    start, ptr = _incidence_offsets(nodes, lo, hi, chunks)
    inc = np.empty(ptr[-1], dtype=np.int32 if ne * nb < 2**31 else np.int64)
    _incidence_fill(nodes, lo, hi, start, inc, chunks)
    return ptr, inc


@njit(cache=True, parallel=True)
def _incidence_offsets(nodes, lo, hi, chunks):
    """start (chunks, nr): where chunk t writes its first entry of row r; ptr (nr+1,)."""
    ne, nb = nodes.shape
    nr = hi - lo
    chunk = (ne + chunks - 1) // chunks
    start = np.zeros((chunks, nr), dtype=np.int64)
    for t in prange(chunks):
        for e in range(t * chunk, min(ne, (t + 1) * chunk)):
            for i in range(nb):
                r = nodes[e, i]
                if lo <= r < hi:
                    start[t, r - lo] += 1
    ptr = np.zeros(nr + 1, dtype=np.int64)
    for r in range(nr):
        pos = ptr[r]
        for t in range(chunks):
            c = start[t, r]
            start[t, r] = pos
            pos += c
        ptr[r + 1] = pos
    return start, ptr


@njit(cache=True, parallel=True)
def _incidence_fill(nodes, lo, hi, start, inc, chunks):
    ne, nb = nodes.shape
    chunk = (ne + chunks - 1) // chunks
    for t in prange(chunks):
        fill = start[t]
        for e in range(t * chunk, min(ne, (t + 1) * chunk)):
            for i in range(nb):
                r = nodes[e, i]
                if lo <= r < hi:
                    inc[fill[r - lo]] = e * nb + i
                    fill[r - lo] += 1


@njit(cache=True)
def row_split(ptr, t, nthreads):
    """Rows [r0, r1) of thread t in a sweep over the rows of incidence pointer ptr (nr+1,), cut
    where the incidence entries split evenly. Equal row counts left one thread twice the
    other's work on P2, whose vertex rows (first) have 3x the cells of its edge rows (2D)."""
    nr = ptr.shape[0] - 1
    r0 = 0 if t == 0 else np.searchsorted(ptr, ptr[nr] * t // nthreads)
    r1 = nr if t == nthreads - 1 else np.searchsorted(ptr, ptr[nr] * (t + 1) // nthreads)
    return min(r0, nr), min(r1, nr)


@njit(cache=True, parallel=True)
def _row_lengths(nodes, n_local, lo, hi, ptr, inc, nthreads, rowtype):
    nb = nodes.shape[1]
    nr = hi - lo
    length = np.zeros(nr, dtype=np.int64)
    for t in prange(nthreads):
        marker = np.full(n_local, -1, dtype=rowtype.dtype)
        r0, r1 = row_split(ptr, t, nthreads)
        for r in range(r0, r1):
            m = 0
            for p in range(ptr[r], ptr[r + 1]):
                e = inc[p] // nb
                for j in range(nb):
                    c = nodes[e, j]
                    if marker[c] != r:
                        marker[c] = r
                        m += 1
            length[r] = m
    return length


@njit(cache=True, parallel=True)
def _mark_foreign_rows(nodes, lo, hi, nc, dmap, nthreads):
    """dmap entries of element rows outside lo..hi-1 set to -1; `_fill` writes all the others
    (a full -1 initialisation wrote the whole map twice: 0.1 s of a 1 s pattern on 6M cells)."""
    ne, nb = nodes.shape
    nbd = nb * nc
    chunk = (ne + nthreads - 1) // nthreads
    for t in prange(nthreads):
        for e in range(t * chunk, min(ne, (t + 1) * chunk)):
            for i in range(nb):
                r = nodes[e, i]
                if r < lo or r >= hi:
                    for k in range(i * nc * nbd, (i + 1) * nc * nbd):
                        dmap[e, k] = -1


@njit(cache=True, inline="always")
def row_columns(nodes, ptr, inc, r, marker, cols):
    """The local nodes of row r's cells into cols[:m], each once and sorted; returns m. marker
    (n_local,) must hold no r yet (one per thread; rows visit it in turn)."""
    nb = nodes.shape[1]
    m = 0
    for p in range(ptr[r], ptr[r + 1]):
        e = inc[p] // nb
        for j in range(nb):
            c = nodes[e, j]
            if marker[c] != r:
                marker[c] = r
                cols[m] = c
                m += 1
    for a in range(1, m):  # rows are short: insertion sort
        v = cols[a]
        b = a - 1
        while b >= 0 and cols[b] > v:
            cols[b + 1] = cols[b]
            b -= 1
        cols[b + 1] = v
    return m


@njit(cache=True, parallel=True)
def _fill(nodes, n_local, lo, hi, ptr, inc, nptr, maxlen, colmap, nc, indices, dmap, nthreads, write_map, rowtype):
    """indices of the rows lo..hi-1, and (write_map) dmap of their entries, row by row."""
    nb = nodes.shape[1]
    nbd = nb * nc
    for t in prange(nthreads):
        marker = np.full(n_local, -1, dtype=rowtype.dtype)
        where = np.zeros(n_local if write_map else 0, dtype=np.int32)  # only the map reads it
        cols = np.empty(maxlen, dtype=np.int64)
        r0, r1 = row_split(ptr, t, nthreads)
        for r in range(r0, r1):
            m = row_columns(nodes, ptr, inc, r, marker, cols)
            base = nc * nc * nptr[r]
            for k in range(m):
                if write_map:
                    where[cols[k]] = k
                g = colmap[cols[k]] * nc
                for c in range(nc):
                    for d in range(nc):
                        indices[base + c * nc * m + k * nc + d] = g + d
            if not write_map:
                continue
            for p in range(ptr[r], ptr[r + 1]):
                e = inc[p] // nb
                i = inc[p] - e * nb
                for j in range(nb):
                    k = where[nodes[e, j]]
                    for c in range(nc):
                        row = (i * nc + c) * nbd + j * nc
                        for d in range(nc):
                            dmap[e, row + d] = base + c * nc * m + k * nc + d


@njit(cache=True, parallel=True)
def _cell_map(nodes, lo, hi, nptr, colmap, nc, indices, dmap, nthreads):
    """dmap cell by cell from the finished indices: the cell's nodes sorted by global number,
    then one merge along each of its rows (sorted), so that dmap is written in order."""
    ne, nb = nodes.shape
    nbd = nb * nc
    chunk = (ne + nthreads - 1) // nthreads
    for t in prange(nthreads):
        order = np.empty(nb, dtype=np.int64)
        gcol = np.empty(nb, dtype=np.int64)
        kpos = np.empty(nb, dtype=np.int64)
        for e in range(t * chunk, min(ne, (t + 1) * chunk)):
            for j in range(nb):  # insertion sort of the cell's nodes by global dof
                gcol[j] = colmap[nodes[e, j]] * nc
                b = j - 1
                while b >= 0 and gcol[order[b]] > gcol[j]:
                    order[b + 1] = order[b]
                    b -= 1
                order[b + 1] = j
            for i in range(nb):
                r = nodes[e, i]
                if r < lo or r >= hi:
                    for k in range(i * nc * nbd, (i + 1) * nc * nbd):
                        dmap[e, k] = -1
                    continue
                m = nptr[r - lo + 1] - nptr[r - lo]
                base = nc * nc * nptr[r - lo]
                k = 0
                for q in range(nb):
                    j = order[q]
                    while indices[base + k * nc] != gcol[j]:
                        k += 1
                    kpos[j] = k
                for c in range(nc):
                    row = (i * nc + c) * nbd
                    for j in range(nb):
                        for d in range(nc):
                            dmap[e, row + j * nc + d] = base + c * nc * m + kpos[j] * nc + d


def owned_pattern(nodes, n_local, lo, hi, colmap, nc, nthreads, by=None):
    """Sparsity of the rows of local nodes lo..hi-1 (all components) of the matrices assembled
    over cells with local nodes `nodes` (ne, nb) in 0..n_local-1.

    colmap (n_local,) int64: global node of each local node, increasing (so that local order is
    global order). nc: components per node; dof of (node, c) is node * nc + c, so every
    node-node coupling is a full nc x nc block stored row by row. Returns indptr ((hi-lo)*nc+1,),
    indices (global dofs, sorted per row) and dmap (ne, (nb*nc)**2), the position in indices of
    each element-matrix entry (row-major), -1 for rows outside lo..hi-1; int32 (int64 beyond
    2**31 entries: int32 halves the memory traffic of every matvec and re-assembly).

    by: "rows" writes dmap in the row sweep that builds indices, "cells" in a second sweep
    over the cells (`_cell_map`); None picks "cells" where rows have fewer than 4 cells on
    average. A row sweep writes each cell's map in nb pieces far apart in time, which costs
    most where each row has little else to do: 2D P2 on 2M triangles (3 cells per row) wrote
    its map in 1.4 s by rows and 0.4 s by cells into touched memory, and the whole pattern
    took 1.8 s instead of 2.1-2.2 s; 3D P2 (7 cells per row) and P1 (6 and 24) were as fast
    or faster by rows (same period, two threads).
    """
    if by not in ("rows", "cells", None):
        raise ValueError(f"by={by!r}: 'rows', 'cells' or None")
    ptr, inc, length, nptr, indptr, rowtype = csr_rows(nodes, n_local, lo, hi, nc, nthreads)
    if by is None:
        by = "cells" if len(inc) < 4 * (hi - lo) else "rows"
    indices = np.empty(int(indptr[-1]), dtype=indptr.dtype)
    dmap = np.empty((nodes.shape[0], (nodes.shape[1] * nc) ** 2), dtype=indptr.dtype)
    by_rows = by == "rows"
    if by_rows:
        _mark_foreign_rows(nodes, lo, hi, nc, dmap, nthreads)
    _fill(nodes, n_local, lo, hi, ptr, inc, nptr, int(length.max(initial=0)), colmap, nc, indices, dmap, nthreads,
          by_rows, rowtype)
    if not by_rows:
        _cell_map(nodes, lo, hi, nptr, colmap, nc, indices, dmap, nthreads)
    return indptr, indices, dmap


def csr_rows(nodes, n_local, lo, hi, nc, nthreads):
    """The row structure of `owned_pattern`: (ptr, inc) the (cell, local node) incidence of the
    rows (`_row_incidence`), length (hi-lo,) int64 node-row lengths, nptr (hi-lo+1,) int64 their
    offsets, indptr ((hi-lo)*nc+1,) of the dof rows (int32 while the entries fit, else int64),
    and rowtype, an empty array of the dtype that holds a row number (int32 where it fits: the
    random marker accesses then touch half the cache lines; 2D P2 fill 0.56-0.66 -> 0.39-0.51 s)."""
    ptr, inc = _row_incidence(nodes, lo, hi, nthreads)
    rowtype = np.empty(0, dtype=np.int32 if hi - lo < 2**31 - 1 else np.int64)
    length = _row_lengths(nodes, n_local, lo, hi, ptr, inc, nthreads, rowtype)
    nptr = np.zeros(len(length) + 1, dtype=np.int64)
    np.cumsum(length, out=nptr[1:])
    # dof row r*nc + c starts after the nc*nc blocks of earlier node rows and c rows of this one
    itype = np.int32 if nc * nc * nptr[-1] < 2**31 - 1 else np.int64
    starts = nc * nc * nptr[:-1, None] + np.arange(nc) * (nc * length[:, None])
    indptr = np.empty(len(length) * nc + 1, dtype=itype)
    indptr[:-1] = starts.ravel()
    indptr[-1] = nc * nc * nptr[-1]
    return ptr, inc, length, nptr, indptr, rowtype


def scatter_map(nodes, lo, hi, indptr, indices, colmap, nc, nthreads):
    """dmap of `owned_pattern` from a finished pattern (indptr, indices), by the cell sweep of
    `_cell_map`: for a space whose first matrix was assembled row by row (`_row_assembly`)."""
    nptr = np.asarray(indptr[::nc], dtype=np.int64) // (nc * nc)
    dmap = np.empty((nodes.shape[0], (nodes.shape[1] * nc) ** 2), dtype=indptr.dtype)
    _cell_map(nodes, lo, hi, nptr, colmap, nc, indices, dmap, nthreads)
    return dmap


def symmetric_scatter(indptr, indices, dmap, nodes, nc, dof_lo):
    """Scatter map of a symmetric form with the identity across components (mass, diffusion):
    each coupling is added once, into the upper triangle, and a mirror pass copies it below.

    indptr, indices, dmap: `owned_pattern` of this rank's rows (global dofs dof_lo, dof_lo+1, ...)
    over cells with local nodes `nodes` (ne, nb), numbered in global order.
    Returns (smap, mlo, diag, mptr, src):
    smap (ne, nb(nb+1)/2 * nc): for local nodes a <= b (row-major) and component c, the position
      of the coupling of dofs (a, c) and (b, c): the upper-triangle one (row < column) where this
      rank owns that row, else the one in the row it owns, -1 where it owns neither;
    per owned row r, the entries mlo[r]..diag[r]-1 are those below the diagonal in owned columns:
      they are filled from src[mptr[r]:mptr[r+1]], their mirror images (`mirror_lower`), and are
      the only ones the scatter does not write.
    """
    smap = _symmetric_map(dmap, nodes, nc)
    mlo, diag = _lower_ranges(indptr, indices, dof_lo)
    mptr = np.zeros(len(mlo) + 1, dtype=np.int64)
    np.cumsum(diag - mlo, out=mptr[1:])
    src = np.empty(mptr[-1], dtype=indices.dtype)
    _mirror_sources(indptr, indices, dof_lo, mlo, diag, mptr, src)
    return smap, mlo, diag, mptr, src


@njit(cache=True, parallel=True)
def _symmetric_map(dmap, nodes, nc):
    ne, nb = nodes.shape
    nbd = nb * nc
    smap = np.empty((ne, nb * (nb + 1) // 2 * nc), dtype=dmap.dtype)
    for e in prange(ne):
        m = 0
        for a in range(nb):
            for b in range(a, nb):
                for c in range(nc):
                    i = a * nc + c
                    j = b * nc + c
                    pij = dmap[e, i * nbd + j]  # in the row of dof i, at the column of dof j
                    pji = dmap[e, j * nbd + i]
                    # node order is global order: no lookup in `indices` (a cache miss each)
                    if pij >= 0 and (pji < 0 or nodes[e, a] <= nodes[e, b]):
                        smap[e, m] = pij
                    else:
                        smap[e, m] = pji
                    m += 1
    return smap


@njit(cache=True, parallel=True)
def _lower_ranges(indptr, indices, dof_lo):
    n = indptr.shape[0] - 1
    mlo = np.empty(n, dtype=np.int64)
    diag = np.empty(n, dtype=np.int64)
    for r in prange(n):
        a, b = indptr[r], indptr[r + 1]
        mlo[r] = a + np.searchsorted(indices[a:b], dof_lo)
        diag[r] = a + np.searchsorted(indices[a:b], dof_lo + r)
    return mlo, diag


@njit(cache=True, parallel=True)
def _mirror_sources(indptr, indices, dof_lo, mlo, diag, mptr, src):
    for r in prange(mlo.shape[0]):
        g = dof_lo + r
        for k in range(mlo[r], diag[r]):
            c = indices[k] - dof_lo  # an owned row, above this one
            a, b = indptr[c], indptr[c + 1]
            src[mptr[r] + k - mlo[r]] = a + np.searchsorted(indices[a:b], g)
