"""POD + GP: a non-intrusive reduced model from parameters to fields.

    model = PodGP(tol=1e-4).fit(mu, snapshots)      # mu (m, p), snapshots (n_dofs, m)
    field, std = model.predict(mu_new, return_std=True)   # (n_dofs, k) each

Offline: POD modes Phi (n_dofs, N) of the snapshots in the inner product M
(`rom.pod.pod`), coefficients gamma = Phi^T M s (m, N), then one multi-output
`GaussianProcess` from mu to gamma with a kernel shared by all N coefficients
(inputs and outputs standardized). Online: u(mu) = Phi gamma(mu).

The GP's coefficients are independent given mu, with variance
sigma^2(mu) * ystd_j^2 for coefficient j, so the pointwise field variance is
analytic: var u_i(mu) = sum_j Phi_ij^2 ystd_j^2 sigma^2(mu). The POD truncation
error is not in this variance.
"""

from __future__ import annotations

import h5py
import numpy as np
from scipy.stats import norm

from rom.errors import ParameterError, RomError, ShapeError, StoreError
from rom.gp._io import read_gp, write_gp
from rom.gp._validate import check_fitted, check_X
from rom.gp.exact import GaussianProcess
from rom.gp.kernels import Matern52, Scaled, White
from rom.h5io import atomic, create_checked, expect_format, put, read_array, read_attr, read_group, reading, text
from rom.pod import pod

FORMAT = "romtk.PodGP"
FORMAT_VERSION = 1


class PodGP:
    """POD basis + shared-kernel multi-output GP on the POD coefficients.

    Parameters
    ----------
    n_modes, tol, inner : passed to `rom.pod.pod` (inner: SPD matrix of the field inner product or None).
    kernel : GP kernel on standardized parameters (default 1.0 * Matern52 ARD + White(1e-4)).
    n_restarts, random_state : optimizer restarts of the GP.
    """

    def __init__(self, n_modes: int | None = None, tol: float | None = None, inner=None, kernel=None,
                 n_restarts: int = 2, random_state=0):
        self.n_modes, self.tol, self.inner = n_modes, tol, inner
        self.kernel, self.n_restarts, self.random_state = kernel, n_restarts, random_state

    def fit(self, mu, snapshots) -> "PodGP":
        """mu (m, p) parameters; snapshots (n_dofs, m), column j computed at mu[j]."""
        mu = check_X(mu, "mu")
        S = np.asarray(snapshots, dtype=float)
        if S.ndim != 2 or S.shape[1] != mu.shape[0]:
            raise ShapeError(f"snapshots has shape {S.shape}, expected (n_dofs, {mu.shape[0]}): one column per "
                             f"row of mu")
        if not np.all(np.isfinite(S)):
            raise ParameterError("snapshots contain NaN or Inf; drop the failed solves from mu and snapshots")
        self.modes_, self.singular_values_ = pod(S, inner=self.inner, n_modes=self.n_modes, tol=self.tol)
        MS = S if self.inner is None else self.inner @ S
        gamma = (self.modes_.T @ MS).T  # (m, N)
        kernel = self.kernel if self.kernel is not None else (
            Scaled(Matern52(np.ones(mu.shape[1])), 1.0) + White(1e-4))
        self.gp_ = GaussianProcess(kernel, normalize_X=True, normalize_y=True, n_restarts=self.n_restarts,
                                   random_state=self.random_state).fit(mu, gamma)
        self.coefficients_ = gamma
        return self

    def predict(self, mu, return_std: bool = False):
        """Fields (n_dofs, k) at mu (k, p); with return_std also the pointwise std (n_dofs, k)."""
        check_fitted(self, "gp_")
        mu = check_X(mu, "mu", dim=self.gp_._dim)
        if not return_std:
            g = self.gp_.predict(mu).reshape(mu.shape[0], -1)
            return self.modes_ @ g.T
        g, s = self.gp_.predict(mu, return_std=True)
        g, s = g.reshape(mu.shape[0], -1), s.reshape(mu.shape[0], -1)
        var = (self.modes_**2) @ (s**2).T
        return self.modes_ @ g.T, np.sqrt(var)

    def quantiles(self, mu, q=(0.025, 0.975)):
        """Pointwise Gaussian quantiles of the predicted field, (len(q), n_dofs, k)."""
        mean, std = self.predict(mu, return_std=True)
        return np.stack([mean + norm.ppf(p) * std for p in q])

    def save(self, path) -> None:
        """HDF5 (written beside, then renamed): modes, singular values, coefficients and the
        fitted GP as arrays (kernel tree, noise, normalization, training data): data only, no code."""
        check_fitted(self, "gp_")
        with atomic(path) as tmp, create_checked(tmp) as f:
            f.attrs["format"] = text(FORMAT)
            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs["n_dofs"] = self.modes_.shape[0]
            put(f, "modes", self.modes_)
            put(f, "singular_values", self.singular_values_)
            put(f, "coefficients", self.coefficients_)
            write_gp(f.create_group("gp"), self.gp_)

    @classmethod
    def load(cls, path) -> "PodGP":
        """Read a PodGP written by `save`; the GP is rebuilt from its arrays and refactorized.
        A damaged or foreign file raises StoreError naming the file and the object."""
        fix = "fit the PodGP again and save it"
        with reading(path, "PodGP file", fix) as f:
            expect_format(f, FORMAT, "PodGP file", "write it with PodGP.save", FORMAT_VERSION)
            m = cls()
            m.modes_ = read_array(f, "modes", shape=(read_attr(f, "n_dofs", int), None), finite=True)
            N = m.modes_.shape[1]
            m.singular_values_ = read_array(f, "singular_values", ndim=1, finite=True)
            try:
                m.gp_ = read_gp(read_group(f, "gp"))
            except StoreError:
                raise
            except RomError as exc:
                raise StoreError(f"{path}:/gp holds an invalid GP ({exc}); the file is damaged: {fix}") from None
            m.coefficients_ = read_array(f, "coefficients", shape=(m.gp_.X_train_.shape[0], N), finite=True)
            if m.gp_.y_train_.shape[1] != N or m.singular_values_.size < N:
                raise StoreError(f"{path}: the GP predicts {m.gp_.y_train_.shape[1]} coefficients for {N} modes "
                                 f"({m.singular_values_.size} singular values); the file is damaged: {fix}")
        return m
