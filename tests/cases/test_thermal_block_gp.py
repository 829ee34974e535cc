"""cases/thermal_block.py --surrogate gp: the POD+GP surrogate next to the reduced basis."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

CASE = Path(__file__).resolve().parents[2] / "cases" / "thermal_block.py"


def load_case():
    spec = importlib.util.spec_from_file_location("thermal_block_case", CASE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_quick_run_reports_rb_and_gp_errors_on_the_same_test_parameters(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    load_case().main(["--quick", "--surrogate", "gp", "--no-plot", "--out", "out", "--json", "r.json"])
    rows = json.loads((tmp_path / "r.json").read_text())["rows"]
    rb, gp = [next(r for r in rows if r.get("case") == "surrogate" and r["system"] == s) for s in ("rb", "pod_gp")]
    # measured (100 snapshots at the first training parameters, 20 POD modes, 50 test parameters of
    # seed 1): GP max energy error 0.13, mean 0.054, max L2 0.064; RB (N=63) max energy error 1.4e-4.
    # Thresholds ~1.5x those.
    assert gp["N"] == 20
    assert gp["max_energy_error"] < 0.2 and gp["mean_energy_error"] < 0.08 and gp["max_l2_error"] < 0.1
    assert rb["max_energy_error"] < 2e-4 < gp["max_energy_error"]  # the intrusive RB is far more accurate here
