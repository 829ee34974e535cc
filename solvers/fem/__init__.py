"""Finite elements: reference elements, quadrature, spaces, Numba assembly, boundary
conditions and post-processing."""

from solvers.fem.assembly import (
    bilinear_form,
    boundary_load,
    boundary_mass,
    diffusion,
    elasticity,
    lame,
    load,
    mass,
    residual,
)
from solvers.fem.elements import Element, lagrange
from solvers.fem.quadrature import QuadratureRule, gauss
from solvers.fem.space import Space

__all__ = [
    "Element", "QuadratureRule", "Space", "bilinear_form", "boundary_load", "boundary_mass", "diffusion",
    "elasticity", "gauss", "lagrange", "lame", "load", "mass", "residual",
]
