"""Meshes: the Mesh class, structured generators, file import/export and checks."""

from solvers.mesh._mesh import Mesh
from solvers.mesh.generators import box, interval, rectangle
from solvers.mesh.io import read_mesh, write_mesh, write_time_series
from solvers.mesh.quality import cell_volumes, check_cells

__all__ = ["Mesh", "interval", "rectangle", "box", "read_mesh", "write_mesh", "write_time_series",
           "cell_volumes", "check_cells"]
