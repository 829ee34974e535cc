"""Exact (dense) Gaussian-process regression, scikit-learn style.

    gp = GaussianProcess(1.0 * Matern52([1, 1]) + White(1e-2), n_restarts=2, random_state=0)
    gp.fit(X, y)                        # X (n, dim), y (n,) or (n, n_outputs)
    mean, std = gp.predict(Xs, return_std=True)

Model: y = f(X) + eps, f ~ GP(0, k), eps ~ N(0, alpha I) (plus any White term of
k). With L L^T = K + alpha I and alpha_ = (K + alpha I)^-1 y (Rasmussen & Williams,
Algorithm 2.1):

    log p(y | X, theta) = -1/2 tr(y^T alpha_) - t sum_i log L_ii - n t / 2 log 2 pi
    d/dtheta_p          =  1/2 sum_ij (alpha_ alpha_^T - t K^-1)_ij dK_ij/dtheta_p

for t outputs sharing the kernel. Hyperparameters maximize it with L-BFGS-B in
log coordinates, from the kernel's initial theta and then from `n_restarts`
points drawn uniformly in the bounds with `random_state`.
"""

from __future__ import annotations

import contextlib

import numba
import numpy as np
import scipy.linalg as sla
from scipy.linalg import blas, lapack
from scipy.optimize import minimize

from rom.errors import ParameterError, RomError
from rom import _fpenv
from rom.gp._linalg import cho_solve, cholesky_jitter
from rom.gp._validate import check_fitted, check_X, check_y
from rom.gp.kernels import Kernel, Matern52, Scaled, fused_contract_lower, fused_gram_lower, fused_terms


# fraction of negligible pairs (every term below 1e-100 of its variance) above which the
# factorization runs with subnormals flushed; measured: 40% at the slow restarts, < 1% otherwise
_NEARLY_DIAGONAL = 0.05


@contextlib.contextmanager
def _one_numba_thread():
    """The O(n^2) passes run between LAPACK calls, while OpenBLAS's idle workers still spin on
    the other cores; a multi-threaded pass would share those cores and stall (measured on 2
    cores: 4-5x slower passes). One thread keeps them at their single-core speed."""
    prev = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(prev)


class GaussianProcess:
    """Exact GP regressor.

    Parameters
    ----------
    kernel : Kernel, default 1.0 * Matern52(1.0)
    alpha : float >= 0, noise variance added to the diagonal (jitter when tiny).
    normalize_y : subtract the mean of y and divide by its standard deviation, per output.
    normalize_X : scale each input column to zero mean and unit standard deviation.
    optimizer : "L-BFGS-B" or None (keep the kernel's hyperparameters).
    n_restarts : extra optimizer starts drawn uniformly in the log bounds.
    max_iter : L-BFGS-B iteration budget per start.
    random_state : seed of the restarts (drawn as scikit-learn draws them, so the same seed gives
        the same starting points) or a numpy Generator / RandomState.
    independent_outputs : fit one GP (own hyperparameters) per output column instead of
        one kernel shared by all outputs.
    """

    def __init__(self, kernel: Kernel | None = None, alpha: float = 1e-10, normalize_y: bool = False,
                 normalize_X: bool = False, optimizer: str | None = "L-BFGS-B", n_restarts: int = 0,
                 max_iter: int = 15000, random_state=None, independent_outputs: bool = False):
        if not np.isfinite(alpha) or alpha < 0:
            raise ParameterError(f"alpha={alpha!r}: the noise variance must be finite and >= 0")
        if optimizer not in ("L-BFGS-B", None):
            raise ParameterError(f"optimizer={optimizer!r}: use 'L-BFGS-B' or None")
        if int(n_restarts) < 0:
            raise ParameterError(f"n_restarts={n_restarts!r}: must be >= 0")
        self.kernel = kernel if kernel is not None else Scaled(Matern52(1.0), 1.0)
        self.alpha = float(alpha)
        self.normalize_y = normalize_y
        self.normalize_X = normalize_X
        self.optimizer = optimizer
        self.n_restarts = int(n_restarts)
        self.max_iter = int(max_iter)
        self.random_state = random_state
        self.independent_outputs = independent_outputs

    # ------------------------------------------------------------------ fit
    def fit(self, X, y) -> "GaussianProcess":
        """X (n, dim), y (n,) or (n, n_outputs); sets kernel_, alpha_, L_, X_train_, ..."""
        X = check_X(X)
        y = check_y(y, X.shape[0])
        if self.independent_outputs and y.ndim == 2:
            self.estimators_ = [self._clone().fit(X, y[:, j]) for j in range(y.shape[1])]
            self.kernel_ = [e.kernel_ for e in self.estimators_]
            self.alpha_ = None
            self.n_outputs_ = y.shape[1]
            self._dim = X.shape[1]
            return self
        self.estimators_ = None
        self._dim = X.shape[1]
        if self.normalize_X:
            self._x_mean, self._x_std = X.mean(0), X.std(0)
            self._x_std[self._x_std == 0] = 1.0
        else:
            self._x_mean, self._x_std = np.zeros(X.shape[1]), np.ones(X.shape[1])
        Xn = (X - self._x_mean) / self._x_std
        self._single = y.ndim == 1
        Y = y[:, None] if self._single else y
        if self.normalize_y:
            self._y_mean, self._y_std = Y.mean(0), Y.std(0)
            self._y_std[self._y_std == 0] = 1.0
        else:
            self._y_mean, self._y_std = np.zeros(Y.shape[1]), np.ones(Y.shape[1])
        Yn = (Y - self._y_mean) / self._y_std
        self.X_train_, self.y_train_ = Xn, Yn
        kernel = self.kernel.clone_with_theta(self.kernel.theta)
        if self.optimizer is not None and kernel.n_theta > 0:
            theta = self._optimize(kernel, Xn, Yn)
            kernel.theta = theta
        self.kernel_ = kernel
        self._factorize()
        return self

    def _factorize(self) -> None:
        """L_, jitter_, alpha_ and the log marginal likelihood from kernel_, alpha, X_train_ and
        y_train_ (after fit, and when a fitted GP is read back from a file)."""
        K = self.kernel_(self.X_train_)
        K[np.diag_indices_from(K)] += self.alpha
        self.L_, self.jitter_ = cholesky_jitter(K, "the training kernel matrix K(X, X) + alpha I")
        self.alpha_ = cho_solve(self.L_, self.y_train_)
        self.log_marginal_likelihood_value_ = self._lml(self.L_, self.alpha_, self.y_train_)

    def _clone(self):
        return GaussianProcess(self.kernel, self.alpha, self.normalize_y, self.normalize_X, self.optimizer,
                               self.n_restarts, self.max_iter, self.random_state, False)

    @staticmethod
    def _lml(L, a, Y):
        n, t = Y.shape
        return float(-0.5 * np.sum(Y * a) - t * np.log(np.diag(L)).sum() - 0.5 * n * t * np.log(2 * np.pi))

    def _lml_grad(self, kernel, X, Y, theta):
        kernel.theta = theta
        terms = fused_terms(kernel)
        if terms is not None:
            return self._lml_grad_fused(kernel, terms, X, Y)
        K = kernel(X)
        K[np.diag_indices_from(K)] += self.alpha
        try:  # no jitter here: a singular K is infeasible for the optimizer, as in scikit-learn
            L = sla.cholesky(K, lower=True, check_finite=False)
        except (np.linalg.LinAlgError, sla.LinAlgError):
            return -np.inf, np.zeros_like(theta)
        a = cho_solve(L, Y)
        lml = self._lml(L, a, Y)
        Kinv, info = sla.lapack.dpotri(L, lower=1)
        Kinv = np.tril(Kinv) + np.tril(Kinv, -1).T
        W = a @ a.T - Y.shape[1] * Kinv
        return lml, 0.5 * kernel.contract(X, W)

    def _lml_grad_fused(self, kernel, terms, X, Y):
        """The same as the generic path for sums of [c *] radial kernels and White noise, with
        one (n, n) array and no (n_theta, n, n) tensor: K's lower triangle built by a compiled
        pass, factored in place (potrf; not positive definite: -inf, no jitter), alpha by potrs, C^-1 in place (potri), then
        W = a a^T - t C^-1 in place (syrk) and every gradient entry from one compiled pass over
        the pairs. The C-ordered lower triangle is the upper triangle of the Fortran view F."""
        n, t = Y.shape
        C = np.empty((n, n))
        with _one_numba_thread():
            tiny = fused_gram_lower(terms, X, self.alpha, C)
        # a nearly diagonal K: its factor and inverse would fill with subnormals (see _fpenv)
        flush = _fpenv.available and tiny > _NEARLY_DIAGONAL
        with _fpenv.flush_subnormals() if flush else contextlib.nullcontext():
            U, info = lapack.dpotrf(C.T, lower=0, clean=0, overwrite_a=1)
            if info != 0:
                return -np.inf, np.zeros(kernel.n_theta)
            a, info = lapack.dpotrs(U, Y, lower=0)
            lml = float(-0.5 * np.sum(Y * a) - t * np.log(np.diagonal(U)).sum() - 0.5 * n * t * np.log(2 * np.pi))
            Cinv, info = lapack.dpotri(U, lower=0, overwrite_c=1)
            if info != 0:
                return -np.inf, np.zeros(kernel.n_theta)
            W = blas.dsyrk(1.0, a, beta=-float(t), c=Cinv, lower=0, overwrite_c=1)
        with _one_numba_thread():
            g = fused_contract_lower(terms, kernel.n_theta, X, W.T)
        return lml, 0.5 * g

    def _optimize(self, kernel, X, Y):
        bounds = kernel.bounds
        # scikit-learn's draws (RandomState(seed).uniform per restart): the same seed starts both
        # libraries from the same points, so their optimizations can be compared one to one
        rs = self.random_state
        rng = rs if isinstance(rs, (np.random.Generator, np.random.RandomState)) else np.random.RandomState(rs)

        def f(theta):
            lml, g = self._lml_grad(kernel, X, Y, theta)
            if not np.isfinite(lml):
                return 1e25, np.zeros_like(theta)
            return -lml, -g

        starts = [np.clip(kernel.theta, bounds[:, 0], bounds[:, 1])]
        starts += [rng.uniform(bounds[:, 0], bounds[:, 1]) for _ in range(self.n_restarts)]
        best = (np.inf, starts[0])
        self.optimizer_results_ = []
        for t0 in starts:
            res = minimize(f, t0, jac=True, method="L-BFGS-B", bounds=bounds,
                           options={"maxiter": self.max_iter})
            self.optimizer_results_.append(res)
            if res.fun < best[0]:
                best = (res.fun, res.x)
        if not np.isfinite(best[0]) or best[0] >= 1e25:
            raise RomError("every optimizer start gave a singular kernel matrix; add noise (alpha or "
                           "White) or narrow the kernel bounds")
        return best[1]

    def log_marginal_likelihood(self, theta=None, eval_gradient: bool = False):
        """log p(y | X, theta) of the training data (theta in log coordinates, default: fitted)."""
        check_fitted(self, "X_train_")
        kernel = self.kernel_.clone_with_theta(self.kernel_.theta if theta is None else theta)
        lml, g = self._lml_grad(kernel, self.X_train_, self.y_train_, kernel.theta)
        return (lml, g) if eval_gradient else lml

    # -------------------------------------------------------------- predict
    def predict(self, X, return_std: bool = False, return_cov: bool = False):
        """Posterior mean (m,) or (m, t); with return_std the std of the same shape,
        with return_cov the covariance (m, m) or (m, m, t). The noise of a White term is included."""
        check_fitted(self)
        if return_std and return_cov:
            raise ParameterError("ask for return_std or return_cov, not both")
        X = check_X(X, dim=self._dim)
        if self.estimators_ is not None:
            outs = [e.predict(X, return_std, return_cov) for e in self.estimators_]
            if not (return_std or return_cov):
                return np.stack(outs, -1)
            return np.stack([o[0] for o in outs], -1), np.stack([o[1] for o in outs], -1)
        Xn = (X - self._x_mean) / self._x_std
        Ks = self.kernel_(Xn, self.X_train_)
        mean = Ks @ self.alpha_ * self._y_std + self._y_mean
        if self._single:
            mean = mean[:, 0]
        if not (return_std or return_cov):
            return mean
        V = sla.solve_triangular(self.L_, Ks.T, lower=True, check_finite=False)
        if return_cov:
            cov = self.kernel_(Xn) - V.T @ V
            cov = cov[:, :, None] * self._y_std**2
            return mean, (cov[:, :, 0] if self._single else cov)
        var = self.kernel_.diag(Xn) - np.einsum("ij,ij->j", V, V)
        var = np.maximum(var, 0.0)
        std = np.sqrt(var)[:, None] * self._y_std
        return mean, (std[:, 0] if self._single else std)

    def sample_y(self, X, n_samples: int = 1, random_state=0) -> np.ndarray:
        """Posterior samples (m, n_samples) or (m, t, n_samples)."""
        check_fitted(self)
        if self.estimators_ is not None:
            return np.stack([e.sample_y(X, n_samples, random_state) for e in self.estimators_], 1)
        mean, cov = self.predict(X, return_cov=True)
        rng = np.random.default_rng(random_state)
        if self._single:
            mean, cov = mean[:, None], cov[:, :, None]
        m = mean.shape[0]
        out = np.empty((m, mean.shape[1], n_samples))
        for j in range(mean.shape[1]):  # loop over outputs, not points
            C = 0.5 * (cov[:, :, j] + cov[:, :, j].T)
            w, U = np.linalg.eigh(C)
            Lc = U * np.sqrt(np.maximum(w, 0.0))
            out[:, j] = mean[:, j, None] + Lc @ rng.standard_normal((m, n_samples))
        return out[:, 0] if self._single else out
