"""Certification tables and figures: a reduced model checked against FOM truth.

`certify(model, test, truth, inner)` compares a `ReducedModel` (with its basis) with FOM
fields at test parameters and returns one row of plain numbers: the largest relative
X-norm error, the largest certified relative bound, effectivities and the online time.
`table(rows)` formats such rows for a log; `plot_convergence` and `plot_field` draw the
labelled PNGs of the case scripts. Nothing here solves a FOM: the caller brings the truth.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from rom.errors import ShapeError

log = logging.getLogger(__name__)


def relative_errors(truth: np.ndarray, approx: np.ndarray, inner) -> np.ndarray:
    """||u - u_N||_A / ||u||_A per column: truth, approx (n, m); inner: SPD sparse (n, n)."""
    E = truth - approx
    return np.sqrt(np.einsum("ij,ij->j", E, inner @ E) / np.einsum("ij,ij->j", truth, inner @ truth))


def trajectory_error(truth: np.ndarray, approx: np.ndarray, inner) -> float:
    """||U - U_N||_A / ||U||_A over a whole trajectory (all columns): truth, approx (n, m)."""
    E = truth - approx
    return float(np.sqrt(np.einsum("ij,ij->", E, inner @ E) / np.einsum("ij,ij->", truth, inner @ truth)))


def certify(model, test, truth, inner, *, energy=None, outputs=None, repeats: int = 1) -> dict:
    """One row for `model` (a ReducedModel with basis) at test parameters (m, p).

    truth: FOM fields (n, m); inner: the X product (n, n) the model's bounds are stated in;
    energy: optional callable mu -> A(mu) (n, n) for the energy-norm effectivity; outputs:
    optional FOM outputs (m, L) for the output effectivity. The relative bound is
    Delta_X / (||u_N||_X - Delta_X), which bounds ||u - u_N||_X / ||u||_X whenever
    Delta_X < ||u_N||_X (inf otherwise). online_seconds: one reduced solve plus its bounds,
    per parameter, the median of `repeats` timed passes over the test parameters."""
    test = np.atleast_2d(np.asarray(test, dtype=float))
    if truth.shape != (inner.shape[0], test.shape[0]):
        raise ShapeError(f"truth has shape {truth.shape}; give the FOM fields ({inner.shape[0]}, {test.shape[0]}), "
                         "one column per test parameter")
    passes = []
    for _ in range(max(1, int(repeats))):
        t = time.perf_counter()
        for mu in test:
            model.estimate(mu)
        passes.append((time.perf_counter() - t) / len(test))
    coeffs = model.solve(test)
    est = model.estimate(test, coeffs)
    U = model.reconstruct(coeffs).T
    err = relative_errors(truth, U, inner)
    un = np.sqrt(np.einsum("ij,ij->j", U, inner @ U))
    dx = est["x_norm"]
    bound = np.where(dx < un, dx / np.maximum(un - dx, 1e-300), np.inf)
    row = {"N": model.size, "max_relative_bound": float(bound.max()), "max_relative_error": float(err.max()),
           "min_effectivity": float(np.min(bound / err)), "max_effectivity": float(np.max(bound / err)),
           "online_seconds": float(np.median(passes))}
    if energy is not None:
        E = truth - U
        en = np.sqrt([E[:, i] @ (energy(mu) @ E[:, i]) for i, mu in enumerate(test)])
        row.update(min_energy_effectivity=float(np.min(est["energy"] / en)),
                   max_energy_effectivity=float(np.max(est["energy"] / en)))
    if outputs is not None:
        gap = np.abs(np.atleast_2d(outputs).reshape(len(test), -1) - model.output(test, coeffs))
        row["min_output_effectivity"] = float(np.min(est["output"] / gap))
    return row


def table(rows: list, offline=None) -> str:
    """Rows of `certify` as a text table. offline: greedy seconds spent up to each basis size
    (offline[N - 1]), an extra column; energy and output effectivities, where a row has them,
    follow the table."""
    lines = [f"{'N':>4} {'max rel. bound':>15} {'max rel. error':>15} {'bound / error':>15} {'online (us)':>12}"
             + (f" {'offline (s)':>12}" if offline is not None else "")]
    for r in rows:
        lines.append(f"{r['N']:>4} {r['max_relative_bound']:>15.2e} {r['max_relative_error']:>15.2e} "
                     f"{r['min_effectivity']:>6.2f} .. {r['max_effectivity']:<5.2f} {r['online_seconds'] * 1e6:>12.1f}"
                     + (f" {offline[r['N'] - 1]:>12.1f}" if offline is not None else ""))
    for r in rows:
        notes = ([f"energy-norm effectivity {r['min_energy_effectivity']:.2f} .. {r['max_energy_effectivity']:.2f}"]
                 if "min_energy_effectivity" in r else [])
        notes += [f"output effectivity >= {r['min_output_effectivity']:.2f}"] if "min_output_effectivity" in r else []
        if notes:
            lines.append(f"N={r['N']}: " + ", ".join(notes))
    return "\n".join(lines)


def compare(truth: np.ndarray, systems: dict, products: dict) -> list:
    """Surrogates side by side against FOM truth (n, m). systems: {system: (label, fields (n, m),
    {"N", "offline_seconds", "online_seconds"})}; products: {name: SPD (n, n)}. Logs a table and
    returns rows {"case": "surrogate", "system", "N", the timings, "max_<name>_error",
    "mean_<name>_error"} of the relative errors in each product's norm."""
    rows, lines = [], [f"{'relative errors vs FOM, %d test parameters' % truth.shape[1]:<44}"
                       + "".join(f" {name + ' max / mean':>21}" for name in products) + "    offline     online"]
    for system, (label, fields, info) in systems.items():
        row = {"case": "surrogate", "system": system, "N": info["N"], "offline_seconds": info["offline_seconds"],
               "online_seconds": info["online_seconds"]}
        text = f"{label:<44}"
        for name, P in products.items():
            e = relative_errors(truth, fields, P)
            row.update({f"max_{name}_error": float(e.max()), f"mean_{name}_error": float(e.mean())})
            text += f" {e.max():>10.2e} / {e.mean():.2e}"
        rows.append(row)
        lines.append(text + f" {info['offline_seconds']:>8.2f} s {info['online_seconds'] * 1e6:>7.1f} us")
    log.info("%s", "\n".join(lines))
    return rows


def solve_all(solve, params) -> tuple[np.ndarray, float]:
    """FOM fields (n, m) of solve(mu) at params (m, p), and the median seconds of one solve."""
    fields, seconds = [], []
    for mu in np.atleast_2d(params):
        t = time.perf_counter()
        fields.append(np.asarray(solve(mu)))
        seconds.append(time.perf_counter() - t)
    return np.array(fields).T, float(np.median(seconds))


def timed(fn, *args):
    """(fn(*args), wall seconds it took)."""
    t = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_convergence(path, history: list, rows: list, scale: float = 1.0, title: str = "",
                     goal: float | None = None) -> None:
    """Greedy history (dicts with N and max_estimate, divided by `scale`: the greedy's reference
    norm) and `certify` rows (max relative bound and error over the test parameters) against N,
    on a log scale; goal: a dotted horizontal line at that relative error."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.semilogy([h["N"] for h in history], [h["max_estimate"] / scale for h in history], ".-", lw=1,
                label=r"greedy: max energy bound / $\|u(\mu_1)\|_X$, training set")
    N = [r["N"] for r in rows]
    ax.semilogy(N, [r["max_relative_bound"] for r in rows], "s--", label="max relative X bound, test set")
    ax.semilogy(N, [r["max_relative_error"] for r in rows], "o-", label="max relative X error, test set")
    if goal is not None:
        ax.axhline(goal, color="k", ls=":", lw=1, label=f"goal {goal:g}")
    ax.set_xlabel("reduced basis size N")
    ax.set_ylabel("relative error or bound (dimensionless)")
    ax.set_title(title or "reduced basis convergence")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_curves(path, x, curves: dict, *, xlabel: str, ylabel: str, title: str) -> None:
    """One labelled log-scale line per entry of curves {label: values (len(x),)} against x."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for label, y in curves.items():
        ax.semilogy(x, y, "o-", label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_field(path, mesh, values, *, title: str, label: str, lines=(), notes=()) -> None:
    """Vertex values (n_points,) on a 2D triangle or quad mesh, Gouraud-shaded, with axis
    labels, a colour bar `label`, vertical/horizontal guide lines lines = ((xs), (ys)) and text
    notes ((x, y, text), ...)."""
    import matplotlib.tri as mtri

    plt = _pyplot()
    cells = mesh.cells if mesh.cell_type == "triangle" else mesh.cells[:, [0, 1, 2, 0, 2, 3]].reshape(-1, 3)
    tri = mtri.Triangulation(mesh.points[:, 0], mesh.points[:, 1], cells)
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    pc = ax.tripcolor(tri, values, shading="gouraud", cmap="inferno")
    fig.colorbar(pc, ax=ax, label=label)
    for x in lines[0] if lines else ():
        ax.axvline(x, color="w", lw=0.5)
    for y in lines[1] if lines else ():
        ax.axhline(y, color="w", lw=0.5)
    for x, y, text in notes:
        ax.text(x, y, text, color="c", ha="center", va="center", fontsize=8)
    ax.set_aspect("equal")
    ax.set_xlabel("x (dimensionless)")
    ax.set_ylabel("y (dimensionless)")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


_OPS = {"<=": np.less_equal, ">=": np.greater_equal, "<": np.less, ">": np.greater}


def goal(name: str, value: float, op: str, target: float) -> dict:
    """A goal row of DESIGN.md's JSON shape: {"name", "value", "target", "op", "met"}, op one of
    "<=", ">=", "<", ">" (met: value op target; a NaN value never meets it)."""
    if op not in _OPS:
        raise ShapeError(f"op={op!r}: use one of {tuple(_OPS)}")
    return {"name": name, "value": float(value), "target": float(target), "op": op,
            "met": bool(_OPS[op](value, target))}
