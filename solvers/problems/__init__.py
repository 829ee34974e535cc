"""Physics: parametrized full-order models."""

from solvers.problems.advection_diffusion import AdvectionDiffusion
from solvers.problems.base import AffineDecomposition, Box, Problem, Theta
from solvers.problems.elasticity import LinearElasticity
from solvers.problems.heat import Heat
from solvers.problems.nonlinear_heat import NonlinearHeat, linear_conductivity
from solvers.problems.thermal_block import ThermalBlock

__all__ = ["AdvectionDiffusion", "AffineDecomposition", "Box", "Problem", "Heat", "LinearElasticity", "NonlinearHeat",
           "Theta", "ThermalBlock", "linear_conductivity"]
