"""Errors raised by romtk.

Every error says what was wrong and what to do about it. Catch `RomError` to
catch them all; the subclasses tell the kind of failure.
"""

from __future__ import annotations

import numpy as np


class RomError(Exception):
    """Base class of every error romtk raises on purpose."""


class MeshError(RomError):
    """A mesh that cannot be read, is of an unknown type, or has bad cells."""


class BoundaryError(RomError, KeyError):
    """A boundary or region tag that the mesh does not have."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ParameterError(RomError, ValueError):
    """A parameter vector of the wrong length, NaN, or outside its box."""


class ShapeError(RomError, ValueError):
    """An array of the wrong shape or dtype was passed in."""


class SingularSystemError(RomError):
    """A linear system that has no unique solution (e.g. pure Neumann)."""


class ConvergenceError(RomError):
    """An iterative solver or Newton's method failed to converge.

    `history` holds the residual norms seen so far, so nothing computed is lost.
    """

    def __init__(self, message: str, history=None):
        super().__init__(message)
        self.history = np.asarray(history if history is not None else [], dtype=float)


class StoreError(RomError):
    """A file that is not a romtk store, is of another version, or is corrupt."""


def check_array(name: str, a, shape: tuple, dtype=np.float64) -> np.ndarray:
    """Return `a` as a contiguous array of `dtype`, or raise ShapeError.

    `shape` uses None for any size, e.g. (None, 2).
    """
    arr = np.ascontiguousarray(a, dtype=dtype)
    ok = arr.ndim == len(shape) and all(s is None or s == n for s, n in zip(shape, arr.shape))
    if not ok:
        want = "(" + ", ".join("any" if s is None else str(s) for s in shape) + ")"
        raise ShapeError(f"{name} has shape {arr.shape}, expected {want}; reshape it before passing it in")
    return arr
