"""Transient advection-diffusion with a Gaussian source, SUPG-stabilized (issue 6).

    du/dt + b . grad u - kappa lap u = a g(x; x_s, y_s)   in the unit square, t in (0, T],
    u = 0 on the boundary,  u(0) = 0,
    g = exp(-|x - x_s|^2 / (2 sigma^2)),

with a constant velocity b. Parameters mu = (x_s, y_s, a, kappa): the source
position, its amplitude (meant to vary over two decades, e.g. [0.1, 10] sampled
log-uniformly) and the diffusivity.

Space: P1 triangles on a uniform `rectangle(n, n)` mesh; the unknowns are the
interior nodes (the homogeneous Dirichlet rows are eliminated), so a state is
`(n_free,)` float64 and `expand` puts it back on all nodes.

SUPG (Brooks & Hughes 1982): the test function v is replaced by v + tau b.grad v
in every term of the residual (the diffusion term of the residual vanishes
inside P1 cells), with

    tau(kappa) = h / (2 |b|) (coth(Pe) - 1/Pe),   Pe = |b| h / (2 kappa),

h = 1/n the mesh size. On a uniform mesh tau depends on kappa only, so the
operators stay affine:

    M(mu) = M + tau S_m,              M = (u, v),      S_m = (u, b.grad v)
    A(mu) = C + kappa D + tau S_a,    C = (b.grad u, v), D = (grad u, grad v), S_a = (b.grad u, b.grad v)
    f(mu) = a [(g, v) + tau (g, b.grad v)]

The load is not affine in the source position; `load(mu)` assembles it.
Time stepping: the theta-scheme (theta = 1 backward Euler, 1/2 Crank-Nicolson).
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import scipy.sparse as sp

from rom.errors import ShapeError
from solvers.fem import Space, bilinear_form, diffusion, load, mass, residual
from solvers.mesh import Mesh, rectangle
from solvers.problems.base import Box, Theta

__all__ = ["AdvectionDiffusion", "supg_tau"]


def supg_tau(kappa, h: float, speed: float):
    """SUPG parameter h/(2|b|) (coth Pe - 1/Pe), Pe = |b| h / (2 kappa); kappa > 0 (array ok).

    Evaluated with a series for Pe < 1e-3 (coth Pe - 1/Pe = Pe/3 - Pe^3/45 + ...)
    where the closed form cancels.
    """
    k = np.asarray(kappa, dtype=np.float64)
    pe = speed * h / (2.0 * k)
    small = pe < 1e-3
    pe_safe = np.where(small, 1.0, pe)
    xi = np.where(small, pe / 3.0 - pe**3 / 45.0, 1.0 / np.tanh(pe_safe) - 1.0 / pe_safe)
    return h / (2.0 * speed) * xi


class AdvectionDiffusion:
    """Transient advection-diffusion FOM, parametrized by source position, amplitude, diffusivity.

    n : cells per side; velocity : (2,) b; sigma : source width (m);
    t_final, n_steps : time interval and number of steps; theta : 1 (BE) or 1/2 (CN);
    supg : stabilize (default True); bounds : dict name -> (lo, hi) overriding the box
    x_s in [0.15, 0.45], y_s in [0.3, 0.7], a in [0.1, 10], kappa in [1e-3, 1e-2].
    """

    def __init__(self, n: int = 64, velocity=(1.0, 0.25), sigma: float = 0.05, t_final: float = 0.6,
                 n_steps: int = 60, theta: float = 1.0, supg: bool = True, bounds: dict | None = None,
                 mesh: Mesh | None = None):
        b = np.asarray(velocity, dtype=np.float64)
        if b.shape != (2,) or not np.all(np.isfinite(b)):
            raise ShapeError(f"velocity={velocity!r}; pass a finite (2,) vector")
        if not (0.0 <= theta <= 1.0) or t_final <= 0 or n_steps < 1 or sigma <= 0:
            raise ShapeError(f"theta={theta}, t_final={t_final}, n_steps={n_steps}, sigma={sigma}: need theta in "
                             "[0, 1], t_final > 0, n_steps >= 1 and sigma > 0")
        self.n = int(n)
        self.mesh = mesh or rectangle(self.n, self.n)
        self.space = Space(self.mesh, 1)
        self.velocity, self.speed = b, float(np.linalg.norm(b))
        self.h = 1.0 / self.n
        self.sigma, self.t_final, self.n_steps, self.theta = float(sigma), float(t_final), int(n_steps), float(theta)
        self.dt = self.t_final / self.n_steps
        self.supg = bool(supg) and self.speed > 0
        box = {"x_s": (0.15, 0.45), "y_s": (0.3, 0.7), "a": (0.1, 10.0), "kappa": (1e-3, 1e-2)}
        box.update(bounds or {})
        names = ("x_s", "y_s", "a", "kappa")
        self.parameter_space = Box(names, np.array([box[k][0] for k in names]), np.array([box[k][1] for k in names]))
        if self.parameter_space.lower[3] <= 0:
            raise ShapeError("kappa's lower bound must be > 0")
        V = self.space
        boundary = np.unique(np.concatenate([V.boundary_dofs(t) for t in ("left", "right", "bottom", "top")]))
        self.free = np.setdiff1d(np.arange(V.n_dofs), boundary)

    # -------------------------------------------------------------- assembly
    def _restrict(self, A) -> sp.csr_matrix:
        return sp.csr_matrix(A[self.free][:, self.free])

    def _b_at_qp(self, kind: str) -> np.ndarray:
        V = self.space
        ne, nq = self.mesh.n_cells, V.nq
        b = self.velocity
        shape = {"VG": (1, 2), "GV": (2, 1), "GG": (2, 2)}[kind]
        val = {"VG": b[None, :], "GV": b[:, None], "GG": np.outer(b, b)}[kind]
        return np.ascontiguousarray(np.broadcast_to(val.reshape(shape), (ne, nq) + shape))

    @cached_property
    def operators(self) -> dict:
        """Interior-node CSR matrices: mass M, advection C, diffusion D, SUPG S_m and S_a."""
        V = self.space
        ops = {"mass": mass(V), "advection": bilinear_form(V, VG=self._b_at_qp("VG")), "diffusion": diffusion(V)}
        ops["supg_mass"] = bilinear_form(V, GV=self._b_at_qp("GV"))
        ops["supg_advection"] = bilinear_form(V, GG=self._b_at_qp("GG"))
        return {k: self._restrict(A) for k, A in ops.items()}

    def tau(self, mu) -> float:
        """SUPG parameter for mu (0 when SUPG is off)."""
        mu = self.parameter_space.validate(mu)
        return float(supg_tau(mu[3], self.h, self.speed)) if self.supg else 0.0

    def theta_mass(self, mu) -> np.ndarray:
        """Coefficients of (M, S_m): (1, tau)."""
        return np.array([1.0, self.tau(mu)])

    def theta_stiffness(self, mu) -> np.ndarray:
        """Coefficients of (C, D, S_a): (1, kappa, tau)."""
        mu = self.parameter_space.validate(mu)
        return np.array([1.0, mu[3], self.tau(mu)])

    @property
    def mass_terms(self) -> list:
        return [self.operators["mass"], self.operators["supg_mass"]]

    @property
    def stiffness_terms(self) -> list:
        return [self.operators["advection"], self.operators["diffusion"], self.operators["supg_advection"]]

    def theta_functions(self) -> tuple[Theta, Theta]:
        """(theta_mass, theta_stiffness) as stored coefficient expressions of mu (..., 4) (rom.coefficients)."""
        h2b = self.h / (2 * self.speed) if self.speed > 0 else 0.0
        pe = f"({self.speed * self.h / 2!r} / mu[..., 3])"
        tau = f"({h2b!r} * (1 / tanh({pe}) - 1 / {pe}))" if self.supg else "0"
        return Theta(("1", tau)), Theta(("1", "mu[..., 3]", tau))

    def source(self, mu):
        """g(x) for mu as a callable of points (..., 2) (without the amplitude)."""
        mu = self.parameter_space.validate(mu)
        c, s2 = mu[:2], 2 * self.sigma**2

        def g(x):
            return np.exp(-np.sum((x - c) ** 2, axis=-1) / s2)

        return g

    def load(self, mu) -> np.ndarray:
        """a [(g, v) + tau (g, b.grad v)] on the interior nodes, (n_free,)."""
        mu = self.parameter_space.validate(mu)
        V = self.space
        g = self.source(mu)
        qp = V.quadrature_points()
        gq = g(qp)
        f = load(V, gq)
        if self.supg:
            F = np.ascontiguousarray(gq[:, :, None, None] * self.velocity[None, None, None, :])
            f = f + self.tau(mu) * residual(V, F=F)
        return mu[2] * f[self.free]

    # -------------------------------------------------------------- solve
    def matrices(self, mu) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        """M(mu) and A(mu) on the interior nodes."""
        tm, ta = self.theta_mass(mu), self.theta_stiffness(mu)
        M = sum(t * A for t, A in zip(tm, self.mass_terms))
        A = sum(t * B for t, B in zip(ta, self.stiffness_terms))
        return sp.csr_matrix(M), sp.csr_matrix(A)

    def solve(self, mu, n_steps: int | None = None) -> np.ndarray:
        """Trajectory (n_free, n_steps + 1) from u(0) = 0 with the theta-scheme (one LU)."""
        M, A = self.matrices(mu)
        f = self.load(mu)
        th, dt = self.theta, self.dt
        lu = sp.linalg.splu(sp.csc_matrix(M + th * dt * A))
        R = sp.csr_matrix(M - (1 - th) * dt * A)
        steps = self.n_steps if n_steps is None else int(n_steps)
        U = np.zeros((self.free.size, steps + 1))
        for k in range(steps):  # time loop
            U[:, k + 1] = lu.solve(R @ U[:, k] + dt * f)
        return U

    @cached_property
    def inner_product(self) -> sp.csr_matrix:
        """L2 inner product on the interior nodes (the FE mass matrix)."""
        return self.operators["mass"]

    def expand(self, u) -> np.ndarray:
        """Interior values (n_free, ...) -> all nodes (n_dofs, ...), zero on the boundary."""
        u = np.asarray(u, dtype=np.float64)
        out = np.zeros((self.space.n_dofs,) + u.shape[1:])
        out[self.free] = u
        return out

    @property
    def times(self) -> np.ndarray:
        return np.linspace(0.0, self.t_final, self.n_steps + 1)
