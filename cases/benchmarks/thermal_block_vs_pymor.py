"""Certified RB on the thermal block: romtk against pyMOR's CoerciveRBReductor + rb_greedy, same run.

Same problem (unit square, B1 x B2 blocks of conductivity in [0.1, 1], unit source, T = 0
on the boundary), comparable P1 grids (pyMOR's TriaGrid with k intervals has (k+1)^2 + k^2
vertices; romtk's triangle grid of n = round(sqrt(2) k) cells per side has about as many
dofs), the same training set (256 random parameters) and test set (100), the same basis size,
both with the min-theta coercivity bound in the H^1_0 (energy at mu = 1) norm. Reported:
offline seconds (greedy), online seconds per reduced solve and per solve + bound, max true
relative error and max bound over the test set, effectivities, speed-up over the FOM solve,
and the accuracy floor of the residual formula (romtk's standard Gram formula vs its
orthonormalized one, at a converged basis).

Goals: offline_vs_pymor (pyMOR offline / romtk offline >= 2), online_vs_pymor (pyMOR solve +
estimate / romtk solve + estimate >= 3), error_vs_pymor (romtk max error / pyMOR max error at
equal N <= 2), accuracy_floor_gain (Gram floor / orthonormalized floor >= 1e4).

    python cases/benchmarks/thermal_block_vs_pymor.py [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse.linalg as sla

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine_info, write_json  # noqa: E402

from rom.rb import Reductor, greedy  # noqa: E402
from solvers.problems import ThermalBlock  # noqa: E402


def per_call(fn, items, repeat=3) -> float:
    best = np.inf
    for _ in range(repeat):
        t = time.perf_counter()
        for x in items:
            fn(x)
        best = min(best, (time.perf_counter() - t) / len(items))
    return best


def run_romtk(blocks, n, train, test, N):
    tb = ThermalBlock(blocks, n=n)
    X = tb.inner_product
    box = tb.parameter_space
    t = time.perf_counter()
    red = Reductor(tb.affine, X, box.lower, box.upper, mu_bar=np.ones(box.dim))
    res = greedy(red, train, tol=0.0, max_size=N, target="x_norm")
    offline = time.perf_counter() - t
    model = res.model
    t_solve = per_call(model.solve, test[:50])
    t_est = per_call(model.estimate, test[:50])
    t_fom = per_call(tb.solve, test[:5], repeat=1)
    errs, bounds = [], []
    est = model.estimate(test)
    u = model.solve(test)
    for i, mu in enumerate(test):
        uh = tb.solve(mu)
        e = uh - model.reconstruct(u[i])
        nrm = np.sqrt(uh @ (X @ uh))
        errs.append(np.sqrt(e @ (X @ e)) / nrm)
        bounds.append(est["x_norm"][i] / nrm)
    errs, bounds = np.array(errs), np.array(bounds)
    return {"system": "romtk", "dofs": tb.space.n_dofs, "N": model.size, "offline_s": offline,
            "solve_s": t_solve, "solve_estimate_s": t_est, "fom_solve_s": t_fom,
            "max_error": errs.max(), "max_bound": bounds.max(), "min_effectivity": (bounds / errs).min(),
            "max_effectivity": (bounds / errs).max(), "speedup": t_fom / t_est}


def run_pymor(blocks, k, train, test, N):
    from pymor.basic import (CoerciveRBReductor, ExpressionParameterFunctional, discretize_stationary_cg,
                             rb_greedy, thermal_block_problem)
    from pymor.core.logger import set_log_levels

    set_log_levels({"pymor": "ERROR"})
    p = thermal_block_problem(blocks)
    fom, _ = discretize_stationary_cg(p, diameter=1.0 / k)
    mus = lambda A: [fom.parameters.parse(list(a)) for a in A]  # noqa: E731
    tr, te = mus(train), mus(test)
    t = time.perf_counter()
    reductor = CoerciveRBReductor(fom, product=fom.h1_0_semi_product,
                                  coercivity_estimator=ExpressionParameterFunctional("min(diffusion)", fom.parameters))
    data = rb_greedy(fom, reductor, tr, max_extensions=N)
    offline = time.perf_counter() - t
    rom = data["rom"]
    t_solve = per_call(rom.solve, te[:50])
    t_est = per_call(lambda mu: (rom.solve(mu), rom.estimate_error(mu)), te[:50])
    t_fom = per_call(fom.solve, te[:5], repeat=1)
    errs, bounds = [], []
    for mu in te:
        uh = fom.solve(mu)
        e = uh - reductor.reconstruct(rom.solve(mu))
        nrm = float(uh.norm(fom.h1_0_semi_product)[0])
        errs.append(float(e.norm(fom.h1_0_semi_product)[0]) / nrm)
        bounds.append(float(np.ravel(rom.estimate_error(mu))[0]) / nrm)
    errs, bounds = np.array(errs), np.array(bounds)
    return {"system": "pymor", "dofs": fom.solution_space.dim, "N": len(reductor.bases["RB"]),
            "offline_s": offline, "solve_s": t_solve, "solve_estimate_s": t_est, "fom_solve_s": t_fom,
            "max_error": errs.max(), "max_bound": bounds.max(), "min_effectivity": (bounds / errs).min(),
            "max_effectivity": (bounds / errs).max(), "speedup": t_fom / t_est}


def accuracy_floors(blocks, n, train, test):
    """Median relative residual dual norm at a converged basis: Gram (F1) vs orthonormalized (F2)."""
    tb = ThermalBlock(blocks, n=n)
    box = tb.parameter_space
    red = Reductor(tb.affine, tb.inner_product, box.lower, box.upper, mu_bar=np.ones(box.dim))
    greedy(red, train, tol=0.0, max_size=60, target="residual")
    f = tb.affine.rhs[0]
    fn = np.sqrt(f @ sla.spsolve(tb.inner_product.tocsc(), f))
    return {m: float(np.median(red.model(estimator=m).residual_norm(test[:20])) / fn)
            for m in ("gram", "orthonormalized")}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="50-interval grid, 2x2 block only")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    rng = np.random.default_rng(0)
    cases = [((2, 2), 50)] if args.quick else [((2, 2), 100), ((2, 2), 200), ((3, 3), 100)]
    rows, goals = [], []
    for blocks, k in cases:
        p = blocks[0] * blocks[1]
        train = rng.uniform(0.1, 1.0, (256, p))
        test = rng.uniform(0.1, 1.0, (100, p))
        N = 20 if p == 4 else 30
        step = int(np.lcm(*blocks))  # block edges on mesh lines (else the greedy converges much slower)
        n = step * int(round(np.sqrt(2) * k / step))
        case = f"{blocks[0]}x{blocks[1]} block, pyMOR {k} intervals / romtk n={n}, N={N}"
        r = run_romtk(blocks, n, train, test, N)
        q = run_pymor(blocks, k, train, test, N)
        for row in (r, q):
            row["case"] = case
            rows.append(row)
            print(f"{case:48s} {row['system']:6s} dofs={row['dofs']:6d} offline={row['offline_s']:.2f}s "
                  f"solve={row['solve_s'] * 1e6:.0f}us solve+est={row['solve_estimate_s'] * 1e6:.0f}us "
                  f"err={row['max_error']:.2e} bound={row['max_bound']:.2e} "
                  f"eff=[{row['min_effectivity']:.2f}, {row['max_effectivity']:.2f}] speedup={row['speedup']:.0f}")
        tag = f"{blocks[0]}x{blocks[1]}_{k}"
        goals += [
            {"name": "offline_vs_pymor", "case": tag, "value": q["offline_s"] / r["offline_s"], "target": 2.0,
             "op": ">="},
            {"name": "online_vs_pymor", "case": tag, "value": q["solve_estimate_s"] / r["solve_estimate_s"],
             "target": 3.0, "op": ">="},
            {"name": "error_vs_pymor", "case": tag, "value": r["max_error"] / q["max_error"], "target": 2.0,
             "op": "<="},
        ]
    floors = accuracy_floors((2, 2), 40 if args.quick else 100, rng.uniform(0.1, 1.0, (256, 4)),
                             rng.uniform(0.1, 1.0, (20, 4)))
    rows.append({"case": "accuracy floor (2x2, converged basis)", "system": "romtk", **floors})
    print(f"accuracy floor: Gram {floors['gram']:.1e}, orthonormalized {floors['orthonormalized']:.1e}")
    goals.append({"name": "accuracy_floor_gain", "value": floors["gram"] / floors["orthonormalized"],
                  "target": 1e4, "op": ">="})
    for g in goals:
        g["met"] = bool(g["value"] >= g["target"] if g["op"] == ">=" else g["value"] <= g["target"])
        print(f"goal {g['name']:22s} {g.get('case', ''):8s} {g['value']:.3g} {g['op']} {g['target']}: "
              f"{'met' if g['met'] else 'NOT met'}")
    machine_info()
    if args.json:
        write_json(args.json, "thermal_block_vs_pymor", rows, goals)
    return {"rows": rows, "goals": goals}


if __name__ == "__main__":
    main()
