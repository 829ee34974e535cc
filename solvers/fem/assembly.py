"""Assembly of matrices and vectors on a Space, with Numba kernels.

Every matrix on a space shares the space's CSR pattern (built once), so sums of
matrices are sums of their `data` arrays and re-assembly refills `data` in place
(`out=`). Coefficients may be given as
  - a number,
  - a dict {region name: number} (every cell must be covered),
  - an array (ne,) constant per cell,
  - an array (ne, nq) at the space's quadrature points (`Space.quadrature`),
  - a callable f(x) of the quadrature points x (ne, nq, dim) returning (ne, nq).
"""

from __future__ import annotations

import numba
import numpy as np
import scipy.sparse as sp

from rom.errors import MeshError, ShapeError
from solvers.fem import _kernels as K
from solvers.fem import _row_assembly
from solvers.fem.space import Space, Tabulation

_EMPTY4 = np.zeros((0, 0, 0, 0))
_EMPTY3 = np.zeros((0, 0, 0))
_EMPTY2 = np.zeros((0, 0))
_NOMAP = np.zeros((0, 0), dtype=np.int32)
_NOLOCAL = np.zeros((0, 0, 0))
_NOCOLORS = (np.zeros(0, dtype=np.int64), np.zeros(1, dtype=np.int64))


# -- coefficients ------------------------------------------------------------------------
def _per_cell(space: Space, value, name: str):
    """Return (array (ne, nq?) or (ne,), is_per_qp) without expanding constants."""
    ne = space.mesh.n_cells
    if callable(value):
        return None, True
    if isinstance(value, dict):
        out = np.full(ne, np.nan)
        for region, v in value.items():
            out[space.mesh.region(region)] = float(v)
        if np.isnan(out).any():
            missing = int(np.isnan(out).sum())
            raise MeshError(
                f"{name}: {missing} cells belong to none of the regions {sorted(value)}; "
                "give a value for every region or tag the remaining cells"
            )
        return out, False
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        return np.broadcast_to(arr, (ne,)), False
    if arr.shape == (ne,):
        return arr, False
    if arr.ndim == 2 and arr.shape[0] == ne:
        return arr, True
    raise ShapeError(f"{name} has shape {arr.shape}; give a number, a region dict, (ne,)=({ne},) or (ne, nq)")


def _coefficient(space: Space, value, name: str, tab: Tabulation) -> np.ndarray:
    """(ne, nq) float64 coefficient at the points of `tab` (possibly a stride-0 view)."""
    ne, nq = space.mesh.n_cells, tab.nq
    if callable(value):
        x = space.quadrature_points(tab.rule.order)
        out = np.asarray(value(x), dtype=np.float64)
        if out.size == ne * nq:
            out = out.reshape(ne, nq)
        elif out.size == 1:
            out = np.broadcast_to(out.reshape(1, 1), (ne, nq))
        if out.shape != (ne, nq):
            raise ShapeError(f"{name}(x) returned shape {out.shape}, expected ({ne}, {nq})")
        return out
    arr, per_qp = _per_cell(space, value, name)
    if per_qp:
        if arr.shape[1] != nq:
            raise ShapeError(
                f"{name} has {arr.shape[1]} values per cell but the quadrature rule has {nq} points; "
                "give values at Space.quadrature_points()"
            )
        return np.ascontiguousarray(arr)
    return np.broadcast_to(arr[:, None], (ne, nq))


def _order(space: Space, order, *coefs) -> int | None:
    """Quadrature order: the space's rule when any coefficient lives at quadrature points,
    else the lowest order exact for the form (constant coefficients per cell)."""
    if order is not None:
        return int(order)
    for c in coefs:
        if callable(c) or (isinstance(c, np.ndarray) and c.ndim == 2):
            return None
    return 2 * (space.degree - 1) if space.affine else 2 * space.degree


# -- matrices -----------------------------------------------------------------------------
def _new_matrix(space: Space, out, zero: bool = True) -> sp.csr_matrix:
    """A zero CSR matrix on the space's pattern, or `out` checked (and zeroed unless `zero` is False)."""
    indptr, indices = space.csr
    shape = (space.n_owned, space.n_dofs)
    if out is None:
        data = np.zeros(len(indices))
        return sp.csr_matrix((data, indices, indptr), shape=shape)
    if out.shape != shape or out.nnz != len(indices):
        raise ShapeError("out= is not a matrix of this space's pattern; pass one returned by an assembly on it")
    if zero:
        out.data[:] = 0.0
    return out


_SIMPLEX_DPHIG = {2: np.array([[-1.0, -1.0], [1.0, 0.0], [0.0, 1.0]]),
                  3: np.array([[-1.0, -1.0, -1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])}


def _affine_simplex(space: Space, tab: Tabulation) -> bool:
    """Straight simplices filling their dimension, in the reference vertex order: the cells on
    which the specialized simplex kernels apply."""
    dim = space.mesh.dim
    return (space.affine and dim in _SIMPLEX_DPHIG and tab.dphig.shape[1:] == (dim + 1, dim)
            and np.array_equal(tab.dphig[0], _SIMPLEX_DPHIG[dim]))


def _simplex_coefficient(space: Space, tab: Tabulation, form: int, c1) -> np.ndarray | None:
    """(ne,) per-cell coefficient when the specialized affine-simplex kernel applies (mass or
    diffusion, straight simplices filling their dimension, a coefficient constant in each cell),
    else None: coefficients that vary inside a cell take the generic kernel."""
    if form not in (K.FORM_MASS, K.FORM_DIFFUSION) or not _affine_simplex(space, tab):
        return None
    if c1.shape[1] == 1 or c1.strides[1] == 0:
        return c1[:, 0]
    return None


def _run_bilinear(space: Space, tab: Tabulation, form: int, c1, c2, GG, GV, VG, VV, out, local: bool):
    """The generic blocked kernel: any form, element and coefficient."""
    cells = space.assembly_cells
    if space.distributed:
        c1, c2 = c1[cells], c2[cells]
        GG, GV, VG, VV = (a[cells] if a.size else a for a in (GG, GV, VG, VV))
    geo, nodes = space._assembly_geo, space._local_nodes[0]  # the kernel reads only its length
    args = (space.mesh.points, geo, tab.dphig, space.affine, nodes, space.ncomp,
            tab.phi, tab.dphi, tab.rule.weights, form, c1, c2, GG, GV, VG, VV)
    if local:
        nbd = space.n_cell_dofs
        Ke = np.empty((len(geo), nbd, nbd))
        K.bilinear(*args, _NOMAP, np.zeros(0), Ke, *_NOCOLORS, numba.get_num_threads())
        return Ke
    A = _new_matrix(space, out)
    K.bilinear(*args, space.pattern[2], A.data, _NOLOCAL, *space.block_colors, numba.get_num_threads())
    return A


def _run_mass_or_diffusion(space: Space, tab: Tabulation, form: int, c, out, local: bool):
    """The specialized affine-simplex kernel where it applies, else the generic one."""
    coef = _simplex_coefficient(space, tab, form, c)
    if coef is None:
        return _run_bilinear(space, tab, form, c, c, _EMPTY4, _EMPTY4, _EMPTY4, _EMPTY4, out, local)
    if space.distributed:
        coef = coef[space.assembly_cells]
    A = K.simplex_tensor(form, tab.phi, tab.dphi, tab.rule.weights)
    # P1 re-assembly: each coupling added once, then mirrored (10 instead of 16 additions per
    # tetrahedron). Not for the first matrix of a space: building the map costs about three
    # fills, which one assembly does not win back. Higher degrees number edge dofs after the
    # vertices, so mirror images lie far apart and the mirror pass cost more than it saved
    # (P2 3D 123 -> 155 ms, 2D 45 -> 106 ms, two threads).
    symmetric = space.degree == 1 and not local and space.fast_fills > 0
    args = (space.mesh.points, space._assembly_geo, coef)
    if not local and out is None and space.ncomp == 1 and not space.has_csr:
        # a space's first matrix: its CSR columns and values in one sweep over the rows, no
        # scatter map (built at the second matrix, `Space.pattern`)
        nodes, colmap, lo, hi = space._local_nodes
        indptr, indices, data = _row_assembly.first_matrix(*args, nodes, len(colmap), lo, hi, colmap,
                                                           space.mesh.dim, form == K.FORM_MASS, A,
                                                           numba.get_num_threads())
        space._csr = (indptr, indices)
        space.fast_fills += 1
        return sp.csr_matrix((data, indices, indptr), shape=(space.n_owned, space.n_dofs))
    kernel = K.simplex_kernel(space.mesh.dim, tab.phi.shape[1], space.ncomp, form, A, symmetric)
    args = (space.mesh.points, space._simplex_geo, coef)  # uint32 vertices for the scatter kernel
    if local:
        nbd = space.n_cell_dofs
        Ke = np.empty((len(space._assembly_geo), nbd, nbd))
        kernel(*args, _NOMAP, np.zeros(0), Ke, *_NOCOLORS, K._BLOCK, numba.get_num_threads())
        return Ke
    M = _new_matrix(space, out, zero=False)
    space.fast_fills += 1
    indptr = space.csr[0]
    if symmetric:
        smap, mlo, diag, mptr, src = space.symmetric_pattern
        K.zero_unmirrored(indptr, mlo, diag, M.data)
        kernel(*args, smap, M.data, _NOLOCAL, *space.chunk_colors, numba.get_num_threads())
        K.mirror_lower(mlo, diag, mptr, src, M.data)
    else:
        K.zero_unmirrored(indptr, indptr[:-1], indptr[:-1], M.data)
        kernel(*args, space.pattern[2], M.data, _NOLOCAL, *space.chunk_colors, numba.get_num_threads())
    return M


def mass(space: Space, rho=1.0, *, order: int | None = None, out=None, local: bool = False):
    """Mass matrix sum_cells int rho u.v dx (identity across components). CSR (n_dofs, n_dofs),
    or element matrices (ne, nbd, nbd) with local=True."""
    tab = space.tabulation(order)
    c = _coefficient(space, rho, "rho", tab)
    return _run_mass_or_diffusion(space, tab, K.FORM_MASS, c, out, local)


def diffusion(space: Space, kappa=1.0, *, order: int | None = None, out=None, local: bool = False):
    """Stiffness matrix int kappa grad u : grad v dx (identity across components)."""
    tab = space.tabulation(_order(space, order, kappa))
    c = _coefficient(space, kappa, "kappa", tab)
    return _run_mass_or_diffusion(space, tab, K.FORM_DIFFUSION, c, out, local)


def lame(E, nu, plane: str = "strain"):
    """Lamé parameters (lambda, mu) from Young's modulus E and Poisson's ratio nu.
    plane="stress" gives the effective 2D lambda of plane stress."""
    E = np.asarray(E, dtype=np.float64)
    nu = np.asarray(nu, dtype=np.float64)
    if np.any(nu <= -1) or np.any(nu >= 0.5):
        raise ShapeError(f"Poisson's ratio must lie in (-1, 0.5); got {nu}")
    mu = E / (2 * (1 + nu))
    lam = E * nu / ((1 + nu) * (1 - 2 * nu))
    if plane == "stress":
        lam = 2 * lam * mu / (lam + 2 * mu)
    elif plane not in ("strain", "3d"):
        raise ShapeError(f"plane={plane!r}: use 'strain', 'stress' or '3d'")
    return lam, mu


def elasticity(space: Space, lam=None, mu=None, *, order: int | None = None, out=None, local: bool = False):
    """Isotropic linear elasticity int lam div u div v + 2 mu eps(u):eps(v) dx on a vector space
    (ncomp == dim). lam, mu in Pa, as coefficients (see module doc); use `lame` for E, nu."""
    if space.ncomp != space.mesh.dim:
        raise ShapeError(f"elasticity needs a vector space with {space.mesh.dim} components; got {space.ncomp}")
    tab = space.tabulation(_order(space, order, lam, mu))
    c1 = _coefficient(space, lam, "lam", tab)
    c2 = _coefficient(space, mu, "mu", tab)
    return _run_bilinear(space, tab, K.FORM_ELASTICITY, c1, c2, _EMPTY4, _EMPTY4, _EMPTY4, _EMPTY4, out, local)


def bilinear_form(space: Space, *, GG=None, GV=None, VG=None, VV=None, out=None, local: bool = False):
    """General bilinear form with coefficients at the space's quadrature points.

    For test dof (a, c) and trial dof (b, d):
      GG (ne, nq, ncomp*dim, ncomp*dim): d_k v_c  GG[c*dim+k, d*dim+l]  d_l u_d
      GV (ne, nq, ncomp*dim, ncomp):     d_k v_c  GV[c*dim+k, d]         u_d
      VG (ne, nq, ncomp, ncomp*dim):     v_c      VG[c, d*dim+l]         d_l u_d
      VV (ne, nq, ncomp, ncomp):         v_c      VV[c, d]               u_d
    This is the tangent of any material law given at quadrature points.
    """
    tab = space.tabulation()
    ne, nq, nc, d = space.mesh.n_cells, tab.nq, space.ncomp, space.mesh.dim
    shapes = {"GG": (nc * d, nc * d), "GV": (nc * d, nc), "VG": (nc, nc * d), "VV": (nc, nc)}
    arrs = {}
    for name, val in (("GG", GG), ("GV", GV), ("VG", VG), ("VV", VV)):
        if val is None:
            arrs[name] = _EMPTY4
            continue
        a = np.asarray(val, dtype=np.float64)
        if a.shape != (ne, nq) + shapes[name]:
            raise ShapeError(f"{name} has shape {a.shape}, expected {(ne, nq) + shapes[name]}")
        arrs[name] = a
    dummy = np.broadcast_to(np.zeros(1), (ne, nq))
    return _run_bilinear(space, tab, K.FORM_GENERIC, dummy, dummy, arrs["GG"], arrs["GV"], arrs["VG"], arrs["VV"],
                         out, local)


# -- vectors -------------------------------------------------------------------------------
def _values_at_qp(space: Space, f, name: str, tab: Tabulation, ncomp: int) -> np.ndarray:
    ne, nq = space.mesh.n_cells, tab.nq
    if callable(f):
        f = f(space.quadrature_points(tab.rule.order))
    a = np.asarray(f, dtype=np.float64)
    if a.ndim <= 1 and a.size in (1, ncomp):
        return np.broadcast_to(a.reshape(1, 1, ncomp), (ne, nq, ncomp))
    if a.shape == (ne, nq) and ncomp == 1:
        return a[:, :, None]
    if a.shape == (ne, nq, ncomp):
        return a
    raise ShapeError(f"{name} has shape {a.shape}; expected a constant of {ncomp} components or ({ne}, {nq}, {ncomp})")


def residual(space: Space, S=None, F=None, *, per: str = "global", order: int | None = None) -> np.ndarray:
    """Integrate int S.v + F : grad v dx with S (ne, nq, ncomp) and F (ne, nq, ncomp, dim) given
    at quadrature points (for elasticity F is the stress tensor, giving internal forces).

    per="global": assembled vector (n_dofs,) (this rank's rows (n_owned,) when distributed);
    "cell": per-cell contributions (ne, nbd); "qp": per-quadrature-point contributions
    (ne, nq, nbd), unsummed, for hyper-reduction (distributed: over Space.assembly_cells).
    """
    tab = space.tabulation(order)
    ne, nq, nc, d = space.mesh.n_cells, tab.nq, space.ncomp, space.mesh.dim
    Sa = _EMPTY3 if S is None else _values_at_qp(space, S, "S", tab, nc)
    if F is None:
        Fa = _EMPTY4
    else:
        Fa = np.asarray(F, dtype=np.float64)
        if Fa.shape != (ne, nq, nc, d):
            raise ShapeError(f"F has shape {Fa.shape}, expected {(ne, nq, nc, d)}")
    nbd = space.n_cell_dofs
    mode = {"global": 0, "cell": 1, "qp": 2}.get(per)
    if mode is None:
        raise ShapeError(f"per={per!r}: use 'global', 'cell' or 'qp'")
    # rows in this rank's local numbering: its owned rows are lo..hi, so no n_dofs-sized vector
    geo, (nodes, colmap, lo, hi) = space._assembly_geo, space._local_nodes
    const = Sa.size > 0 and Sa.strides[:2] == (0, 0)  # one value everywhere (a broadcast constant)
    if space.distributed:
        cells = space.assembly_cells
        Sa = Sa if const or not Sa.size else Sa[cells]
        Fa = Fa[cells] if Fa.size else Fa
    nl = len(geo)
    outs = [np.zeros(len(colmap) * nc if mode == 0 else 0), np.empty((nl, nbd) if mode == 1 else (0, 0)),
            np.empty((nl, nq, nbd) if mode == 2 else (0, 0, 0))]
    if mode < 2 and Sa.size and not Fa.size and _affine_simplex(space, tab):
        K.simplex_values(space.mesh.points, geo, d, tab.rule.weights[:, None] * tab.phi, nodes, nc,
                         Sa[:1, :1] if const else Sa, const, mode, outs[0], outs[1])
    else:
        K.linear(space.mesh.points, geo, tab.dphig, space.affine, nodes, nc, tab.phi, tab.dphi,
                 tab.rule.weights, Sa, Fa, mode, *outs)
    return outs[0][lo * nc:hi * nc] if mode == 0 else outs[mode]


def load(space: Space, f=1.0, *, order: int | None = None) -> np.ndarray:
    """Load vector int f.v dx; f a constant (scalar or (ncomp,)), a callable of the quadrature
    points (ne, nq, dim) -> (ne, nq[, ncomp]), or values at the space's quadrature points."""
    if order is None and callable(f):
        order = 2 * space.degree + 1
    return residual(space, S=f, order=order)


def _facet_run(space: Space, tag: str, order):
    facets = space.mesh.boundary(tag)
    if space.distributed:
        facets = facets[space.local_index[facets[:, 0]] >= 0]
    geo = space.facet_geometry(facets)
    nodes = np.ascontiguousarray(space.facet_nodes(facets))
    tab = space.facet_tabulation(order)
    return facets, geo, nodes, tab


def _facet_points(space: Space, geo: np.ndarray, tab: Tabulation) -> np.ndarray:
    out = np.empty((len(geo), tab.nq, space.mesh.dim))
    K.map_points(space.mesh.points, geo, tab.phig, out)
    return out


def boundary_load(space: Space, tag: str, g=1.0, *, order: int | None = None) -> np.ndarray:
    """Neumann term int_Gamma g.v ds on boundary `tag`; g constant or callable of the facet
    quadrature points (m, nq, dim)."""
    facets, geo, nodes, tab = _facet_run(space, tag, order if order is not None else 2 * space.degree + 1)
    nc = space.ncomp
    vals = g(_facet_points(space, geo, tab)) if callable(g) else g
    a = np.asarray(vals, dtype=np.float64)
    m, nq = len(facets), tab.nq
    if a.ndim <= 1 and a.size in (1, nc):
        a = np.broadcast_to(a.reshape(1, 1, nc), (m, nq, nc))
    elif a.shape == (m, nq) and nc == 1:
        a = a[:, :, None]
    elif a.shape != (m, nq, nc):
        raise ShapeError(f"g has shape {a.shape}; expected a constant or ({m}, {nq}, {nc})")
    out = np.zeros(space.n_dofs)
    K.linear(space.mesh.points, geo, tab.dphig, True, nodes, nc, tab.phi, tab.dphi, tab.rule.weights,
             a, _EMPTY4, 0, out, _EMPTY2, _EMPTY3)
    return space.owned(out)


def boundary_mass(space: Space, tag: str, h=1.0, *, order: int | None = None, out=None):
    """Robin term int_Gamma h u.v ds on boundary `tag`, in the space's CSR pattern (so it adds
    to a stiffness matrix by adding data). h: constant or callable of facet points (m, nq, dim)."""
    facets, geo, nodes, tab = _facet_run(space, tag, order)
    m, nq = len(facets), tab.nq
    hv = np.asarray(h(_facet_points(space, geo, tab)) if callable(h) else h, dtype=np.float64)
    hv = np.broadcast_to(hv, (m, nq)) if hv.size in (1, m * nq) else hv
    if hv.shape != (m, nq):
        raise ShapeError(f"h has shape {hv.shape}; expected a constant or ({m}, {nq})")
    nc = space.ncomp
    nbf = nodes.shape[1]
    Ke = np.empty((m, nbf * nc, nbf * nc))
    K.bilinear(space.mesh.points, geo, tab.dphig, True, nodes, nc, tab.phi, tab.dphi, tab.rule.weights,
               K.FORM_MASS, hv, hv, _EMPTY4, _EMPTY4, _EMPTY4, _EMPTY4, _NOMAP, np.zeros(0), Ke, *_NOCOLORS,
               numba.get_num_threads())
    # facet entries are a sub-block of their cell's element matrix: reuse the cell's map
    fd = space.element.facet_dofs[facets[:, 1]]  # (m, nbf) local cell nodes
    loc = (fd[:, :, None] * nc + np.arange(nc)).reshape(m, nbf * nc)  # local cell dofs
    nbd = space.n_cell_dofs
    pos = loc[:, :, None] * nbd + loc[:, None, :]
    dmap = space.pattern[2][space.local_index[facets[:, 0]][:, None, None], pos].ravel()
    keep = dmap >= 0  # rows of other ranks are theirs to add
    A = _new_matrix(space, out)
    A.data += np.bincount(dmap[keep], weights=Ke.ravel()[keep], minlength=A.nnz)
    return A

