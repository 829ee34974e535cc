"""Solve benchmark: sparse direct vs AMG-preconditioned CG on romtk's FOM systems, in one run.

Problems (matrices assembled by romtk, Dirichlet conditions by lifting, which keeps
them symmetric positive definite):

* 2D Poisson P1 and P2 on the unit square, unit source, u = 0 on the whole boundary;
* 3D Poisson P1 on the unit cube, same data;
* 3D linear elasticity P1 (E = 1, nu = 0.3), clamped on x = 0, unit body load in -z.

Both solvers go through `solvers.linalg.LinearSolver` (scipy backend):
"direct" is SuperLU (scipy.sparse.linalg.splu, COLAMD ordering); "cg" + "amg" is scipy's
CG preconditioned by one V-cycle of pyamg's smoothed_aggregation_solver, with the six
rigid-body modes as near-nullspace B for elasticity, stopped at relative residual 1e-8.
Reported per problem: setup and solve seconds, CG iterations, true relative residuals,
the relative difference of the two solutions, and the AMG-CG speed-up over direct
(total = setup + solve). No goals are named by the issue; the JSON has an empty list.

    python cases/benchmarks/solve.py [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from pathlib import Path

# see assembly.py: Numba's OpenMP threads must not spin next to OpenBLAS's on small machines
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine_info, write_json  # noqa: E402

from solvers.fem import Space  # noqa: E402
from solvers.fem.assembly import diffusion, elasticity, lame, load  # noqa: E402
from solvers.fem.bc import DirichletBC, apply_dirichlet  # noqa: E402
from solvers.linalg import LinearSolver, rigid_body_modes  # noqa: E402
from solvers.mesh import box, rectangle  # noqa: E402

RTOL = 1e-8


def poisson(mesh, p):
    V = Space(mesh, p)
    A, b = apply_dirichlet(diffusion(V, 1.0), load(V, 1.0), DirichletBC(V, "boundary"))
    return V, A, b, None


def elastic(mesh):
    V = Space(mesh, 1, shape=(3,))
    lam, mu = lame(1.0, 0.3, "3d")
    A, b = apply_dirichlet(elasticity(V, float(lam), float(mu)), load(V, [0.0, 0.0, -1.0]),
                           DirichletBC(V, "left"))
    return V, A, b, rigid_body_modes(V.node_coords)


def run_problem(label: str, build) -> list[dict]:
    V, A, b, B = build()
    n, nnz = A.shape[0], A.nnz
    rows = []
    x = {}
    for name, solver in (("direct (SuperLU)", LinearSolver("direct")),
                         ("AMG-CG (pyamg SA)", LinearSolver("cg", "amg", rtol=RTOL, near_nullspace=B,
                                                            record_history=False))):
        solver.setup(A)
        t = time.perf_counter()
        x[name] = solver.solve(b)
        t_solve = time.perf_counter() - t
        info = solver.info
        rows.append({"case": label, "system": name, "n_dofs": n, "nnz": nnz, "setup_seconds": solver.setup_seconds,
                     "solve_seconds": t_solve, "seconds": solver.setup_seconds + t_solve,
                     "iterations": info.iterations, "residual": info.residual})
    xd, xa = x.values()
    rows.append({"case": label, "system": "ratio", "speedup_amg_vs_direct": rows[0]["seconds"] / rows[1]["seconds"],
                 "solution_rel_diff": float(np.linalg.norm(xd - xa) / np.linalg.norm(xd))})
    del V, A, b, B, x, xd, xa
    gc.collect()
    return rows


def _print(rows: list[dict]) -> None:
    print(f"{'case':<28}{'solver':<20}{'dofs':>9}{'setup s':>9}{'solve s':>9}{'total s':>9}{'its':>5}"
          f"{'residual':>10}")
    for r in rows:
        if r["system"] == "ratio":
            print(f"{'':<28}{'AMG-CG speed-up':<20}{r['speedup_amg_vs_direct']:9.2f}x   "
                  f"(solutions differ by {r['solution_rel_diff']:.1e})")
            continue
        print(f"{r['case']:<28}{r['system']:<20}{r['n_dofs']:9d}{r['setup_seconds']:9.3f}{r['solve_seconds']:9.3f}"
              f"{r['seconds']:9.3f}{r['iterations']:5d}{r['residual']:10.1e}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small meshes (seconds)")
    ap.add_argument("--json", type=Path, help="write rows (and the empty goals list) to this JSON file")
    ap.add_argument("--blas-threads-default", action="store_true",
                    help="keep OpenBLAS's default thread count (one thread otherwise)")
    args = ap.parse_args(argv)
    machine = machine_info()
    print(f"machine: {machine['cpus']} cpus, {machine['gemm_gflops']} GFLOP/s GEMM, "
          f"{machine['bandwidth_gbs']} GB/s copy bandwidth")
    if not args.blas_threads_default:
        # on the 2-vCPU machine this was written on, OpenBLAS's threads made pyamg's setup 20x and
        # CG 10-30x slower (pure scipy + pyamg, no romtk code involved); one BLAS thread is the fix
        threadpool_limits(1, user_api="blas")
        print("BLAS limited to one thread (--blas-threads-default to keep OpenBLAS's default)")
    # sizes: the 2D problems have ~250k dofs, the 3D ones ~30k (SuperLU's 3D fill limits them)
    n2p1, n2p2, n3, n3e = (50, 25, 8, 6) if args.quick else (500, 250, 30, 20)
    problems = [
        (f"2D Poisson P1 {n2p1}x{n2p1}", lambda: poisson(rectangle(n2p1, n2p1), 1)),
        (f"2D Poisson P2 {n2p2}x{n2p2}", lambda: poisson(rectangle(n2p2, n2p2), 2)),
        (f"3D Poisson P1 {n3}^3", lambda: poisson(box(n3, n3, n3), 1)),
        (f"3D elasticity P1 {n3e}^3", lambda: elastic(box(n3e, n3e, n3e))),
    ]
    # warm-up, not timed: first calls into pyamg/scipy/Numba pay one-off costs (seconds)
    run_problem("warm-up", lambda: elastic(box(3, 3, 3)))
    run_problem("warm-up", lambda: poisson(rectangle(8, 8), 2))
    print("warmed up on small problems; one-off first-call costs are not counted")
    rows: list[dict] = []
    for label, build in problems:
        rows += run_problem(label, build)
        print(f"  done {label}", flush=True)
    _print(rows)
    if args.json:
        write_json(args.json, "solve", rows, [])


if __name__ == "__main__":
    main()
