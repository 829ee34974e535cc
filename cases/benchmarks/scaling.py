"""Strong scaling of the distributed FOM: assembly and PETSc GAMG-CG on 1 and P ranks, vs scipy + pyamg.

The driver relaunches this script under `mpiexec -n P` (worker mode) for each P, with one Numba
thread per rank, and runs the serial scipy + pyamg solve of the same problem in-process.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

PROBLEMS = ("poisson", "elasticity")


def build(problem: str, n: int, comm=None):
    """Space and lifted system of a 3D problem on box(n, n, n) tetrahedra (P1), and the times
    (s) of the space (partition and dof numbering), of the assembly (sparsity pattern, matrix,
    load vector, Dirichlet dofs) and of a re-assembly on the same pattern."""
    from solvers.fem import Space, diffusion, elasticity, lame, load
    from solvers.fem.bc import DirichletBC, apply_dirichlet
    from solvers.mesh import box

    mesh = box(n, n, n)
    t0 = time.perf_counter()
    V = Space(mesh, 1, comm=comm) if problem == "poisson" else Space(mesh, 1, (3,), comm=comm)
    t1 = time.perf_counter()
    if problem == "poisson":
        A, b = diffusion(V, 1.0), load(V, 1.0)
        bc = DirichletBC(V, "boundary")
    else:
        lam, mu = lame(1.0, 0.3)
        A, b = elasticity(V, lam, mu), load(V, [0.0, 0.0, -1.0])
        bc = DirichletBC(V, "left")
    t2 = time.perf_counter()
    refill = A.copy()
    t3 = time.perf_counter()
    (diffusion(V, 1.0, out=refill) if problem == "poisson" else elasticity(V, lam, mu, out=refill))
    t4 = time.perf_counter()
    apply_dirichlet(A, b, bc)
    return V, A, b, {"space": t1 - t0, "assembly": t2 - t1, "reassembly": t4 - t3}


def solve(problem, V, A, b, backend):
    from solvers.linalg import LinearSolver, rigid_body_modes

    B = rigid_body_modes(V.node_coords) if problem == "elasticity" else None
    s = LinearSolver("cg", "amg", rtol=1e-8, near_nullspace=B, backend=backend, comm=V.comm, block_size=V.ncomp)
    t0 = time.perf_counter()
    s.setup(A)
    x = s.solve(b)
    return x, time.perf_counter() - t0, s.info.iterations


def worker(problem: str, n: int, out: str) -> None:
    from rom.parallel import world

    comm = world()
    build(problem, 4, comm)  # compile (or load from Numba's cache) before timing, as assembly.py does
    comm.barrier()
    V, A, b, times = build(problem, n, comm)
    times = {k: comm.allreduce(t, op="max") for k, t in times.items()}
    _, t_solve, its = solve(problem, V, A, b, "petsc")
    t_solve = comm.allreduce(t_solve, op="max")
    if comm.rank == 0:
        Path(out).write_text(json.dumps({**times, "solve": t_solve, "iterations": its, "dofs": V.n_dofs}))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small meshes (seconds)")
    p.add_argument("--json", type=Path)
    p.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    p.add_argument("--n", type=int, nargs=2, metavar=("N_POISSON", "N_ELASTICITY"),
                   help="cells per side of the unit cube (default 100 and 70: about 1M dofs each)")
    p.add_argument("--worker", nargs=3, metavar=("PROBLEM", "N", "OUT"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        worker(args.worker[0], int(args.worker[1]), args.worker[2])
        return
    from _machine import machine_info, write_json

    sizes = dict(zip(PROBLEMS, args.n or ((16, 10) if args.quick else (100, 70))))
    env = dict(os.environ, NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    os.environ.update(NUMBA_NUM_THREADS="1")
    machine = machine_info()
    print(f"machine: {machine['cpus']} cpus; one Numba/BLAS thread per rank in every run")
    mpiexec = shutil.which("mpiexec")
    rows, goals = [], []
    for problem in PROBLEMS:
        n = sizes[problem]
        times = {}
        for P in args.ranks:
            with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
                out = f.name
            subprocess.run([mpiexec, "-n", str(P), sys.executable, __file__, "--worker", problem, str(n), out],
                           env=env, check=True)
            r = json.loads(Path(out).read_text())
            os.unlink(out)
            times[P] = r
            rows.append(r)
            r.update({"case": f"3D {problem} P1 {n}^3", "system": f"romtk petsc {P} rank(s)", "ranks": P})
            print(f"{problem:10s} {r['dofs']:9d} dofs  P={P}  space {r['space']:.3f} s  assembly {r['assembly']:.3f} s  "
                  f"re-assembly {r['reassembly']:.3f} s  GAMG-CG {r['solve']:.3f} s ({r['iterations']} its)")
        # serial scipy + pyamg on the same problem, same thread count
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1):
            import numba

            numba.set_num_threads(1)
            V, A, b, _ = build(problem, n)
            _, t_pyamg, its = solve(problem, V, A, b, "scipy")
        rows.append({"case": f"3D {problem} P1 {n}^3", "system": "scipy + pyamg, 1 process", "ranks": 1,
                     "solve": t_pyamg, "iterations": its, "dofs": V.n_dofs})
        print(f"{problem:10s} {V.n_dofs:9d} dofs  scipy + pyamg CG {t_pyamg:.3f} s ({its} its)")
        if 1 in times:
            for P in args.ranks:
                if P == 1:
                    continue
                ea = times[1]["assembly"] / (P * times[P]["assembly"])
                es = times[1]["solve"] / (P * times[P]["solve"])
                # reported, not goals: the space's partition and numbering, which every rank repeats
                # on the whole mesh (docs/parallel.md), and the assembly with the space included
                t1, tP = times[1], times[P]
                eff = {"space_efficiency": t1["space"] / (P * tP["space"]),
                       "space_and_assembly_efficiency": (t1["space"] + t1["assembly"]) / (P * (tP["space"] + tP["assembly"]))}
                tP.update(eff)  # tP is this run's row of the table
                print(f"{problem}: on {P} ranks, efficiency of the space set-up {eff['space_efficiency']:.3f}, "
                      f"of space + assembly {eff['space_and_assembly_efficiency']:.3f}")
                goals.append({"name": "assembly_efficiency_2ranks" if P == 2 else f"assembly_efficiency_{P}ranks",
                              "problem": problem, "value": ea, "target": 0.8, "op": ">=", "met": bool(ea >= 0.8)})
                goals.append({"name": "solve_efficiency_2ranks" if P == 2 else f"solve_efficiency_{P}ranks",
                              "problem": problem, "value": es, "target": 0.7, "op": ">=", "met": bool(es >= 0.7)})
            ratio = times[1]["solve"] / t_pyamg
            goals.append({"name": "petsc_vs_pyamg_1rank", "problem": problem, "value": ratio, "target": 1.0,
                          "op": "<=", "met": bool(ratio <= 1.0)})
    for g in goals:
        print(f"goal {g['name']} ({g['problem']}): {g['value']:.3f} (target {g['op']} {g['target']}) "
              f"{'met' if g['met'] else 'MISSED'}")
    if args.json:
        write_json(args.json, "scaling", rows, goals)


if __name__ == "__main__":
    main()
