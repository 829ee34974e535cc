"""Time-harmonic acoustics in a 2D duct with a frequency-dependent wall impedance.

-Laplace(p) - k^2 p = 0 in (0, L) x (0, H); unit normal velocity source d_n p = -1 on "left";
locally reacting impedance wall on "right": d_n p = -i k beta(x, k) p with the relaxation
admittance beta(x, k) = 1 / (1 + i k tau(y)), tau(y) = tau0 (1 + y / H) (a porous lining whose
relaxation time varies along the wall); rigid walls elsewhere. The wavenumber k enters
non-affinely (beta is not separable in x and k), so the matrix

    A(k) = K - k^2 M + i k B(k),   B(k) = int_wall beta(x, k) p q ds

has no finite affine decomposition; rom.eim.MatrixEIM approximates it from assembled matrices.
Complex systems are solved with scipy's SuperLU (a real PETSc build cannot hold them).
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as sla

from solvers.fem import Space, boundary_load, boundary_mass, diffusion, mass
from solvers.mesh import rectangle
from solvers.problems.base import Box


class DuctHelmholtz:
    """nx, ny: cells along and across the duct; degree 1 or 2; band (k_min, k_max) in 1/m."""

    def __init__(self, nx: int = 60, ny: int = 20, length: float = 3.0, height: float = 1.0, degree: int = 2,
                 band=(2.0, 8.0), tau0: float = 0.3):
        self.mesh = rectangle(nx, ny, upper=(length, height))
        self.space = Space(self.mesh, degree)
        self.height, self.tau0 = height, tau0
        self.parameter_space = Box(("k",), np.array([band[0]], float), np.array([band[1]], float))

    @cached_property
    def _parts(self):
        V = self.space
        return diffusion(V, 1.0), mass(V, 1.0), boundary_load(V, "left", 1.0)

    def admittance(self, y: np.ndarray, k: float) -> np.ndarray:
        """beta(y, k) = 1 / (1 + i k tau(y)), complex, same shape as y."""
        return 1.0 / (1.0 + 1j * k * self.tau0 * (1.0 + y / self.height))

    def matrix(self, mu) -> sp.csr_matrix:
        """A(k) (n, n) complex128 CSR for mu = (k,)."""
        k = float(self.parameter_space.validate(mu)[0])
        K, M, _ = self._parts
        Bre = boundary_mass(self.space, "right", lambda x: self.admittance(x[..., 1], k).real)
        Bim = boundary_mass(self.space, "right", lambda x: self.admittance(x[..., 1], k).imag)
        return (K - k**2 * M + 1j * k * (Bre + 1j * Bim)).tocsr()

    @property
    def rhs(self) -> np.ndarray:
        return self._parts[2].astype(np.complex128)

    def solve(self, mu) -> np.ndarray:
        """Pressure (n_dofs,) complex128."""
        return sla.splu(self.matrix(mu).tocsc()).solve(self.rhs)
