"""GP-HM: PDEs solved by Gaussian-process collocation on a grid (Fang et al., ICLR 2024, card G).

The unknowns are the solution values U (n_1 x ... x n_D) on a product grid that
includes the boundary. With a product kernel k(x, x') = prod_d k_d(x_d, x'_d),
vec(U) ~ N(0, K_1 kron ... kron K_D), K_d = k_d(X_d, X_d) + jitter I, and the GP
conditional mean gives the second derivatives along axis d as a mode product:

    d^2U/dx_d^2 = U x_d A_d,    A_d = K_d'' K_d^-1,   (K_d'')_ij = k_d''(x_i - x_j).

The loss is minus the log joint of the card (prior + weighted boundary + equation):

    L(U, theta) = sum_d (N / 2 n_d) log|K_d| + 1/2 <U, U x_1 K_1^-1 ... x_D K_D^-1>
                + lambda_b tau / 2 ||U_boundary - g||^2 + v / 2 ||L U - F||^2,
    L U = sum_d U x_d A_d  (Poisson),   + U^3 - U  (Allen-Cahn: u'' + u(u^2 - 1) = f).

`solve` keeps the kernel fixed and minimizes over U (one linear solve for Poisson,
Gauss-Newton for Allen-Cahn). `fit` also trains the kernels' log-weights,
log-scales and frequencies: by variable projection, it minimizes
L(U*(theta), theta) with L-BFGS-B, where U*(theta) is the inner solve and the
gradient is the partial derivative at U* (envelope theorem), assembled from
n_d x n_d matrices contracted with dk_d/dtheta and dk_d''/dtheta. tau and v stay
fixed (they are inputs, see docs/methods/gp.md). The inner solve forms the
N x N Gauss-Newton matrix densely, so N up to a few thousand points.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla
from scipy.optimize import minimize

from rom.errors import ParameterError, RomError, ShapeError
from rom.gp._linalg import cholesky_jitter
from rom.gp._validate import check_fitted, check_X
from rom.gp.kernels import _Mixture
from rom.gp.kronecker import kron_mv, mode_product, rows_contract

EQUATIONS = ("poisson", "allen-cahn")


def boundary_mask(shape) -> np.ndarray:
    """True on grid points with an index at the first or last position of some axis."""
    m = np.zeros(shape, dtype=bool)
    for d in range(len(shape)):
        idx = [slice(None)] * len(shape)
        idx[d] = [0, shape[d] - 1]
        m[tuple(idx)] = True
    return m


class _Axis:
    """Per-axis matrices of one kernel on one grid axis, and the compressed distance table."""

    def __init__(self, kernel: _Mixture, x: np.ndarray, jitter: float):
        self.kernel, self.x, self.jitter = kernel, x, jitter
        d = x[:, None] - x[None, :]
        span = max(x[-1] - x[0], 1e-300)
        key = np.round(np.abs(d) / span, 12)
        self.du, self.inv = np.unique(key, return_inverse=True)
        self.du = self.du * span
        self.inv = self.inv.reshape(d.shape)
        self.update()

    def update(self):
        k, _, k2 = self.kernel.terms(self.du, grad=False)
        n = self.x.size
        # jitter relative to k(0) = sum of weights, so that scaling all weights cannot make
        # K look like jitter * I (a degenerate optimum of the training loss)
        self.K = k[self.inv] + self.jitter * self.kernel.weights.sum() * np.eye(n)
        self.K2 = k2[self.inv]
        self.L, _ = cholesky_jitter(self.K, "the collocation kernel matrix of one axis")
        self.Kinv = sla.cho_solve((self.L, True), np.eye(n))
        self.LinvT = sla.solve_triangular(self.L, np.eye(n), lower=True).T
        self.A = self.K2 @ self.Kinv
        self.logdet = 2.0 * np.log(np.diag(self.L)).sum()

    def contract(self, M, M2):
        """sum_ij M_ij dK_ij/dtheta + M2_ij dK''_ij/dtheta, (3Q,)."""
        _, _, _, dk, dk2 = self.kernel.terms(self.du, grad=True)
        w = np.bincount(self.inv.ravel(), weights=M.ravel(), minlength=self.du.size)
        w2 = np.bincount(self.inv.ravel(), weights=M2.ravel(), minlength=self.du.size)
        out = dk @ w + dk2 @ w2
        out[:self.kernel.Q] += self.jitter * self.kernel.weights * np.trace(M)  # jitter scales with sum(w)
        return out


class GPHMSolver:
    """GP-HM collocation solver for Poisson and Allen-Cahn equations on boxes.

    Parameters
    ----------
    kernels : one SpectralMixture or StudentTMixture per axis (acting on coordinate 0 of that axis).
    equation : "poisson" (sum_d u_dd = f) or "allen-cahn" (sum_d u_dd + u(u^2 - 1) = f).
    boundary_weight : lambda_b (card: 200; 1e6 pins the boundary harder).
    tau, v : boundary and equation precisions (fixed).
    jitter : added to each K_d (card: 1e-6).
    """

    def __init__(self, kernels, equation: str = "poisson", boundary_weight: float = 200.0, tau: float = 1.0,
                 v: float = 1e4, jitter: float = 1e-6, newton_tol: float = 1e-8, max_newton: int = 50):
        if equation not in EQUATIONS:
            raise ParameterError(f"equation={equation!r}; use one of {EQUATIONS}")
        for name, val in (("boundary_weight", boundary_weight), ("tau", tau), ("v", v), ("jitter", jitter)):
            if not np.isfinite(val) or val <= 0:
                raise ParameterError(f"{name}={val!r}: must be finite and > 0")
        kernels = list(kernels)
        for k in kernels:
            if not isinstance(k, _Mixture):
                raise ParameterError(f"kernels must be SpectralMixture or StudentTMixture (one per axis), "
                                     f"got {type(k).__name__}")
        self.kernels = kernels
        self.equation = equation
        self.boundary_weight, self.tau, self.v, self.jitter = boundary_weight, tau, v, jitter
        self.newton_tol, self.max_newton = newton_tol, max_newton

    # ---------------------------------------------------------------- input
    def _check(self, axes, source, boundary):
        if len(axes) != len(self.kernels):
            raise ShapeError(f"{len(axes)} axes for {len(self.kernels)} kernels; pass one kernel per axis")
        out = []
        for d, a in enumerate(axes):
            a = np.asarray(a, dtype=float)
            if a.ndim != 1 or a.size < 3:
                raise ShapeError(f"axes[{d}] has shape {a.shape}; expected a 1-D grid of at least 3 points")
            if not np.all(np.isfinite(a)) or not np.all(np.diff(a) > 0):
                raise ShapeError(f"axes[{d}] must be finite and strictly increasing (no duplicate nodes)")
            out.append(a)
        shape = tuple(a.size for a in out)
        F = np.asarray(source, dtype=float)
        G = np.asarray(boundary, dtype=float)
        for name, arr in (("source", F), ("boundary", G)):
            if arr.shape != shape:
                raise ShapeError(f"{name} has shape {arr.shape}, expected the grid shape {shape}")
            if not np.all(np.isfinite(arr)):
                raise ParameterError(f"{name} contains NaN or Inf")
        return out, F, G

    # ------------------------------------------------------------ operators
    def _dense(self, ax):
        """Dense whitening factor L = kron_d L_d and operator A L on vec(z) (row-major), U = L z.

        The inner solve works in z, where the prior is 1/2 ||z||^2 and the Gauss-Newton matrix
        I + ... has eigenvalues >= 1, instead of K^-1 whose condition is that of K (jitter 1e-6)."""
        Lf = np.ones((1, 1))
        AL = np.zeros((1, 1))
        for a in ax:
            AL = np.kron(AL, a.L) + np.kron(Lf, a.K2 @ a.LinvT)
            Lf = np.kron(Lf, a.L)
        return Lf, AL

    def _residual(self, ax, U, F):
        R = -F.copy()
        for d, a in enumerate(ax):
            R += mode_product(U, a.A, d)
        if self.equation == "allen-cahn":
            R += U**3 - U
        return R

    def _inner(self, ax, F, G, U0):
        """argmin_U L(U, theta) at fixed kernels: one Newton step (Poisson) or Gauss-Newton."""
        shape = F.shape
        bm = boundary_mask(shape).ravel()
        lb = self.boundary_weight * self.tau
        Lf, AL = self._dense(ax)
        f, g = F.ravel(), G.ravel()
        ac = self.equation == "allen-cahn"
        z = sla.solve_triangular(Lf, U0.ravel(), lower=True, check_finite=False)
        Lb = Lf[bm]

        def obj(z):
            u = Lf @ z
            r = AL @ z - f + ((u**3 - u) if ac else 0.0)
            rb = u[bm] - g[bm]
            return 0.5 * z @ z + 0.5 * lb * rb @ rb + 0.5 * self.v * r @ r, r, rb, u

        val, r, rb, u = obj(z)
        for it in range(self.max_newton):
            J = AL + (3 * u**2 - 1)[:, None] * Lf if ac else AL
            H = lb * (Lb.T @ Lb) + self.v * (J.T @ J)
            H[np.diag_indices_from(H)] += 1.0
            grad = z + lb * (Lb.T @ rb) + self.v * (J.T @ r)
            C, _ = cholesky_jitter(0.5 * (H + H.T), "the Gauss-Newton matrix of the collocation problem")
            step = sla.cho_solve((C, True), grad)
            t = 1.0
            while True:
                new = obj(z - t * step)
                if new[0] <= val or t < 1e-8:
                    break
                t *= 0.5
            z = z - t * step
            val, r, rb, u = new
            if not ac or np.linalg.norm(t * step) <= self.newton_tol * max(1.0, np.linalg.norm(z)):
                break
        return u.reshape(shape), val

    def _loss(self, ax, U, val):
        N = U.size
        return val + sum(0.5 * N / a.x.size * a.logdet for a in ax)

    def _grad(self, ax, U, F):
        """Partial derivative of the loss in the kernel parameters at fixed U."""
        D = len(ax)
        N = U.size
        R = self._residual(ax, U, F)
        alpha = kron_mv([a.Kinv for a in ax], U)
        out = []
        for d, a in enumerate(ax):
            n = a.x.size
            Ud = np.moveaxis(mode_product(U, a.Kinv, d), d, 0).reshape(n, -1)
            ad = np.moveaxis(alpha, d, 0).reshape(n, -1)
            Rd = np.moveaxis(R, d, 0).reshape(n, -1)
            U0 = np.moveaxis(U, d, 0).reshape(n, -1)
            Gd = self.v * Rd @ U0.T              # d(v/2 ||R||^2)/dA_d
            M = 0.5 * (N / n) * a.Kinv - 0.5 * Ud @ ad.T - a.A.T @ Gd @ a.Kinv
            M2 = Gd @ a.Kinv
            out.append(a.contract(M, M2))
        return out

    # ------------------------------------------------------------------ api
    def solve(self, axes, source, boundary) -> np.ndarray:
        """Solution values on the grid (n_1, ..., n_D) with the kernels held fixed."""
        axes, F, G = self._check(axes, source, boundary)
        kernels = [k.clone_with_theta(k.theta) for k in self.kernels]
        ax = [_Axis(k, a, self.jitter) for k, a in zip(kernels, axes)]
        U, val = self._inner(ax, F, G, np.zeros(F.shape))
        self._store(ax, U, F, G, val)
        return U

    def fit(self, axes, source, boundary, max_iter: int = 200, train_frequencies: bool = True) -> "GPHMSolver":
        """Train the kernels (log-weights, log-scales, frequencies) and the solution jointly."""
        axes, F, G = self._check(axes, source, boundary)
        kernels = [k.clone_with_theta(k.theta) for k in self.kernels]
        ax = [_Axis(k, a, self.jitter) for k, a in zip(kernels, axes)]
        sizes = [k.n_theta for k in kernels]
        bounds = np.vstack([k.bounds for k in kernels])
        if not train_frequencies:
            for k, lo in zip(kernels, np.cumsum([0] + sizes[:-1])):
                Q = k.Q
                bounds[lo + 2 * Q: lo + 3 * Q] = k.mu[:, None]
        state = {"U": np.zeros(F.shape)}
        self.history_ = []

        def f(theta):
            i = 0
            try:
                for k, a, s in zip(kernels, ax, sizes):
                    k.theta = theta[i:i + s]
                    a.update()
                    i += s
                U, val = self._inner(ax, F, G, state["U"])
            except RomError:
                return 1e300, np.zeros_like(theta)
            state["U"] = U
            loss = self._loss(ax, U, val)
            self.history_.append(loss)
            return loss, np.concatenate(self._grad(ax, U, F))

        theta0 = np.concatenate([k.theta for k in kernels])
        res = minimize(f, theta0, jac=True, method="L-BFGS-B", bounds=bounds,
                       options={"maxiter": max_iter, "ftol": 1e-15, "gtol": 1e-10})
        self.optimizer_result_ = res
        i = 0
        for k, a, s in zip(kernels, ax, sizes):
            k.theta = res.x[i:i + s]
            a.update()
            i += s
        U, val = self._inner(ax, F, G, state["U"])
        self._store(ax, U, F, G, val)
        return self

    def _store(self, ax, U, F, G, val):
        self.kernels_ = [a.kernel for a in ax]
        self.axes_ = [a.x for a in ax]
        self._ax = ax
        self.U_ = U
        self.alpha_ = kron_mv([a.Kinv for a in ax], U)
        self.loss_ = self._loss(ax, U, val)
        self.residual_ = self._residual(ax, U, F)
        self._F, self._G = F, G

    def loss_and_gradient(self, theta):
        """Loss at the stored U as a function of the kernel parameters, and its gradient
        (the partial derivative used by `fit`; checked against finite differences in tests)."""
        check_fitted(self, "U_")
        kernels = [k.clone_with_theta(k.theta) for k in self.kernels_]
        ax, i = [], 0
        for k, x in zip(kernels, self.axes_):
            k.theta = np.asarray(theta, dtype=float)[i:i + k.n_theta]
            ax.append(_Axis(k, x, self.jitter))
            i += k.n_theta
        U, F, G = self.U_, self._F, self._G
        R = self._residual(ax, U, F)
        bm = boundary_mask(U.shape)
        val = (0.5 * np.sum(U * kron_mv([a.Kinv for a in ax], U)) + 0.5 * self.v * np.sum(R * R)
               + 0.5 * self.boundary_weight * self.tau * np.sum((U[bm] - G[bm]) ** 2))
        return self._loss(ax, U, val), np.concatenate(self._grad(ax, U, F))

    def predict_grid(self, axes) -> np.ndarray:
        """U at a product grid of new axes: U x_d (K*_d K_d^-1) for each axis."""
        check_fitted(self, "U_")
        rows = [k(np.asarray(a, dtype=float), x) for k, a, x in zip(self.kernels_, axes, self.axes_)]
        return kron_mv(rows, self.alpha_)

    def predict(self, X) -> np.ndarray:
        """U at arbitrary points X (m, D)."""
        check_fitted(self, "U_")
        X = check_X(X, dim=len(self.axes_))
        rows = [k(X[:, d], x) for d, (k, x) in enumerate(zip(self.kernels_, self.axes_))]
        return rows_contract(self.alpha_, rows)
