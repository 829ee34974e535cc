"""What every benchmark reports about the machine, and the JSON it writes.

`machine_info()` measures, in the running process, the double-precision GEMM
rate (numpy matmul of square matrices, best of 3) and the memory bandwidth (a
large array copy, bytes read + written, best of 3); it is measured once per
process and cached. `write_json(path, benchmark, rows, goals)` writes the shape
described in DESIGN.md.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import time
from pathlib import Path

import numpy as np


def _best(fn, repeat: int = 3) -> float:
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


_LAST: dict | None = None


def machine_info(gemm_n: int = 4000, copy_mb: int = 400) -> dict:
    """cpus, gemm_gflops (2 n^3 / t for n = gemm_n), bandwidth_gbs (copy of copy_mb MB), and versions.

    Measured on the first call with these arguments, then cached; `write_json`
    reports the most recent measurement.
    """
    global _LAST
    _LAST = _measure(gemm_n, copy_mb)
    return _LAST


def gemm_gflops(n: int = 4000, repeat: int = 3) -> float:
    """GFLOP/s of numpy matmul of two square n x n float64 matrices (2 n^3 / t, best of
    `repeat`), measured now, not cached: for ratios against a kernel timed next to it, since
    this machine's speed moves within minutes."""
    rng = np.random.default_rng(0)
    A = rng.standard_normal((n, n))
    B = rng.standard_normal((n, n))
    C = np.empty_like(A)
    A @ B  # warm-up: threads started, pages touched
    return 2.0 * n**3 / _best(lambda: np.matmul(A, B, out=C), repeat) / 1e9


@functools.lru_cache(maxsize=None)
def _measure(gemm_n: int, copy_mb: int) -> dict:
    gflops = gemm_gflops(gemm_n)
    n = copy_mb * 2**20 // 8
    src = np.ones(n)
    dst = np.empty_like(src)
    np.copyto(dst, src)
    tc = _best(lambda: np.copyto(dst, src))
    bandwidth = 2.0 * n * 8 / tc / 1e9
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return {
        "cpus": cpus,
        "gemm_gflops": round(gflops, 2),
        "bandwidth_gbs": round(bandwidth, 2),
        "gemm_n": gemm_n,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "processor": platform.machine(),
    }


def _romtk_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("romtk")
    except PackageNotFoundError:
        return "0.1.0+src"


def write_json(path, benchmark: str, rows: list, goals: list) -> None:
    """Write {"benchmark", "romtk_version", "machine", "rows", "goals"} to `path` (indented JSON)."""
    out = {
        "benchmark": benchmark,
        "romtk_version": _romtk_version(),
        "machine": _LAST if _LAST is not None else machine_info(),
        "rows": rows,
        "goals": goals,
    }
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(out, indent=2, default=float) + "\n")
