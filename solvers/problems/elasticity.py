"""Isotropic linear elasticity in 2D (plane strain / plane stress) and 3D.

With Poisson's ratio fixed per region, the stiffness is affine in the region Young's
moduli: K(E) = sum_r E_r K_r(nu_r), which `affine_terms` exposes.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np

from rom.errors import ShapeError
from solvers.fem import Space, boundary_load, elasticity, lame, load
from solvers.fem.bc import DirichletBC, apply_dirichlet
from solvers.fem.post import stress as _stress
from solvers.linalg import LinearSolver, rigid_body_modes
from solvers.mesh import Mesh
from solvers.problems.base import AffineDecomposition, Theta


def _region_values(mesh: Mesh, value, name: str) -> np.ndarray:
    if isinstance(value, dict):
        out = np.full(mesh.n_cells, np.nan)
        for r, v in value.items():
            out[mesh.region(r)] = v
        if np.isnan(out).any():
            raise ShapeError(f"{name}: some cells belong to none of the regions {sorted(value)}")
        return out
    return np.broadcast_to(np.asarray(value, dtype=float), (mesh.n_cells,)).copy()


class LinearElasticity:
    """E: Young's modulus (Pa), nu: Poisson's ratio; numbers or {region: value}.
    body_force: N/m^3 vector (dim,) or callable of x; traction: {tag: vector (N/m^2)};
    dirichlet: {tag: displacement vector (dim,) or callable} (all components), or
    {(tag, component): value} for one component. plane: "strain" or "stress" in 2D."""

    def __init__(self, mesh: Mesh, degree: int = 1, E=1.0, nu=0.3, plane: str = "strain", body_force=None,
                 traction=None, dirichlet=None, solver: LinearSolver | None = None, comm=None):
        d = mesh.dim
        self.space = Space(mesh, degree, (d,), comm=comm)
        self.plane = plane if d == 2 else "3d"
        self.E = _region_values(mesh, E, "E")
        self.nu = _region_values(mesh, nu, "nu")
        self.body_force = np.zeros(d) if body_force is None else body_force
        self.traction = dict(traction or {})
        self.dirichlet = dict(dirichlet or {})
        self.solver = solver or LinearSolver("direct", comm=self.space.comm)

    @cached_property
    def bcs(self) -> list[DirichletBC]:
        out = []
        for key, v in self.dirichlet.items():
            tag, comp = key if isinstance(key, tuple) else (key, None)
            out.append(DirichletBC(self.space, tag, v, component=comp))
        return out

    def lame(self):
        """(lambda, mu) per cell (ne,), Pa."""
        return lame(self.E, self.nu, self.plane)

    def assemble(self):
        V = self.space
        lam, mu = self.lame()
        K = elasticity(V, lam, mu)
        f = load(V, self.body_force)
        for tag, t in self.traction.items():
            f += boundary_load(V, tag, t)
        apply_dirichlet(K, f, self.bcs)
        return K, f

    def solve(self) -> np.ndarray:
        """Displacements (n_nodes*dim,) interleaved (node*dim + component), m; this rank's rows
        when distributed."""
        K, f = self.assemble()
        if self.solver.method != "direct":  # AMG: rigid-body modes, and nodes as blocks
            if self.solver.near_nullspace is None:
                self.solver.near_nullspace = rigid_body_modes(self.space.node_coords)
            if self.solver.block_size == 1:
                self.solver.block_size = self.space.ncomp
        return self.solver(K, f)

    def stress(self, u: np.ndarray) -> np.ndarray:
        """Cauchy stress at quadrature points (ne, nq, dim, dim), Pa, from displacements u
        (this rank's rows when distributed; every rank gets every cell)."""
        lam, mu = self.lame()
        nq = self.space.nq
        u = self.space.gather(u)
        return _stress(self.space, u, np.repeat(lam[:, None], nq, 1), np.repeat(mu[:, None], nq, 1))

    def affine_terms(self, regions: list[str]) -> AffineDecomposition:
        """K(E) = sum_r E_r K_r over the given regions (which must cover the mesh), with fixed nu
        per region; theta(E) = (E_r..., 1); Dirichlet identity as the last term."""
        V, mesh = self.space, self.space.mesh
        cover = np.zeros(mesh.n_cells, dtype=int)
        ops = []
        hit_all = np.zeros(len(V.csr[1]), dtype=bool)
        diag = []
        for bc in self.bcs:
            hit_all |= bc._mask[0]
            diag.append(bc._mask[1])
        for r in regions:
            cells = mesh.region(r)
            cover[cells] += 1
            w = np.zeros(mesh.n_cells)
            w[cells] = 1.0
            lam, mu = lame(np.ones(mesh.n_cells), self.nu, self.plane)
            A = elasticity(V, lam * w, mu * w)
            A.data[hit_all] = 0.0
            ops.append(A)
        if (cover != 1).any():
            raise ShapeError(f"regions {regions} must cover every cell exactly once")
        I = ops[0].copy()
        I.data[:] = 0.0
        if diag:
            I.data[np.concatenate(diag)] = 1.0
        ops.append(I)
        f = load(V, self.body_force)
        for tag, t in self.traction.items():
            f += boundary_load(V, tag, t)
        g = np.zeros(V.n_dofs)
        for bc in self.bcs:
            g[bc.dofs] = bc.values
        if np.any(g != 0):
            raise ShapeError("affine_terms supports homogeneous Dirichlet conditions only")
        for bc in self.bcs:
            f[V.local_rows(bc.dofs)] = 0.0
        theta = Theta(tuple(f"mu[..., {r}]" for r in range(len(regions))) + ("1",))
        return AffineDecomposition(ops, theta, [f], Theta(("1",)))
