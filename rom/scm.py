"""Successive constraint method (Huynh, Rozza, Sen, Patera 2007) for a lower bound of the
coercivity constant alpha(mu) = min_v a(v, v; mu) / ||v||_X^2 of an affine form
a(.,.; mu) = sum_q theta_q(mu) a_q(.,.).

Offline: the bounding box of y_q = a_q(v, v)/||v||_X^2 from 2Q generalized eigenvalue solves
(scipy eigsh, shift-invert for the lower end), and a greedy set C_K of parameters with their
exact alpha(mu_k) (shift-invert eigsh at sigma = 0) and minimizing eigenvector ratios y_k.
Online: alpha_LB(mu) = min theta(mu).y over the box subject to theta(mu_k).y >= alpha(mu_k),
an LP in Q unknowns (scipy linprog, HiGHS) whose size does not depend on the FOM.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as sla
from scipy.optimize import linprog

from rom.errors import ConvergenceError, ShapeError

log = logging.getLogger(__name__)


def _eig_min(A, X, shift: float) -> tuple[float, np.ndarray]:
    """Smallest eigenpair of A v = lambda X v (A symmetric, X SPD) by shift-invert below it."""
    try:
        w, v = sla.eigsh(A.tocsc(), k=1, M=X.tocsc(), sigma=shift, which="LM", tol=1e-12)
    except (sla.ArpackNoConvergence, RuntimeError) as exc:
        raise ConvergenceError(f"SCM: eigsh did not converge ({exc}); try a different shift") from None
    return float(w[0]), v[:, 0]


def _eig_max(A, X) -> float:
    lu = sla.splu(X.tocsc())
    op = sla.LinearOperator(X.shape, matvec=lambda x: lu.solve(np.asarray(A @ x, dtype=float)))
    # largest eigenvalue of X^{-1} A (X-selfadjoint), power-type Lanczos through a nonsymmetric call
    w = sla.eigs(op, k=1, which="LR", tol=1e-10, return_eigenvectors=False)
    return float(np.real(w[0]))


@dataclass
class SCMBound:
    """Online SCM data (no FOM-sized array): box (Q, 2), theta_c (K, Q), alpha_c (K,), y_c (K, Q)."""

    box: np.ndarray
    theta_c: np.ndarray
    alpha_c: np.ndarray
    y_c: np.ndarray

    def lower(self, theta: np.ndarray) -> np.ndarray:
        """alpha_LB for theta (m, Q) -> (m,); one LP of Q unknowns per parameter."""
        theta = np.atleast_2d(theta)
        out = np.empty(theta.shape[0])
        for i, th in enumerate(theta):
            res = linprog(th, A_ub=-self.theta_c, b_ub=-self.alpha_c, bounds=list(map(tuple, self.box)),
                          method="highs")
            out[i] = res.fun if res.status == 0 else float(th @ self.box[:, 0] if th.min() >= 0 else -np.inf)
        return out

    def upper(self, theta: np.ndarray) -> np.ndarray:
        """alpha_UB (m,) = min_k theta(mu).y_k."""
        return np.min(np.atleast_2d(theta) @ self.y_c.T, axis=1)


def scm(operators, theta, X, training, *, tol: float = 0.5, max_size: int = 30) -> SCMBound:
    """Build the SCM bound. operators: Q symmetric sparse (n, n); theta: callable mu (m, p) -> (m, Q);
    X: SPD sparse (n, n); training: (m, p) parameters; tol: stop when max (UB - LB)/UB <= tol."""
    training = np.atleast_2d(np.asarray(training, dtype=float))
    if not 0 < tol < 1:
        raise ShapeError(f"tol={tol}: the SCM tolerance is a relative gap in (0, 1), e.g. 0.5")
    if not all(sp.issparse(A) and A.shape == X.shape for A in operators):
        raise ShapeError("operators must be sparse matrices of the shape of X")
    X = sp.csr_matrix(X)
    box = np.empty((len(operators), 2))
    for q, A in enumerate(operators):
        hi = _eig_max(A, X)
        lo, _ = _eig_min(A, X, -1e-3 * max(abs(hi), 1.0))
        box[q] = (min(lo, hi), hi)
    th_train = np.asarray(theta(training), dtype=float)
    chosen, alphas, ys = [], [], []
    idx = 0
    for _ in range(max_size):
        A = sum(t * Aq for t, Aq in zip(th_train[idx], operators))
        a, v = _eig_min(A, X, 0.0)
        xv = X @ v
        ys.append(np.array([v @ (Aq @ v) for Aq in operators]) / (v @ xv))
        chosen.append(idx)
        alphas.append(a)
        bound = SCMBound(box, th_train[chosen], np.array(alphas), np.array(ys))
        lb, ub = bound.lower(th_train), bound.upper(th_train)
        gap = (ub - lb) / np.abs(ub)
        gap[chosen] = 0.0
        idx = int(np.argmax(gap))
        log.info("SCM: K=%d, max relative gap %.3e", len(chosen), gap[idx])
        if gap[idx] <= tol:
            break
    return bound
