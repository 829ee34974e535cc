"""Small dense linear-algebra helpers shared by the GP code."""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla

from rom.errors import RomError

JITTER_LADDER = (0.0, 1e-10, 1e-8, 1e-6, 1e-4)


def cholesky_jitter(K: np.ndarray, what: str = "the kernel matrix") -> tuple[np.ndarray, float]:
    """Lower Cholesky factor of K + j * mean(diag K) * I for the first j of JITTER_LADDER that works.

    Returns (L, jitter added). Raises RomError when even the largest jitter fails.
    """
    scale = float(np.mean(np.diag(K))) if K.size else 1.0
    scale = scale if np.isfinite(scale) and scale > 0 else 1.0
    for j in JITTER_LADDER:
        A = K if j == 0.0 else K + (j * scale) * np.eye(K.shape[0])
        try:
            return sla.cholesky(A, lower=True, check_finite=False), j * scale
        except (np.linalg.LinAlgError, sla.LinAlgError):
            continue
    raise RomError(f"{what} is singular or not positive definite even with jitter "
                   f"{JITTER_LADDER[-1]:g} x mean diagonal; add noise (alpha or a White kernel), "
                   f"remove duplicate inputs, or bound the length scales away from huge values")


def cho_solve(L: np.ndarray, B: np.ndarray) -> np.ndarray:
    return sla.cho_solve((L, True), B, check_finite=False)
