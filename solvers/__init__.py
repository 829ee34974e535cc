"""romtk full-order side: meshes, finite elements, physics, linear and nonlinear solvers."""

import os as _os

# Numba's OpenMP threads would otherwise spin between parallel regions and starve other
# processes (MPI ranks, BLAS threads, other jobs) on a shared node; set before Numba starts them.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
