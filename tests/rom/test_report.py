"""rom.report: certification rows against FOM truth, goals, tables and labelled plots.

The errors are checked against a Galerkin solve and norms computed here with dense numpy
(Cholesky of X), the bounds against the inequality they state."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.figure  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import scipy.sparse as sp  # noqa: E402

from rom import report  # noqa: E402
from rom.errors import ShapeError  # noqa: E402
from rom.rb import Reductor, greedy  # noqa: E402
from solvers.problems import ThermalBlock  # noqa: E402


@pytest.fixture(scope="module")
def block():
    problem = ThermalBlock((2, 2), n=12)
    box = problem.parameter_space
    train = np.random.default_rng(0).uniform(box.lower, box.upper, (40, box.dim))
    test = np.random.default_rng(1).uniform(box.lower, box.upper, (8, box.dim))
    red = Reductor(problem.affine, problem.inner_product, box.lower, box.upper, outputs=[problem.affine.rhs[0]])
    greedy(red, train, tol=0.0, max_size=3)
    truth = np.column_stack([problem.solve(mu) for mu in test])
    return problem, red, test, truth


def x_norm(v, X):
    L = np.linalg.cholesky(X.toarray())
    return np.linalg.norm(L.T @ v)


def test_relative_errors_are_the_ratio_of_cholesky_norms(block):
    problem, _, _, truth = block
    X = problem.inner_product
    approx = truth * (1 + 1e-2 * np.random.default_rng(2).standard_normal(truth.shape))
    want = [x_norm(truth[:, i] - approx[:, i], X) / x_norm(truth[:, i], X) for i in range(truth.shape[1])]
    np.testing.assert_allclose(report.relative_errors(truth, approx, X), want, rtol=1e-10)


def test_certify_error_is_the_galerkin_error_and_the_bounds_bound_it(block):
    problem, red, test, truth = block
    X, f = problem.inner_product, problem.affine.rhs[0]
    model = red.model(3)
    row = report.certify(model, test, truth, X, energy=problem.matrix,
                         outputs=[problem.output(u) for u in truth.T])
    V = red.V[:, :3]
    errs = []
    for mu, u in zip(test, truth.T):  # Galerkin on span V, dense, independent of the reduced model
        A = problem.matrix(mu)
        uN = V @ np.linalg.solve(V.T @ (A @ V), V.T @ f)
        errs.append(x_norm(u - uN, X) / x_norm(u, X))
    assert row["N"] == 3 and row["max_relative_error"] == pytest.approx(max(errs), rel=1e-8)
    assert row["max_relative_bound"] >= row["max_relative_error"] and row["min_effectivity"] >= 1.0
    assert row["max_effectivity"] >= row["min_effectivity"] and row["online_seconds"] > 0
    # min-theta with mu_bar = 1 on [0.1, 1]: 1 <= energy effectivity <= sqrt(gamma/alpha) <= sqrt(10)
    assert 1.0 <= row["min_energy_effectivity"] <= row["max_energy_effectivity"] <= np.sqrt(10) * (1 + 1e-8)
    assert row["min_output_effectivity"] >= 1.0


class _Model:
    """The four methods certify calls, with chosen coefficients and bound: u_N = c e_1, Delta_X = d."""

    size = 1

    def __init__(self, c, d):
        self.c, self.d = np.asarray(c, float), np.asarray(d, float)

    def solve(self, mu):
        return self.c[:, None]

    def estimate(self, mu, coeffs=None):
        return {"x_norm": self.d}

    def reconstruct(self, coeffs):
        return np.column_stack([coeffs[:, 0], np.zeros(len(coeffs))])


def test_relative_bound_is_delta_over_the_norm_minus_delta_and_inf_past_it():
    X = sp.eye(2, format="csr")
    truth = np.array([[1.05, 2.0], [0.0, 0.0]])  # errors 0.05 and 1.0 against u_N = (1, 1)
    row = report.certify(_Model([1.0, 1.0], [0.1, 1.5]), np.zeros((2, 1)), truth, X)
    assert row["max_relative_bound"] == np.inf and row["max_relative_error"] == pytest.approx(0.5)
    row = report.certify(_Model([1.0], [0.1]), np.zeros((1, 1)), truth[:, :1], X)
    assert row["max_relative_bound"] == pytest.approx(0.1 / 0.9)  # >= 0.05 / 1.05, the true relative error
    with pytest.raises(ShapeError, match="truth has shape"):
        report.certify(_Model([1.0], [0.1]), np.zeros((2, 1)), truth[:, :1], X)


@pytest.mark.parametrize("value, op, target, met", [(1.0, "<=", 2.0, True), (3.0, "<=", 2.0, False),
                                                    (2.0, ">=", 2.0, True), (2.0, ">", 2.0, False),
                                                    (np.nan, "<=", 2.0, False), (np.nan, ">=", 2.0, False)])
def test_goal_is_met_exactly_when_value_op_target(value, op, target, met):
    g = report.goal("x", value, op, target)
    assert g["met"] is met and (g["name"], g["op"], g["target"]) == ("x", op, target)


def test_goal_refuses_an_unknown_operator():
    with pytest.raises(ShapeError, match="op='=<'"):
        report.goal("x", 1.0, "=<", 2.0)


def test_compare_rows_are_the_relative_errors_in_each_norm(block):
    problem, _, _, truth = block
    X, M = problem.inner_product, 2.0 * problem.inner_product
    fields = truth * 1.01
    rows = report.compare(truth, {"a": ("scaled", fields, {"N": 4, "offline_seconds": 1.0, "online_seconds": 1e-6})},
                          {"energy": X, "twice": M})
    (row,) = rows
    assert (row["case"], row["system"], row["N"]) == ("surrogate", "a", 4)
    # u - 1.01 u = -0.01 u: every relative error is 0.01 in any norm
    for key in ("max_energy_error", "mean_energy_error", "max_twice_error", "mean_twice_error"):
        assert row[key] == pytest.approx(0.01, rel=1e-10)


def test_table_lists_every_size_with_its_figures():
    rows = [{"N": 10, "max_relative_bound": 2e-2, "max_relative_error": 5e-3, "min_effectivity": 1.5,
             "max_effectivity": 4.0, "online_seconds": 2e-4},
            {"N": 12, "max_relative_bound": 4e-4, "max_relative_error": 1e-4, "min_effectivity": 1.25,
             "max_effectivity": 5.5, "online_seconds": 3e-4, "min_energy_effectivity": 1.2,
             "max_energy_effectivity": 2.3, "min_output_effectivity": 1.4}]
    text = report.table(rows, offline=np.arange(1.0, 13.0))
    lines = text.splitlines()
    assert len(lines) == 4 and lines[1].split()[:3] == ["10", "2.00e-02", "5.00e-03"]
    assert lines[2].split()[-2:] == ["300.0", "12.0"] and "1.25 .. 5.50" in lines[2]
    assert lines[3] == "N=12: energy-norm effectivity 1.20 .. 2.30, output effectivity >= 1.40"


def test_plots_have_axis_labels_titles_and_legends(block, tmp_path, monkeypatch):
    problem, red, test, truth = block
    seen = []
    save = matplotlib.figure.Figure.savefig

    def record(fig, path, **kw):
        seen.extend((ax.get_xlabel(), ax.get_ylabel(), ax.get_title(), ax.get_legend()) for ax in fig.axes
                    if ax.get_label() != "<colorbar>")
        return save(fig, path, **kw)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", record)
    rows = [report.certify(red.model(N), test, truth, problem.inner_product) for N in (1, 3)]
    history = [{"N": k, "max_estimate": 10.0 ** -k} for k in (1, 2, 3)]
    report.plot_convergence(tmp_path / "c.png", history, rows, title="t", goal=1e-3)
    u = problem.space.to_serial(truth[:, 0])[: problem.mesh.n_points]  # serial numbering: vertices first
    report.plot_field(tmp_path / "f.png", problem.mesh, u, title="field", label="T")
    assert [p.read_bytes()[:8] for p in (tmp_path / "c.png", tmp_path / "f.png")] == [b"\x89PNG\r\n\x1a\n"] * 2
    (xc, yc, tc, legend), (xf, yf, tf, _) = seen
    assert xc == "reduced basis size N" and "relative" in yc and tc == "t"
    assert len(legend.get_texts()) == 4  # training bound, test bound, test error, goal
    assert xf.startswith("x") and yf.startswith("y") and tf == "field"


def test_trajectory_error_is_the_frobenius_m_norm_ratio():
    rng = np.random.default_rng(5)
    M = sp.diags(rng.uniform(1.0, 3.0, 20)).tocsr()
    U, R = rng.standard_normal((20, 6)), rng.standard_normal((20, 6))
    per_column = report.relative_errors(U, R, M)
    norms2 = np.einsum("ij,ij->j", U, M @ U)  # the squared errors add up, weighted by the norms
    want = np.sqrt(np.sum(per_column**2 * norms2) / norms2.sum())
    assert report.trajectory_error(U, R, M) == pytest.approx(want, rel=1e-12)
    assert report.trajectory_error(U, U, M) == 0.0


def test_plot_curves_labels_its_axes(tmp_path, monkeypatch):
    seen = []
    save = matplotlib.figure.Figure.savefig

    def record(fig, path, **kw):
        ax = fig.axes[0]
        seen.append((ax.get_xlabel(), ax.get_ylabel(), ax.get_title(),
                     [t.get_text() for t in ax.get_legend().get_texts()], [list(ln.get_ydata()) for ln in ax.lines]))
        return save(fig, path, **kw)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", record)
    report.plot_curves(tmp_path / "c.png", [1, 2, 3], {"a": [1.0, 0.1, 0.01], "b": [2.0, 0.2, 0.02]},
                       xlabel="N", ylabel="error", title="t")
    assert seen == [("N", "error", "t", ["a", "b"], [[1.0, 0.1, 0.01], [2.0, 0.2, 0.02]])]
