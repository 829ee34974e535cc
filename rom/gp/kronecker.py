"""Gaussian processes on Cartesian product grids, with Kronecker algebra only.

Training inputs are the product of D axes, axis d holding n_d points of any
dimension (an interval grid (n_d,), or scattered parameters (n_d, p_d), or the
nodes of a mesh): N = prod_d n_d points. With a product kernel

    C = s2 * (K_1 kron K_2 kron ... kron K_D) + sigma2 * I,   K_d = Q_d diag(lam_d) Q_d^T,

every quantity of exact GP regression comes from the per-axis eigendecompositions
(Saatci 2012, ch. 5; Wilson, Gilboa, Nehorai & Cunningham 2014):

    alpha = C^-1 y = Q (s2 Lam + sigma2)^-1 Q^T y     (mode products, O(N sum_d n_d))
    log|C| = sum_i log(s2 Lam_i + sigma2)            (Lam_i = prod_d lam_d[i_d])

and the derivative of the log marginal likelihood with respect to a parameter of
K_d is the contraction of dK_d with the n_d x n_d matrix

    1/2 [ s2 * alpha_(d) B_(d)^T - Q_d diag(v_d) Q_d^T ],
    B = alpha x_{k != d} K_k,   v_d[j] = sum_{i: i_d = j} s2 prod_{k != d} lam_k / (s2 Lam_i + sigma2)

(mode-d unfoldings X_(d)). Cost O(sum_d n_d^3 + D N sum_d n_d) time and
O(sum_d n_d^2 + N) memory; no Kronecker product is ever formed.

Missing grid entries are refused: y must be complete (NaN raises). Scattered
data belongs to `GaussianProcess`.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize

from rom.errors import ParameterError, RomError, ShapeError
from rom.gp._validate import check_fitted, check_X
from rom.gp.kernels import Kernel, Matern52


def mode_product(T: np.ndarray, M: np.ndarray, d: int) -> np.ndarray:
    """T x_d M: contracts axis d of T (size n) with the columns of M (m, n); axis d becomes size m."""
    Tm = np.moveaxis(T, d, 0)
    shp = Tm.shape
    out = M @ Tm.reshape(shp[0], -1)
    return np.moveaxis(out.reshape((M.shape[0],) + shp[1:]), 0, d)


def kron_mv(mats, T: np.ndarray) -> np.ndarray:
    """(M_1 kron ... kron M_D) vec(T) as a tensor, T of shape (n_1, ..., n_D[, t])."""
    for d, M in enumerate(mats):
        T = mode_product(T, M, d)
    return T


def rows_contract(T: np.ndarray, rows) -> np.ndarray:
    """out[j, ...] = sum_i T[i_1..i_D, ...] prod_d R_d[j, i_d] for R_d (m, n_d): the Kronecker
    vector of each point j against T, without forming it. Returns (m,) + T.shape[D:]."""
    D = len(rows)
    m = rows[0].shape[0]
    ntail = T.ndim - D
    A = np.moveaxis(np.tensordot(T, rows[-1], axes=([D - 1], [1])), -1, 0)  # (m, n_1..n_{D-1}, tail)
    for d in range(D - 2, -1, -1):  # grid axis d sits at position d + 1 of A
        R = rows[d].reshape((m,) + (1,) * d + (rows[d].shape[1],) + (1,) * ntail)
        A = (A * R).sum(axis=d + 1)
    return A


def _check_axis(d: int, a) -> np.ndarray:
    a = np.asarray(a, dtype=float)
    if a.ndim == 1:
        a = a[:, None]
        if a.shape[0] > 1 and not np.all(np.diff(a[:, 0]) > 0):
            raise ShapeError(f"axes[{d}] is not strictly increasing (duplicate or unsorted grid nodes); "
                             f"sort it and remove duplicates, and reorder y the same way")
    if a.ndim != 2 or a.shape[0] == 0:
        raise ShapeError(f"axes[{d}] has shape {a.shape}, expected (n_d,) or (n_d, p_d)")
    if not np.all(np.isfinite(a)):
        raise ParameterError(f"axes[{d}] contains NaN or Inf")
    if a.shape[1] > 1 and np.unique(a, axis=0).shape[0] != a.shape[0]:
        raise ShapeError(f"axes[{d}] has duplicate points; remove them (and the matching slices of y)")
    return np.ascontiguousarray(a)


class KroneckerGP:
    """Exact GP on a product grid with kernel s2 * prod_d k_d + noise.

    Parameters
    ----------
    kernels : list of Kernel, one per axis (unit variance by convention; default Matern52(1)).
    signal_variance, noise : initial s2 > 0 and sigma2 > 0 (homoscedastic).
    optimizer, n_restarts, max_iter, random_state : as in GaussianProcess.
    normalize_y : standardize y (scalar mean and std over the whole grid, per output).
    """

    def __init__(self, kernels=None, signal_variance: float = 1.0, noise: float = 1e-2,
                 optimizer: str | None = "L-BFGS-B", n_restarts: int = 0, max_iter: int = 200,
                 random_state=None, normalize_y: bool = False, noise_bounds=(1e-8, 1e3)):
        for name, v in (("signal_variance", signal_variance), ("noise", noise)):
            if not np.isfinite(v) or v <= 0:
                raise ParameterError(f"{name}={v!r}: must be finite and > 0")
        if optimizer not in ("L-BFGS-B", None):
            raise ParameterError(f"optimizer={optimizer!r}: use 'L-BFGS-B' or None")
        self.kernels = kernels
        self.signal_variance = float(signal_variance)
        self.noise = float(noise)
        self.optimizer = optimizer
        self.n_restarts = int(n_restarts)
        self.max_iter = int(max_iter)
        self.random_state = random_state
        self.normalize_y = normalize_y
        self.noise_bounds = noise_bounds

    # ------------------------------------------------------------- theta
    def _theta(self, kernels, s2, n2):
        return np.concatenate([[np.log(s2), np.log(n2)]] + [k.theta for k in kernels])

    def _split(self, kernels, theta):
        s2, n2 = np.exp(theta[0]), np.exp(theta[1])
        i = 2
        for k in kernels:
            k.theta = theta[i:i + k.n_theta]
            i += k.n_theta
        return s2, n2

    def _bounds(self, kernels):
        b = [np.log([[1e-5, 1e5]]), np.log([self.noise_bounds])] + [k.bounds for k in kernels]
        return np.vstack(b)

    # ------------------------------------------------------------- core
    def _decompose(self, kernels, axes):
        eig = []
        for d, (k, a) in enumerate(zip(kernels, axes)):
            K = k(a)
            lam, Q = np.linalg.eigh(0.5 * (K + K.T))
            eig.append((np.maximum(lam, 0.0), Q, K))
        return eig

    @staticmethod
    def _lam_grid(eig):
        return KroneckerGP._lam_outer([lam for lam, _, _ in eig])

    def _lml_grad(self, kernels, axes, Y, theta, grad=True):
        s2, n2 = self._split(kernels, theta)
        eig = self._decompose(kernels, axes)
        D = len(axes)
        Lam = self._lam_grid(eig)
        den = s2 * Lam + n2
        if np.min(den) <= 0 or not np.all(np.isfinite(den)):
            raise RomError("the Kronecker covariance is singular; raise the noise lower bound")
        t = Y.shape[D] if Y.ndim > D else 1
        tail = (1,) * (Y.ndim - D)
        Yt = kron_mv([Q.T for _, Q, _ in eig], Y)  # y in the eigenbasis
        At = Yt / den.reshape(den.shape + tail)      # alpha in the eigenbasis
        N = den.size
        lml = -0.5 * np.sum(Yt * At) - 0.5 * t * np.sum(np.log(den)) - 0.5 * N * t * np.log(2 * np.pi)
        if not grad:
            alpha = kron_mv([Q for _, Q, _ in eig], At)
            return lml, None, alpha, eig
        # In the eigenbasis every K_e is diagonal, so B = alpha x_{e != d} K_e is At times the
        # product of the other axes' eigenvalues, and alpha_(d) B_(d)^T = Q_d At_(d) Bt_(d)^T Q_d^T.
        g = np.empty(theta.size)
        A2 = At * At if t == 1 else (At * At).sum(-1)
        g[0] = 0.5 * (s2 * np.sum(A2 * Lam) - t * np.sum(s2 * Lam / den))
        g[1] = 0.5 * (n2 * np.sum(A2) - t * np.sum(n2 / den))
        i = 2
        for d, (k, a) in enumerate(zip(kernels, axes)):
            lam_other = s2 * self._lam_outer([eig[e][0] if e != d else np.ones(den.shape[d]) for e in range(D)])
            Bt = At * lam_other.reshape(lam_other.shape + tail)
            ad = np.moveaxis(At, d, 0).reshape(den.shape[d], -1)
            bd = np.moveaxis(Bt, d, 0).reshape(den.shape[d], -1)
            v = np.moveaxis(lam_other / den, d, 0).reshape(den.shape[d], -1).sum(1)
            Q = eig[d][1]
            W = Q @ (ad @ bd.T - t * np.diag(v)) @ Q.T
            g[i:i + k.n_theta] = 0.5 * k.contract(a, W)
            i += k.n_theta
        return lml, g, None, eig

    # ------------------------------------------------------------- api
    def fit(self, axes, y) -> "KroneckerGP":
        """axes: list of D arrays (n_d,) or (n_d, p_d); y: (n_1, ..., n_D) or (n_1, ..., n_D, t).

        y[i_1, ..., i_D] is the value at the grid point (axes[0][i_1], ..., axes[D-1][i_D]).
        """
        if isinstance(axes, np.ndarray) or len(axes) == 0:
            raise ShapeError("axes must be a non-empty list of per-axis arrays, e.g. [x, y, z]")
        axes = [_check_axis(d, a) for d, a in enumerate(axes)]
        D = len(axes)
        shape = tuple(a.shape[0] for a in axes)
        Y = np.asarray(y, dtype=float)
        if Y.shape[:D] != shape or Y.ndim not in (D, D + 1):
            raise ShapeError(f"y has shape {Y.shape}, expected the grid shape {shape} (optionally + (n_outputs,))")
        if np.isnan(Y).any():
            raise ParameterError("y has NaN entries: KroneckerGP needs a complete grid (missing entries are "
                                 "refused); fill them or fit GaussianProcess on the observed points")
        if not np.all(np.isfinite(Y)):
            raise ParameterError("y contains Inf; remove those grid slices")
        kernels = self.kernels if self.kernels is not None else [Matern52(1.0) for _ in range(D)]
        if len(kernels) != D:
            raise ShapeError(f"{len(kernels)} kernels for {D} axes; pass one kernel per axis")
        kernels = [k.clone_with_theta(k.theta) for k in kernels]
        if self.normalize_y:
            ax = tuple(range(D))
            self._y_mean, self._y_std = Y.mean(axis=ax), Y.std(axis=ax)
            self._y_std = np.where(self._y_std == 0, 1.0, self._y_std)
        else:
            self._y_mean, self._y_std = np.zeros(Y.shape[D:]), np.ones(Y.shape[D:])
        Yn = (Y - self._y_mean) / self._y_std
        theta = self._theta(kernels, self.signal_variance, self.noise)
        if self.optimizer is not None:
            theta = self._optimize(kernels, axes, Yn, theta)
        lml, _, alpha, eig = self._lml_grad(kernels, axes, Yn, theta, grad=False)
        self.kernels_ = kernels
        self.signal_variance_, self.noise_ = float(np.exp(theta[0])), float(np.exp(theta[1]))
        self.theta_ = theta
        self.axes_, self.y_train_, self.alpha_, self.eig_ = axes, Yn, alpha, eig
        self.log_marginal_likelihood_value_ = float(lml)
        return self

    def _optimize(self, kernels, axes, Y, theta0):
        bounds = self._bounds(kernels)
        rng = np.random.default_rng(self.random_state)

        def f(th):
            try:
                lml, g, _, _ = self._lml_grad(kernels, axes, Y, th)
            except RomError:
                return 1e25, np.zeros_like(th)
            return -lml, -g

        starts = [np.clip(theta0, bounds[:, 0], bounds[:, 1])]
        starts += [rng.uniform(bounds[:, 0], bounds[:, 1]) for _ in range(self.n_restarts)]
        best = (np.inf, starts[0])
        self.optimizer_results_ = []
        for t0 in starts:
            res = minimize(f, t0, jac=True, method="L-BFGS-B", bounds=bounds, options={"maxiter": self.max_iter})
            self.optimizer_results_.append(res)
            if res.fun < best[0]:
                best = (res.fun, res.x)
        return best[1]

    def log_marginal_likelihood(self, theta=None, eval_gradient: bool = False):
        """log p(y | grid, theta); theta = [log s2, log sigma2, kernel thetas...] (default: fitted)."""
        check_fitted(self)
        kernels = [k.clone_with_theta(k.theta) for k in self.kernels_]
        th = self.theta_ if theta is None else np.asarray(theta, dtype=float)
        lml, g, _, _ = self._lml_grad(kernels, self.axes_, self.y_train_, th, grad=eval_gradient)
        return (float(lml), g) if eval_gradient else float(lml)

    def _cross(self, pts):
        """Per-axis cross covariances K*_d (m, n_d) for points split along the axes."""
        return [k(p, a) for k, p, a in zip(self.kernels_, pts, self.axes_)]

    def _split_points(self, X):
        dims = [a.shape[1] for a in self.axes_]
        X = check_X(X, dim=sum(dims))
        return np.split(X, np.cumsum(dims)[:-1], axis=1)

    def _finish(self, mean, var, return_std):
        mean = mean * self._y_std + self._y_mean
        if not return_std:
            return mean
        std = np.sqrt(np.maximum(var, 0.0))
        std = std.reshape(std.shape + (1,) * (mean.ndim - std.ndim)) * self._y_std
        return mean, std

    def predict(self, X, return_std: bool = False, chunk: int = 4096):
        """At arbitrary points X (m, sum_d p_d) (coordinates of axis 0 first): mean (m,[ t]) and
        with return_std the latent std + noise std, like a White term in GaussianProcess."""
        check_fitted(self)
        pts = self._split_points(X)
        m = pts[0].shape[0]
        D = len(self.axes_)
        s2 = self.signal_variance_
        Qs = [Q for _, Q, _ in self.eig_]
        if return_std:
            den = s2 * self._lam_grid(self.eig_) + self.noise_
        means, vars_ = [], []
        chunk = max(1, min(chunk, int(2e7 // max(1, self.alpha_.size // self.axes_[-1].shape[0]))))
        for j0 in range(0, m, chunk):
            rows = self._cross([p[j0:j0 + chunk] for p in pts])
            means.append(s2 * rows_contract(self.alpha_, rows))
            if return_std:
                P = [(R @ Q) ** 2 for R, Q in zip(rows, Qs)]
                prior = s2 * np.prod([k.diag(p[j0:j0 + chunk]) for k, p in zip(self.kernels_, pts)], axis=0)
                vars_.append(prior - s2 * s2 * rows_contract(1.0 / den, P) + self.noise_)
        mean = np.concatenate(means)
        return self._finish(mean, np.concatenate(vars_) if return_std else None, return_std)

    def predict_grid(self, axes, return_std: bool = False):
        """On a product grid of new axes: mean (m_1, ..., m_D[, t]) and std, by mode products."""
        check_fitted(self)
        axes = [_check_axis(d, a) for d, a in enumerate(axes)]
        if len(axes) != len(self.axes_):
            raise ShapeError(f"{len(axes)} axes given, the model has {len(self.axes_)}")
        rows = self._cross(axes)
        s2 = self.signal_variance_
        mean = s2 * kron_mv(rows, self.alpha_)
        if not return_std:
            return self._finish(mean, None, False)
        den = s2 * self._lam_grid(self.eig_) + self.noise_
        P = [(R @ Q) ** 2 for R, (_, Q, _) in zip(rows, self.eig_)]
        prior = s2 * self._lam_outer([k.diag(a) for k, a in zip(self.kernels_, axes)])
        var = prior - s2 * s2 * kron_mv(P, 1.0 / den) + self.noise_
        return self._finish(mean, var, True)

    @staticmethod
    def _lam_outer(vs):
        out = np.ones(())
        for v in vs:
            out = np.multiply.outer(out, v)
        return out
