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
    # measured with seed 0 (100 snapshots, 20 POD modes, 30 test parameters): GP max energy error
    # 0.13, mean 0.050, max L2 0.076; RB (N=25) max energy error 0.037. Thresholds ~1.5x those.
    assert gp["N"] == 20
    assert gp["max_energy_error"] < 0.2 and gp["mean_energy_error"] < 0.08 and gp["max_l2_error"] < 0.12
    assert rb["max_energy_error"] < gp["max_energy_error"]  # the intrusive RB is the more accurate here
