"""Gaussian processes: exact GP regression, Kronecker-structured GPs on grids, GP-HM PDE collocation,
and POD+GP reduced models."""

from rom.gp.collocation import GPHMSolver
from rom.gp.exact import GaussianProcess
from rom.gp.kernels import (Kernel, Matern12, Matern32, Matern52, Product, Scaled, SpectralMixture,
                            SquaredExponential, StudentTMixture, Sum, White)
from rom.gp.kronecker import KroneckerGP
from rom.gp.podgp import PodGP

__all__ = ["GPHMSolver", "GaussianProcess", "KroneckerGP", "PodGP", "Kernel", "Matern12", "Matern32", "Matern52", "Product", "Scaled",
           "SpectralMixture", "SquaredExponential", "StudentTMixture", "Sum", "White"]
