"""Numba kernels for point location: reference coordinates of points in candidate cells."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, inline="always")
def _ref_simplex(X, cell, p, xi):
    d = X.shape[1]
    J = np.empty((d, d))
    for g in range(d):
        for t in range(d):
            J[g, t] = X[cell[t + 1], g] - X[cell[0], g]
    r = np.empty(d)
    for g in range(d):
        r[g] = p[g] - X[cell[0], g]
    sol = np.linalg.solve(J, r)
    for t in range(d):
        xi[t] = sol[t]


@njit(cache=True, inline="always")
def _q1_basis(xi, phi, dphi):
    d = xi.shape[0]
    if d == 2:
        x, y = xi[0], xi[1]
        phi[0] = (1 - x) * (1 - y)
        phi[1] = x * (1 - y)
        phi[2] = x * y
        phi[3] = (1 - x) * y
        dphi[0, 0], dphi[0, 1] = -(1 - y), -(1 - x)
        dphi[1, 0], dphi[1, 1] = (1 - y), -x
        dphi[2, 0], dphi[2, 1] = y, x
        dphi[3, 0], dphi[3, 1] = -y, (1 - x)
    else:
        x, y, z = xi[0], xi[1], xi[2]
        cx = (1 - x, x, x, 1 - x)
        cy = (1 - y, 1 - y, y, y)
        sx = (-1.0, 1.0, 1.0, -1.0)
        sy = (-1.0, -1.0, 1.0, 1.0)
        for k in range(8):
            a = k % 4
            cz = 1 - z if k < 4 else z
            sz = -1.0 if k < 4 else 1.0
            phi[k] = cx[a] * cy[a] * cz
            dphi[k, 0] = sx[a] * cy[a] * cz
            dphi[k, 1] = cx[a] * sy[a] * cz
            dphi[k, 2] = cx[a] * cy[a] * sz


@njit(cache=True, inline="always")
def _ref_tensor(X, cell, p, xi):
    d = X.shape[1]
    nv = cell.shape[0]
    phi = np.empty(nv)
    dphi = np.empty((nv, d))
    J = np.empty((d, d))
    r = np.empty(d)
    for t in range(d):
        xi[t] = 0.5
    for _ in range(20):
        _q1_basis(xi, phi, dphi)
        for g in range(d):
            s = 0.0
            for n in range(nv):
                s += phi[n] * X[cell[n], g]
            r[g] = p[g] - s
            for t in range(d):
                s = 0.0
                for n in range(nv):
                    s += dphi[n, t] * X[cell[n], g]
                J[g, t] = s
        step = np.linalg.solve(J, r)
        nrm = 0.0
        for t in range(d):
            xi[t] += step[t]
            nrm += step[t] * step[t]
        if nrm < 1e-28:
            break


@njit(cache=True)
def locate(X, cells, simplex, points, candidates, tol):
    """For each point, the first candidate cell containing it (reference coordinates within
    tol of the reference cell), else the candidate whose reference coordinates are least
    outside. Returns cell (npts,), xi (npts, d), outside (npts,) >= 0 (0 means inside)."""
    npts, k = candidates.shape
    d = X.shape[1]
    best_cell = np.full(npts, -1, dtype=np.int64)
    best_xi = np.zeros((npts, d))
    best_out = np.full(npts, np.inf)
    xi = np.empty(d)
    for i in range(npts):
        for j in range(k):
            c = candidates[i, j]
            if c < 0:
                continue
            if simplex:
                _ref_simplex(X, cells[c], points[i], xi)
                out = 0.0
                s = 0.0
                for t in range(d):
                    out = max(out, -xi[t])
                    s += xi[t]
                out = max(out, s - 1.0)
            else:
                _ref_tensor(X, cells[c], points[i], xi)
                out = 0.0
                for t in range(d):
                    out = max(out, -xi[t], xi[t] - 1.0)
            if out < best_out[i]:
                best_out[i] = out
                best_cell[i] = c
                for t in range(d):
                    best_xi[i, t] = xi[t]
            if out <= tol:
                break
    return best_cell, best_xi, np.maximum(best_out, 0.0)
