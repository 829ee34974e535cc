"""Thermal block: full-order heat solve with XDMF and PNG output, then the certified RB workflow.

The unit square is split into B1 x B2 blocks of conductivity mu_i in [0.1, 1]; unit
source, zero temperature on the boundary. After the FOM solve for one conductivity vector,
the offline stage runs a weak greedy on the error bound (rom.rb.greedy), saves the reduced
model (HDF5, no FOM-sized online data), and the online stage evaluates it on random test
parameters: true error (FOM solves), bound, effectivity and speed-up. `--surrogate gp`
adds a non-intrusive POD+GP fitted on FOM snapshots at the training parameters and
tabulates both surrogates' errors against the FOM on the same test parameters. Run
`python cases/thermal_block.py --help`; `--quick` runs it in seconds.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np

from solvers.linalg import LinearSolver, split_petsc_args
from solvers.mesh.io import write_mesh
from solvers.problems import ThermalBlock

log = logging.getLogger("thermal_block")


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--blocks", type=int, nargs=2, default=(3, 3), metavar=("B1", "B2"))
    p.add_argument("--n", type=int, default=198,
                   help="cells per side (default 198, a multiple of 2 and 3 so block edges lie on mesh lines; "
                        "otherwise the reduced basis converges much more slowly)")
    p.add_argument("--degree", type=int, default=1, choices=(1, 2))
    p.add_argument("--mu", type=float, nargs="+", help="B1*B2 conductivities (default: a checkerboard 1/0.1)")
    p.add_argument("--solver", default="direct", choices=("direct", "cg"), help="direct LU or AMG-CG")
    p.add_argument("--out", type=Path, default=Path("results/thermal_block"), help="output folder")
    p.add_argument("--json", type=Path, help="write the headline figures as JSON here")
    p.add_argument("--no-plot", action="store_true")
    p.add_argument("--quick", action="store_true", help="small run: n=42, 100 training, 30 test parameters, N <= 25")
    p.add_argument("--no-rom", action="store_true", help="FOM solve only")
    p.add_argument("--train", type=int, default=128, help="training parameters for the greedy")
    p.add_argument("--test", type=int, default=50, help="random test parameters for the online table")
    p.add_argument("--max-size", type=int, default=25, help="largest basis size")
    p.add_argument("--tol", type=float, default=1e-6, help="greedy tolerance on the relative energy bound")
    p.add_argument("--snapshots", type=int, default=0, metavar="N",
                   help="also write a snapshot store of N LHS samples and its POD basis with plots (serial)")
    p.add_argument("--pod-tol", type=float, default=1e-6, help="POD relative energy tolerance (default 1e-6)")
    p.add_argument("--estimator", default="orthonormalized", choices=("gram", "orthonormalized", "eim"),
                   help="residual dual-norm formula (docs/methods/rb.md)")
    p.add_argument("--surrogate", default="rb", choices=("rb", "gp"),
                   help="gp: also fit a non-intrusive POD+GP (rom.gp.PodGP) on FOM snapshots at the training "
                        "parameters and compare its errors with the RB's on the same test parameters")
    p.add_argument("--gp-modes", type=int, default=20, help="POD modes of the GP surrogate (default 20)")
    own, _ = split_petsc_args(sys.argv[1:] if argv is None else argv)  # PETSc options go to PETSc
    args = p.parse_args(own)
    if args.quick:
        args.n, args.train, args.test, args.max_size = 42, 100, 30, 25  # n a multiple of B1, B2: block edges on mesh lines
    return args


def main(argv=None) -> dict:
    args = parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    b1, b2 = args.blocks
    mu = np.array(args.mu) if args.mu else np.array([1.0 if (i + j) % 2 == 0 else 0.1
                                                     for j in range(b2) for i in range(b1)])

    t0 = time.perf_counter()
    solver = LinearSolver(args.solver, "amg", rtol=1e-10)  # scipy on one process, PETSc under mpirun
    problem = ThermalBlock((b1, b2), n=args.n, degree=args.degree, solver=solver)
    A = problem.matrix(mu)
    f = problem.affine.rhs[0]
    t1 = time.perf_counter()
    u = solver(A, f)
    t2 = time.perf_counter()
    V = problem.space
    residual = V.norm(A @ V.gather(u) - f) / V.norm(f)

    figures = {
        "case": "thermal_block", "dofs": V.n_dofs, "cells": V.mesh.n_cells, "degree": args.degree,
        "mu": mu.tolist(), "setup_seconds": t1 - t0, "solve_seconds": t2 - t1,
        "mean_temperature": problem.output(u), "relative_residual": residual,
    }
    u_full = V.to_serial(V.gather(u))  # serial numbering: vertex dofs first
    figures["max_temperature"] = float(u_full.max())
    comm = V.comm
    if not comm.is_root:
        return figures
    log.info("thermal block %dx%d, %s on %d rank(s): %d dofs, setup %.2f s, solve %.2f s (%s, %s)", b1, b2,
             V, comm.size, V.n_dofs, t1 - t0, t2 - t1, args.solver, solver.backend)
    log.info("max T = %.6f, mean T = %.6f, relative residual %.1e", u_full.max(), figures["mean_temperature"],
             residual)

    args.out.mkdir(parents=True, exist_ok=True)
    vertex_u = u_full[: V.mesh.n_points]
    # write_mesh adds the block regions as an integer cell field "region"
    write_mesh(args.out / "temperature.xdmf", V.mesh, point_data={"temperature": vertex_u})
    log.info("wrote %s", args.out / "temperature.xdmf")
    if not args.no_plot:
        _plot(V.mesh, vertex_u, mu, (b1, b2), args.out / "temperature.png")
        log.info("wrote %s", args.out / "temperature.png")
    rows = [dict(figures)]
    goals = [{"name": "relative_residual", "value": residual, "target": 1e-8, "op": "<=",
              "met": bool(residual <= 1e-8)}]
    if args.snapshots and comm.size == 1:
        pod_row, pod_goals = snapshots_and_pod(problem, args)
        rows.append(pod_row)
        goals += pod_goals
    if not args.no_rom and comm.size == 1:  # the reductor works on serial FOM data
        rom_rows, rom_goals = reduced_basis(problem, args)
        rows += rom_rows
        goals += rom_goals
    if args.json:  # DESIGN.md's shape, with the machine's measured GEMM rate and bandwidth
        sys.path.insert(0, str(Path(__file__).resolve().parent / "benchmarks"))
        from _machine import write_json

        write_json(args.json, "thermal_block", rows, goals)
    return figures


def snapshot_problem(blocks=(3, 3), n: int = 198, degree: int = 1) -> ThermalBlock:
    """The FOM that `rom snapshots thermal_block` runs (options via --set, e.g. --set n=60)."""
    return ThermalBlock(tuple(blocks), n=n, degree=degree, solver=LinearSolver("direct"))


def snapshots_and_pod(problem: ThermalBlock, args) -> tuple[dict, list]:
    """LHS snapshots into a resumable store, POD in the energy inner product, XDMF modes and plots."""
    from rom.basis import PodBasis
    from rom.snapshots import generate

    store = args.out / "snapshots.h5"
    sample = problem.parameter_space.sample(args.snapshots, "lhs", seed=0)
    t0 = time.perf_counter()
    report = generate(problem, sample, store, progress=False, case="thermal_block",
                      options={"blocks": list(args.blocks), "n": args.n, "degree": args.degree})
    t1 = time.perf_counter()
    basis = PodBasis.from_store(store, tol=args.pod_tol)
    t2 = time.perf_counter()
    basis.save(args.out / "pod_basis.h5")
    basis.write_xdmf(args.out / "pod_modes.xdmf", n_modes=10)
    if not args.no_plot:
        basis.plot(args.out / "pod.png")
    log.info("%s", report)
    log.info("POD (tol %g): %d modes, projection error %.2e (discarded energy predicts %.2e), %.2f s; wrote %s",
             args.pod_tol, basis.size, basis.projection_error[-1], basis.energy_error()[-1], t2 - t1,
             args.out / "pod_basis.h5")
    row = {"case": "pod", "snapshots": report.n_done, "snapshot_seconds": t1 - t0, "pod_seconds": t2 - t1,
           "modes": basis.size, "projection_error": float(basis.projection_error[-1]),
           "energy_error": float(basis.energy_error()[-1])}
    ok = bool(basis.projection_error[-1] <= args.pod_tol * 1.0001)
    return row, [{"name": "pod_projection_error_le_tol", "value": row["projection_error"], "target": args.pod_tol,
                  "op": "<=", "met": ok}]


def reduced_basis(problem: ThermalBlock, args) -> tuple[list, list]:
    """Offline greedy, save/load, online table on random test parameters."""
    from rom.rb import Reductor, greedy
    from rom.reduced import ReducedModel

    box = problem.parameter_space
    rng = np.random.default_rng(0)
    train = rng.uniform(box.lower, box.upper, (args.train, box.dim))
    test = rng.uniform(box.lower, box.upper, (args.test, box.dim))
    X = problem.inner_product
    t0 = time.perf_counter()
    red = Reductor(problem.affine, X, box.lower, box.upper, outputs=[problem.affine.rhs[0]])
    res = greedy(red, train, tol=args.tol, relative=True, max_size=args.max_size, estimator=args.estimator,
                 plot=None if args.no_plot else args.out / "greedy.png", checkpoint=None)
    offline = time.perf_counter() - t0
    res.model.save(args.out / "reduced_model.h5")
    model = ReducedModel.load(args.out / "reduced_model.h5")
    t = time.perf_counter()
    for mu in test:
        model.estimate(mu)
    online = (time.perf_counter() - t) / len(test)
    est = model.estimate(test)
    u = model.solve(test)
    err, eff_e, eff_o, fom_t, fom, rb = [], [], [], [], [], []
    for i, mu in enumerate(test):
        t = time.perf_counter()
        uh = problem.solve(mu)
        fom_t.append(time.perf_counter() - t)
        fom.append(uh)
        rb.append(model.reconstruct(u[i]))
        e = uh - model.reconstruct(u[i])
        en = np.sqrt(e @ (problem.matrix(mu) @ e))
        err.append(np.sqrt(e @ (X @ e)) / np.sqrt(uh @ (X @ uh)))
        eff_e.append(est["energy"][i] / en)
        eff_o.append(est["output"][i, 0] / abs(problem.output(uh) - model.output(mu, u[i])[0]))
    err, eff_e, eff_o = map(np.array, (err, eff_e, eff_o))
    speedup = float(np.median(fom_t)) / online
    log.info("RB offline: N=%d in %.2f s (%d greedy steps); saved %s", model.size, offline, len(res.history),
             args.out / "reduced_model.h5")
    log.info("%-28s %10s", "online, %d test parameters" % len(test), "")
    log.info("%-28s %10.2e", "max relative X error", err.max())
    log.info("%-28s %10.2f .. %.2f", "energy effectivity", eff_e.min(), eff_e.max())
    log.info("%-28s %10.2f .. %.2f", "output effectivity", eff_o.min(), eff_o.max())
    log.info("%-28s %10.1f us", "solve + bound", online * 1e6)
    log.info("%-28s %10.0f x", "speed-up over FOM", speedup)
    row = {"case": "rb", "N": model.size, "offline_seconds": offline, "online_seconds": online,
           "max_relative_error": float(err.max()), "min_energy_effectivity": float(eff_e.min()),
           "max_energy_effectivity": float(eff_e.max()), "min_output_effectivity": float(eff_o.min()),
           "speedup": speedup, "estimator": args.estimator}
    goals = [{"name": "energy_effectivity_ge_1", "value": float(eff_e.min()), "target": 1.0, "op": ">=",
              "met": bool(eff_e.min() >= 1.0)},
             {"name": "output_effectivity_ge_1", "value": float(eff_o.min()), "target": 1.0, "op": ">=",
              "met": bool(eff_o.min() >= 1.0)},
             {"name": "speedup", "value": speedup, "target": 100.0, "op": ">=", "met": bool(speedup >= 100.0)}]
    if args.surrogate == "gp":
        return [row] + pod_gp(problem, train, test, np.array(fom).T, np.array(rb).T, model, offline, online,
                              args), goals
    return [row], goals


def pod_gp(problem: ThermalBlock, train, test, fom, rb, model, rb_offline, rb_online, args) -> list:
    """Non-intrusive alternative: FOM snapshots at the training parameters, POD in the energy
    product and one GP from log(mu) to the POD coefficients (rom.gp.PodGP); relative energy
    and L2 errors of the RB and the GP against the FOM (fom, rb: (n_dofs, n_test)). Online
    seconds per parameter: RB solve + error bound, GP mean prediction."""
    from rom.gp import PodGP
    from solvers.fem import mass

    t0 = time.perf_counter()
    S = np.column_stack([problem.solve(mu) for mu in train])
    t1 = time.perf_counter()
    gp = PodGP(n_modes=min(args.gp_modes, len(train)), inner=problem.inner_product).fit(np.log(train), S)
    t2 = time.perf_counter()
    gp.predict(np.log(test))
    online = (time.perf_counter() - t2) / len(test)
    pred = gp.predict(np.log(test))
    X, M = problem.inner_product, mass(problem.space)

    def rel(U, A):
        E = fom - U
        return np.sqrt(np.sum(E * (A @ E), 0) / np.sum(fom * (A @ fom), 0))

    rows = [{"case": "surrogate", "system": "rb", "N": model.size, "offline_seconds": rb_offline,
             "online_seconds": rb_online, "energy_errors": rel(rb, X), "l2_errors": rel(rb, M)},
            {"case": "surrogate", "system": "pod_gp", "N": gp.modes_.shape[1], "offline_seconds": t2 - t0,
             "snapshot_seconds": t1 - t0, "online_seconds": online, "energy_errors": rel(pred, X),
             "l2_errors": rel(pred, M)}]
    log.info("relative errors vs FOM, %d test parameters   energy max / mean      L2 max / mean    "
             "offline     online", len(test))
    names = (f"RB, greedy, N={model.size}", f"POD-GP, {len(train)} snapshots, N={rows[1]['N']}")
    for r, name in zip(rows, names):
        e, l2 = r.pop("energy_errors"), r.pop("l2_errors")
        r.update(max_energy_error=float(e.max()), mean_energy_error=float(e.mean()), max_l2_error=float(l2.max()),
                 mean_l2_error=float(l2.mean()))
        log.info("%-44s %9.2e / %.2e   %9.2e / %.2e  %6.2f s  %7.1f us", name, e.max(), e.mean(), l2.max(),
                 l2.mean(), r["offline_seconds"], r["online_seconds"] * 1e6)
    return rows


def _plot(mesh, u, mu, blocks, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.tri as mtri

    tris = mesh.cells if mesh.cell_type == "triangle" else mesh.cells[:, [0, 1, 2, 0, 2, 3]].reshape(-1, 3)
    tri = mtri.Triangulation(mesh.points[:, 0], mesh.points[:, 1], tris)
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    pc = ax.tripcolor(tri, u, shading="gouraud", cmap="inferno")
    fig.colorbar(pc, ax=ax, label="temperature")
    for k in range(1, blocks[0]):
        ax.axvline(k / blocks[0], color="w", lw=0.5)
    for k in range(1, blocks[1]):
        ax.axhline(k / blocks[1], color="w", lw=0.5)
    for j in range(blocks[1]):
        for i in range(blocks[0]):
            ax.text((i + 0.5) / blocks[0], (j + 0.5) / blocks[1], f"{mu[j * blocks[0] + i]:g}",
                    color="c", ha="center", va="center", fontsize=8)
    ax.set_aspect("equal")
    ax.set_title("thermal block temperature (cyan: block conductivity)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
    sys.exit(0)
