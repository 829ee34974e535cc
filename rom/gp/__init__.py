"""Gaussian processes: exact GP regression, Kronecker-structured GPs on grids, GP-HM PDE collocation."""

from rom.gp.exact import GaussianProcess
from rom.gp.kernels import (Kernel, Matern12, Matern32, Matern52, Product, Scaled, SpectralMixture,
                            SquaredExponential, StudentTMixture, Sum, White)

__all__ = ["GaussianProcess", "Kernel", "Matern12", "Matern32", "Matern52", "Product", "Scaled",
           "SpectralMixture", "SquaredExponential", "StudentTMixture", "Sum", "White"]
