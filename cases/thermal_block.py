"""Thermal block: full-order heat solve with XDMF and PNG output, then the certified RB workflow.

The unit square in B1 x B2 blocks of conductivity mu_i in [0.1, 1], unit source, T = 0 on the boundary.
One FOM solve; a weak greedy on the error bound (rom.rb.greedy) to a saved reduced model; its bound, true
error, effectivities and timings by basis size against FOM solves at random test parameters (goal: max
relative X error <= 1e-3). `--surrogate gp` adds a POD+GP; `--quick` uses a 42 x 42 mesh.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from rom import report
from solvers.linalg import LinearSolver, split_petsc_args
from solvers.mesh.io import write_mesh
from solvers.problems import ThermalBlock

log = logging.getLogger("thermal_block")


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--blocks", type=int, nargs=2, default=(3, 3), metavar=("B1", "B2"))
    p.add_argument("--n", type=int, default=198, help="cells per side, a multiple of B1 and B2 (block edges on lines)")
    p.add_argument("--degree", type=int, default=1, choices=(1, 2))
    p.add_argument("--mu", type=float, nargs="+", help="B1*B2 conductivities (default: a checkerboard 1/0.1)")
    p.add_argument("--solver", default="direct", choices=("direct", "cg"), help="direct LU or AMG-CG")
    p.add_argument("--out", type=Path, default=Path("results/thermal_block"), help="output folder")
    p.add_argument("--json", type=Path, help="write the headline figures as JSON here")
    p.add_argument("--no-plot", action="store_true")
    p.add_argument("--quick", action="store_true", help="the same reduced basis settings on a 42 x 42 mesh")
    p.add_argument("--no-rom", action="store_true", help="FOM solve only")
    p.add_argument("--train", type=int, default=1000, help="random training parameters of the greedy")
    p.add_argument("--test", type=int, default=50, help="random test parameters (own seed) of the error table")
    p.add_argument("--max-size", type=int, default=100, help="largest basis size (a cap; --tol stops first)")
    p.add_argument("--tol", type=float, default=2e-4, help="greedy tolerance: energy bound / ||u(mu_1)||_X")
    p.add_argument("--estimator", default="orthonormalized", choices=("gram", "orthonormalized", "eim"),
                   help="residual dual-norm formula (docs/methods/rb.md)")
    p.add_argument("--surrogate", default="rb", choices=("rb", "gp"), help="gp: compare with a POD+GP (rom.gp)")
    p.add_argument("--gp-snapshots", type=int, default=100, help="FOM snapshots of the GP surrogate (default 100)")
    p.add_argument("--gp-modes", type=int, default=20, help="POD modes of the GP surrogate (default 20)")
    own, _ = split_petsc_args(sys.argv[1:] if argv is None else argv)  # PETSc options go to PETSc
    args = p.parse_args(own)
    if args.quick:
        args.n = 42  # a multiple of 2 and 3: block edges on mesh lines
    return args


def main(argv=None) -> dict:
    args = parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("rom.rb").setLevel(logging.WARNING)  # one line per greedy step; the table sums them up
    (b1, b2), t0 = args.blocks, time.perf_counter()
    mu = np.array(args.mu or [1.0 if (i + j) % 2 == 0 else 0.1 for j in range(b2) for i in range(b1)])
    solver = LinearSolver(args.solver, "amg", rtol=1e-10)  # scipy on one process, PETSc under mpirun
    problem = ThermalBlock((b1, b2), n=args.n, degree=args.degree, solver=solver)
    V, A, f = problem.space, problem.matrix(mu), problem.affine.rhs[0]
    setup, (u, solve) = time.perf_counter() - t0, report.timed(solver, A, f)
    u_full = V.to_serial(V.gather(u))  # serial numbering: vertex dofs first
    figures = {"case": "thermal_block", "dofs": V.n_dofs, "cells": V.mesh.n_cells, "degree": args.degree,
               "mu": mu.tolist(), "setup_seconds": setup, "solve_seconds": solve,
               "mean_temperature": problem.output(u), "max_temperature": float(u_full.max()),
               "relative_residual": V.norm(A @ V.gather(u) - f) / V.norm(f)}
    if not V.comm.is_root:
        return figures
    log.info("thermal block %dx%d, %s on %d rank(s): %d dofs, setup %.2f s, solve %.2f s (%s, %s)\nmax T = %.6f, "
             "mean T = %.6f, relative residual %.1e", b1, b2, V, V.comm.size, V.n_dofs, setup, solve, args.solver,
             solver.backend, u_full.max(), figures["mean_temperature"], figures["relative_residual"])
    args.out.mkdir(parents=True, exist_ok=True)
    vertex_u = u_full[: V.mesh.n_points]
    write_mesh(args.out / "temperature.xdmf", V.mesh, point_data={"temperature": vertex_u})  # + cell "region"
    if not args.no_plot:
        report.plot_field(args.out / "temperature.png", V.mesh, vertex_u, label="temperature T (dimensionless)",
                          lines=(np.arange(1, b1) / b1, np.arange(1, b2) / b2), title="thermal block temperature "
                          "(cyan: block conductivity)", notes=[((i + .5) / b1, (j + .5) / b2, f"{mu[j * b1 + i]:g}")
                                                             for j in range(b2) for i in range(b1)])
    rows, goals = [figures], [report.goal("relative_residual", figures["relative_residual"], "<=", 1e-8)]
    if not args.no_rom and V.comm.size == 1:  # the reductor works on serial FOM data
        with threadpool_limits(1, user_api="blas"):  # small dense products: ~2x less CPU time (docs/cases)
            reduced_basis(problem, args, rows, goals)
    if args.json:  # DESIGN.md's shape, with the machine's measured GEMM rate and bandwidth
        sys.path.insert(0, str(Path(__file__).resolve().parent / "benchmarks"))
        from _machine import write_json

        write_json(args.json, "thermal_block", rows, goals)
    return figures


def snapshot_problem(blocks=(3, 3), n: int = 198, degree: int = 1) -> ThermalBlock:
    """The FOM that `rom snapshots thermal_block` runs (options via --set, e.g. --set n=60)."""
    return ThermalBlock(tuple(blocks), n=n, degree=degree, solver=LinearSolver("direct"))


def reduced_basis(problem: ThermalBlock, args, rows: list, goals: list) -> None:
    """Offline greedy, save/load, the certification table against FOM solves: appended to rows and goals."""
    from rom.rb import Reductor, greedy
    from rom.reduced import ReducedModel

    box, X = problem.parameter_space, problem.inner_product
    train = np.random.default_rng(0).uniform(box.lower, box.upper, (args.train, box.dim))
    test = np.random.default_rng(1).uniform(box.lower, box.upper, (args.test, box.dim))
    log.info("RB greedy: %d training parameters, relative bound %g, N <= %d", args.train, args.tol, args.max_size)
    t0 = time.perf_counter()
    red = Reductor(problem.affine, X, box.lower, box.upper, outputs=[problem.affine.rhs[0]])
    res = greedy(red, train, tol=args.tol, relative=True, max_size=args.max_size, estimator=args.estimator)
    offline = time.perf_counter() - t0
    res.model.save(args.out / "reduced_model.h5")
    model = ReducedModel.load(args.out / "reduced_model.h5")
    truth, fom_seconds = report.solve_all(problem.solve, test)  # the case's own FOM solver, not the reductor's
    sizes = [*range(10, model.size, 10), model.size]
    table = [report.certify(red.model(N, args.estimator, train), test, truth, X) for N in sizes[:-1]]
    table.append(report.certify(model, test, truth, X, energy=problem.matrix, repeats=3,
                                outputs=[problem.output(u) for u in truth.T]))
    spent = np.cumsum([h["seconds"] for h in res.history])
    row = {"case": "rb", **table[-1], "offline_seconds": offline, "speedup": fom_seconds / table[-1]["online_seconds"],
           "estimator": args.estimator, "train": args.train, "test": args.test, "tol": args.tol}
    log.info("RB: N=%d in %.1f s offline, speed-up over the FOM %.0fx; relative X-norm errors at %d test "
             "parameters:\n%s", row["N"], offline, row["speedup"], len(test), report.table(table, spent))
    if not args.no_plot:
        u0 = red.fom_solve(train[0])  # the greedy's reference field for its relative tolerance
        report.plot_convergence(args.out / "convergence.png", res.history, table, scale=np.sqrt(u0 @ (X @ u0)),
                                title=f"thermal block {args.blocks[0]}x{args.blocks[1]}, n={args.n}", goal=1e-3)
    goals += [report.goal(n, row[k], op, t) for n, k, op, t in (
        ("max_relative_error", "max_relative_error", "<=", 1e-3), ("speedup", "speedup", ">=", 100.0),
        ("energy_effectivity_ge_1", "min_energy_effectivity", ">=", 1.0),
        ("output_effectivity_ge_1", "min_output_effectivity", ">=", 1.0))]
    rows += [row] + [{"case": "rb_convergence", **r} for r in table]
    if args.surrogate == "gp":  # a POD+GP fitted on FOM snapshots at the first training parameters
        from rom.gp import PodGP
        from solvers.fem import mass

        mus, gp = train[: args.gp_snapshots], PodGP(n_modes=min(args.gp_modes, args.gp_snapshots), inner=X)
        _, fit = report.timed(lambda: gp.fit(np.log(mus), report.solve_all(problem.solve, mus)[0]))  # + snapshots
        fields, online = report.timed(gp.predict, np.log(test))
        gp_row = {"N": gp.modes_.shape[1], "offline_seconds": fit, "online_seconds": online / len(test)}
        rb = model.reconstruct(model.solve(test)).T
        rows += report.compare(truth, {"rb": (f"RB, greedy, N={row['N']}", rb, row), "pod_gp": (
            f"POD-GP, {len(mus)} snapshots", fields, gp_row)}, {"energy": X, "l2": mass(problem.space)})


if __name__ == "__main__":
    main()
