"""Covariance kernels with analytic hyperparameter gradients and input derivatives.

Every kernel holds its hyperparameters in the log domain, `theta` (n_theta,),
except the spectral-mixture frequencies `mu`, which are kept as they are
(cycles per unit length; a frequency may be zero). `bounds` (n_theta, 2) are in
the same coordinates as `theta`.

    K = k(X, Y)                 (n, m)
    K, dK = k.gradient(X)       dK (n_theta, n, n) = dK/dtheta, X = Y
    k.d1(X, Y, a)               dk/dx_a, derivative in the first argument
    k.d2(X, Y, a, b)            d^2k/dx_a dx_b, both in the first argument

Kernels compose: `k1 * k2` (product), `k1 + k2` (sum), `c * k` (scaled by a
variance c > 0 that becomes a hyperparameter). `White` adds noise on k(X, X)
only. The per-dimension kernels of GP-HM (`SpectralMixture`, `StudentTMixture`)
act on one coordinate, so a product of them over the axes is the product kernel
that gives Kronecker structure on grids.
"""

from __future__ import annotations

import copy

import numpy as np

from rom.errors import ParameterError, RomError, ShapeError
from rom.gp import _kernels

_DEFAULT_BOUNDS = (1e-5, 1e5)


def _positive(name: str, value) -> np.ndarray:
    v = np.atleast_1d(np.asarray(value, dtype=float))
    if v.ndim != 1 or v.size == 0 or not np.all(np.isfinite(v)) or np.any(v <= 0):
        raise ParameterError(f"{name}={value!r}: must be finite and > 0 (a positive scalar or 1-D array)")
    return v


def _points(name: str, X) -> np.ndarray:
    X = np.asarray(X, dtype=float)
    if X.ndim == 1:
        X = X[:, None]
    if X.ndim != 2:
        raise ShapeError(f"{name} has shape {X.shape}, expected (n, dim)")
    return X


class Kernel:
    """Base class: see the module docstring for the contract."""

    def __call__(self, X, Y=None) -> np.ndarray:
        X = _points("X", X)
        return self._K(X, X if Y is None else _points("Y", Y), Y is None)

    def gradient(self, X) -> tuple[np.ndarray, np.ndarray]:
        """K (n, n) and dK/dtheta (n_theta, n, n) at X = Y."""
        X = _points("X", X)
        return self._grad(X)

    def diag(self, X) -> np.ndarray:
        """k(x_i, x_i), (n,)."""
        X = _points("X", X)
        return self._diag(X)

    def d1(self, X, Y, a: int) -> np.ndarray:
        """dk/dx_a (n, m), derivative in coordinate a of the first argument."""
        return self._d1(_points("X", X), _points("Y", Y), int(a))

    def d2(self, X, Y, a: int, b: int) -> np.ndarray:
        """d^2 k / dx_a dx_b (n, m), both derivatives in the first argument."""
        return self._d2(_points("X", X), _points("Y", Y), int(a), int(b))

    # hyperparameters -------------------------------------------------------
    @property
    def n_theta(self) -> int:
        return self.theta.size

    def clone_with_theta(self, theta) -> "Kernel":
        k = copy.deepcopy(self)
        k.theta = np.asarray(theta, dtype=float)
        return k

    # composition -----------------------------------------------------------
    def __mul__(self, other):
        if isinstance(other, Kernel):
            return Product(self, other)
        return Scaled(self, other)

    __rmul__ = __mul__

    def __add__(self, other):
        if not isinstance(other, Kernel):
            raise TypeError("a kernel can only be added to a kernel; use White(noise) for noise")
        return Sum(self, other)

    def contract(self, X, W) -> np.ndarray:
        """sum_ij W_ij dK_ij/dtheta_p (n_theta,), without storing dK when the kernel allows it."""
        return self._contract(_points("X", X), np.asarray(W, dtype=float))

    def _contract(self, X, W):
        _, dK = self._grad(X)
        return np.einsum("ij,pij->p", W, dK)

    def _d1(self, X, Y, a):
        raise RomError(f"{type(self).__name__} has no input derivatives")

    def _d2(self, X, Y, a, b):
        raise RomError(f"{type(self).__name__} has no second input derivatives")


# ---------------------------------------------------------------------------
# ARD radial kernels: k = g(q), q = sum_a (x_a - y_a)^2 / l_a^2
# ---------------------------------------------------------------------------

class _Radial(Kernel):
    smooth = 2  # number of input derivatives that exist at coincident points

    def __init__(self, length_scale=1.0, bounds=_DEFAULT_BOUNDS):
        self.length_scale = _positive("length_scale", length_scale)
        self._bounds = np.log(np.asarray(bounds, dtype=float))

    @property
    def theta(self):
        return np.log(self.length_scale)

    @theta.setter
    def theta(self, t):
        self.length_scale = np.exp(np.asarray(t, dtype=float).reshape(self.length_scale.shape))

    @property
    def bounds(self):
        return np.tile(self._bounds, (self.length_scale.size, 1))

    def _ls(self, dim):
        if self.length_scale.size not in (1, dim):
            raise ShapeError(f"{type(self).__name__} has {self.length_scale.size} length scales but the "
                             f"points have {dim} coordinates; pass one length scale or one per coordinate")
        return np.broadcast_to(self.length_scale, (dim,))

    def _diffs(self, X, Y):
        ls = self._ls(X.shape[1])
        D = (X[:, None, :] - Y[None, :, :]) / ls  # (n, m, dim), scaled differences
        return D, ls

    def _K(self, X, Y, same):
        ls = self._ls(X.shape[1])
        Xs, Ys = X / ls, Y / ls
        kind = _COMPILED.get(type(self))
        if kind is not None:  # compiled, from coordinate differences (no cancellation in q)
            K = np.empty((X.shape[0], Y.shape[0]))
            _kernels.cross(np.ascontiguousarray(Xs), np.ascontiguousarray(Ys), kind, K)
            return K
        q = (Xs**2).sum(1)[:, None] + (Ys**2).sum(1)[None, :] - 2.0 * Xs @ Ys.T
        q = np.maximum(q, 0.0)
        if same:
            np.fill_diagonal(q, 0.0)
        return self._g(q)

    def _diag(self, X):
        return np.full(X.shape[0], float(self._g(np.zeros(1))[0]))

    def _grad(self, X):
        D, ls = self._diffs(X, X)
        D2 = D**2
        q = D2.sum(-1)
        K = self._g(q)
        g1 = self._g1(q)
        if self.length_scale.size == 1:
            dK = (-2.0 * g1 * q)[None]
        else:
            dK = -2.0 * g1[None] * np.moveaxis(D2, -1, 0)
        return K, dK

    def _contract(self, X, W):
        ls = self._ls(X.shape[1])
        q = self._K_q(X, ls)
        G = W * self._g1(q)
        if self.length_scale.size == 1:
            return np.array([-2.0 * np.sum(G * q)])
        out = np.empty(ls.size)
        for a in range(ls.size):  # one (n, n) temporary per coordinate, never (dim, n, n)
            xa = X[:, a] / ls[a]
            out[a] = -2.0 * np.sum(G * (xa[:, None] - xa[None, :]) ** 2)
        return out

    def _K_q(self, X, ls):
        Xs = X / ls
        q = (Xs**2).sum(1)[:, None] + (Xs**2).sum(1)[None, :] - 2.0 * Xs @ Xs.T
        q = np.maximum(q, 0.0)
        np.fill_diagonal(q, 0.0)
        return q

    def _d1(self, X, Y, a):
        D, ls = self._diffs(X, Y)
        q = (D**2).sum(-1)
        return self._g1(q) * 2.0 * D[..., a] / ls[a]

    def _d2(self, X, Y, a, b):
        if self.smooth < 2:
            raise RomError(f"{type(self).__name__} is not twice differentiable; use Matern52 or "
                           f"SquaredExponential for second derivatives")
        D, ls = self._diffs(X, Y)
        q = (D**2).sum(-1)
        out = self._g2(q) * 4.0 * D[..., a] * D[..., b] / (ls[a] * ls[b])
        if a == b:
            out = out + self._g1(q) * 2.0 / ls[a] ** 2
        return out


class SquaredExponential(_Radial):
    """k = exp(-r^2 / 2), r the ARD-scaled distance; unit variance."""

    def _g(self, q):
        return np.exp(-0.5 * q)

    def _g1(self, q):
        return -0.5 * np.exp(-0.5 * q)

    def _g2(self, q):
        return 0.25 * np.exp(-0.5 * q)


class Matern12(_Radial):
    """k = exp(-r); not differentiable at r = 0 (d1 returns 0 there, d2 refuses)."""
    smooth = 0

    def _g(self, q):
        return np.exp(-np.sqrt(q))

    def _g1(self, q):
        r = np.sqrt(q)
        rs = np.where(r > 0, r, np.inf)
        return -np.exp(-r) / (2.0 * rs)


class Matern32(_Radial):
    """k = (1 + sqrt3 r) exp(-sqrt3 r); once differentiable (d2 refuses)."""
    smooth = 1

    def _g(self, q):
        s = np.sqrt(3.0 * q)
        return (1.0 + s) * np.exp(-s)

    def _g1(self, q):
        return -1.5 * np.exp(-np.sqrt(3.0 * q))


class Matern52(_Radial):
    """k = (1 + sqrt5 r + 5 r^2 / 3) exp(-sqrt5 r); twice differentiable."""

    def _g(self, q):
        s = np.sqrt(5.0 * q)
        return (1.0 + s + s * s / 3.0) * np.exp(-s)

    def _g1(self, q):
        s = np.sqrt(5.0 * q)
        return -(5.0 / 6.0) * (1.0 + s) * np.exp(-s)

    def _g2(self, q):
        return (25.0 / 12.0) * np.exp(-np.sqrt(5.0 * q))


# exact types only: a subclass may redefine g and then takes the numpy path
_COMPILED = {SquaredExponential: _kernels.SE, Matern12: _kernels.M12, Matern32: _kernels.M32,
             Matern52: _kernels.M52}


# ---------------------------------------------------------------------------
# GP-HM per-dimension mixtures: k(d) = sum_q w_q E(rho_q, d) cos(2 pi mu_q d)
# ---------------------------------------------------------------------------

class _Mixture(Kernel):
    """theta = [log w (Q), log rho (Q), mu (Q)]; acts on coordinate `dim`."""

    def __init__(self, weights, rho, mu, dim: int = 0, mu_max: float = 1e5):
        self.weights = _positive("weights", weights)
        Q = self.weights.size
        self.rho = np.broadcast_to(_positive("rho", rho), (Q,)).copy()
        mu = np.broadcast_to(np.asarray(mu, dtype=float), (Q,)).copy()
        if not np.all(np.isfinite(mu)) or np.any(mu < 0):
            raise ParameterError(f"mu={mu!r}: frequencies must be finite and >= 0")
        self.mu = mu
        self.dim = int(dim)
        self.mu_max = float(mu_max)

    @property
    def Q(self):
        return self.weights.size

    @property
    def theta(self):
        return np.concatenate([np.log(self.weights), np.log(self.rho), self.mu])

    @theta.setter
    def theta(self, t):
        t = np.asarray(t, dtype=float)
        Q = self.Q
        self.weights, self.rho, self.mu = np.exp(t[:Q]), np.exp(t[Q:2 * Q]), t[2 * Q:].copy()

    @property
    def bounds(self):
        Q = self.Q
        lo = np.r_[np.full(2 * Q, np.log(1e-8)), np.zeros(Q)]
        hi = np.r_[np.full(2 * Q, np.log(1e8)), np.full(Q, self.mu_max)]
        return np.stack([lo, hi], 1)

    # envelopes: E, E', E'' in d and rho*dE/drho, rho*dE'/drho, rho*dE''/drho (all (Q, m))
    def _env(self, d):
        raise NotImplementedError

    def terms(self, d, derivatives: int = 2, grad: bool = False):
        """Values at signed distances d (m,): k, k', k'' (each (m,)) and, with grad,
        dk/dtheta and dk''/dtheta (each (3Q, m))."""
        d = np.asarray(d, dtype=float)
        E, E1, E2, rE, rE1, rE2 = self._env(d)
        w = self.weights[:, None]
        om = 2.0 * np.pi * self.mu[:, None]
        C, S = np.cos(om * d), np.sin(om * d)
        C1, C2 = -om * S, -om**2 * C
        h = E * C
        h2 = E2 * C + 2.0 * E1 * C1 + E * C2
        k, k2 = (w * h).sum(0), (w * h2).sum(0)
        k1 = (w * (E1 * C + E * C1)).sum(0)
        if not grad:
            return k, k1, k2
        tp = 2.0 * np.pi
        dC_mu, dS_mu = -tp * d * S, tp * d * C
        dh_mu = E * dC_mu
        # h2 = E2 C - 2 E1 om S - om^2 E C
        dh2_mu = E2 * dC_mu - 2.0 * E1 * (tp * S + om * dS_mu) - (2.0 * om * tp * E * C + om**2 * E * dC_mu)
        dh_rho = rE * C
        dh2_rho = rE2 * C + 2.0 * rE1 * C1 + rE * C2
        dk = np.concatenate([w * h, w * dh_rho, w * dh_mu])
        dk2 = np.concatenate([w * h2, w * dh2_rho, w * dh2_mu])
        return k, k1, k2, dk, dk2

    def _dist(self, X, Y):
        if self.dim >= X.shape[1]:
            raise ShapeError(f"{type(self).__name__} acts on coordinate {self.dim} but the points have "
                             f"{X.shape[1]}; pass dim < {X.shape[1]}")
        return X[:, self.dim][:, None] - Y[:, self.dim][None, :]

    def _K(self, X, Y, same):
        d = self._dist(X, Y)
        return self.terms(d.ravel(), grad=False)[0].reshape(d.shape)

    def _diag(self, X):
        return np.full(X.shape[0], self.weights.sum())

    def _grad(self, X):
        d = self._dist(X, X)
        k, _, _, dk, _ = self.terms(d.ravel(), grad=True)
        return k.reshape(d.shape), dk.reshape((-1,) + d.shape)

    def _d1(self, X, Y, a):
        d = self._dist(X, Y)
        if a != self.dim:
            return np.zeros(d.shape)
        return self.terms(d.ravel(), grad=False)[1].reshape(d.shape)

    def _d2(self, X, Y, a, b):
        d = self._dist(X, Y)
        if a != self.dim or b != self.dim:
            return np.zeros(d.shape)
        return self.terms(d.ravel(), grad=False)[2].reshape(d.shape)


class SpectralMixture(_Mixture):
    """GP-HM-GM: k(d) = sum_q w_q exp(-rho_q d^2) cos(2 pi mu_q d) (Wilson & Adams' spectral
    mixture with a Gaussian spectral density; rho multiplies d^2)."""

    def _env(self, d):
        r = self.rho[:, None]
        d2 = d * d
        E = np.exp(-r * d2)
        E1 = -2.0 * r * d * E
        E2 = (4.0 * r * r * d2 - 2.0 * r) * E
        rE = -r * d2 * E
        rE1 = -2.0 * r * d * E * (1.0 - r * d2)
        rE2 = (8.0 * r * r * d2 - 2.0 * r) * E - (4.0 * r * r * d2 - 2.0 * r) * r * d2 * E
        return E, E1, E2, rE, rE1, rE2


class StudentTMixture(_Mixture):
    """GP-HM-StM: k(d) = sum_q w_q (1 + sqrt5 rho_q |d| + 5/3 rho_q^2 d^2) exp(-sqrt5 rho_q |d|)
    cos(2 pi mu_q d): a Matern-5/2 envelope, i.e. a Student-t spectral density per component."""

    def _env(self, d):
        r = self.rho[:, None]
        s5 = np.sqrt(5.0)
        s = s5 * r * np.abs(d)
        e = np.exp(-s)
        E = (1.0 + s + s * s / 3.0) * e
        Es = -(s / 3.0) * (1.0 + s) * e
        Ess = -(1.0 / 3.0) * (1.0 + s - s * s) * e
        Esss = (s / 3.0) * (3.0 - s) * e
        E1 = -(5.0 / 3.0) * r * r * d * (1.0 + s) * e
        E2 = 5.0 * r * r * Ess
        rE = s * Es
        rE1 = s5 * r * np.sign(d) * (Es + s * Ess)
        rE2 = 10.0 * r * r * Ess + 5.0 * r * r * Esss * s
        return E, E1, E2, rE, rE1, rE2


# ---------------------------------------------------------------------------
# composition and noise
# ---------------------------------------------------------------------------

class Scaled(Kernel):
    """c * k with variance c > 0; theta = [log c, theta_k]."""

    def __init__(self, kernel: Kernel, variance=1.0, bounds=_DEFAULT_BOUNDS):
        self.kernel = kernel
        self.variance = float(_positive("variance", variance)[0])
        self._bounds = np.log(np.asarray(bounds, dtype=float))

    @property
    def theta(self):
        return np.r_[np.log(self.variance), self.kernel.theta]

    @theta.setter
    def theta(self, t):
        t = np.asarray(t, dtype=float)
        self.variance = float(np.exp(t[0]))
        self.kernel.theta = t[1:]

    @property
    def bounds(self):
        return np.vstack([self._bounds[None], self.kernel.bounds])

    def _K(self, X, Y, same):
        return self.variance * self.kernel._K(X, Y, same)

    def _diag(self, X):
        return self.variance * self.kernel._diag(X)

    def _grad(self, X):
        K, dK = self.kernel._grad(X)
        return self.variance * K, np.concatenate([self.variance * K[None], self.variance * dK])

    def _contract(self, X, W):
        K = self.kernel._K(X, X, True)
        return np.r_[self.variance * np.sum(W * K), self.variance * self.kernel._contract(X, W)]

    def _d1(self, X, Y, a):
        return self.variance * self.kernel._d1(X, Y, a)

    def _d2(self, X, Y, a, b):
        return self.variance * self.kernel._d2(X, Y, a, b)


class Sum(Kernel):
    def __init__(self, k1: Kernel, k2: Kernel):
        self.k1, self.k2 = k1, k2

    @property
    def theta(self):
        return np.r_[self.k1.theta, self.k2.theta]

    @theta.setter
    def theta(self, t):
        t = np.asarray(t, dtype=float)
        n = self.k1.n_theta
        self.k1.theta, self.k2.theta = t[:n], t[n:]

    @property
    def bounds(self):
        return np.vstack([self.k1.bounds, self.k2.bounds])

    def _K(self, X, Y, same):
        return self.k1._K(X, Y, same) + self.k2._K(X, Y, same)

    def _diag(self, X):
        return self.k1._diag(X) + self.k2._diag(X)

    def _grad(self, X):
        K1, d1 = self.k1._grad(X)
        K2, d2 = self.k2._grad(X)
        return K1 + K2, np.concatenate([d1, d2])

    def _contract(self, X, W):
        return np.r_[self.k1._contract(X, W), self.k2._contract(X, W)]

    def _d1(self, X, Y, a):
        return self.k1._d1(X, Y, a) + self.k2._d1(X, Y, a)

    def _d2(self, X, Y, a, b):
        return self.k1._d2(X, Y, a, b) + self.k2._d2(X, Y, a, b)


class Product(Kernel):
    def __init__(self, k1: Kernel, k2: Kernel):
        self.k1, self.k2 = k1, k2

    theta = Sum.theta
    bounds = Sum.bounds

    def _K(self, X, Y, same):
        return self.k1._K(X, Y, same) * self.k2._K(X, Y, same)

    def _diag(self, X):
        return self.k1._diag(X) * self.k2._diag(X)

    def _grad(self, X):
        K1, d1 = self.k1._grad(X)
        K2, d2 = self.k2._grad(X)
        return K1 * K2, np.concatenate([d1 * K2, K1 * d2])

    def _contract(self, X, W):
        K1, K2 = self.k1._K(X, X, True), self.k2._K(X, X, True)
        return np.r_[self.k1._contract(X, W * K2), self.k2._contract(X, W * K1)]

    def _d1(self, X, Y, a):
        return self.k1._d1(X, Y, a) * self.k2._K(X, Y, False) + self.k1._K(X, Y, False) * self.k2._d1(X, Y, a)

    def _d2(self, X, Y, a, b):
        A, B = self.k1, self.k2
        KA, KB = A._K(X, Y, False), B._K(X, Y, False)
        return (A._d2(X, Y, a, b) * KB + A._d1(X, Y, a) * B._d1(X, Y, b)
                + A._d1(X, Y, b) * B._d1(X, Y, a) + KA * B._d2(X, Y, a, b))


class White(Kernel):
    """noise * I on k(X, X) (Y omitted); zero between distinct point sets."""

    def __init__(self, noise=1e-2, bounds=_DEFAULT_BOUNDS):
        self.noise = float(_positive("noise", noise)[0])
        self._bounds = np.log(np.asarray(bounds, dtype=float))

    @property
    def theta(self):
        return np.array([np.log(self.noise)])

    @theta.setter
    def theta(self, t):
        self.noise = float(np.exp(np.asarray(t, dtype=float).ravel()[0]))

    @property
    def bounds(self):
        return self._bounds[None].copy()

    def _K(self, X, Y, same):
        return self.noise * np.eye(X.shape[0]) if same else np.zeros((X.shape[0], Y.shape[0]))

    def _diag(self, X):
        return np.full(X.shape[0], self.noise)

    def _grad(self, X):
        K = self.noise * np.eye(X.shape[0])
        return K, K[None].copy()

    def _contract(self, X, W):
        return np.array([self.noise * np.trace(W)])

    def _d1(self, X, Y, a):
        return np.zeros((X.shape[0], Y.shape[0]))

    def _d2(self, X, Y, a, b):
        return np.zeros((X.shape[0], Y.shape[0]))


# ---------------------------------------------------------------------------
# compiled training path: sums of [c *] ARD radial kernels and White noise
# ---------------------------------------------------------------------------

def fused_terms(kernel: Kernel) -> list[tuple[int, Kernel, Kernel | None]] | None:
    """The terms of `kernel` as (first theta index, leaf, Scaled wrapper or None) when it is a
    Sum of White and [Scaled] SquaredExponential / Matern ARD kernels; None for any other shape
    (products, mixtures, subclasses), which then take the generic `contract` path."""
    terms, start = [], 0

    def walk(k):
        nonlocal start
        if isinstance(k, Sum):
            return walk(k.k1) and walk(k.k2)
        scale = k if isinstance(k, Scaled) else None
        leaf = k.kernel if scale is not None else k
        if not (type(leaf) in _COMPILED or (type(leaf) is White and scale is None)):
            return False
        terms.append((start, leaf, scale))
        start += k.n_theta
        return True

    return terms if walk(kernel) else None


def fused_gram_lower(terms, X: np.ndarray, diag: float, K: np.ndarray) -> float:
    """Lower triangle of K(X, X) + diag * I into the C-ordered (n, n) array K (upper left as is).
    Returns the fraction of pairs i > j at which every radial term is below 1e-100 of its
    variance (an upper bound of it for sums: the smallest count over the terms)."""
    first = True
    noise = diag
    n = K.shape[0]
    tiny = n * (n - 1) // 2
    for _, leaf, scale in terms:
        if type(leaf) is White:
            noise += leaf.noise
            continue
        c = 1.0 if scale is None else scale.variance
        Xs = np.ascontiguousarray(X / leaf._ls(X.shape[1]))
        tiny = min(tiny, _kernels.gram_lower(Xs, _COMPILED[type(leaf)], c, not first, K))
        first = False
    if first:
        K[np.tril_indices(n)] = 0.0
    K.ravel()[::n + 1] += noise
    return tiny / max(n * (n - 1) // 2, 1)


def fused_contract_lower(terms, n_theta: int, X: np.ndarray, W: np.ndarray) -> np.ndarray:
    """sum_ij W_ij dK_ij/dtheta (n_theta,) for symmetric W of which only the lower triangle is read
    (C-ordered): one compiled pass over the pairs i > j per radial term, every parameter at once."""
    out = np.empty(n_theta)
    for start, leaf, scale in terms:
        if type(leaf) is White:
            out[start] = leaf.noise * np.trace(W)
            continue
        ls = leaf._ls(X.shape[1])
        c = 1.0 if scale is None else scale.variance
        s = _kernels.contract_lower(np.ascontiguousarray(X / ls), _COMPILED[type(leaf)], W)
        i = start
        if scale is not None:
            out[i] = c * s[0]
            i += 1
        dl = -2.0 * c * s[1:]
        if leaf.length_scale.size == 1:
            out[i] = dl.sum()
        else:
            out[i:i + dl.size] = dl
    return out
