"""Numba kernels for finite-element assembly: pure functions on arrays.

Conventions shared by every kernel:
  X      (n_points, gdim) vertex coordinates
  geo    (ne, ng) geometry nodes of each integration cell (vertices; P1/Q1 map)
  dphig  (nq, ng, tdim) reference gradients of the geometry basis at quadrature points
  dofs   (ne, nb) scalar (node) dofs of each cell; vector dof = node * ncomp + c
  phi    (nq, nb), dphi (nq, nb, tdim) reference basis values and gradients
  w      (nq,) reference quadrature weights
Local dof i = a * ncomp + c (node-major). tdim < gdim integrates on a manifold
(boundary facets): only value terms are allowed there.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._prefetch import prefetch_write

FORM_MASS = 0
FORM_DIFFUSION = 1
FORM_ELASTICITY = 2
FORM_GENERIC = 3


@njit(cache=True, inline="always")
def _jacobian(X, geo, e, dphig, q, J):
    ng, tdim = dphig.shape[1], dphig.shape[2]
    gdim = X.shape[1]
    for g in range(gdim):
        for t in range(tdim):
            s = 0.0
            for n in range(ng):
                s += X[geo[e, n], g] * dphig[q, n, t]
            J[g, t] = s


@njit(cache=True, inline="always")
def _det_inv(J, K):
    """|det J| (or the surface measure when J is not square); K = inv(J) when square."""
    gdim, tdim = J.shape
    if tdim == gdim:
        if tdim == 1:
            d = J[0, 0]
            K[0, 0] = 1.0 / d
        elif tdim == 2:
            d = J[0, 0] * J[1, 1] - J[0, 1] * J[1, 0]
            K[0, 0] = J[1, 1] / d
            K[0, 1] = -J[0, 1] / d
            K[1, 0] = -J[1, 0] / d
            K[1, 1] = J[0, 0] / d
        else:
            c00 = J[1, 1] * J[2, 2] - J[1, 2] * J[2, 1]
            c01 = J[1, 2] * J[2, 0] - J[1, 0] * J[2, 2]
            c02 = J[1, 0] * J[2, 1] - J[1, 1] * J[2, 0]
            d = J[0, 0] * c00 + J[0, 1] * c01 + J[0, 2] * c02
            K[0, 0] = c00 / d
            K[1, 0] = c01 / d
            K[2, 0] = c02 / d
            K[0, 1] = (J[0, 2] * J[2, 1] - J[0, 1] * J[2, 2]) / d
            K[1, 1] = (J[0, 0] * J[2, 2] - J[0, 2] * J[2, 0]) / d
            K[2, 1] = (J[0, 1] * J[2, 0] - J[0, 0] * J[2, 1]) / d
            K[0, 2] = (J[0, 1] * J[1, 2] - J[0, 2] * J[1, 1]) / d
            K[1, 2] = (J[0, 2] * J[1, 0] - J[0, 0] * J[1, 2]) / d
            K[2, 2] = (J[0, 0] * J[1, 1] - J[0, 1] * J[1, 0]) / d
        return abs(d)
    if tdim == 0:
        return 1.0
    # surface measure sqrt(det(J^T J)) on a manifold
    if tdim == 1:
        s = 0.0
        for g in range(gdim):
            s += J[g, 0] * J[g, 0]
        return np.sqrt(s)
    a = b = c = 0.0
    for g in range(gdim):
        a += J[g, 0] * J[g, 0]
        b += J[g, 0] * J[g, 1]
        c += J[g, 1] * J[g, 1]
    return np.sqrt(a * c - b * b)


_PREFETCH_CELLS = 16  # cells ahead whose scatter targets are prefetched (8-32 measured alike)
_PREFETCH_MIN_NODES = 6  # simplex kernels prefetch on cells with at least this many nodes (P2)
_BLOCK = 128  # cells per block: small arrays stay in L1/L2, inner loops run over cells (SIMD)


@njit(cache=True, inline="always", fastmath=True)
def _block_geometry(Xb, X, nc, dphig, q, J, Kt, det):
    """Jacobians of the nc cells of a block at quadrature point q, from their gathered geometry
    nodes Xb (ng, gdim, B): det (B,) = |det J| (or the surface measure on manifolds) and
    Kt (tdim, gdim, B) = inv(J) when J is square."""
    ng, tdim = dphig.shape[1], dphig.shape[2]
    gdim = X.shape[1]
    J[:, :, :nc] = 0.0
    for n in range(ng):
        for g in range(gdim):
            for t in range(tdim):
                d = dphig[q, n, t]
                if d != 0.0:
                    for c in range(nc):
                        J[g, t, c] += Xb[n, g, c] * d
    if tdim == gdim == 1:
        for c in range(nc):
            d = J[0, 0, c]
            Kt[0, 0, c] = 1.0 / d
            det[c] = abs(d)
    elif tdim == gdim == 2:
        for c in range(nc):
            d = J[0, 0, c] * J[1, 1, c] - J[0, 1, c] * J[1, 0, c]
            r = 1.0 / d
            Kt[0, 0, c] = J[1, 1, c] * r
            Kt[0, 1, c] = -J[0, 1, c] * r
            Kt[1, 0, c] = -J[1, 0, c] * r
            Kt[1, 1, c] = J[0, 0, c] * r
            det[c] = abs(d)
    elif tdim == gdim == 3:
        for c in range(nc):
            c00 = J[1, 1, c] * J[2, 2, c] - J[1, 2, c] * J[2, 1, c]
            c01 = J[1, 2, c] * J[2, 0, c] - J[1, 0, c] * J[2, 2, c]
            c02 = J[1, 0, c] * J[2, 1, c] - J[1, 1, c] * J[2, 0, c]
            d = J[0, 0, c] * c00 + J[0, 1, c] * c01 + J[0, 2, c] * c02
            r = 1.0 / d
            Kt[0, 0, c] = c00 * r
            Kt[1, 0, c] = c01 * r
            Kt[2, 0, c] = c02 * r
            Kt[0, 1, c] = (J[0, 2, c] * J[2, 1, c] - J[0, 1, c] * J[2, 2, c]) * r
            Kt[1, 1, c] = (J[0, 0, c] * J[2, 2, c] - J[0, 2, c] * J[2, 0, c]) * r
            Kt[2, 1, c] = (J[0, 1, c] * J[2, 0, c] - J[0, 0, c] * J[2, 1, c]) * r
            Kt[0, 2, c] = (J[0, 1, c] * J[1, 2, c] - J[0, 2, c] * J[1, 1, c]) * r
            Kt[1, 2, c] = (J[0, 2, c] * J[1, 0, c] - J[0, 0, c] * J[1, 2, c]) * r
            Kt[2, 2, c] = (J[0, 0, c] * J[1, 1, c] - J[0, 1, c] * J[1, 0, c]) * r
            det[c] = abs(d)
    elif tdim == 0:
        det[:nc] = 1.0
    elif tdim == 1:
        for c in range(nc):
            s = 0.0
            for g in range(gdim):
                s += J[g, 0, c] * J[g, 0, c]
            det[c] = np.sqrt(s)
    else:
        for c in range(nc):
            a = 0.0
            b = 0.0
            e = 0.0
            for g in range(gdim):
                a += J[g, 0, c] * J[g, 0, c]
                b += J[g, 0, c] * J[g, 1, c]
                e += J[g, 1, c] * J[g, 1, c]
            det[c] = np.sqrt(a * e - b * b)


@njit(cache=True, inline="always")
def _gather(X, geo, e0, nc, Xb):
    for c in range(nc):
        for n in range(geo.shape[1]):
            v = geo[e0 + c, n]
            for g in range(X.shape[1]):
                Xb[n, g, c] = X[v, g]


@njit(cache=True, inline="always", fastmath=True)
def _block_gradients(dphi, q, Kt, nc, G):
    """Physical gradients G (nb, gdim, B) = dphi[q] @ inv(J)."""
    nb, tdim = dphi.shape[1], dphi.shape[2]
    gdim = Kt.shape[1]
    for a in range(nb):
        for k in range(gdim):
            for c in range(nc):
                G[a, k, c] = 0.0
            for t in range(tdim):
                d = dphi[q, a, t]
                if d != 0.0:
                    for c in range(nc):
                        G[a, k, c] += d * Kt[t, k, c]


@njit(cache=True, fastmath=True, inline="always")
def _bilinear_block(e0, nc, X, geo, dphig, affine, ncomp, phi, dphi, w, form, c1, c2, GG, GV, VG, VV, dmap, data,
                    local, J, Kt, det, Xb, G, Ke, wc, wl):
    """Element matrices of cells e0..e0+nc (see `bilinear`), scattered or stored."""
    nb = phi.shape[1]
    nq = w.shape[0]
    tdim = dphi.shape[2]
    gdim = X.shape[1]
    nbd = nb * ncomp
    scatter = dmap.shape[0] > 0
    use_gg = GG.size > 0
    use_gv = GV.size > 0
    use_vg = VG.size > 0
    use_vv = VV.size > 0
    need_grad = form != FORM_MASS and tdim == gdim
    Ke[:, :, :nc] = 0.0
    _gather(X, geo, e0, nc, Xb)
    for q in range(nq):
        if q == 0 or not affine:
            _block_geometry(Xb, X, nc, dphig, q, J, Kt, det)
        if need_grad:
            _block_gradients(dphi, q, Kt, nc, G)
        for c in range(nc):
            wc[c] = w[q] * det[c] * c1[e0 + c, q]
        if form == FORM_MASS:
            for a in range(nb):
                for b in range(a, nb):
                    pab = phi[q, a] * phi[q, b]
                    for k in range(ncomp):
                        i = a * ncomp + k
                        j = b * ncomp + k
                        for c in range(nc):
                            Ke[i, j, c] += pab * wc[c]
        elif form == FORM_DIFFUSION:
            for a in range(nb):
                for b in range(a, nb):
                    for c in range(nc):
                        wl[c] = 0.0
                    for k in range(gdim):
                        for c in range(nc):
                            wl[c] += G[a, k, c] * G[b, k, c]
                    for k in range(ncomp):
                        i = a * ncomp + k
                        j = b * ncomp + k
                        for c in range(nc):
                            Ke[i, j, c] += wl[c] * wc[c]
        elif form == FORM_ELASTICITY:
            for c in range(nc):
                wl[c] = w[q] * det[c] * c2[e0 + c, q]
            for a in range(nb):
                for b in range(nb):
                    for k in range(gdim):
                        for l in range(gdim):
                            i = a * ncomp + k
                            j = b * ncomp + l
                            for c in range(nc):
                                v = wc[c] * G[a, k, c] * G[b, l, c] + wl[c] * G[a, l, c] * G[b, k, c]
                                Ke[i, j, c] += v
                    for k in range(gdim):
                        i = a * ncomp + k
                        j = b * ncomp + k
                        for m in range(gdim):
                            for c in range(nc):
                                Ke[i, j, c] += wl[c] * G[a, m, c] * G[b, m, c]
        else:
            for c in range(nc):
                wl[c] = w[q] * det[c]
            for a in range(nb):
                for k in range(ncomp):
                    i = a * ncomp + k
                    for b in range(nb):
                        for d in range(ncomp):
                            j = b * ncomp + d
                            for c in range(nc):
                                e = e0 + c
                                s = 0.0
                                if use_gg:
                                    for m in range(gdim):
                                        for n in range(gdim):
                                            s += GG[e, q, k * gdim + m, d * gdim + n] * G[a, m, c] * G[b, n, c]
                                if use_gv:
                                    for m in range(gdim):
                                        s += GV[e, q, k * gdim + m, d] * G[a, m, c] * phi[q, b]
                                if use_vg:
                                    for n in range(gdim):
                                        s += VG[e, q, k, d * gdim + n] * phi[q, a] * G[b, n, c]
                                if use_vv:
                                    s += VV[e, q, k, d] * phi[q, a] * phi[q, b]
                                Ke[i, j, c] += wl[c] * s
    if form == FORM_MASS or form == FORM_DIFFUSION:
        # only the upper triangle was computed: mirror it
        for i in range(nbd):
            for j in range(i):
                for c in range(nc):
                    Ke[i, j, c] = Ke[j, i, c]
    if scatter:
        for c in range(nc):
            e = e0 + c
            m = 0
            for i in range(nbd):
                for j in range(nbd):
                    p = dmap[e, m]
                    if p >= 0:  # -1: a row that another rank owns
                        data[p] += Ke[i, j, c]
                    m += 1
    else:
        for c in range(nc):
            for i in range(nbd):
                for j in range(nbd):
                    local[e0 + c, i, j] = Ke[i, j, c]


@njit(cache=True, parallel=True)
def bilinear(X, geo, dphig, affine, dofs, ncomp, phi, dphi, w, form, c1, c2, GG, GV, VG, VV, dmap, data, local,
             block_order, color_ptr, T):
    """Assemble a bilinear form over all cells, in blocks of _BLOCK cells, in parallel.

    form FORM_MASS: sum_q w c1 phi_a phi_b (identity in components)
         FORM_DIFFUSION: w c1 grad phi_a . grad phi_b (identity in components)
         FORM_ELASTICITY: w (c1 div u div v + 2 c2 eps(u):eps(v)), c1 = lambda, c2 = mu
         FORM_GENERIC: GG (ne,nq,ncomp*gdim,ncomp*gdim) grad-grad, GV (ne,nq,ncomp*gdim,ncomp)
           grad(test)-value(trial), VG (ne,nq,ncomp,ncomp*gdim), VV (ne,nq,ncomp,ncomp);
           empty arrays (size 0) are skipped.
    c1, c2: (ne, nq) coefficients (stride-0 broadcasts are fine).
    dmap (ne, nbd*nbd) CSR positions: if non-empty, scatter-add into data, one block colour at
    a time (block_order (nblocks,), color_ptr (ncolors+1,) from `block_coloring`: blocks of one
    colour share no dof, so threads never add into the same entry); else write local
    (ne, nbd, nbd) element matrices. T: number of threads (numba.get_num_threads()).
    """
    ne = dofs.shape[0]
    nb = phi.shape[1]
    tdim = dphi.shape[2]
    gdim = X.shape[1]
    nbd = nb * ncomp
    B = _BLOCK
    J = np.zeros((T, gdim, tdim, B))
    Kt = np.zeros((T, tdim, gdim, B))
    det = np.zeros((T, B))
    Xb = np.zeros((T, geo.shape[1], gdim, B))
    G = np.zeros((T, nb, gdim, B))
    Ke = np.zeros((T, nbd, nbd, B))
    wc = np.zeros((T, B))
    wl = np.zeros((T, B))
    nblocks = (ne + B - 1) // B
    scatter = dmap.shape[0] > 0
    ncol = color_ptr.shape[0] - 1 if scatter else 1
    for col in range(ncol):
        lo = color_ptr[col] if scatter else 0
        cnt = color_ptr[col + 1] - lo if scatter else nblocks
        # static round-robin split: thread t owns scratch t and blocks t, t+T, ...
        for t in prange(T):
            for k in range(t, cnt, T):
                e0 = (block_order[lo + k] if scatter else k) * B
                nc = min(B, ne - e0)
                _bilinear_block(e0, nc, X, geo, dphig, affine, ncomp, phi, dphi, w, form, c1, c2, GG, GV, VG, VV,
                                dmap, data, local, J[t], Kt[t], det[t], Xb[t], G[t], Ke[t], wc[t], wl[t])


@njit(cache=True)
def block_coloring(dofs, n, B):
    """Greedy colouring of blocks of B consecutive cells so that blocks of one colour share
    no dof. Returns block_order (nblocks,) grouped by colour and color_ptr (ncolors+1,).

    The colours around each dof are a bit set of W 64-bit words, W doubled whenever a block
    needs a colour past the last word, so any numbering gets a colouring: a mesh numbered
    along a sweep needs a few colours (one word), cells in random order up to one colour
    per block (parallel assembly then has little to share out, but stays exact)."""
    ne, nbd = dofs.shape
    nblocks = (ne + B - 1) // B
    W = 1
    mask = np.zeros((n, W), dtype=np.uint64)
    forb = np.zeros(W, dtype=np.uint64)
    full = ~np.uint64(0)
    color = np.empty(nblocks, dtype=np.int64)
    ncolors = 0
    for b in range(nblocks):
        e1 = min(ne, (b + 1) * B)
        forb[:] = 0
        for e in range(b * B, e1):
            for i in range(nbd):
                row = mask[dofs[e, i]]
                for k in range(W):
                    forb[k] |= row[k]
        c = -1
        for k in range(W):
            if forb[k] != full:  # the first colour free in this word
                bit = 0
                while (forb[k] >> np.uint64(bit)) & np.uint64(1):
                    bit += 1
                c = 64 * k + bit
                break
        if c < 0:  # every colour of the W words is taken around this block: twice the words
            grown = np.zeros((n, 2 * W), dtype=np.uint64)
            grown[:, :W] = mask
            mask = grown
            forb = np.zeros(2 * W, dtype=np.uint64)
            c = 64 * W
            W *= 2
        color[b] = c
        ncolors = max(ncolors, c + 1)
        word, bit = c // 64, np.uint64(1) << np.uint64(c % 64)
        for e in range(b * B, e1):
            for i in range(nbd):
                mask[dofs[e, i], word] |= bit
    color_ptr = np.zeros(ncolors + 1, dtype=np.int64)
    for b in range(nblocks):
        color_ptr[color[b] + 1] += 1
    for c in range(ncolors):
        color_ptr[c + 1] += color_ptr[c]
    fill = color_ptr[:ncolors].copy()
    order = np.empty(nblocks, dtype=np.int64)
    for b in range(nblocks):
        order[fill[color[b]]] = b
        fill[color[b]] += 1
    return order, color_ptr


def chunk_coloring(dofs, n, nthreads):
    """Colour chunks of consecutive cells as large as the numbering allows: start at
    ne / (8 nthreads) cells and halve (down to _BLOCK) until no colour has fewer chunks than
    threads. A mesh numbered along a sweep (structured, RCM, space-filling curve) gets two
    colours of long chunks, each walked in order, so that its scatter stays in cache; any
    other numbering ends at chunks of _BLOCK cells in as many colours as it needs.
    Returns (chunk_order, color_ptr, size) as `block_coloring` with blocks of `size` cells."""
    ne = dofs.shape[0]
    size = max(_BLOCK, -(-ne // (8 * nthreads)))
    while True:
        order, ptr = block_coloring(dofs, n, size)
        if size <= _BLOCK or np.diff(ptr).min() >= nthreads:
            return order, ptr, size
        size = max(_BLOCK, size // 2)


@njit(cache=True)
def linear(X, geo, dphig, affine, dofs, ncomp, phi, dphi, w, S, F, mode, out_global, out_cell, out_qp):
    """Integrate sum_q w (S[e,q,c] phi_a + F[e,q,c,k] d_k phi_a) for each local dof (a, c).

    S (ne, nq, ncomp) value coefficient, F (ne, nq, ncomp, gdim) flux/stress coefficient;
    empty arrays are skipped. mode 0: add into out_global (n_dofs,); mode 1: write
    out_cell (ne, nbd); mode 2: write out_qp (ne, nq, nbd) per quadrature point.
    """
    ne = dofs.shape[0]
    nb = phi.shape[1]
    nq = w.shape[0]
    tdim = dphi.shape[2]
    gdim = X.shape[1]
    J = np.empty((gdim, tdim))
    K = np.zeros((tdim, gdim))
    G = np.empty((nb, gdim))
    use_s = S.size > 0
    use_f = F.size > 0
    detJ = 0.0
    fe = np.empty(nb * ncomp)
    for e in range(ne):
        fe[:] = 0.0
        for q in range(nq):
            if q == 0 or not affine:
                _jacobian(X, geo, e, dphig, q, J)
                detJ = _det_inv(J, K)
            wq = w[q] * detJ
            if use_f:
                for a in range(nb):
                    for k in range(gdim):
                        s = 0.0
                        for t in range(tdim):
                            s += dphi[q, a, t] * K[t, k]
                        G[a, k] = s
            for a in range(nb):
                for c in range(ncomp):
                    v = 0.0
                    if use_s:
                        v += S[e, q, c] * phi[q, a]
                    if use_f:
                        for k in range(gdim):
                            v += F[e, q, c, k] * G[a, k]
                    v *= wq
                    if mode == 2:
                        out_qp[e, q, a * ncomp + c] = v
                    else:
                        fe[a * ncomp + c] += v
        if mode == 0:
            for a in range(nb):
                for c in range(ncomp):
                    out_global[dofs[e, a] * ncomp + c] += fe[a * ncomp + c]
        elif mode == 1:
            for i in range(nb * ncomp):
                out_cell[e, i] = fe[i]


@njit(cache=True, inline="always")
def _simplex_det(X, geo, e, dim):
    """|det J| of triangle (dim 2) or tetrahedron (dim 3) e, from its vertex differences.
    `_simplex_geometry(...)[0]` gives the same number but, called per cell with its padded
    products, made the load kernel 3x slower (measured on 6M tetrahedra)."""
    v0 = geo[e, 0]
    if dim == 2:
        v1, v2 = geo[e, 1], geo[e, 2]
        return abs((X[v1, 0] - X[v0, 0]) * (X[v2, 1] - X[v0, 1]) - (X[v1, 1] - X[v0, 1]) * (X[v2, 0] - X[v0, 0]))
    v1, v2, v3 = geo[e, 1], geo[e, 2], geo[e, 3]
    x0, y0, z0 = X[v0, 0], X[v0, 1], X[v0, 2]
    a0, a1, a2 = X[v1, 0] - x0, X[v1, 1] - y0, X[v1, 2] - z0
    b0, b1, b2 = X[v2, 0] - x0, X[v2, 1] - y0, X[v2, 2] - z0
    c0, c1, c2 = X[v3, 0] - x0, X[v3, 1] - y0, X[v3, 2] - z0
    return abs(a0 * (b1 * c2 - b2 * c1) + a1 * (b2 * c0 - b0 * c2) + a2 * (b0 * c1 - b1 * c0))


@njit(cache=True)
def simplex_values(X, geo, dim, wphi, dofs, ncomp, S, const, mode, out_global, out_cell):
    """`linear` with value terms only on affine simplices filling their dimension (dim 2 or 3):
    fe[a, c] = |det J_e| sum_q wphi[q, a] S[e, q, c], with wphi (nq, nb) = w[q] phi[q, a].
    const: S (1, 1, ncomp) is one value for every cell and point. mode 0 adds into out_global
    (n_dofs,), mode 1 writes out_cell (ne, nb * ncomp). The determinant comes straight from the
    vertex differences, with no inverse, and values go straight to their destination (no
    element buffer): loads are the vectors assembled most often (about 10x faster than `linear`
    on 6M tetrahedra)."""
    ne = geo.shape[0]
    nq, nb = wphi.shape
    msum = np.zeros(nb)  # sum_q wphi[q, a]: all a constant S needs
    for q in range(nq):
        for a in range(nb):
            msum[a] += wphi[q, a]
    for e in range(ne):
        det = _simplex_det(X, geo, e, dim)
        for a in range(nb):
            for c in range(ncomp):
                if const:
                    v = msum[a] * S[0, 0, c]
                else:
                    v = 0.0
                    for q in range(nq):
                        v += wphi[q, a] * S[e, q, c]
                if mode == 0:
                    out_global[dofs[e, a] * ncomp + c] += det * v
                else:
                    out_cell[e, a * ncomp + c] = det * v


@njit(cache=True)
def evaluate(X, geo, dphig, affine, dofs, ncomp, phi, dphi, w, u, val, grad, wdet):
    """Field u (n_dofs,) at quadrature points: values
    val (ne,nq,ncomp), gradients grad (ne,nq,ncomp,gdim) (skipped if empty; needs tdim == gdim),
    and integration weights wdet (ne,nq) = w * |det J|."""
    ne = dofs.shape[0]
    nb = phi.shape[1]
    nq = w.shape[0]
    tdim = dphi.shape[2]
    gdim = X.shape[1]
    J = np.empty((gdim, tdim))
    K = np.zeros((tdim, gdim))
    want_grad = grad.size > 0
    detJ = 0.0
    for e in range(ne):
        for q in range(nq):
            if q == 0 or not affine:
                _jacobian(X, geo, e, dphig, q, J)
                detJ = _det_inv(J, K)
            wdet[e, q] = w[q] * detJ
            for c in range(ncomp):
                s = 0.0
                for a in range(nb):
                    s += phi[q, a] * u[dofs[e, a] * ncomp + c]
                val[e, q, c] = s
                if want_grad:
                    for k in range(gdim):
                        g = 0.0
                        for a in range(nb):
                            gr = 0.0
                            for t in range(tdim):
                                gr += dphi[q, a, t] * K[t, k]
                            g += gr * u[dofs[e, a] * ncomp + c]
                        grad[e, q, c, k] = g


@njit(cache=True)
def map_points(X, geo, phig, out):
    """Physical coordinates out (ne, nq, gdim) of reference points, from geometry basis values
    phig (nq, ng)."""
    ne, ng = geo.shape
    nq = phig.shape[0]
    gdim = X.shape[1]
    for e in range(ne):
        for q in range(nq):
            for g in range(gdim):
                s = 0.0
                for n in range(ng):
                    s += phig[q, n] * X[geo[e, n], g]
                out[e, q, g] = s


# -- affine simplex, coefficient constant per cell ------------------------------------------
# On a straight simplex the reference-to-physical map is affine, so inv(J) and det J are
# constant per cell and a mass or diffusion element matrix with a per-cell coefficient is
# one contraction of a reference tensor (built from the quadrature rule once per call):
#   mass       Ke = c |det J| M,           M[a, b] = sum_q w phi_a phi_b
#   diffusion  Ke = c |det J| sum_st C_st D_st,  C = inv(J) inv(J)^T,
#              D_st[a, b] = sum_q w d_s phi_a d_t phi_b.
# The rows of inv(J) are r_s / det J with r_s built from the columns of J (perpendiculars in
# 2D, cross products in 3D), so c |det J| C_st = c / |det J| (r_s . r_t). Kernels are made per
# element size (dim, nb, ncomp) so that every local loop has a compile-time trip count.

def simplex_tensor(form, phi, dphi, w):
    """Reference tensor (npairs, nb, nb) of `simplex_kernel`: mass (1, nb, nb); diffusion one
    slice per pair s <= t (row-major upper triangle), D_st + D_ts off the diagonal."""
    if form == FORM_MASS:
        return np.ascontiguousarray(np.einsum("q,qa,qb->ab", w, phi, phi)[None])
    D = np.einsum("q,qas,qbt->stab", w, dphi, dphi)
    tdim = dphi.shape[2]
    out = [D[s, s] if s == t else D[s, t] + D[t, s] for s in range(tdim) for t in range(s, tdim)]
    return np.ascontiguousarray(np.stack(out))


_SIMPLEX_KERNELS: dict = {}


@njit(cache=True, inline="always")
def _simplex_geometry2(X, geo, e):
    """(|det J|, then the products r_s . r_t (s <= t) of the rows r_s = det J inv(J)[s]) of a
    triangle, padded with zeros to the seven numbers of a tetrahedron. One flat tuple: Numba's
    parfor analysis rejects a nested one once inlined into a prange kernel."""
    v0, v1, v2 = geo[e, 0], geo[e, 1], geo[e, 2]
    a0 = X[v1, 0] - X[v0, 0]
    a1 = X[v1, 1] - X[v0, 1]
    b0 = X[v2, 0] - X[v0, 0]
    b1 = X[v2, 1] - X[v0, 1]
    # rows of det J inv(J): (b1, -b0), (-a1, a0)
    return (abs(a0 * b1 - a1 * b0), b1 * b1 + b0 * b0, -(b1 * a1 + b0 * a0), a1 * a1 + a0 * a0,
            0.0, 0.0, 0.0)


@njit(cache=True, inline="always")
def _simplex_geometry3(X, geo, e):
    """As `_simplex_geometry2` for a tetrahedron."""
    v0, v1, v2, v3 = geo[e, 0], geo[e, 1], geo[e, 2], geo[e, 3]
    x0, y0, z0 = X[v0, 0], X[v0, 1], X[v0, 2]
    a0, a1, a2 = X[v1, 0] - x0, X[v1, 1] - y0, X[v1, 2] - z0
    b0, b1, b2 = X[v2, 0] - x0, X[v2, 1] - y0, X[v2, 2] - z0
    c0, c1, c2 = X[v3, 0] - x0, X[v3, 1] - y0, X[v3, 2] - z0
    # rows of det J inv(J): b x c, c x a, a x b
    p0, p1, p2 = b1 * c2 - b2 * c1, b2 * c0 - b0 * c2, b0 * c1 - b1 * c0
    q0, q1, q2 = c1 * a2 - c2 * a1, c2 * a0 - c0 * a2, c0 * a1 - c1 * a0
    u0, u1, u2 = a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0
    det = abs(a0 * p0 + a1 * p1 + a2 * p2)
    return (det, p0 * p0 + p1 * p1 + p2 * p2, p0 * q0 + p1 * q1 + p2 * q2, p0 * u0 + p1 * u1 + p2 * u2,
            q0 * q0 + q1 * q1 + q2 * q2, q0 * u0 + q1 * u1 + q2 * u2, u0 * u0 + u1 * u1 + u2 * u2)


@njit(cache=True, inline="always")
def _simplex_geometry(X, geo, e, dim):
    """Either of the above (both branches have one type). The
    kernels below call it by its global name with `dim` a constant of the closure: a captured
    dispatcher would serialize differently in every process, and Numba keys the on-disk cache of
    a closure on the serialized captured values, so the kernel was recompiled by every process.
    Inlined (Numba IR), so that the branch on the constant `dim` folds away and the tuple is
    not returned through memory: 3D P1 re-assembly 42-49 ms called, 36-37 ms inlined (1M cells,
    one thread)."""
    if dim == 2:
        return _simplex_geometry2(X, geo, e)
    return _simplex_geometry3(X, geo, e)


def simplex_kernel(dim, nb, ncomp, form, A, symmetric=False):
    """Mass (form FORM_MASS) or diffusion (FORM_DIFFUSION) on affine simplices (dim 2 or 3, the
    vertex order of the reference cell: J[:, t] = x_{t+1} - x_0) with a coefficient constant
    per cell, specialized on (dim, nb, ncomp) and on the reference tensor A (from
    `simplex_tensor`), which is compiled in as a constant. Returns the Numba function

        kernel(X, geo, coef, smap, data, local, chunk_order, color_ptr, size, T)

    X (n_points, dim), geo (ne, dim+1) vertices, coef (ne,) (any strides); smap the pattern's
    dmap (ne, nbd*nbd) (both triangles scatter-added) or, for `symmetric` kernels, the map of
    `_dofmap_kernels.symmetric_scatter` (each coupling added once, `mirror_lower` completes
    data); empty to write local (ne, nbd, nbd) instead; T threads. data must be zero where it is
    scattered into (`zero_unmirrored`). Cells are taken in chunks of `size` consecutive
    cells, colour by colour (chunk_order, color_ptr from `chunk_coloring`), each cell of a
    chunk in turn, so that the scatter finds the rows of the previous cells in cache. Entries
    between different components are zero and are not touched when scattering."""
    key = (dim, nb, ncomp, form, A.shape, A.tobytes(), bool(symmetric))
    if key not in _SIMPLEX_KERNELS:
        _SIMPLEX_KERNELS[key] = _make_simplex_kernel(dim, nb, ncomp, form == FORM_MASS, A.copy(), bool(symmetric))
    return _SIMPLEX_KERNELS[key]


def _simplex_tables(nb, ncomp, A, sym):
    """Constant tables of `_make_simplex_kernel`. Apk (npairs, ntp): the reference tensor on the
    node pairs a <= b (row-major), padded with zeros to a multiple of 8 columns so that the
    values of a cell are one SIMD sweep over its columns. qlist, vlist: the map columns the
    scatter reads and the packed pair each adds: every (i, j) = (a ncomp + c, b ncomp + c) of
    the full map, or every column of the symmetric map (its pairs a <= b, then components)."""
    iu = np.triu_indices(nb)
    npk = len(iu[0])
    ntp = -(-npk // 8) * 8
    Apk = np.zeros((A.shape[0], ntp))
    Apk[:, :npk] = A[:, iu[0], iu[1]]
    packed = np.zeros((nb, nb), dtype=np.int64)
    packed[iu] = np.arange(npk)
    packed[iu[1], iu[0]] = np.arange(npk)
    if sym:
        vlist = np.repeat(np.arange(npk), ncomp)
        qlist = np.arange(len(vlist))
    else:
        nbd = nb * ncomp
        i, j = np.divmod(np.arange(nbd * nbd), nbd)
        same = i % ncomp == j % ncomp  # entries between components are zero: not scattered
        qlist = np.flatnonzero(same)
        vlist = packed[i[same] // ncomp, j[same] // ncomp]
    return Apk, qlist.astype(np.int64), vlist.astype(np.int64), packed


def _make_simplex_kernel(dim, nb, ncomp, is_mass, A, sym):
    npairs = A.shape[0]
    Apk, qlist, vlist, packed = _simplex_tables(nb, ncomp, A, sym)
    ntp = Apk.shape[1]
    nq = len(qlist)
    # Scatter targets of a cell ahead prefetched (every other one): rows of P2 cells lie far
    # apart (3D P2 re-assembly 109 -> 83 ms with the values below, two threads; 2D P2 85 -> 76);
    # on P1 cells the extra loads cost about what the misses they avoid do (2D P1 kernel 10.7 ->
    # 11.4-11.9 ms, 3D P1 12.0 -> 11.1-11.4 ms: noise), so they do without.
    prefetch = nb >= _PREFETCH_MIN_NODES

    @njit(cache=True, parallel=True, fastmath=True)
    def kernel(X, geo, coef, smap, data, local, chunk_order, color_ptr, size, T):
        ne = geo.shape[0]
        nchunks = (ne + size - 1) // size
        scatter = smap.shape[0] > 0
        nmap = smap.shape[1]
        ncol = color_ptr.shape[0] - 1 if scatter else 1
        for col in range(ncol):
            lo = color_ptr[col] if scatter else 0
            cnt = color_ptr[col + 1] - lo if scatter else nchunks
            # static round-robin split: thread t takes chunks t, t+T, ... of this colour
            for t in prange(T):
                vals = np.empty(ntp)
                for k in range(t, cnt, T):
                    e0 = (chunk_order[lo + k] if scatter else k) * size
                    e1 = min(e0 + size, ne)
                    for e in range(e0, e1):
                        if prefetch and scatter and e + _PREFETCH_CELLS < e1:
                            # every other target of a cell ahead: its rows arrive before the adds
                            for q in range(0, nmap, 2):
                                pos = smap[e + _PREFETCH_CELLS, q]
                                if pos >= 0:
                                    prefetch_write(data, pos)
                        g = _simplex_geometry(X, geo, e, dim)  # |det J|, then the r_s . r_t
                        s = coef[e] * g[0] if is_mass else coef[e] / g[0]
                        # the values of the pairs a <= b in one sweep over the padded columns
                        # (vectorized: 3D P2 re-assembly 210 -> 152 ms on one thread)
                        if is_mass:
                            for m in range(ntp):
                                vals[m] = s * Apk[0, m]
                        else:
                            for m in range(ntp):
                                v = 0.0
                                for p in range(npairs):
                                    v += g[1 + p] * Apk[p, m]
                                vals[m] = s * v
                        if scatter:
                            for q in range(nq):
                                pos = smap[e, qlist[q]]
                                if pos >= 0:  # -1: rows that other ranks own
                                    data[pos] += vals[vlist[q]]
                        else:
                            local[e, :, :] = 0.0
                            for a in range(nb):
                                for b in range(nb):
                                    v = vals[packed[a, b]]
                                    for c in range(ncomp):
                                        local[e, a * ncomp + c, b * ncomp + c] = v

    return kernel


@njit(cache=True, parallel=True)
def zero_unmirrored(indptr, mlo, diag, data):
    """data = 0 on every row r except mlo[r]..diag[r]-1, which `mirror_lower` overwrites."""
    # explicit loops, not slice assignments: rows are short (2D P1: 7 entries, two ranges each)
    # and a slice costs more to set up than to fill (2D P1, 2M cells: 2.6-2.8 -> 2.1-2.3 ms)
    for r in prange(mlo.shape[0]):
        for k in range(indptr[r], mlo[r]):
            data[k] = 0.0
        for k in range(diag[r], indptr[r + 1]):
            data[k] = 0.0


@njit(cache=True, parallel=True)
def mirror_lower(mlo, diag, mptr, src, data):
    """Entries below the diagonal in owned columns copied from their mirror images (see
    `_dofmap_kernels.symmetric_scatter`): a symmetric scatter adds each coupling once."""
    for r in prange(mlo.shape[0]):
        j = mptr[r]
        for k in range(mlo[r], diag[r]):
            data[k] = data[src[j]]
            j += 1
