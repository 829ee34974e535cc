"""The thermal block of the reduced-basis literature.

Unit square split into B1 x B2 blocks; conductivity mu_i on block i; unit source;
T = 0 on the whole boundary; mu in [0.1, 1]^(B1 B2). A(mu) = sum_i mu_i A_i is affine.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import scipy.sparse as sp

from rom.errors import ShapeError
from solvers.fem import Space, diffusion, load
from solvers.fem.bc import DirichletBC
from solvers.linalg import LinearSolver
from solvers.mesh import Mesh, rectangle
from solvers.problems.base import AffineDecomposition, Box, Theta


class ThermalBlock:
    """Thermal block FOM. blocks: (B1, B2); n: cells per side (a multiple of B1 and B2 keeps block
    edges on mesh lines); degree: 1 or 2; cell_type: "triangle" or "quad"."""

    def __init__(self, blocks=(3, 3), n: int = 200, degree: int = 1, cell_type: str = "triangle",
                 bounds=(0.1, 1.0), solver: LinearSolver | None = None, mesh: Mesh | None = None, comm=None):
        b1, b2 = (int(b) for b in blocks)
        if b1 < 1 or b2 < 1:
            raise ShapeError(f"blocks={blocks}: need at least one block per direction")
        self.blocks = (b1, b2)
        self.mesh = mesh or rectangle(n, n, cell_type=cell_type)
        for i in range(b1):
            for j in range(b2):
                self.mesh.tag_region(
                    self.block_name(i, j),
                    lambda x, i=i, j=j: (np.floor(x[:, 0] * b1).clip(0, b1 - 1) == i)
                    & (np.floor(x[:, 1] * b2).clip(0, b2 - 1) == j),
                )
        self.space = Space(self.mesh, degree, comm=comm)
        names = tuple(f"mu_{i}_{j}" for j in range(b2) for i in range(b1))
        self.parameter_space = Box(names, np.full(len(names), bounds[0]), np.full(len(names), bounds[1]))
        self.solver = solver or LinearSolver("direct", comm=self.space.comm)

    @staticmethod
    def block_name(i: int, j: int) -> str:
        return f"block_{i}_{j}"

    @cached_property
    def bc(self) -> DirichletBC:
        return DirichletBC(self.space, "boundary", 0.0)

    @cached_property
    def affine(self) -> AffineDecomposition:
        """Q = B1*B2 block stiffness matrices plus the Dirichlet identity (theta = 1); one load."""
        V = self.space
        hit, diag = self.bc._mask
        ops = []
        for j in range(self.blocks[1]):
            for i in range(self.blocks[0]):
                k = np.zeros(self.mesh.n_cells)
                k[self.mesh.region(self.block_name(i, j))] = 1.0
                A = diffusion(V, k)
                A.data[hit] = 0.0
                ops.append(A)
        I = ops[0].copy()
        I.data[:] = 0.0
        I.data[diag] = 1.0
        ops.append(I)
        f = load(V, 1.0)
        f[V.local_rows(self.bc.dofs)] = 0.0
        theta = Theta(tuple(f"mu[..., {q}]" for q in range(len(ops) - 1)) + ("1",))
        return AffineDecomposition(ops, theta, [f], Theta(("1",)))

    def affine_terms(self) -> AffineDecomposition:
        return self.affine

    @cached_property
    def _stacked(self) -> np.ndarray:
        return np.stack([A.data for A in self.affine.operators])

    def matrix(self, mu) -> sp.csr_matrix:
        """A(mu) in the space's pattern, Dirichlet rows/columns replaced by the identity."""
        mu = self.parameter_space.validate(mu)
        A0 = self.affine.operators[0]
        data = np.append(mu, 1.0) @ self._stacked
        return sp.csr_matrix((data, A0.indices, A0.indptr), shape=A0.shape)

    def solve(self, mu) -> np.ndarray:
        """Temperature (n_dofs,) for conductivities mu (B1*B2,); this rank's rows when distributed."""
        return self.solver(self.matrix(mu), self.affine.rhs[0])

    @cached_property
    def inner_product(self) -> sp.csr_matrix:
        """Energy inner product at mu = 1 (H1_0 seminorm; identity on boundary dofs)."""
        return self.affine.matrix(np.ones(self.parameter_space.dim))

    def output(self, u: np.ndarray) -> float:
        """Mean temperature: the compliant output f^T u."""
        return self.space.dot(self.affine.rhs[0], u)
