"""cases/thermal_block.py and cases/acoustics.py --quick --json: the headline figures and goals
in DESIGN.md's shape, certified bounds that bound (effectivities >= 1), and the acoustics
reduced model within 1e-6 of the FOM over the band."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

CASES = Path(__file__).resolve().parents[2] / "cases"
OPS = {">": np.greater, ">=": np.greater_equal, "<=": np.less_equal, "<": np.less}


def run_case(name: str, argv: list, tmp_path, monkeypatch) -> dict:
    monkeypatch.chdir(tmp_path)
    sys.path.insert(0, str(CASES / "benchmarks"))
    import _machine

    _machine.machine_info(gemm_n=128, copy_mb=8)  # small measurement; write_json reports the latest one
    spec = importlib.util.spec_from_file_location(f"{name}_case", CASES / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.main(argv + ["--no-plot", "--out", "out", "--json", "r.json"])
    data = json.loads((tmp_path / "r.json").read_text())
    assert set(data) == {"benchmark", "romtk_version", "machine", "rows", "goals"}
    assert data["benchmark"] == name and {"cpus", "gemm_gflops", "bandwidth_gbs"} <= set(data["machine"])
    assert data["rows"] and all(isinstance(r, dict) and "case" in r for r in data["rows"])
    for g in data["goals"]:
        assert {"name", "value", "target", "op", "met"} <= set(g) and isinstance(g["met"], bool)
        assert g["met"] == bool(OPS[g["op"]](g["value"], g["target"])), g
    return data


@pytest.mark.slow
def test_thermal_block_quick_json_has_bounds_that_bound(tmp_path, monkeypatch):
    data = run_case("thermal_block", ["--quick"], tmp_path, monkeypatch)
    goals = {g["name"]: g for g in data["goals"]}
    assert {"relative_residual", "energy_effectivity_ge_1", "output_effectivity_ge_1", "speedup"} <= set(goals)
    assert goals["relative_residual"]["met"]
    rb = next(r for r in data["rows"] if r["case"] == "rb")
    assert {"N", "offline_seconds", "online_seconds", "max_relative_error", "min_energy_effectivity",
            "max_energy_effectivity", "min_output_effectivity", "speedup"} <= set(rb)
    assert rb["min_energy_effectivity"] >= 1.0 and rb["min_output_effectivity"] >= 1.0
    assert goals["energy_effectivity_ge_1"]["met"] and goals["output_effectivity_ge_1"]["met"]
    # min-theta with mu_bar = 1 on [0.1, 1]: the energy effectivity is at most sqrt(10)
    assert rb["max_energy_effectivity"] <= np.sqrt(10) * 1.01
    # the demo's greedy settings (1000 training parameters, relative bound 2e-4) on the 42 x 42 mesh
    # reach the demo's goal: measured N = 63, max relative X error 1.4e-4, certified bound 4.4e-4
    assert goals["max_relative_error"]["target"] == 1e-3 and goals["max_relative_error"]["met"]
    assert rb["max_relative_error"] <= 1e-3 and rb["max_relative_bound"] <= 1e-3 and rb["N"] < 100
    # the table by basis size: a certified relative bound above the true error at every size, down to the goal
    table = [r for r in data["rows"] if r["case"] == "rb_convergence"]
    assert [r["N"] for r in table] == [*range(10, rb["N"], 10), rb["N"]]
    assert all(r["min_effectivity"] >= 1.0 and r["max_relative_bound"] >= r["max_relative_error"] for r in table)
    assert table[0]["max_relative_error"] > 0.1 and table[-1] == {k: rb[k] for k in table[-1] if k != "case"} | {
        "case": "rb_convergence"}
    assert (tmp_path / "out" / "reduced_model.h5").exists() and (tmp_path / "out" / "temperature.xdmf").exists()


@pytest.mark.slow
def test_acoustics_quick_json_error_below_1e_minus_6(tmp_path, monkeypatch):
    data = run_case("acoustics", ["--quick"], tmp_path, monkeypatch)
    goals = {g["name"]: g for g in data["goals"]}
    assert set(goals) == {"max_relative_error", "speedup"}
    (row,) = data["rows"]
    assert {"dofs", "eim_terms", "N", "offline_seconds", "online_seconds", "fom_solve_seconds",
            "max_relative_error", "error_vs_terms"} <= set(row)
    assert row["max_relative_error"] <= 1e-6 and goals["max_relative_error"]["met"]
    assert goals["max_relative_error"]["value"] == row["max_relative_error"]
    # the error falls with the number of EIM terms, down to the accuracy of the reduced basis
    err = [row["error_vs_terms"][str(d)] for d in range(2, row["eim_terms"] + 1)]
    assert err[-1] <= 1e-6 and err[-1] < 1e-3 * err[0]
