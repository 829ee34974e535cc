"""Steady heat conduction with temperature-dependent conductivity, solved by Newton.

-div(k(T) grad T) = s. Residual R(T)_i = int k(T) grad T . grad v_i - s v_i, consistent
tangent dR/dT = int k(T) grad dT . grad v + k'(T) dT grad T . grad v (non-symmetric).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from solvers.fem import Space, bilinear_form, boundary_load, load, residual
from solvers.fem.bc import DirichletBC, apply_dirichlet
from solvers.fem.post import at_quadrature
from solvers.linalg import LinearSolver, NewtonResult, newton
from solvers.mesh import Mesh


def linear_conductivity(k0: float, beta: float):
    """k(T) = k0 (1 + beta T) and its derivative, vectorized."""
    return (lambda T: k0 * (1.0 + beta * T)), (lambda T: k0 * beta * np.ones_like(T))


class NonlinearHeat:
    """k: callable T -> conductivity (W/(m K)) on arrays; dk: its derivative dk/dT.
    source: W/m^3 (number or callable of x); dirichlet {tag: T}; neumann {tag: inward flux}."""

    def __init__(self, mesh: Mesh, k: Callable, dk: Callable, degree: int = 1, source=0.0, dirichlet=None,
                 neumann=None, solver: LinearSolver | None = None, comm=None):
        self.space = Space(mesh, degree, comm=comm)
        self.k, self.dk = k, dk
        self.dirichlet = dict(dirichlet or {})
        self.neumann = dict(neumann or {})
        self.solver = solver or LinearSolver("direct", comm=self.space.comm)
        V = self.space
        self.f = load(V, source)
        for tag, q in self.neumann.items():
            self.f += boundary_load(V, tag, q)
        self.bcs = [DirichletBC(V, tag, v) for tag, v in self.dirichlet.items()]
        self.bcs0 = [DirichletBC(V, bc.dofs, 0.0) for bc in self.bcs]
        self.last: NewtonResult | None = None

    def residual(self, T: np.ndarray) -> np.ndarray:
        """R(T) (n_dofs,) with zero rows on Dirichlet dofs (T and R: this rank's rows)."""
        val, grad, _ = at_quadrature(self.space, self.space.gather(T))
        flux = self.k(val[:, :, 0])[:, :, None, None] * grad
        R = residual(self.space, F=flux) - self.f
        for bc in self.bcs:
            R[self.space.local_rows(bc.dofs)] = 0.0
        return R

    def residual_per_qp(self, T: np.ndarray) -> np.ndarray:
        """Unsummed internal-flux contributions (ne, nq, nb) for hyper-reduction."""
        val, grad, _ = at_quadrature(self.space, self.space.gather(T))
        return residual(self.space, F=self.k(val[:, :, 0])[:, :, None, None] * grad, per="qp")

    def jacobian(self, T: np.ndarray):
        val, grad, _ = at_quadrature(self.space, self.space.gather(T))
        ne, nq, _, d = grad.shape
        kq = self.k(val[:, :, 0])
        GG = kq[:, :, None, None] * np.eye(d)
        GV = (self.dk(val[:, :, 0])[:, :, None] * grad[:, :, 0, :])[:, :, :, None]
        J = bilinear_form(self.space, GG=GG, GV=GV)
        apply_dirichlet(J, None, self.bcs0)
        return J

    def solve(self, T0=None, **newton_options) -> np.ndarray:
        """Temperature (n_dofs,) (this rank's rows) by Newton from T0 (default: the Dirichlet
        lift). The residual history is kept in self.last."""
        V = self.space
        T = np.zeros(V.n_owned) if T0 is None else np.array(T0, dtype=float)
        a, _ = V.owned_range
        for bc in self.bcs:
            mine = V.local_rows(bc.dofs)
            T[mine] = bc.values[np.searchsorted(bc.dofs, mine + a)]
        opts = dict(linear_solver=self.solver, norm=V.norm)
        opts.update(newton_options)
        self.last = newton(self.residual, self.jacobian, T, **opts)
        return self.last.u
