"""Linear and nonlinear solvers behind one interface.

`LinearSolver` hides the backend: "scipy" (embedded default: SuperLU, CG/MINRES/GMRES
with pyamg's smoothed-aggregation AMG) today, "petsc" (KSP/PC) registered by the
distributed backend. Callers only see `setup(A)` / `solve(b)` / `info`; every solve's true
residual is checked, and `diagnose(A)` names the cause of a singular system.
`newton` solves F(u) = 0 with a backtracking line search.
"""

from solvers.linalg.linear import BACKENDS, LinearSolver, SolveInfo, diagnose, rigid_body_modes, split_petsc_args
from solvers.linalg.newton import NewtonResult, newton

__all__ = ["BACKENDS", "LinearSolver", "SolveInfo", "diagnose", "rigid_body_modes", "split_petsc_args",
           "NewtonResult", "newton"]
