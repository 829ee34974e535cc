"""Parameter spaces: named parameters with shapes and boxes, samplers, validation.

A `ParameterSpace` is a list of named parameters, each an array of a given shape
(a scalar has shape ()) with elementwise bounds and a linear or log scale. A
parameter vector `mu` is the flat concatenation of all parameters, `(dim,)`
float64, in the order the parameters were given; `split(mu)` gives them back by
name. The attributes `names` (flat names such as ``"k"`` or ``"load[1]"``),
`lower`, `upper`, `dim` and `validate` match `solvers.problems.base.Box`, so
either can serve as a problem's `parameter_space`.

Samplers return `(n, dim)` arrays: `grid` (full tensor grid), `uniform` (seeded
i.i.d.), `lhs` (Latin hypercube) and `sobol` (scrambled Sobol'), the last two from
`scipy.stats.qmc`. Log-scaled parameters are sampled uniformly in log space.

`check_mu` is the one validator of parameter vectors against a box, used by
`ParameterSpace.validate`, `ReducedModel` and the reductors: it names the row, the
entry and the parameter of the first bad value. Bounds rule (round-off at a bound):
a value at most `BOUND_ULPS` = 4 units in the last place outside a bound, the unit
being that of the entry's scale max(|lower|, |upper|), is taken as the bound itself
(returned clipped), so that `1 + 2e-16` for an upper bound 1, or `0.1 + 0.2 - 0.3`
for a lower bound 0 in a box [0, 1], is accepted; a value further out is refused
with its exact repr, the bound's and the distance in units of that ulp.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
from scipy.stats import qmc

from rom.errors import ParameterError

__all__ = ["Parameter", "ParameterSpace", "as_parameter_space", "check_mu", "BOUND_ULPS"]

_SCALES = ("linear", "log")
BOUND_ULPS = 4  # round-off allowance at a bound, in ulps of the entry's scale (module docstring)


def check_mu(mu, lower, upper, names=None, argument: str = "mu") -> tuple[np.ndarray, bool]:
    """Parameters `mu` (p,) or (m, p) checked against the box [lower, upper] (p,) each.

    Returns `(array (m, p) float64, was_single)`: a fresh array, values within
    `BOUND_ULPS` of a bound clipped to it; `was_single` is True for a (p,) input (and for
    a scalar when p = 1). Raises ParameterError naming `argument`, the row (for (m, p)),
    the entry index, its name from `names` (p,) when given, the value and the bounds for:
    strings, mappings or other non-numbers, a wrong shape, NaN/Inf, values outside the box.
    """
    lower = np.asarray(lower, dtype=np.float64).reshape(-1)
    upper = np.asarray(upper, dtype=np.float64).reshape(-1)
    p = lower.size
    names = None if names is None else [str(n) for n in names]
    fix = f"pass {p} numbers per parameter vector" + (f" ({', '.join(names)})" if names and len(names) == p else "")
    if isinstance(mu, (str, bytes, Mapping)) or mu is None:
        raise ParameterError(f"{argument} is a {type(mu).__name__} ({_short(mu)}); {fix}, as a (p,) or (m, p) array")
    try:
        raw = np.asarray(mu)
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"{argument} is not an array of numbers ({exc}); {fix}") from None
    if raw.dtype.kind not in "iuf":
        raise ParameterError(f"{argument} has {raw.dtype} entries ({_short(mu)}); {fix}, real numbers only")
    arr = np.array(raw, dtype=np.float64)
    single = arr.ndim <= 1
    if arr.ndim == 0 and p == 1:
        arr = arr.reshape(1)
    if arr.ndim not in (1, 2) or arr.shape[-1] != p:
        raise ParameterError(f"{argument} has shape {raw.shape}; give (p,) or (m, p) with p = {p}: {fix}")
    arr = np.atleast_2d(arr)

    def where(i, j):
        name = f" ({names[j]})" if names and j < len(names) else ""
        return f"{argument}[{j}]{name}" if single else f"{argument}[{i}, {j}]{name}"

    bad = ~np.isfinite(arr)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise ParameterError(f"{where(i, j)} = {float(arr[i, j])!r} is NaN or infinite; give a finite value in "
                             f"[{float(lower[j])!r}, {float(upper[j])!r}]")
    ulp = np.spacing(np.maximum(np.abs(lower), np.abs(upper)))
    slack = BOUND_ULPS * ulp
    out = (arr < lower - slack) | (arr > upper + slack)
    if out.any():
        i, j = np.argwhere(out)[0]
        v, lo, hi = float(arr[i, j]), float(lower[j]), float(upper[j])
        side, bound = ("below its lower", lo) if v < lo else ("above its upper", hi)
        raise ParameterError(
            f"{where(i, j)} = {v!r} lies outside the box [{lo!r}, {hi!r}]: {side} bound by "
            f"{abs(v - bound):.3g} ({abs(v - bound) / ulp[j]:.3g} ulps; up to {BOUND_ULPS} count as round-off); "
            "choose a value inside the box")
    np.clip(arr, lower, upper, out=arr)
    return arr, single


def _short(x) -> str:
    r = repr(x)
    return r if len(r) <= 60 else r[:57] + "..."


@dataclass(frozen=True)
class Parameter:
    """One named parameter: bounds `lower`, `upper` of shape `shape`, and a scale."""

    name: str
    lower: np.ndarray
    upper: np.ndarray
    scale: str = "linear"

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ParameterError(f"parameter name {self.name!r} must be a Python identifier, e.g. 'conductivity'")
        lo = np.asarray(self.lower, dtype=np.float64)
        hi = np.asarray(self.upper, dtype=np.float64)
        try:
            lo, hi = np.broadcast_arrays(lo, hi)
        except ValueError:
            raise ParameterError(
                f"parameter {self.name}: lower has shape {lo.shape} and upper {hi.shape}; give bounds of one shape"
            ) from None
        if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
            raise ParameterError(f"parameter {self.name}: bounds must be finite, got [{lo}, {hi}]")
        if np.any(lo > hi):
            raise ParameterError(f"parameter {self.name}: lower bound {lo} exceeds upper bound {hi}; swap them")
        if self.scale not in _SCALES:
            raise ParameterError(f"parameter {self.name}: scale={self.scale!r}; use 'linear' or 'log'")
        if self.scale == "log" and np.any(lo <= 0):
            raise ParameterError(f"parameter {self.name}: a log scale needs positive bounds, got lower {lo}")
        object.__setattr__(self, "lower", lo.copy())
        object.__setattr__(self, "upper", hi.copy())

    @property
    def shape(self) -> tuple:
        return self.lower.shape

    @property
    def size(self) -> int:
        return int(self.lower.size)

    def flat_names(self) -> list[str]:
        if self.shape == ():
            return [self.name]
        return [f"{self.name}[{','.join(map(str, idx))}]" for idx in np.ndindex(*self.shape)]


class ParameterSpace:
    """A box of named parameters.

    parameters : mapping name -> (lower, upper) or (lower, upper, scale), or a
        sequence of `Parameter`. Bounds are scalars or arrays (the parameter's shape).

    >>> space = ParameterSpace({"k": (0.1, 10.0, "log"), "load": ([0, 0], [1, 2])})
    >>> space.dim, space.names
    (3, ('k', 'load[0]', 'load[1]'))
    """

    def __init__(self, parameters: Mapping | Sequence[Parameter]):
        if isinstance(parameters, Mapping):
            params = []
            for name, spec in parameters.items():
                if not isinstance(spec, (tuple, list)) or len(spec) not in (2, 3):
                    raise ParameterError(
                        f"parameter {name}: give (lower, upper) or (lower, upper, 'linear'|'log'), got {spec!r}"
                    )
                params.append(Parameter(name, *spec))
        else:
            params = list(parameters)
            if not all(isinstance(p, Parameter) for p in params):
                raise ParameterError("parameters: pass a dict name -> (lower, upper[, scale]) or a list of Parameter")
        if not params:
            raise ParameterError("a ParameterSpace needs at least one parameter")
        names = [p.name for p in params]
        if len(set(names)) != len(names):
            raise ParameterError(f"parameter names {names} repeat; give each parameter its own name")
        self.parameters: tuple[Parameter, ...] = tuple(params)
        self.names: tuple[str, ...] = tuple(n for p in params for n in p.flat_names())
        self.lower = np.concatenate([p.lower.ravel() for p in params])
        self.upper = np.concatenate([p.upper.ravel() for p in params])
        self.log = np.concatenate([np.full(p.size, p.scale == "log") for p in params])
        self._offsets = np.cumsum([0] + [p.size for p in params])

    # ------------------------------------------------------------------ basics
    @property
    def dim(self) -> int:
        """Number of scalar entries of a parameter vector."""
        return int(self.lower.size)

    def __repr__(self) -> str:
        parts = [f"{p.name}{list(p.shape) if p.shape else ''} in [{p.lower.min():g}, {p.upper.max():g}]"
                 f"{' (log)' if p.scale == 'log' else ''}" for p in self.parameters]
        return "ParameterSpace(" + ", ".join(parts) + ")"

    def to_dict(self) -> dict:
        """Plain description (JSON/HDF5 friendly): name -> {lower, upper, scale}."""
        return {p.name: {"lower": p.lower.tolist(), "upper": p.upper.tolist(), "scale": p.scale}
                for p in self.parameters}

    @classmethod
    def from_dict(cls, d: Mapping) -> "ParameterSpace":
        return cls([Parameter(k, v["lower"], v["upper"], v.get("scale", "linear")) for k, v in d.items()])

    def split(self, mu) -> dict[str, np.ndarray]:
        """The parameters of a validated vector `mu` (dim,), by name, in their shapes."""
        mu = self.validate(mu)
        return {p.name: mu[a:b].reshape(p.shape) for p, a, b in zip(self.parameters, self._offsets[:-1], self._offsets[1:])}

    # ------------------------------------------------------------------ validation
    def validate(self, mu) -> np.ndarray:
        """`mu` as a (dim,) float64 array, or ParameterError naming the entry and its bounds.

        mu : flat array-like (dim,), or a mapping name -> value (of that parameter's shape).
        """
        if isinstance(mu, Mapping):
            missing = [p.name for p in self.parameters if p.name not in mu]
            extra = [k for k in mu if k not in {p.name for p in self.parameters}]
            if missing or extra:
                raise ParameterError(f"mu has missing parameters {missing} / unknown ones {extra}; "
                                     f"this space takes {[p.name for p in self.parameters]}")
            parts = []
            for p in self.parameters:
                v, _ = check_mu(np.reshape(mu[p.name], -1) if np.size(mu[p.name]) == p.size else mu[p.name],
                                p.lower.ravel(), p.upper.ravel(), p.flat_names(), argument=f"mu[{p.name!r}]")
                parts.append(v.ravel())
            return np.concatenate(parts)
        if isinstance(mu, (list, tuple, np.ndarray)) and np.ndim(mu) <= 1 and np.size(mu) != self.dim:
            raise ParameterError(f"mu has {np.size(mu)} entries; this space takes {self.dim}: {', '.join(self.names)}")
        if isinstance(mu, (list, tuple, np.ndarray)) and np.size(mu) == self.dim:
            mu = np.reshape(mu, -1)  # any layout of dim entries, e.g. (1, dim)
        arr, single = check_mu(mu, self.lower, self.upper, self.names)
        if not single:
            raise ParameterError(f"mu has shape {np.shape(mu)}; this space takes one vector of {self.dim} "
                                 f"entries: {', '.join(self.names)}")
        return arr[0]

    def contains(self, mu) -> bool:
        try:
            self.validate(mu)
        except ParameterError:
            return False
        return True

    # ------------------------------------------------------------------ samplers
    def from_unit(self, u) -> np.ndarray:
        """Map points of the unit cube (n, dim) to the box (linear or log per entry)."""
        u = np.asarray(u, dtype=np.float64)
        lin = self.lower + u * (self.upper - self.lower)
        if self.log.any():
            llo, lhi = np.log(np.where(self.log, self.lower, 1.0)), np.log(np.where(self.log, self.upper, 1.0))
            lg = np.exp(llo + u * (lhi - llo))
            lin = np.where(self.log, lg, lin)
        # exp/log round-off must not push a point outside the box
        return np.clip(lin, self.lower, self.upper)

    def grid(self, n) -> np.ndarray:
        """Full tensor grid: `n` points per entry (int or a (dim,) sequence); (prod n, dim).

        Points include both bounds (geometric spacing for log entries); the last
        entry varies fastest.
        """
        counts = np.broadcast_to(np.asarray(n), (self.dim,))
        if not np.issubdtype(counts.dtype, np.integer) or np.any(counts < 1):
            raise ParameterError(f"grid: n={n!r}; pass a positive integer per parameter entry")
        axes = [np.linspace(0.0, 1.0, int(c)) if c > 1 else np.array([0.5]) for c in counts]
        u = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, self.dim)
        return self.from_unit(u)

    def uniform(self, n: int, seed=None) -> np.ndarray:
        """`n` i.i.d. uniform points (uniform in log space for log entries); (n, dim)."""
        return self.from_unit(np.random.default_rng(seed).random((_count(n), self.dim)))

    def lhs(self, n: int, seed=None) -> np.ndarray:
        """`n` points of a Latin hypercube (scipy.stats.qmc.LatinHypercube); (n, dim)."""
        return self.from_unit(qmc.LatinHypercube(d=self.dim, seed=seed).random(_count(n)))

    def sobol(self, n: int, seed=None) -> np.ndarray:
        """First `n` points of a scrambled Sobol' sequence; (n, dim).

        Balance properties hold for n a power of two; other n are allowed.
        """
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            u = qmc.Sobol(d=self.dim, scramble=True, seed=seed).random(_count(n))
        return self.from_unit(u)

    def sample(self, n: int, sampler: str = "lhs", seed=None) -> np.ndarray:
        """`n` points with sampler 'grid' (n per entry), 'uniform', 'lhs' or 'sobol'."""
        if sampler == "grid":
            return self.grid(n)
        fn = {"uniform": self.uniform, "random": self.uniform, "lhs": self.lhs, "sobol": self.sobol}.get(sampler)
        if fn is None:
            raise ParameterError(f"sampler={sampler!r}; use 'grid', 'uniform', 'lhs' or 'sobol'")
        return fn(n, seed=seed)


def _count(n) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ParameterError(f"number of samples n={n!r}; pass a positive integer")
    return int(n)


def as_parameter_space(space) -> ParameterSpace:
    """A ParameterSpace from itself or from anything with names/lower/upper (e.g. a solvers Box)."""
    if isinstance(space, ParameterSpace):
        return space
    try:
        names, lower, upper = space.names, np.asarray(space.lower), np.asarray(space.upper)
    except AttributeError:
        raise ParameterError(
            f"{type(space).__name__} is not a parameter space; give names, lower and upper (e.g. a ParameterSpace)"
        ) from None
    return ParameterSpace([Parameter(str(nm), lo, hi) for nm, lo, hi in zip(names, lower, upper)])
