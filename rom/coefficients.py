"""Parameter functions theta_q(mu) as data: a small arithmetic language over the entries of mu.

An affine problem A(mu) = sum_q theta_q(mu) A_q stores its theta_q as text, so that a reduced
model evaluates them from a file without the full-order code. The text is data, never code: it
is parsed with `ast.parse(mode="eval")` (parsing only) and the tree is checked against an
allow-list, then evaluated by walking it with numpy. Nothing in the text is ever executed.

The language:

- numbers (int or float literals, not bool or complex), the names `pi` and `e`;
- `mu[i]` and `mu[..., i]` with a literal integer i >= 0: entry i of the parameter, vectorized
  over leading axes (mu (..., p) -> (...));
- `+ - * / **` and unary `-`/`+`;
- calls of exp, log, sqrt, sin, cos, tan, tanh, abs (one argument), min and max (two arguments,
  elementwise).

Arithmetic is float64 throughout, so no expression can build huge integers; values that are not
finite at a parameter raise ParameterError naming the expression.

    theta = Coefficients(("mu[..., 0]", "1", "exp(-mu[1] / 2)"))
    theta(mu)          # mu (p,) -> (3,), mu (m, p) -> (m, 3)
"""

from __future__ import annotations

import ast
import functools
from dataclasses import dataclass
from typing import Callable

import numpy as np

from rom.errors import ParameterError, StoreError

__all__ = ["Coefficients", "parse", "evaluate", "max_index"]

MAX_LENGTH = 4096  # characters of one expression; deeper nesting than this is no theta function
MAX_DEPTH = 64  # levels of nesting: the evaluator recurses once per level
_UNARY_FUNCTIONS = {"exp": np.exp, "log": np.log, "sqrt": np.sqrt, "sin": np.sin, "cos": np.cos, "tan": np.tan,
                    "tanh": np.tanh, "abs": np.abs}
_BINARY_FUNCTIONS = {"min": np.minimum, "max": np.maximum}
_CONSTANTS = {"pi": np.pi, "e": np.e}
_OPERATORS = {ast.Add: np.add, ast.Sub: np.subtract, ast.Mult: np.multiply, ast.Div: np.divide, ast.Pow: np.power}

# A compiled expression: mu (..., p) float64 -> array broadcastable to mu.shape[:-1].
Evaluator = Callable[[np.ndarray], np.ndarray]


class _Refused(Exception):
    """Internal: the text is outside the language; turned into ParameterError or StoreError."""


@dataclass(frozen=True)
class _Compiled:
    evaluate: Evaluator
    max_index: int  # largest i in mu[i] (-1: no parameter used)


def _index(node: ast.AST) -> int:
    if isinstance(node, ast.Tuple) and len(node.elts) == 2 and isinstance(node.elts[0], ast.Constant) \
            and node.elts[0].value is Ellipsis:
        node = node.elts[1]
    if isinstance(node, ast.Constant) and type(node.value) is int and 0 <= node.value < 2**31:
        return node.value
    raise _Refused("mu is indexed by a literal integer only: mu[i] or mu[..., i] with i >= 0")


def _compile(node: ast.AST, depth: int = 0) -> _Compiled:
    """Check `node` against the allow-list and build its evaluator (no Python evaluation).

    The evaluator recurses once per level, so the depth is capped far below Python's limit."""
    if depth > MAX_DEPTH:
        raise _Refused(f"it is nested more than {MAX_DEPTH} levels deep")
    depth += 1
    if isinstance(node, ast.Constant):
        if type(node.value) not in (int, float):
            raise _Refused(f"the literal {str(node.value)[:20]!r} is not a number")
        try:
            value = np.float64(node.value)
        except OverflowError:
            raise _Refused(f"the literal {str(node.value)[:20]}... is outside the float64 range") from None
        return _Compiled(lambda mu: value, -1)
    if isinstance(node, ast.Name):
        if node.id not in _CONSTANTS:
            raise _Refused(f"the name {node.id!r} is not allowed (only pi, e and mu[i])")
        value = np.float64(_CONSTANTS[node.id])
        return _Compiled(lambda mu: value, -1)
    if isinstance(node, ast.Subscript):
        if not (isinstance(node.value, ast.Name) and node.value.id == "mu"):
            raise _Refused("only mu can be indexed")
        i = _index(node.slice)

        def entry(mu):
            if i >= mu.shape[-1]:
                raise ParameterError(f"the expression uses mu[{i}] but mu has {mu.shape[-1]} entries; "
                                     f"pass parameters of length > {i}")
            return mu[..., i]
        return _Compiled(entry, i)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        a = _compile(node.operand, depth)
        if isinstance(node.op, ast.UAdd):
            return a
        return _Compiled(lambda mu: np.negative(a.evaluate(mu)), a.max_index)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        op = _OPERATORS[type(node.op)]
        a, b = _compile(node.left, depth), _compile(node.right, depth)
        return _Compiled(lambda mu: op(a.evaluate(mu), b.evaluate(mu)), max(a.max_index, b.max_index))
    if isinstance(node, ast.Call):
        name = node.func.id if isinstance(node.func, ast.Name) else None
        if node.keywords or name not in _UNARY_FUNCTIONS and name not in _BINARY_FUNCTIONS:
            allowed = ", ".join([*_UNARY_FUNCTIONS, *_BINARY_FUNCTIONS])
            raise _Refused(f"only calls of {allowed} without keywords are allowed")
        args = [_compile(a, depth) for a in node.args]
        want = 1 if name in _UNARY_FUNCTIONS else 2
        if len(args) != want or any(isinstance(a, ast.Starred) for a in node.args):
            raise _Refused(f"{name} takes {want} argument{'s' if want > 1 else ''}, got {len(node.args)}")
        top = max(a.max_index for a in args)
        if want == 1:
            fn, (a,) = _UNARY_FUNCTIONS[name], args
            return _Compiled(lambda mu: fn(a.evaluate(mu)), top)
        fn, (a, b) = _BINARY_FUNCTIONS[name], args
        return _Compiled(lambda mu: fn(a.evaluate(mu), b.evaluate(mu)), top)
    raise _Refused(f"{type(node).__name__} is not part of the coefficient language")


@functools.lru_cache(maxsize=1024)
def _parsed(text: str) -> _Compiled:
    if not isinstance(text, str):
        raise _Refused(f"an expression is text, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise _Refused(f"it has {len(text)} characters, more than {MAX_LENGTH}")
    if "\n" in text or "\r" in text:  # files hold theta one expression per line
        raise _Refused("it spans several lines; write each expression on one line")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise _Refused(f"it does not parse ({type(exc).__name__}: {exc})") from None
    try:
        return _compile(tree.body)
    except RecursionError:
        raise _Refused("it is nested too deeply") from None


def parse(text, source: str | None = None) -> _Compiled:
    """Check one expression; ParameterError if it is outside the language, or StoreError naming
    `source` (a file and object) when the text was read from a file."""
    try:
        return _parsed(text)
    except (_Refused, TypeError) as exc:  # TypeError: unhashable non-text from a file
        reason = exc if isinstance(exc, _Refused) else f"an expression is text, got {type(text).__name__}"
        if source is not None:
            raise StoreError(f"{source}: the coefficient function {str(text)[:80]!r} is refused: {reason}. Files hold "
                             "theta as arithmetic of mu[i] (see rom.coefficients); the file is damaged or was "
                             "not written by romtk: regenerate it") from None
        raise ParameterError(f"the coefficient function {str(text)[:80]!r} is refused: {reason}. Write theta as "
                             "arithmetic of mu[i], numbers, pi, e and exp/log/sqrt/sin/cos/tan/tanh/abs/min/max "
                             "(see rom.coefficients)") from None


def max_index(expressions, source: str | None = None) -> int:
    """The largest parameter index the expressions use (-1 if none)."""
    return max((parse(e, source).max_index for e in expressions), default=-1)


def evaluate(expressions, mu) -> np.ndarray:
    """theta(mu): expressions (Q,) text, mu (..., p) float64 -> (..., Q) float64."""
    mu = np.asarray(mu, dtype=np.float64)
    if mu.ndim == 0:
        raise ParameterError(f"mu = {mu!r} is a scalar; pass (p,) or (m, p) parameters")
    out = np.empty(mu.shape[:-1] + (len(expressions),))
    with np.errstate(all="ignore"):  # a non-finite value is reported below, with its expression
        for q, text in enumerate(expressions):
            out[..., q] = parse(text).evaluate(mu)
    if not np.all(np.isfinite(out)):
        q = int(np.flatnonzero((~np.isfinite(out.reshape(-1, len(expressions)))).any(axis=0))[0])
        raise ParameterError(f"theta_{q} = {expressions[q]!r} is not finite at some of the parameters given; "
                             "pass parameters inside the domain where the coefficient functions are defined")
    return out


@dataclass(frozen=True)
class Coefficients:
    """theta(mu) for Q expressions of the coefficient language: mu (p,) -> (Q,), (m, p) -> (m, Q).

    Raises ParameterError at construction when an expression is outside the language.
    """

    expressions: tuple

    def __post_init__(self):
        object.__setattr__(self, "expressions", tuple(self.expressions))
        for text in self.expressions:
            parse(text)

    @classmethod
    def from_file(cls, expressions, source: str) -> "Coefficients":
        """The same, with StoreError naming `source` for an expression outside the language."""
        for text in expressions:
            parse(text, source)
        return cls(tuple(expressions))

    def __call__(self, mu) -> np.ndarray:
        return evaluate(self.expressions, mu)

    def __len__(self) -> int:
        return len(self.expressions)

    @property
    def max_index(self) -> int:
        return max_index(self.expressions)
