"""Thermal block: full-order heat solve for one conductivity vector, with XDMF and PNG output.

The unit square is split into B1 x B2 blocks of conductivity mu_i in [0.1, 1]; unit
source, zero temperature on the boundary. Run `python cases/thermal_block.py --help`.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

import rom
from solvers.linalg import LinearSolver
from solvers.mesh.io import write_mesh
from solvers.problems import ThermalBlock

log = logging.getLogger("thermal_block")


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--blocks", type=int, nargs=2, default=(3, 3), metavar=("B1", "B2"))
    p.add_argument("--n", type=int, default=200, help="cells per side of the square (default 200)")
    p.add_argument("--degree", type=int, default=1, choices=(1, 2))
    p.add_argument("--mu", type=float, nargs="+", help="B1*B2 conductivities (default: a checkerboard 1/0.1)")
    p.add_argument("--solver", default="direct", choices=("direct", "cg"), help="direct LU or AMG-CG")
    p.add_argument("--out", type=Path, default=Path("results/thermal_block"), help="output folder")
    p.add_argument("--json", type=Path, help="write the headline figures as JSON here")
    p.add_argument("--no-plot", action="store_true")
    return p.parse_args(argv)


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
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        rows = [dict(figures)]
        goals = [{"name": "relative_residual", "value": residual, "target": 1e-8, "op": "<=", "met": residual <= 1e-8}]
        args.json.write_text(json.dumps({"benchmark": "thermal_block", "romtk_version": rom.__version__,
                                         "rows": rows, "goals": goals}, indent=2))
    return figures


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
