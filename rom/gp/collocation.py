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
fixed (they are inputs, see docs/methods/gp.md). Training keeps every component
inside what the grid resolves (`_resolved_bounds`: mu below Nyquist, spectral
width between 1/L and Nyquist) and can restart from several widths (`rho_starts`).

The inner solve is Kronecker-structured in 2D and more (`inner="auto"`): per-axis
eigendecompositions, mode products and preconditioned CG (`_inner_kron`), memory
O(sum n_d^2 + N), no N x N matrix. In 1D (N = n_1) it is dense (`inner="dense"`),
which is the per-axis matrix anyway.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla
from scipy.optimize import minimize

from rom.errors import ParameterError, RomError, ShapeError
from rom.gp._linalg import cholesky_jitter
from rom.gp._validate import check_fitted, check_X
from rom.gp.kernels import SpectralMixture, _Mixture
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


def _resolved_bounds(kernel: _Mixture, x: np.ndarray):
    """Range of rho and largest mu that the grid x resolves: (rho_min, rho_max, Nyquist frequency).

    Training must not leave them. A component whose spectrum lies beyond the grid's Nyquist
    frequency 1/(2h) (mu above it, or an envelope narrower than h: spectral width beyond it)
    is invisible in K at the nodes but not in K'' (k'' scales with mu^2 and rho^2): then
    A = K'' K^-1 has a huge gain (1e15 measured) and a U of size 1e-7 "solves" the equation,
    a degenerate optimum of the loss far below the true one. At the other end, an envelope
    longer than the domain L (spectral width below the resolution 1/L) makes the component a
    pure sinusoid: the loss in mu becomes a spike of width ~rho that L-BFGS-B cannot follow
    (it stopped next to the true frequency, with the weight on a wrong one)."""
    h = float(np.max(np.diff(x)))
    span = float(x[-1] - x[0])
    nyq = 0.5 / h
    w = np.pi / h                       # Nyquist angular frequency
    if isinstance(kernel, SpectralMixture):
        rmin, rmax = 1.0 / span**2, 0.5 * w * w   # exp(-rho d^2): length 1/sqrt(rho), spectral std sqrt(2 rho)
    else:
        rmin, rmax = 1.0 / span, w / np.sqrt(5.0)  # Matern-5/2 envelope: length 1/rho, spectral scale sqrt5 rho
    return rmin, rmax, nyq


def _pcg(H, b, Minv, tol, maxiter):
    """Solve H x = b (H symmetric positive definite, given as a function on arrays of b's shape)
    by conjugate gradients with the preconditioner Minv (a function); stops at ||r|| <= tol ||b||.
    Returns (x, iterations)."""
    x = np.zeros_like(b)
    r = b.copy()
    nb = np.linalg.norm(b)
    if nb == 0.0:
        return x, 0
    zr = Minv(r)
    p = zr.copy()
    rz = np.sum(r * zr)
    for it in range(1, maxiter + 1):
        Hp = H(p)
        alpha = rz / np.sum(p * Hp)
        x += alpha * p
        r -= alpha * Hp
        if np.linalg.norm(r) <= tol * nb:
            return x, it
        zr = Minv(r)
        rz_new = np.sum(r * zr)
        p = zr + (rz_new / rz) * p
        rz = rz_new
    return x, maxiter


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
        Linv, info = sla.lapack.dtrtri(self.L, lower=1)
        if info != 0:
            raise RomError("the collocation kernel matrix of one axis has a singular Cholesky factor")
        self.LinvT = np.tril(Linv).T
        Ki, info = sla.lapack.dpotri(self.L, lower=1)
        if info != 0:
            raise RomError("the collocation kernel matrix of one axis has a singular Cholesky factor")
        self.Kinv = np.tril(Ki) + np.tril(Ki, -1).T
        self.A = self.K2 @ self.Kinv
        self.logdet = 2.0 * np.log(np.diag(self.L)).sum()
        self._eig = None

    def eig(self):
        """K_d = V diag(lam) V^T, the whitening factor R = V lam^1/2 (R R^T = K_d), R^-1 and
        S = R^-1 K_d'' R^-T (symmetric: A_d R = R S). Computed once per kernel update."""
        if self._eig is None:
            lam, V = np.linalg.eigh(0.5 * (self.K + self.K.T))
            lam = np.maximum(lam, lam[-1] * 1e-15)
            sq = np.sqrt(lam)
            R = V * sq
            Rinv = (V / sq).T
            S = Rinv @ self.K2 @ Rinv.T
            E, W = np.linalg.eigh(0.5 * (S + S.T))
            self._eig = (lam, R, Rinv, E, W)
        return self._eig

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
                 v: float = 1e4, jitter: float = 1e-6, newton_tol: float = 1e-8, max_newton: int = 50,
                 inner: str = "auto", cg_tol: float = 1e-12, cg_maxiter: int = 20000):
        if equation not in EQUATIONS:
            raise ParameterError(f"equation={equation!r}; use one of {EQUATIONS}")
        if inner not in ("auto", "dense", "kron"):
            raise ParameterError(f"inner={inner!r}; use 'auto' (dense in 1D, Kronecker otherwise), "
                                 f"'dense' or 'kron'")
        self.inner, self.cg_tol, self.cg_maxiter = inner, float(cg_tol), int(cg_maxiter)
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
        kron = self.inner == "kron" or (self.inner == "auto" and len(ax) > 1)
        self.cg_iterations_ = []
        return self._inner_kron(ax, F, G, U0) if kron else self._inner_dense(ax, F, G, U0)

    def _inner_kron(self, ax, F, G, U0):
        """The same minimization with Kronecker algebra only: per-axis n_d x n_d matrices and mode
        products, never an N x N matrix. Whitened coordinates U = R z, R = kron_d R_d with
        R_d = V_d lam_d^1/2 (K_d = V_d diag(lam_d) V_d^T), where the prior is 1/2 ||z||^2 and

            (A R) z = R (S_1 (+) ... (+) S_D) z,   S_d = R_d^-1 K_d'' R_d^-T  (Kronecker sum),

        so the Gauss-Newton matrix is H = I + v S(+) Lam S(+) + lambda_b R^T B R (Lam = kron lam_d,
        B the boundary mask). Each Newton step solves H s = grad by preconditioned conjugate
        gradients with matvecs in O(N sum_d n_d). The preconditioner inverts the part without the
        boundary, H_0 = I + v S(+) Lam S(+) = S(+) (S(+)^-2 + v Lam) S(+), replacing the middle
        factor by its diagonal: S(+)^-1 = W E(+)^-1 W^T with S_d = W_d diag(E_d) W_d^T, and
        diag(S(+)^-2) = kron_d (W_d o W_d) applied to E(+)^-2. On a 20 x 20 grid with three
        components this leaves condition 1.01 for the middle factor, and the boundary term (rank
        of the boundary) only adds a few large eigenvalues: 70-90 CG iterations on 60 x 60 and
        120 x 120. It degrades when S(+) is nearly singular on low modes (components at mu = 0
        during training: hundreds to thousands of iterations). `cg_iterations_` records the
        counts; a solve that reaches cg_maxiter returns its last iterate (the line search still
        only accepts decrease).
        """
        shape = F.shape
        D = len(shape)
        mask = boundary_mask(shape).astype(float)
        lb = self.boundary_weight * self.tau
        ac = self.equation == "allen-cahn"
        eig = [a.eig() for a in ax]
        Rs = [e[1] for e in eig]
        RTs = [e[1].T for e in eig]
        Ws = [e[4] for e in eig]
        WTs = [e[4].T for e in eig]
        As = [a.A for a in ax]
        ATs = [a.A.T for a in ax]

        def bshape(vec, d):
            sh = [1] * D
            sh[d] = vec.size
            return vec.reshape(sh)

        Lam = np.ones(shape)
        Ep0 = np.zeros(shape)
        for d, e in enumerate(eig):
            Lam = Lam * bshape(e[0], d)
            Ep0 = Ep0 + bshape(e[3], d)
        WW = [W * W for W in Ws]

        def preconditioner(cbar):
            # Allen-Cahn: J = A + diag(c) ~ R (S(+) + cbar I) R^-1, still a Kronecker sum
            Ep = Ep0 + cbar
            # keep E(+) away from 0 (constant modes: mu = 0, rho -> 0; or cbar cancelling S(+))
            floor = 1e-12 * np.abs(Ep).max()
            Ep = np.where(np.abs(Ep) < floor, np.where(Ep < 0, -floor, floor), Ep)
            Epinv = 1.0 / Ep
            Ginv = 1.0 / (kron_mv(WW, Epinv**2) + self.v * Lam)

            def Sinv(y):
                return kron_mv(Ws, Epinv * kron_mv(WTs, y))

            return lambda y: Sinv(Ginv * Sinv(y))

        precond = preconditioner(0.0)

        def Aop(U):
            return sum(mode_product(U, A, d) for d, A in enumerate(As))

        def ATop(Y):
            return sum(mode_product(Y, A, d) for d, A in enumerate(ATs))

        def obj(z):
            u = kron_mv(Rs, z)
            r = Aop(u) - F + ((u**3 - u) if ac else 0.0)
            rb = mask * (u - G)
            return 0.5 * np.sum(z * z) + 0.5 * lb * np.sum(rb * rb) + 0.5 * self.v * np.sum(r * r), r, rb, u

        z = kron_mv([e[2] for e in eig], U0)
        val, r, rb, u = obj(z)
        self.cg_iterations_ = []
        for it in range(self.max_newton):
            c = (3 * u**2 - 1) if ac else None
            if ac:
                precond = preconditioner(float(np.mean(c)))

            def J(w):
                Uw = kron_mv(Rs, w)
                return Aop(Uw) + (c * Uw if ac else 0.0)

            def JT(y):
                return kron_mv(RTs, ATop(y) + (c * y if ac else 0.0))

            def H(w):
                return w + lb * kron_mv(RTs, mask * kron_mv(Rs, w)) + self.v * JT(J(w))

            grad = z + lb * kron_mv(RTs, rb) + self.v * JT(r)
            step, nit = _pcg(H, grad, precond, self.cg_tol, self.cg_maxiter)
            self.cg_iterations_.append(nit)
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
        return u, val

    def _inner_dense(self, ax, F, G, U0):
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
            H = lb * (Lb.T @ Lb) + self.v * sla.blas.dsyrk(1.0, J, trans=1, lower=0)
            H = np.triu(H) + np.triu(H, 1).T
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
            # d(v/2 ||R||^2)/dA_d = v Rd U0^T, and (v Rd U0^T) K^-1 = v Rd Ud^T: rank N/n products
            # instead of n x n x n ones
            vR = self.v * Rd
            M = 0.5 * (N / n) * a.Kinv - 0.5 * Ud @ ad.T - (a.A.T @ vR) @ Ud.T
            M2 = vR @ Ud.T
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

    def fit(self, axes, source, boundary, max_iter: int = 200, train_frequencies: bool = True,
            rho_starts=None) -> "GPHMSolver":
        """Train the kernels (log-weights, log-scales, frequencies) and the solution jointly.

        rho_starts : optional sequence of initial scales rho. L-BFGS-B is run once from the kernels
            as given with every rho set to each value in turn (weights and frequencies as given),
            and the run with the lowest loss is kept (`restarts_` lists (rho, loss, nit)). The loss
            has local minima; the frequency grid reaches the true frequency from some widths and
            not from others (docs/methods/gp.md).

        Bounds: besides the kernels' own, mu stays below the grid's Nyquist frequency and the
        spectral width below it too (see `_resolved_bounds`)."""
        axes, F, G = self._check(axes, source, boundary)
        kernels = [k.clone_with_theta(k.theta) for k in self.kernels]
        ax = [_Axis(k, a, self.jitter) for k, a in zip(kernels, axes)]
        sizes = [k.n_theta for k in kernels]
        offsets = np.cumsum([0] + sizes[:-1])
        bounds = np.vstack([k.bounds for k in kernels])
        for k, x, lo in zip(kernels, axes, offsets):
            lo_r, lo_m = lo + k.Q, lo + 2 * k.Q
            rmin, rmax, nyq = _resolved_bounds(k, x)
            bounds[lo_r:lo_m, 0] = np.maximum(bounds[lo_r:lo_m, 0], np.log(rmin))
            bounds[lo_r:lo_m, 1] = np.minimum(bounds[lo_r:lo_m, 1], np.log(rmax))
            bounds[lo_m:lo_m + k.Q, 1] = np.minimum(bounds[lo_m:lo_m + k.Q, 1], nyq)
        if not train_frequencies:
            for k, lo in zip(kernels, offsets):
                Q = k.Q
                bounds[lo + 2 * Q: lo + 3 * Q] = k.mu[:, None]
        state = {"U": np.zeros(F.shape)}
        self.history_ = []

        def set_theta(theta):
            i = 0
            for k, a, s in zip(kernels, ax, sizes):
                k.theta = theta[i:i + s]
                a.update()
                i += s

        def f(theta):
            try:
                set_theta(theta)
                U, val = self._inner(ax, F, G, state["U"])
            except RomError:
                return 1e300, np.zeros_like(theta)
            state["U"] = U
            loss = self._loss(ax, U, val)
            self.history_.append(loss)
            return loss, np.concatenate(self._grad(ax, U, F))

        theta_given = np.concatenate([k.theta for k in kernels])
        starts = [theta_given]
        for rho in ([] if rho_starts is None else rho_starts):
            if not np.isfinite(rho) or rho <= 0:
                raise ParameterError(f"rho_starts contains {rho!r}; scales must be finite and > 0")
            t = theta_given.copy()
            for k, lo in zip(kernels, offsets):
                t[lo + k.Q: lo + 2 * k.Q] = np.log(rho)
            starts.append(t)
        if rho_starts is not None:
            starts = starts[1:]
        best, self.restarts_ = None, []
        for theta0 in starts:
            state["U"] = np.zeros(F.shape)
            theta0 = np.clip(theta0, bounds[:, 0], bounds[:, 1])
            res = minimize(f, theta0, jac=True, method="L-BFGS-B", bounds=bounds,
                           options={"maxiter": max_iter, "ftol": 1e-15, "gtol": 1e-10})
            self.restarts_.append((float(np.exp(theta0[kernels[0].Q])), float(res.fun), int(res.nit)))
            if best is None or res.fun < best.fun:
                best = res
        self.optimizer_result_ = res = best
        set_theta(res.x)
        U, val = self._inner(ax, F, G, np.zeros(F.shape))
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
