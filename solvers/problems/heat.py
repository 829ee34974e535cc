"""Steady heat conduction: -div(k grad T) = s, with Dirichlet, Neumann and Robin conditions."""

from __future__ import annotations

import numpy as np

from solvers.fem import Space, boundary_load, boundary_mass, diffusion, load
from solvers.fem.bc import DirichletBC, apply_dirichlet
from solvers.linalg import LinearSolver
from solvers.mesh import Mesh


class Heat:
    """Steady linear heat conduction on a mesh.

    conductivity: W/(m K), a number, {region: value}, per-cell (ne,) or per-qp array.
    source: W/m^3, number or callable of x (ne, nq, dim).
    dirichlet: {tag: temperature (number or callable of node coordinates)}, K.
    neumann: {tag: inward heat flux q (W/m^2)}, i.e. k dT/dn = q.
    robin: {tag: (h, T_ext)}: k dT/dn = h (T_ext - T), h in W/(m^2 K).
    """

    def __init__(self, mesh: Mesh, degree: int = 1, conductivity=1.0, source=0.0, dirichlet=None,
                 neumann=None, robin=None, solver: LinearSolver | None = None, comm=None):
        self.space = Space(mesh, degree, comm=comm)
        self.conductivity = conductivity
        self.source = source
        self.dirichlet = dict(dirichlet or {})
        self.neumann = dict(neumann or {})
        self.robin = dict(robin or {})
        self.solver = solver or LinearSolver("direct", comm=self.space.comm)
        for tag in list(self.dirichlet) + list(self.neumann) + list(self.robin):
            mesh.boundary(tag)  # unknown tags fail here, before any assembly

    def bcs(self) -> list[DirichletBC]:
        return [DirichletBC(self.space, tag, v) for tag, v in self.dirichlet.items()]

    def assemble(self, conductivity=None):
        """Lifted system (A, b): A CSR (n, n) symmetric, b (n,)."""
        V = self.space
        A = diffusion(V, self.conductivity if conductivity is None else conductivity)
        b = load(V, self.source)
        for tag, q in self.neumann.items():
            b += boundary_load(V, tag, q)
        for tag, (h, T_ext) in self.robin.items():
            A.data += boundary_mass(V, tag, h).data
            b += boundary_load(V, tag, np.multiply(h, T_ext) if not callable(T_ext) else
                               (lambda x, h=h, T=T_ext: h * T(x)))
        apply_dirichlet(A, b, self.bcs())
        return A, b

    def solve(self, conductivity=None) -> np.ndarray:
        """Temperature at the space's nodes (n_dofs,), K; this rank's rows when distributed."""
        A, b = self.assemble(conductivity)
        return self.solver(A, b)
