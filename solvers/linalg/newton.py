"""Newton's method with backtracking line search."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from rom.errors import ConvergenceError, RomError
from solvers.linalg.linear import LinearSolver

log = logging.getLogger(__name__)


@dataclass
class NewtonResult:
    """u: the solution; history: residual norms ||F(u_k)||, one per iterate (first is u0)."""

    u: np.ndarray
    iterations: int
    history: list = field(default_factory=list)
    converged: bool = True


def newton(residual: Callable, jacobian: Callable, u0, *, rtol: float = 1e-10, atol: float = 1e-12,
           maxiter: int = 30, linear_solver: LinearSolver | None = None, line_search: bool = True,
           max_halvings: int = 12, norm: Callable = np.linalg.norm) -> NewtonResult:
    """Solve F(u) = 0 from u0 by Newton: J(u_k) du = -F(u_k), u_{k+1} = u_k + alpha du with
    alpha halved until ||F|| decreases (Armijo, c = 1e-4).

    residual(u) -> (n,), jacobian(u) -> sparse (n, n). Stops when ||F|| <= max(atol, rtol ||F(u0)||):
    a returned result always meets that test. Otherwise raises ConvergenceError carrying the
    residual history: a non-finite ||F(u0)||, a linear solve that fails or misses its own
    tolerance (LinearSolver checks its true residual), divergence, stalling, or maxiter reached.
    """
    solver = linear_solver or LinearSolver("direct")
    u = np.array(u0, dtype=np.float64, copy=True)
    F = residual(u)
    r0 = norm(F)
    history = [float(r0)]
    if not np.isfinite(r0):
        raise ConvergenceError(f"Newton cannot start: ||F(u0)|| = {r0} is not finite; check u0 (inside the "
                               "residual's domain?) and the residual function", history)
    tol = max(atol, rtol * r0)
    for k in range(1, maxiter + 1):
        if history[-1] <= tol:
            return NewtonResult(u, k - 1, history, True)
        try:
            du = solver(jacobian(u), -F)
        except RomError as exc:
            raise ConvergenceError(f"Newton iteration {k}: the linear solve failed: {exc}", history) from exc
        alpha, rnorm = 1.0, np.inf
        for _ in range(max_halvings + 1):
            trial = u + alpha * du
            Ft = residual(trial)
            rnorm = norm(Ft)
            if not line_search or (np.isfinite(rnorm) and rnorm <= (1 - 1e-4 * alpha) * history[-1]):
                break
            alpha *= 0.5
        if not np.isfinite(rnorm):
            raise ConvergenceError(
                f"Newton diverged at iteration {k}: the residual became {rnorm} (history {_fmt(history)}); "
                "start closer to the solution, load in smaller steps, or check the tangent",
                history,
            )
        if line_search and rnorm > (1 - 1e-4 * alpha) * history[-1]:
            history.append(float(rnorm))
            raise ConvergenceError(
                f"Newton stalled at iteration {k}: no step decreased the residual after {max_halvings} "
                f"halvings (history {_fmt(history)}); check the tangent or use smaller load steps",
                history,
            )
        u, F = trial, Ft
        history.append(float(rnorm))
        log.debug("Newton %d: |F| = %.3e, alpha = %g", k, rnorm, alpha)
    if history[-1] <= tol:
        return NewtonResult(u, maxiter, history, True)
    raise ConvergenceError(
        f"Newton did not converge in {maxiter} iterations (history {_fmt(history)}); raise maxiter, "
        "use smaller load steps or a better initial guess",
        history,
    )


def _fmt(h) -> str:
    return "[" + ", ".join(f"{v:.2e}" for v in h[-6:]) + "]"
