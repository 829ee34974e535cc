"""GP-HM collocation (card G) against analytic solutions."""

import numpy as np
import pytest

from rom.errors import ParameterError, ShapeError
from rom.gp import Matern52, StudentTMixture
from rom.gp.collocation import GPHMSolver, boundary_mask


def _rel(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


def test_poisson_1d_sin100x_with_400_points_reaches_1e_4():
    x = np.linspace(0, 2 * np.pi, 400)
    u = np.sin(100 * x)
    s = GPHMSolver([StudentTMixture([1.0], [0.1], [100 / (2 * np.pi)])], v=1e4)
    U = s.solve([x], -1e4 * u, u)
    xt = np.linspace(0, 2 * np.pi, 300)
    assert _rel(s.predict(xt[:, None]), np.sin(100 * xt)) <= 1e-4
    assert _rel(U, u) <= 1e-3


def _f(x):
    return np.sin(6 * x) * np.cos(20 * x)


def _fxx(x):
    return -436 * np.sin(6 * x) * np.cos(20 * x) - 240 * np.cos(6 * x) * np.sin(20 * x)


MU = np.array([0.0, 14.0, 26.0]) / (2 * np.pi)


def test_poisson_2d_sum_separable_on_60x60_reaches_1e_3():
    x = np.linspace(0, 2 * np.pi, 60)
    X, Y = np.meshgrid(x, x, indexing="ij")
    k = StudentTMixture([1.0, 1.0, 1.0], 0.1, MU)
    s = GPHMSolver([k, k], boundary_weight=1e6, v=1e6)
    s.solve([x, x], _fxx(X) + _fxx(Y), _f(X) + _f(Y))
    xt = np.linspace(0, 2 * np.pi, 300)
    Xt, Yt = np.meshgrid(xt, xt, indexing="ij")
    P = s.predict_grid([xt, xt])
    assert _rel(P, _f(Xt) + _f(Yt)) <= 1e-3
    pts = np.c_[xt[:7], xt[::-1][:7]]
    assert np.allclose(s.predict(pts), P[np.arange(7), 299 - np.arange(7)], atol=1e-9)


def test_without_zero_frequency_a_sum_separable_solution_is_missed():
    # card G: zero-frequency components are needed for u = f(x) + f(y)
    x = np.linspace(0, 2 * np.pi, 40)
    X, Y = np.meshgrid(x, x, indexing="ij")
    k = StudentTMixture([1.0, 1.0], 0.1, MU[1:])
    s = GPHMSolver([k, k], boundary_weight=1e6, v=1e6)
    U = s.solve([x, x], _fxx(X) + _fxx(Y), _f(X) + _f(Y))
    assert _rel(U, _f(X) + _f(Y)) > 0.1


def test_allen_cahn_1d_and_2d():
    x = np.linspace(0, 2 * np.pi, 400)
    u = np.sin(100 * x)
    s = GPHMSolver([StudentTMixture([1.0], [0.1], [100 / (2 * np.pi)])], equation="allen-cahn", v=1e4)
    s.solve([x], -1e4 * u + u**3 - u, u)
    xt = np.linspace(0, 2 * np.pi, 300)
    assert _rel(s.predict(xt[:, None]), np.sin(100 * xt)) <= 1e-4

    def g(x):
        return np.sin(x) + 0.1 * np.sin(20 * x)

    def gxx(x):
        return -np.sin(x) - 40 * np.sin(20 * x)

    x = np.linspace(0, 1, 25)
    X, Y = np.meshgrid(x, x, indexing="ij")
    U = g(X) * g(Y)
    k = StudentTMixture([1.0, 1.0, 1.0], 0.1, np.array([0.0, 1.0, 20.0]) / (2 * np.pi))
    s = GPHMSolver([k, k], equation="allen-cahn", boundary_weight=1e6, v=1e6)
    s.solve([x, x], gxx(X) * g(Y) + g(X) * gxx(Y) + U**3 - U, U)
    xt = np.linspace(0, 1, 50)
    Xt, Yt = np.meshgrid(xt, xt, indexing="ij")
    assert _rel(s.predict_grid([xt, xt]), g(Xt) * g(Yt)) <= 2e-3


def test_training_gradient_equals_finite_differences():
    # a well-conditioned setting (jitter 1e-2, coarse grid) so that differences are accurate
    x = np.linspace(0, 1, 12)
    X, Y = np.meshgrid(x, x[:9], indexing="ij")
    U = np.sin(2 * X) * np.cos(Y)
    ks = [StudentTMixture([0.8, 0.3], [1.2, 0.7], [0.1, 0.6]), StudentTMixture([0.5], [0.9], [0.3])]
    s = GPHMSolver(ks, equation="allen-cahn", v=3.0, boundary_weight=2.0, jitter=1e-2)
    s.solve([x, x[:9]], -5 * U + U**3 - U, U)
    theta = np.concatenate([k.theta for k in s.kernels_])
    _, g = s.loss_and_gradient(theta)
    h = 1e-6
    fd = [(s.loss_and_gradient(theta + h * e)[0] - s.loss_and_gradient(theta - h * e)[0]) / (2 * h)
          for e in np.eye(theta.size)]
    assert np.allclose(g, fd, rtol=1e-5, atol=1e-6 * np.abs(fd).max())


def test_2d_inner_solve_is_kronecker_and_equals_the_dense_one(monkeypatch):
    x = np.linspace(0, 2 * np.pi, 24)
    y = np.linspace(0, 2 * np.pi, 19)
    X, Y = np.meshgrid(x, y, indexing="ij")
    k = StudentTMixture([1.0, 0.5, 1.0], [0.1, 0.3, 0.1], MU)
    args = ([x, y], _fxx(X) + _fxx(Y), _f(X) + _f(Y))
    dense = GPHMSolver([k, k], boundary_weight=1e6, v=1e6, inner="dense").solve(*args)
    ac_args = ([x, y], args[1] + args[2] ** 3 - args[2], args[2])
    ac_dense = GPHMSolver([k, k], "allen-cahn", boundary_weight=1e3, v=1e4, inner="dense").solve(*ac_args)

    def no_dense(*a, **kw):
        raise AssertionError("an N x N matrix was formed")

    monkeypatch.setattr(GPHMSolver, "_dense", no_dense)
    s = GPHMSolver([k, k], boundary_weight=1e6, v=1e6)  # inner="auto": Kronecker in 2D
    assert _rel(s.solve(*args), dense) <= 1e-8
    assert max(s.cg_iterations_) < 200
    s = GPHMSolver([k, k], "allen-cahn", boundary_weight=1e3, v=1e4)
    assert _rel(s.solve(*ac_args), ac_dense) <= 1e-7


def test_3d_kronecker_inner_solve_equals_the_dense_one():
    axes = [np.linspace(0, 1, 9), np.linspace(0, 1.3, 7), np.array([0.0, 0.1, 0.35, 0.5, 0.8, 1.0])]
    X = np.meshgrid(*axes, indexing="ij")
    U = np.sin(3 * X[0]) * np.cos(2 * X[1]) + X[2] ** 2
    F = -13 * np.sin(3 * X[0]) * np.cos(2 * X[1]) + 2
    ks = [StudentTMixture([1.0, 0.3], [0.5, 1.0], [0.0, 0.5]), StudentTMixture([1.0], [2.0], [0.3]),
          StudentTMixture([1.0], [1.0], [0.0])]
    a = GPHMSolver(ks, boundary_weight=1e3, v=1e3, inner="dense").solve(axes, F, U)
    b = GPHMSolver(ks, boundary_weight=1e3, v=1e3, inner="kron").solve(axes, F, U)
    assert _rel(b, a) <= 1e-8


@pytest.mark.slow  # 10-20 s on a quiet core, 51 s measured with the 2 cores shared
def test_training_finds_a_frequency_missing_from_the_grid():
    # card G acceptance (iii): Q = 10 frequencies 0, 3.33, ..., 30 (the nearest, 16.67, is 4.7% from
    # 100/2pi = 15.92), mixture weights, scales and frequencies trained with U
    x = np.linspace(0, 2 * np.pi, 400)
    u = np.sin(100 * x)
    Q, true_mu = 10, 100 / (2 * np.pi)
    mu0 = np.linspace(0, 1, Q) * 30
    assert np.min(np.abs(mu0 - true_mu)) > 0.02 * true_mu
    s = GPHMSolver([StudentTMixture(np.full(Q, 1 / Q), 1.0, mu0)], v=1e4)
    s.fit([x], -1e4 * u, u, max_iter=300, rho_starts=(1.0, 3.0, 10.0))
    k = s.kernels_[0]
    assert abs(k.mu[np.argmax(k.weights)] - true_mu) <= 0.02 * true_mu
    xt = np.linspace(0, 2 * np.pi, 300)
    assert _rel(s.predict(xt[:, None]), np.sin(100 * xt)) <= 1e-3
    assert s.loss_ == pytest.approx(min(r[1] for r in s.restarts_), rel=1e-6)


def test_training_lowers_the_loss_from_the_fixed_kernel_start():
    x = np.linspace(0, 2 * np.pi, 120)
    u = np.sin(10 * x)
    Q = 4
    s = GPHMSolver([StudentTMixture(np.full(Q, 1 / Q), 1.0, np.linspace(0, 1, Q) * 4)], v=1e4)
    s.solve([x], -100 * u, u)
    before = s.loss_
    s.fit([x], -100 * u, u, max_iter=15)
    assert s.loss_ < before and np.all(np.isfinite(s.U_))


def test_boundary_mask_and_bad_input():
    m = boundary_mask((4, 3))
    assert m.sum() == 4 * 3 - 2 * 1
    x = np.linspace(0, 1, 5)
    k = StudentTMixture([1.0], [1.0], [1.0])
    with pytest.raises(ParameterError, match="equation"):
        GPHMSolver([k], equation="heat")
    with pytest.raises(ParameterError, match="SpectralMixture or StudentTMixture"):
        GPHMSolver([Matern52(1.0)])
    with pytest.raises(ParameterError, match="v="):
        GPHMSolver([k], v=-1.0)
    s = GPHMSolver([k])
    with pytest.raises(ShapeError, match="strictly increasing"):
        s.solve([np.array([0.0, 0.5, 0.5, 1.0])], np.zeros(4), np.zeros(4))
    with pytest.raises(ShapeError, match="grid shape"):
        s.solve([x], np.zeros(4), np.zeros(5))
    with pytest.raises(ParameterError, match="source contains NaN"):
        s.solve([x], np.full(5, np.nan), np.zeros(5))
    with pytest.raises(ShapeError, match="one kernel per axis"):
        s.solve([x, x], np.zeros((5, 5)), np.zeros((5, 5)))
    with pytest.raises(Exception, match="not fitted"):
        s.predict(np.zeros((1, 1)))
