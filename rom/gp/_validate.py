"""Input checks at the door of the GP estimators."""

from __future__ import annotations

import numpy as np

from rom.errors import ParameterError, RomError, ShapeError


def check_X(X, name: str = "X", dim: int | None = None) -> np.ndarray:
    """(n, dim) float64, finite; a 1-D array is one coordinate per point."""
    X = np.asarray(X, dtype=float)
    if X.ndim == 1:
        X = X[:, None]
    if X.ndim != 2 or X.shape[0] == 0:
        raise ShapeError(f"{name} has shape {X.shape}, expected (n_points, n_dims) with n_points >= 1")
    if dim is not None and X.shape[1] != dim:
        raise ShapeError(f"{name} has {X.shape[1]} columns but the model was fitted on {dim}; "
                         f"pass points with {dim} coordinates")
    if not np.all(np.isfinite(X)):
        raise ParameterError(f"{name} contains NaN or Inf (first at row {np.argwhere(~np.isfinite(X))[0, 0]}); "
                             f"remove or impute those points")
    return np.ascontiguousarray(X)


def check_y(y, n: int, name: str = "y") -> np.ndarray:
    """(n,) or (n, n_outputs) float64, finite."""
    y = np.asarray(y, dtype=float)
    if y.ndim not in (1, 2) or y.shape[0] != n:
        raise ShapeError(f"{name} has shape {y.shape}, expected ({n},) or ({n}, n_outputs) to match X")
    if not np.all(np.isfinite(y)):
        raise ParameterError(f"{name} contains NaN or Inf; remove those samples from X and {name}")
    return np.ascontiguousarray(y)


def check_fitted(model, attr: str = "alpha_") -> None:
    if not hasattr(model, attr):
        raise RomError(f"{type(model).__name__} is not fitted yet; call fit(X, y) before predict")
