"""The online reduced model of an affine linear problem, stored in HDF5 without FOM-sized data.

A(mu) = sum_q theta_q(mu) A_q, f(mu) = sum_p theta^f_p(mu) f_p, Galerkin on an X-orthonormal
basis V (n, N). The online object holds only

- operators (Q, N, N) = V^T A_q V, rhs (P, N) = V^T f_p, outputs (L, N) = V^T l,
- theta / theta_f as numpy-expression strings (rom/solvers Theta),
- the residual dual-norm data of the chosen formula (card E): "gram" M (K, K),
  "orthonormalized" T (r, K), or "eim" (point values (d, K), interpolation matrix (d, d) and
  the X-Cholesky factor of its basis (d, d)), with K = P + Q N,
- the stability lower bound data (min-theta or SCM, both O(Q) or O(K Q) numbers).

The basis is needed only by `reconstruct`; `save` writes it in a separate group ("basis") that
`load` does not read unless asked, so the online part never scales with n_dofs.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import h5py
import numpy as np

from rom import _rb_kernels as K
from rom.errors import ShapeError, StoreError
from rom.parameters import check_mu
from rom.scm import SCMBound

FORMAT = "romtk.ReducedModel/1"
ESTIMATORS = ("gram", "orthonormalized", "eim")


_NS = {k: getattr(np, k) for k in ("exp", "log", "sqrt", "sin", "cos", "tan", "tanh", "abs", "pi", "e")}


@functools.lru_cache(maxsize=256)
def _compiled(exprs: tuple) -> tuple:
    return tuple(compile(e, "<theta>", "eval") for e in exprs)


def _theta_eval(exprs: tuple, mu: np.ndarray) -> np.ndarray:
    """theta(mu) (m, Q) for mu (m, p): the Theta expressions (same namespace as
    solvers.problems.base.Theta), compiled once per model rather than at every call."""
    ns = dict(_NS, mu=mu)
    out = np.empty(mu.shape[:-1] + (len(exprs),))
    for q, code in enumerate(_compiled(tuple(exprs))):
        out[..., q] = eval(code, {"__builtins__": {}}, ns)
    return out


@dataclass
class ReducedModel:
    """Online RB model. Shapes: operators (Q, N, N), rhs (P, N), outputs (L, N); lower/upper (p,)
    parameter box; estimator: {"method": str, arrays...}; stability: {"kind": "min_theta" |
    "scm" | "constant", arrays...}; output_dual_norms (L,) = ||l||_X'; compliant (L,) bool."""

    operators: np.ndarray
    rhs: np.ndarray
    theta: tuple
    theta_f: tuple
    lower: np.ndarray
    upper: np.ndarray
    estimator: dict
    stability: dict
    outputs: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    output_dual_norms: np.ndarray = field(default_factory=lambda: np.zeros(0))
    compliant: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    basis: np.ndarray | None = None
    path: str | None = None

    @property
    def size(self) -> int:
        return self.operators.shape[1]

    # ------------------------------------------------------------------ online
    def _mu(self, mu) -> tuple[np.ndarray, bool]:
        """mu (p,) or (m, p) checked against the training box (rom.parameters.check_mu: the
        error names the row, the entry and its parameter name; values within 4 ulps of a bound
        are taken as the bound)."""
        return check_mu(mu, self.lower, self.upper, getattr(self, "names", None))

    def solve(self, mu) -> np.ndarray:
        """Reduced coefficients: mu (p,) -> (N,), or (m, p) -> (m, N). Cost O(Q N^2 + N^3) each."""
        arr, single = self._mu(mu)
        u = K.reduced_solve(_theta_eval(self.theta, arr), _theta_eval(self.theta_f, arr), self.operators, self.rhs)
        return u[0] if single else u

    def output(self, mu, coeffs=None) -> np.ndarray:
        """Outputs s_N(mu) = l^T V u_N: (L,) or (m, L)."""
        arr, single = self._mu(mu)
        u = np.atleast_2d(self.solve(arr) if coeffs is None else coeffs)
        s = u @ self.outputs.T
        return s[0] if single else s

    def residual_norm(self, mu, coeffs=None) -> np.ndarray:
        """||r(mu)||_X' (m,) or scalar with the stored formula (card E)."""
        arr, single = self._mu(mu)
        th, thf = _theta_eval(self.theta, arr), _theta_eval(self.theta_f, arr)
        u = np.atleast_2d(K.reduced_solve(th, thf, self.operators, self.rhs) if coeffs is None else coeffs)
        c = K.residual_coefficients(th, thf, u)
        r = residual_norm_from(self.estimator, c)
        return r[0] if single else r

    def stability_lower_bound(self, mu) -> np.ndarray:
        arr, single = self._mu(mu)
        a = stability_from(self.stability, _theta_eval(self.theta, arr))
        return a[0] if single else a

    def estimate(self, mu, coeffs=None) -> dict:
        """Error bounds at mu (p,) or (m, p): {"residual": ||r||_X', "alpha_lb",
        "x_norm": ||r||/alpha_LB (bound of ||u - V u_N||_X), "energy": ||r||/sqrt(alpha_LB)
        (bound of the energy norm, a(.,.;mu) symmetric), "output": (.., L) bounds of |s - s_N|:
        ||r||^2/alpha_LB for compliant outputs, ||l||_X' ||r||/alpha_LB otherwise}."""
        arr, single = self._mu(mu)
        th, thf = _theta_eval(self.theta, arr), _theta_eval(self.theta_f, arr)
        u = np.atleast_2d(K.reduced_solve(th, thf, self.operators, self.rhs) if coeffs is None else coeffs)
        r = residual_norm_from(self.estimator, K.residual_coefficients(th, thf, u))
        a = stability_from(self.stability, th)
        out = np.where(self.compliant[None, :], (r ** 2 / a)[:, None],
                       self.output_dual_norms[None, :] * (r / a)[:, None])
        res = {"residual": r, "alpha_lb": a, "x_norm": r / a, "energy": r / np.sqrt(a), "output": out}
        return {k: v[0] for k, v in res.items()} if single else res

    def reconstruct(self, coeffs) -> np.ndarray:
        """FOM field V u: coeffs (N,) -> (n,), (m, N) -> (m, n). Reads the basis from the file
        (or memory) only now."""
        V = self.basis
        if V is None:
            if self.path is None:
                raise StoreError("this ReducedModel has no basis; build it with keep_basis or load it from a file "
                                 "saved with its basis")
            with h5py.File(self.path, "r") as h:
                if "basis" not in h:
                    raise StoreError(f"{self.path} holds no basis; save(path, basis=True) to reconstruct fields")
                V = h["basis/V"][...]
            self.basis = V
        c = np.asarray(coeffs, dtype=np.float64)
        if c.shape[-1] != self.size:
            raise ShapeError(f"coeffs has shape {c.shape}; its last axis must be the basis size {self.size}")
        return c @ V.T

    # ------------------------------------------------------------------ storage
    def save(self, path, basis: bool = True) -> None:
        """Write to HDF5 (beside, then rename). The online group holds only O(Q N^2 + K^2) data;
        the basis (n, N) goes to the separate group "basis" when basis=True and it is known."""
        import os

        tmp = str(path) + ".tmp"
        with h5py.File(tmp, "w") as h:
            h.attrs["format"] = FORMAT
            g = h.create_group("online")
            for name in ("operators", "rhs", "lower", "upper", "outputs", "output_dual_norms"):
                g[name] = getattr(self, name)
            g["compliant"] = self.compliant.astype(np.int8)
            g.attrs["theta"] = "\n".join(self.theta)
            g.attrs["theta_f"] = "\n".join(self.theta_f)
            for grp, d in (("estimator", self.estimator), ("stability", self.stability)):
                s = g.create_group(grp)
                for k, v in d.items():
                    if isinstance(v, str):
                        s.attrs[k] = v
                    else:
                        s[k] = np.asarray(v)
            V = self.basis
            if basis and V is None and self.path is not None:
                V = ReducedModel.load(self.path).reconstruct(np.eye(self.size)).T
            if basis and V is not None:
                h.create_group("basis")["V"] = V
        os.replace(tmp, path)
        self.path = str(path)

    @classmethod
    def load(cls, path) -> "ReducedModel":
        """Read the online part; the basis stays on disk until `reconstruct` needs it."""
        try:
            h = h5py.File(path, "r")
        except OSError as exc:
            raise StoreError(f"cannot open {path} as HDF5 ({exc}); give a file written by ReducedModel.save") from None
        with h:
            if h.attrs.get("format") != FORMAT:
                raise StoreError(f"{path} is not a romtk reduced model (format {h.attrs.get('format')!r}, "
                                 f"expected {FORMAT!r}); write it with ReducedModel.save")
            g = h["online"]

            def group(name):
                d = {k: v for k, v in g[name].attrs.items()}
                d.update({k: g[name][k][...] for k in g[name]})
                return d

            return cls(operators=g["operators"][...], rhs=g["rhs"][...], theta=tuple(g.attrs["theta"].split("\n")),
                       theta_f=tuple(g.attrs["theta_f"].split("\n")), lower=g["lower"][...], upper=g["upper"][...],
                       estimator=group("estimator"), stability=group("stability"), outputs=g["outputs"][...],
                       output_dual_norms=g["output_dual_norms"][...], compliant=g["compliant"][...].astype(bool),
                       path=str(path))


def residual_norm_from(est: dict, c: np.ndarray) -> np.ndarray:
    """||r||_X' for residual coefficients c (m, K) with estimator data `est` (card E)."""
    method = est["method"]
    if method == "gram":
        # round-off can make c^T M c negative below ~eps ||f||^2: report its magnitude, a floor
        # of about sqrt(eps) ||f||, rather than a zero that would certify nothing
        r2 = np.einsum("mi,mi->m", c @ est["gram"], c)
        return np.sqrt(np.abs(r2))
    if method == "orthonormalized":
        return np.linalg.norm(c @ est["T"].T, axis=1)
    if method == "eim":
        vals = c @ est["point_values"].T                       # representer at the magic points (m, d)
        lam = np.linalg.solve(est["B"], vals.T).T              # interpolation coefficients (m, d)
        return np.linalg.norm(lam @ est["R"].T, axis=1)
    raise ShapeError(f"estimator method {method!r}: use one of {ESTIMATORS}")


def stability_from(stab: dict, theta: np.ndarray) -> np.ndarray:
    kind = stab["kind"]
    if kind == "min_theta":
        return K.min_theta_bound(theta, stab["theta_bar"], float(stab["alpha_bar"]))
    if kind == "scm":
        return SCMBound(stab["box"], stab["theta_c"], stab["alpha_c"], stab["y_c"]).lower(theta)
    if kind == "constant":
        return np.full(theta.shape[0], float(stab["alpha"]))
    raise ShapeError(f"stability kind {kind!r}: use 'min_theta', 'scm' or 'constant'")
