"""What every full-order problem offers to the reduced side."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol, Sequence, runtime_checkable

import numpy as np
import scipy.sparse as sp

from rom.coefficients import Coefficients, evaluate as evaluate_coefficients
from rom.errors import ShapeError
from rom.parameters import Parameter, ParameterSpace


def Box(names, lower, upper) -> ParameterSpace:
    """A box of named scalar parameters, as a `rom.parameters.ParameterSpace` (samplers,
    validation): names (p,) identifiers, lower (p,), upper (p,)."""
    return ParameterSpace([Parameter(str(n), lo, hi) for n, lo, hi in zip(names, lower, upper)])


@dataclass(frozen=True)
class Theta:
    """Parameter functions theta_q(mu) as expressions of the coefficient language of
    `rom.coefficients` (text, so that reduced models store them in HDF5 and evaluate them
    without the FOM code; parsed and checked, never executed).

    Index parameters as mu[..., i] (or mu[i]) so that one call evaluates many parameters:
    Theta(("mu[..., 0]", "1")) maps mu (p,) -> (2,) and mu (m, p) -> (m, 2).
    """

    expressions: tuple

    def __post_init__(self):
        object.__setattr__(self, "expressions", Coefficients(self.expressions).expressions)

    def __call__(self, mu) -> np.ndarray:
        return evaluate_coefficients(self.expressions, mu)

    def __len__(self) -> int:
        return len(self.expressions)


@dataclass(frozen=True)
class AffineDecomposition:
    """A(mu) = sum_q theta(mu)[q] A_q and f(mu) = sum_p theta_f(mu)[p] f_p, Dirichlet conditions
    included (constrained rows/columns live in a parameter-independent term with theta = 1).

    operators: Q CSR matrices (n, n) sharing one pattern; rhs: P vectors (n,);
    theta, theta_f: `Theta` expressions (or any callable mu (..., p) -> (..., Q)).
    """

    operators: Sequence[sp.csr_matrix]
    theta: Callable[[np.ndarray], np.ndarray]
    rhs: Sequence[np.ndarray]
    theta_f: Callable[[np.ndarray], np.ndarray]

    def matrix(self, mu) -> sp.csr_matrix:
        th = np.asarray(self.theta(mu), dtype=np.float64)
        if th.shape != (len(self.operators),):
            raise ShapeError(f"theta(mu) has shape {th.shape}, expected ({len(self.operators)},)")
        A0 = self.operators[0]
        data = sum(t * A.data for t, A in zip(th, self.operators))
        return sp.csr_matrix((data, A0.indices, A0.indptr), shape=A0.shape)

    def vector(self, mu) -> np.ndarray:
        th = np.asarray(self.theta_f(mu), dtype=np.float64)
        return sum(t * f for t, f in zip(th, self.rhs))


@runtime_checkable
class Problem(Protocol):
    """A parametrized full-order model: solve(mu) returns the FOM field (n_dofs,) float64."""

    parameter_space: ParameterSpace

    def solve(self, mu) -> np.ndarray: ...

    @property
    def inner_product(self) -> sp.spmatrix: ...
