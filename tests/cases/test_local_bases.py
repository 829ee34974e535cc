"""cases/local_bases.py runs end to end on a tiny problem and writes its figures and goals."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np

CASE = Path(__file__).resolve().parents[2] / "cases" / "local_bases.py"


def load_case():
    spec = importlib.util.spec_from_file_location("local_bases_case", CASE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_local_bases_case_writes_json_xdmf_and_png(tmp_path):
    case = load_case()
    import _machine  # put on sys.path by the case

    _machine.machine_info(gemm_n=128, copy_mb=8)  # small measurement; write_json reports the latest one
    out = case.main(["--size", "16", "12", "16", "3", "--clusters", "3", "--modes", "2", "4",
                     "--online-modes", "4", "--out", str(tmp_path), "--json", str(tmp_path / "r.json")])
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["benchmark"] == "local_bases" and {"cpus", "gemm_gflops"} <= set(data["machine"])
    names = [g["name"] for g in data["goals"]]
    assert names == ["sine_lowest_projection_error_N4", "online_error_over_promise_max", "online_speedup_over_fom"]
    ops = {">": np.greater, ">=": np.greater_equal, "<=": np.less_equal}
    for g in data["goals"]:
        assert g["met"] == bool(ops[g["op"]](g["value"], g["target"]))
    errs = out["errors"]
    assert all(len(v) == 2 and all(0 < e < 1 for e in v) for v in errs.values())
    # more modes per cluster never hurt on the same clusters
    assert all(v[1] <= v[0] + 1e-12 for v in errs.values())
    assert len([r for r in data["rows"] if r["system"] == "local Galerkin ROM"]) == 3
    assert (tmp_path / "medoids.xdmf").exists() and (tmp_path / "projection_errors.png").stat().st_size > 0
