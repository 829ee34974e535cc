"""The online reduced model of an affine linear problem, stored in HDF5 without FOM-sized data.

A(mu) = sum_q theta_q(mu) A_q, f(mu) = sum_p theta^f_p(mu) f_p, Galerkin on an X-orthonormal
basis V (n, N). The online object holds only

- operators (Q, N, N) = V^T A_q V, rhs (P, N) = V^T f_p, outputs (L, N) = V^T l,
- theta / theta_f as expressions of the coefficient language (rom.coefficients: data, never code),
- the parameter names (p,),
- the residual dual-norm data of the chosen formula (card E): "gram" M (K, K),
  "orthonormalized" T (r, K), or "eim" (point values (d, K), interpolation matrix (d, d) and
  the X-Cholesky factor of its basis (d, d)), with K = P + Q N,
- the stability lower bound data (min-theta or SCM, both O(Q) or O(K Q) numbers).

The basis is needed only by `reconstruct`; `save` writes it in a separate group ("basis") that
`load` does not read unless asked, so the online part never scales with n_dofs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import h5py
import numpy as np

from rom import _rb_kernels as K
from rom import coefficients
from rom.errors import ParameterError, RomError, ShapeError, StoreError
from rom.h5io import (atomic, create_checked, expect_format, format_of, put, read_array, read_attr, read_group, reading,
                      text)
from rom.parameters import check_mu
from rom.scm import SCMBound

FORMAT = "romtk.ReducedModel/2"  # 2: parameter names, basis size and checksums; 1 is still read
_FORMAT_1 = "romtk.ReducedModel/1"
ESTIMATORS = ("gram", "orthonormalized", "eim")
# Safety rule of the bounds (docs/methods/rb.md): the residual's round-off floor RESIDUAL_ULPS eps ||f||_X'
# is added to ||r||, and OUTPUT_ULPS eps |s_N| to output bounds
RESIDUAL_ULPS = 8.0
OUTPUT_ULPS = 8.0


def _theta_eval(exprs: tuple, mu: np.ndarray) -> np.ndarray:
    """theta(mu) (m, Q) for mu (m, p): the coefficient expressions, parsed once (cached) and
    evaluated by rom.coefficients, never executed."""
    return coefficients.evaluate(exprs, mu)


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
    names: tuple = ()
    basis: np.ndarray | None = None
    path: str | None = None

    def __post_init__(self):
        p = np.size(self.lower)
        self.theta = coefficients.Coefficients(self.theta).expressions
        self.theta_f = coefficients.Coefficients(self.theta_f).expressions
        top = coefficients.max_index(self.theta + self.theta_f)
        if top >= p:
            raise ParameterError(f"theta uses mu[{top}] but the parameter box has {p} entries; "
                                 "give lower/upper of the problem's full parameter")
        self.names = tuple(str(n) for n in self.names) or tuple(f"mu{i}" for i in range(p))
        if len(self.names) != p:
            raise ParameterError(f"names has {len(self.names)} entries, the parameter box {p}; "
                                 "give one name per parameter")

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
        """Error bounds at mu (p,) or (m, p): {"residual": ||r||_X', "round_off": delta,
        "alpha_lb", "x_norm": (||r|| + delta)/alpha_LB (bound of ||u - V u_N||_X), "energy":
        (||r|| + delta)/sqrt(alpha_LB) (bound of the energy norm, a(.,.;mu) symmetric), "output":
        (.., L) bounds of |s - s_N|: (||r|| + delta)^2/alpha_LB for compliant outputs,
        ||l||_X' (||r|| + delta)/alpha_LB otherwise, plus OUTPUT_ULPS eps |s_N|}.

        Safety rule (docs/methods/rb.md): delta = RESIDUAL_ULPS eps ||f(mu)||_X' (sqrt(RESIDUAL_ULPS
        eps) ||f(mu)||_X' for "gram"), the round-off floor of an evaluated residual, is added to
        ||r|| in every bound, and OUTPUT_ULPS eps |s_N|
        (the rounding of the two output values) to the output bounds; where the bound ties the
        error (A(mu) = X), round-off then cannot put it below."""
        arr, single = self._mu(mu)
        th, thf = _theta_eval(self.theta, arr), _theta_eval(self.theta_f, arr)
        u = np.atleast_2d(K.reduced_solve(th, thf, self.operators, self.rhs) if coeffs is None else coeffs)
        r = residual_norm_from(self.estimator, K.residual_coefficients(th, thf, u))
        f_norm = residual_norm_from(self.estimator, K.residual_coefficients(th, thf, np.zeros_like(u)))
        eps = np.finfo(np.float64).eps
        # F1 ("gram") rounds ||r||^2, not ||r||: its floor is sqrt(RESIDUAL_ULPS eps) ||f||
        delta = (np.sqrt(RESIDUAL_ULPS * eps) if self.estimator["method"] == "gram" else RESIDUAL_ULPS * eps) * f_norm
        rs = r + delta
        a = stability_from(self.stability, th)
        s_round = OUTPUT_ULPS * eps * np.abs(u @ self.outputs.T) if self.outputs.size else 0.0
        out = np.where(self.compliant[None, :], (rs ** 2 / a)[:, None],
                       self.output_dual_norms[None, :] * (rs / a)[:, None]) + s_round
        res = {"residual": r, "round_off": delta, "alpha_lb": a, "x_norm": rs / a, "energy": rs / np.sqrt(a),
               "output": out}
        return {k: v[0] for k, v in res.items()} if single else res

    def reconstruct(self, coeffs) -> np.ndarray:
        """FOM field V u: coeffs (N,) -> (n,), (m, N) -> (m, n). Reads the basis from the file
        (or memory) only now."""
        V = self.basis
        if V is None:
            if self.path is None:
                raise StoreError("this ReducedModel has no basis; build it with keep_basis or load it from a file "
                                 "saved with its basis")
            with reading(self.path, "reduced model", "save it again with ReducedModel.save(path, basis=True)") as h:
                if "basis" not in h:
                    raise StoreError(f"{self.path} holds no basis; save(path, basis=True) to reconstruct fields")
                b = h["basis"]
                n = read_attr(b, "n_dofs", int) if format_of(h) != _FORMAT_1 else None
                V = read_array(b, "V", shape=(n, None), finite=True)
                if V.shape[1] != self.size:
                    raise StoreError(f"{self.path}:/basis/V has shape {V.shape}, expected (n, {self.size}); "
                                     "the file is damaged: save it again with ReducedModel.save(path, basis=True)")
            self.basis = V
        c = np.asarray(coeffs, dtype=np.float64)
        if c.shape[-1] != self.size:
            raise ShapeError(f"coeffs has shape {c.shape}; its last axis must be the basis size {self.size}")
        return c @ V.T

    # ------------------------------------------------------------------ storage
    def save(self, path, basis: bool = True) -> None:
        """Write to HDF5 (beside, then rename). The online group holds only O(Q N^2 + K^2) data;
        the basis (n, N) goes to the separate group "basis" when basis=True and it is known."""
        V = self.basis
        if basis and V is None and self.path is not None:
            V = ReducedModel.load(self.path).reconstruct(np.eye(self.size)).T
        with atomic(path) as tmp, create_checked(tmp) as h:
            h.attrs["format"] = text(FORMAT)
            g = h.create_group("online")
            for name in ("operators", "rhs", "lower", "upper", "outputs", "output_dual_norms"):
                put(g, name, getattr(self, name))
            put(g, "compliant", self.compliant.astype(np.int8))
            g.attrs["theta"] = text("\n".join(self.theta))
            g.attrs["theta_f"] = text("\n".join(self.theta_f))
            g.attrs["names"] = text(json.dumps(list(self.names)))
            for grp, d in (("estimator", self.estimator), ("stability", self.stability)):
                s = g.create_group(grp)
                for k, v in d.items():
                    if isinstance(v, str):
                        s.attrs[k] = text(v)
                    else:
                        put(s, k, v)
            if basis and V is not None:
                b = h.create_group("basis")
                b.attrs["n_dofs"] = V.shape[0]
                put(b, "V", V)
        self.path = str(path)

    @classmethod
    def load(cls, path) -> "ReducedModel":
        """Read the online part; the basis stays on disk until `reconstruct` needs it.

        Every array is checked against the others (shapes, finiteness) and the coefficient
        functions are parsed as data; a damaged or foreign file raises StoreError."""
        fix = "write it again with ReducedModel.save (or rerun the reduction)"
        with reading(path, "reduced model", fix) as h:
            version_1 = format_of(h) == _FORMAT_1
            if not version_1:
                expect_format(h, FORMAT, "romtk reduced model", "write it with ReducedModel.save")
            g = read_group(h, "online")
            where = f"{path}:/online"
            theta = tuple(read_attr(g, "theta").split("\n"))
            theta_f = tuple(read_attr(g, "theta_f").split("\n"))
            coefficients.max_index(theta + theta_f, f"{where}@theta")
            Q, P = len(theta), len(theta_f)
            ops = read_array(g, "operators", ndim=3, finite=True)
            N = ops.shape[1]
            if ops.shape != (Q, N, N):
                raise StoreError(f"{where}/operators has shape {ops.shape}, expected ({Q}, N, N) for the {Q} theta "
                                 f"functions; the file is damaged: {fix}")
            rhs = read_array(g, "rhs", shape=(P, N), finite=True)
            lower = read_array(g, "lower", ndim=1, finite=True)
            p = lower.size
            upper = read_array(g, "upper", shape=(p,), finite=True)
            if not np.all(lower <= upper):
                raise StoreError(f"{where}: lower > upper in the parameter box; the file is damaged: {fix}")
            outputs = read_array(g, "outputs", ndim=2, finite=True)
            L = outputs.shape[0]
            if outputs.shape[1] != N and outputs.size:
                raise StoreError(f"{where}/outputs has shape {outputs.shape}, expected (L, {N}): {fix}")
            norms = read_array(g, "output_dual_norms", shape=(L,), finite=True)
            compliant = read_array(g, "compliant", shape=(L,), dtype=np.int8).astype(bool)
            names = _names(g, p, where, required=not version_1)
            estimator = _check_group(_read_group(g, "estimator"), "method", _ESTIMATOR_DATA, P + Q * N,
                                     f"{where}/estimator", fix)
            stability = _check_group(_read_group(g, "stability"), "kind", _STABILITY_DATA, Q, f"{where}/stability", fix)
            try:
                return cls(operators=ops, rhs=rhs, theta=theta, theta_f=theta_f, lower=lower, upper=upper,
                           estimator=estimator, stability=stability, outputs=outputs.reshape(L, N),
                           output_dual_norms=norms, compliant=compliant, names=names, path=str(path))
            except RomError as exc:
                raise StoreError(f"{path} is an inconsistent reduced model ({exc}): {fix}") from None


def _names(g: h5py.Group, p: int, where: str, required: bool) -> tuple:
    """The parameter names (p,) of the online group; mu0.. for version-1 files, which have none."""
    if not required and "names" not in g.attrs:
        return tuple(f"mu{i}" for i in range(p))
    try:
        names = json.loads(read_attr(g, "names"))
    except ValueError:
        names = None
    if not (isinstance(names, list) and len(names) == p and all(isinstance(n, str) for n in names)):
        raise StoreError(f"{where}@names is not a list of {p} parameter names; the file is damaged")
    return tuple(names)


def _read_group(g: h5py.Group, name: str) -> dict:
    """Attributes (text) and datasets (float64 arrays) of the group `name` as one dict."""
    s = read_group(g, name)
    d = {k: read_attr(s, k) for k in s.attrs}
    d.update({k: read_array(s, k, finite=True) for k in s})
    return d


# per kind: the arrays and their number of dimensions, and their consistency with K = P + Q N
# (estimator) or with Q (stability)
_ESTIMATOR_DATA = {
    "gram": ({"gram": 2}, lambda d, K_: d["gram"].shape == (K_, K_)),
    "orthonormalized": ({"T": 2}, lambda d, K_: d["T"].shape[1] == K_),
    "eim": ({"point_values": 2, "B": 2, "R": 2},
            lambda d, K_: (d["point_values"].shape[1] == K_ and d["B"].shape == (d["point_values"].shape[0],) * 2
                           and d["R"].shape[1] == d["B"].shape[0])),
}
_STABILITY_DATA = {
    "min_theta": ({"theta_bar": 1, "alpha_bar": 0}, lambda d, Q: d["theta_bar"].shape == (Q,) and d["alpha_bar"] > 0),
    "constant": ({"alpha": 0}, lambda d, Q: d["alpha"] > 0),
    "scm": ({"box": 2, "theta_c": 2, "alpha_c": 1, "y_c": 2},
            lambda d, Q: (d["box"].shape == (Q, 2) and d["theta_c"].shape[1:] == d["y_c"].shape[1:] == (Q,)
                          and d["alpha_c"].shape[0] == d["theta_c"].shape[0] == d["y_c"].shape[0])),
}


def _check_group(d: dict, key: str, table: dict, size: int, where: str, fix: str) -> dict:
    """d (the estimator or stability data read from `where`) has a known `key` and arrays that
    match `size`; StoreError otherwise."""
    kind = d.get(key)
    if kind not in table:
        raise StoreError(f"{where}@{key} = {kind!r}, expected one of {tuple(table)}; the file is damaged: {fix}")
    arrays, consistent = table[kind]
    for name, ndim in arrays.items():
        if name not in d or np.ndim(d[name]) != ndim:
            raise StoreError(f"{where}/{name} is missing or not {ndim}-dimensional for {key} {kind!r}; "
                             f"the file is damaged: {fix}")
    if not consistent(d, size):
        raise StoreError(f"{where}: the {kind!r} arrays do not match the model's size ({size}); "
                         f"the file is damaged: {fix}")
    return d


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
