"""Acoustic duct with a frequency-dependent impedance wall, reduced nonintrusively over a band.

FOM: solvers.problems.helmholtz.DuctHelmholtz (P2, complex). The wavenumber enters
non-affinely through the wall admittance. Offline, from assembled matrices only: the
nonintrusive matrix EIM (card D) A(k) ~ sum_m beta_m(k) A(k_m) over training wavenumbers,
a reduced basis from snapshots (SVD, truncated at --svd-tol), and the d projected matrices
V^H A(k_m) V. Online, per wavenumber: the d matrix entries A(k)[i_l, j_l] (read here from the
assembled matrix; a black-box code would compute those entries alone), a d x d triangular
solve, an N x N complex solve. Compared with the FOM at --test wavenumbers: relative error vs
frequency and vs the number of EIM terms, speed-up.

    python cases/acoustics.py [--quick] [--json PATH] [--out DIR]
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent / "benchmarks"))
from _machine import write_json  # noqa: E402

from rom.eim import MatrixEIM  # noqa: E402
from solvers.problems.helmholtz import DuctHelmholtz  # noqa: E402

log = logging.getLogger("acoustics")


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nx", type=int, default=90)
    p.add_argument("--ny", type=int, default=30)
    p.add_argument("--band", type=float, nargs=2, default=(2.0, 8.0), help="wavenumber band, 1/m")
    p.add_argument("--train", type=int, default=150, help="training wavenumbers")
    p.add_argument("--test", type=int, default=300, help="test wavenumbers")
    p.add_argument("--svd-tol", type=float, default=1e-10, help="relative singular value cut of the basis")
    p.add_argument("--quick", action="store_true", help="coarser mesh, 80 training, 100 test wavenumbers")
    p.add_argument("--out", type=Path, default=Path("results/acoustics"))
    p.add_argument("--json", type=Path)
    p.add_argument("--no-plot", action="store_true")
    a = p.parse_args(argv)
    if a.quick:
        a.nx, a.ny, a.train, a.test = 45, 15, 80, 100
    return a


def main(argv=None) -> dict:
    args = parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    fom = DuctHelmholtz(args.nx, args.ny, band=args.band)
    train = np.linspace(*args.band, args.train)[:, None]
    test = np.sort(np.random.default_rng(0).uniform(*args.band, args.test))[:, None]

    t0 = time.perf_counter()
    meim = MatrixEIM(max_terms=40, rtol=1e-14).fit(fom.matrix, train)
    S = np.stack([fom.solve(k) for k in train], axis=1)
    U, s, _ = np.linalg.svd(S, full_matrices=False)
    V = U[:, : int(np.sum(s > args.svd_tol * s[0]))]
    mats = meim.q_matrices() if meim.use_q_basis_ else meim.matrices_
    red_ops = np.stack([V.conj().T @ (A @ V) for A in mats])        # (d, N, N)
    red_f = V.conj().T @ fom.rhs
    offline = time.perf_counter() - t0
    log.info("offline: d = %d EIM terms (cond %.1e, %s basis), N = %d, %.1f s", meim.size, meim.cond_,
             "q" if meim.use_q_basis_ else "A(k_m)", V.shape[1], offline)

    def online(entries, d=None):
        d = meim.size if d is None else d
        c = meim.q_coefficients(entries, d) if meim.use_q_basis_ else meim.coefficients(entries, d)
        if meim.use_q_basis_ and d < meim.size:  # the truncated q-basis is the leading q-matrices
            return np.linalg.solve(np.tensordot(c, red_ops[:d], 1), red_f)
        if d < meim.size:
            ops = np.stack([V.conj().T @ (meim.matrices_[m] @ V) for m in range(d)])
            return np.linalg.solve(np.tensordot(c, ops, 1), red_f)
        return np.linalg.solve(np.tensordot(c, red_ops, 1), red_f)

    entries, exact, t_fom = [], [], []
    for k in test:
        A = fom.matrix(k)
        entries.append(np.asarray(A[meim.rows_, meim.cols_]).ravel())
        t = time.perf_counter()
        exact.append(fom.solve(k))
        t_fom.append(time.perf_counter() - t)
    t = time.perf_counter()
    coeffs = [online(e) for e in entries]
    t_online = (time.perf_counter() - t) / len(test)
    err = np.array([np.linalg.norm(V @ c - p) / np.linalg.norm(p) for c, p in zip(coeffs, exact)])
    ds = list(range(2, meim.size + 1))
    err_d = [max(np.linalg.norm(V @ online(e, d) - p) / np.linalg.norm(p) for e, p in zip(entries[::5], exact[::5]))
             for d in ds]
    speedup = float(np.median(t_fom)) / t_online
    log.info("online: max relative error %.2e over %d wavenumbers, %.0f us per solve, speed-up %.0f x "
             "(FOM solve only; the FOM assembly is not counted)", err.max(), len(test), t_online * 1e6, speedup)

    args.out.mkdir(parents=True, exist_ok=True)
    if not args.no_plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
        ax[0].semilogy(test[:, 0], err, ".-")
        ax[0].set_xlabel("wavenumber k (1/m)")
        ax[0].set_ylabel("relative error of the reduced pressure")
        ax[1].semilogy(ds, err_d, "o-")
        ax[1].set_xlabel("EIM terms d")
        ax[1].set_ylabel("max relative error (every 5th test k)")
        for a in ax:
            a.grid(True, which="both", alpha=0.3)
        fig.tight_layout()
        fig.savefig(args.out / "acoustics_error.png", dpi=120)
        plt.close(fig)
    row = {"case": "duct", "dofs": fom.space.n_dofs, "eim_terms": meim.size, "N": V.shape[1],
           "cond_B": meim.cond_, "offline_seconds": offline, "online_seconds": t_online,
           "fom_solve_seconds": float(np.median(t_fom)), "max_relative_error": float(err.max()),
           "error_vs_terms": dict(zip(map(str, ds), map(float, err_d)))}
    goals = [{"name": "max_relative_error", "value": float(err.max()), "target": 1e-6, "op": "<=",
              "met": bool(err.max() <= 1e-6)},
             {"name": "speedup", "value": speedup, "target": 10.0, "op": ">=", "met": bool(speedup >= 10.0)}]
    if args.json:
        write_json(args.json, "acoustics", [row], goals)
    return {"rows": [row], "goals": goals}


if __name__ == "__main__":
    main()
