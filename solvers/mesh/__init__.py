"""Meshes: the Mesh class, structured generators, file import/export and checks."""

from solvers.mesh._mesh import Mesh
from solvers.mesh.generators import box, interval, rectangle

__all__ = ["Mesh", "interval", "rectangle", "box"]
