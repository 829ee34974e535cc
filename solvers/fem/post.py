"""Post-processing: fields at quadrature points, gradients, strains, stresses, nodal
averages, norms and errors."""

from __future__ import annotations

import numpy as np

from rom.errors import ShapeError
from solvers.fem import _kernels as K
from solvers.fem.space import Space


def _check_field(space: Space, u) -> np.ndarray:
    u = np.ascontiguousarray(u, dtype=np.float64)
    if u.shape != (space.n_dofs,):
        raise ShapeError(f"field has shape {u.shape}, expected ({space.n_dofs},) for {space}")
    return u


def at_quadrature(space: Space, u, order: int | None = None, gradient: bool = True):
    """Field u (n_dofs,) at quadrature points of the space's rule (or a rule of `order`).

    Returns values (ne, nq, ncomp), gradients (ne, nq, ncomp, dim) (None if gradient=False)
    and integration weights w|det J| (ne, nq).
    """
    u = _check_field(space, u)
    tab = space.tabulation(order)
    ne, nq, nc, d = space.mesh.n_cells, tab.nq, space.ncomp, space.mesh.dim
    val = np.empty((ne, nq, nc))
    grad = np.empty((ne, nq, nc, d)) if gradient else np.zeros((0, 0, 0, 0))
    wdet = np.empty((ne, nq))
    m = space.mesh
    K.evaluate(m.points, m.cells, tab.dphig, space.affine, space.cell_nodes, nc, tab.phi, tab.dphi,
               tab.rule.weights, u, val, grad, wdet)
    return val, (grad if gradient else None), wdet


def gradient(space: Space, u, order: int | None = None) -> np.ndarray:
    """Gradient of u at quadrature points: (ne, nq, dim) scalar, (ne, nq, ncomp, dim) vector."""
    _, g, _ = at_quadrature(space, u, order)
    return g[:, :, 0, :] if space.ncomp == 1 else g


def strain(space: Space, u, order: int | None = None) -> np.ndarray:
    """Small strain eps = (grad u + grad u^T)/2 at quadrature points: (ne, nq, dim, dim)."""
    if space.ncomp != space.mesh.dim:
        raise ShapeError("strain needs a displacement field (vector space with dim components)")
    g = gradient(space, u, order)
    return 0.5 * (g + np.swapaxes(g, -1, -2))


def stress(space: Space, u, lam, mu, order: int | None = None) -> np.ndarray:
    """Isotropic linear-elastic stress sigma = lam tr(eps) I + 2 mu eps, (ne, nq, dim, dim), Pa.
    lam, mu: numbers or arrays broadcastable to (ne, nq)."""
    eps = strain(space, u, order)
    tr = np.trace(eps, axis1=-2, axis2=-1)
    lam = np.broadcast_to(np.asarray(lam, dtype=float), tr.shape) if np.ndim(lam) < 2 else lam
    mu = np.broadcast_to(np.asarray(mu, dtype=float), tr.shape) if np.ndim(mu) < 2 else mu
    return lam[..., None, None] * tr[..., None, None] * np.eye(space.mesh.dim) + 2 * mu[..., None, None] * eps


def von_mises(sigma: np.ndarray) -> np.ndarray:
    """Von Mises equivalent stress of (..., d, d) tensors (plane strain treated as 2D)."""
    d = sigma.shape[-1]
    dev = sigma - np.trace(sigma, axis1=-2, axis2=-1)[..., None, None] * np.eye(d) / 3.0
    return np.sqrt(1.5 * np.einsum("...ij,...ij->...", dev, dev))


def nodal_average(space: Space, qvalues: np.ndarray) -> np.ndarray:
    """Average quadrature-point values (ne, nq, ...) to the space's nodes (n_nodes, ...):
    the volume-weighted mean of the cell means of the cells sharing each node."""
    qvalues = np.asarray(qvalues, dtype=np.float64)
    ne = space.mesh.n_cells
    if qvalues.shape[0] != ne:
        raise ShapeError(f"values have {qvalues.shape[0]} cells, the mesh has {ne}")
    _, _, wdet = at_quadrature(space, np.zeros(space.n_dofs), gradient=False)
    if wdet.shape[1] != qvalues.shape[1]:
        raise ShapeError(f"values have {qvalues.shape[1]} points per cell, the space's rule has {wdet.shape[1]}")
    vol = wdet.sum(axis=1)
    cell_mean = np.einsum("eq,eq...->e...", wdet, qvalues) / vol.reshape((-1,) + (1,) * (qvalues.ndim - 2))
    tail = qvalues.shape[2:]
    nodes = space.cell_nodes
    nb = nodes.shape[1]
    wsum = np.bincount(nodes.ravel(), weights=np.repeat(vol, nb), minlength=space.n_nodes)
    flat = (cell_mean * vol.reshape((-1,) + (1,) * len(tail))).reshape(ne, -1)
    out = np.empty((space.n_nodes, flat.shape[1]))
    for k in range(flat.shape[1]):  # loop over tensor components only
        out[:, k] = np.bincount(nodes.ravel(), weights=np.repeat(flat[:, k], nb), minlength=space.n_nodes)
    return (out / wsum[:, None]).reshape((space.n_nodes,) + tail)


def integrate(space: Space, qvalues: np.ndarray, order: int | None = None) -> np.ndarray:
    """Integral over the mesh of values given at quadrature points (ne, nq, ...)."""
    _, _, wdet = at_quadrature(space, np.zeros(space.n_dofs), order, gradient=False)
    return np.einsum("eq,eq...->...", wdet, qvalues)


def norm(space: Space, u, kind: str = "L2", order: int | None = None) -> float:
    """L2 norm, H1 seminorm ("H1semi") or H1 norm ("H1") of a field."""
    return errornorm(space, u, None, None, kind=kind, order=order)


def errornorm(space: Space, u, exact=None, exact_grad=None, *, kind: str = "L2", order: int | None = None) -> float:
    """||u - exact|| in L2, H1 seminorm ("H1semi") or H1 norm ("H1"), with a rule of `order`
    (default 2*degree + 2). exact(x): (ne, nq, dim) -> (ne, nq[, ncomp]); exact_grad(x) ->
    (ne, nq[, ncomp], dim)."""
    if kind not in ("L2", "H1semi", "H1"):
        raise ShapeError(f"kind={kind!r}: use 'L2', 'H1semi' or 'H1'")
    order = 2 * space.degree + 2 if order is None else order
    val, grad, wdet = at_quadrature(space, u, order, gradient=kind != "L2")
    x = space.quadrature_points(order) if (exact is not None or exact_grad is not None) else None
    total = 0.0
    if kind in ("L2", "H1"):
        e = val.copy()
        if exact is not None:
            e -= np.asarray(exact(x), dtype=float).reshape(val.shape)
        total += float(np.einsum("eq,eqc->", wdet, e * e))
    if kind in ("H1semi", "H1"):
        g = grad.copy()
        if exact_grad is not None:
            g -= np.asarray(exact_grad(x), dtype=float).reshape(grad.shape)
        total += float(np.einsum("eq,eqcd->", wdet, g * g))
    return float(np.sqrt(total))
