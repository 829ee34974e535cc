"""KroneckerGP against the dense GP built with explicit Kronecker products (test side only)."""

import numpy as np
import pytest
import scipy.linalg as sla
from hypothesis import given, settings
from hypothesis import strategies as st

from rom.errors import ParameterError, ShapeError
from rom.gp import Matern32, Matern52, SquaredExponential
from rom.gp.kronecker import KroneckerGP, kron_mv, rows_contract


def _dense(kernels, axes, s2, n2):
    K = np.ones((1, 1))
    for k, a in zip(kernels, axes):
        K = np.kron(K, k(a))
    return s2 * K + n2 * np.eye(K.shape[0])


def _dense_lml(kernels, axes, Y, theta):
    s2, n2 = np.exp(theta[:2])
    ks, i = [], 2
    for k in kernels:
        ks.append(k.clone_with_theta(theta[i:i + k.n_theta]))
        i += k.n_theta
    C = _dense(ks, axes, s2, n2)
    y = Y.reshape(C.shape[0], -1)
    L = np.linalg.cholesky(C)
    a = np.linalg.solve(C, y)
    return -0.5 * np.sum(y * a) - y.shape[1] * np.log(np.diag(L)).sum() - 0.5 * y.size * np.log(2 * np.pi)


@given(shape=st.lists(st.integers(2, 5), min_size=1, max_size=3), seed=st.integers(0, 10**6))
@settings(max_examples=25, deadline=None)
def test_kron_mv_and_rows_contract_equal_explicit_kronecker_products(shape, seed):
    rng = np.random.default_rng(seed)
    mats = [rng.standard_normal((n + 1, n)) for n in shape]
    T = rng.standard_normal(tuple(shape))
    K = np.ones((1, 1))
    for M in mats:
        K = np.kron(K, M)
    assert np.allclose(kron_mv(mats, T).ravel(), K @ T.ravel(), rtol=1e-12, atol=1e-12)
    rows = [rng.standard_normal((4, n)) for n in shape]
    kr = np.ones((4, 1))
    for R in rows:
        kr = np.einsum("mi,mj->mij", kr, R).reshape(4, -1)
    assert np.allclose(rows_contract(T, rows), kr @ T.ravel(), rtol=1e-12, atol=1e-12)


@given(n=st.tuples(st.integers(2, 6), st.integers(2, 6)), ls=st.floats(0.1, 2.0), seed=st.integers(0, 10**6))
@settings(max_examples=20, deadline=None)
def test_kronecker_lml_equals_dense_property(n, ls, seed):
    rng = np.random.default_rng(seed)
    axes = [np.sort(rng.uniform(0, 1, m)) + np.arange(m) * 1e-3 for m in n]
    kernels = [Matern52(ls), SquaredExponential(0.5 * ls)]
    Y = rng.standard_normal(n)
    gp = KroneckerGP(kernels, signal_variance=1.7, noise=0.1, optimizer=None).fit(axes, Y)
    lml = gp.log_marginal_likelihood()
    ref = _dense_lml(kernels, [a[:, None] for a in axes], Y, gp.theta_)
    assert abs(lml - ref) <= 1e-10 * abs(ref)


@pytest.fixture(scope="module")
def grid_case():
    rng = np.random.default_rng(7)
    # 30 x 30 x 5 keeps the dense reference (4500^2) to seconds; bench/one-off checks ran 30 x 30 x 10
    axes = [np.linspace(0, 1, 30), np.linspace(-1, 1, 30), np.sort(rng.uniform(0, 2, 5))]
    kernels = [Matern52(0.3), SquaredExponential(0.6), Matern32(0.8)]
    G = np.meshgrid(*axes, indexing="ij")
    Y = np.sin(3 * G[0]) * np.cos(2 * G[1]) + 0.1 * G[2] ** 2 + 0.05 * rng.standard_normal(G[0].shape)
    Y2 = np.stack([Y, np.cos(G[0] + G[1] * G[2])], -1)
    gp = KroneckerGP(kernels, signal_variance=0.8, noise=0.02, optimizer=None).fit(axes, Y2)
    s2, n2 = gp.signal_variance_, gp.noise_
    C = _dense(gp.kernels_, [a[:, None] for a in axes], s2, n2)  # factored once
    return axes, kernels, Y2, gp, C, sla.cho_factor(C, lower=True)


def test_lml_equals_dense_on_30x30x5(grid_case):
    axes, kernels, Y2, gp, C, cf = grid_case
    y = Y2.reshape(C.shape[0], -1)
    ref = (-0.5 * np.sum(y * sla.cho_solve(cf, y)) - 2 * np.log(np.diag(cf[0])).sum()
           - 0.5 * y.size * np.log(2 * np.pi))
    lml = gp.log_marginal_likelihood()
    assert abs(lml - ref) <= 1e-10 * abs(ref)


def test_lml_gradient_equals_dense_on_a_three_axis_grid():
    rng = np.random.default_rng(8)
    axes = [np.linspace(0, 1, 12), np.linspace(-1, 1, 10), np.sort(rng.uniform(0, 2, 6))]
    kernels = [Matern52(0.3), SquaredExponential(0.6), Matern32(0.8)]
    Y2 = rng.standard_normal((12, 10, 6, 2))
    gp = KroneckerGP(kernels, signal_variance=0.8, noise=0.02, optimizer=None).fit(axes, Y2)
    theta = gp.theta_
    lml, g = gp.log_marginal_likelihood(theta, eval_gradient=True)
    A = [a[:, None] for a in axes]
    ref = _dense_lml(kernels, A, Y2, theta)
    assert abs(lml - ref) <= 1e-10 * abs(ref)
    # dense gradient: 1/2 tr((aa^T - t C^-1) dC) with explicit dC, each parameter in turn
    s2, n2 = np.exp(theta[:2])
    C = _dense(gp.kernels_, A, s2, n2)
    y = Y2.reshape(C.shape[0], -1)
    Ci = np.linalg.inv(C)
    a = Ci @ y
    W = a @ a.T - 2 * Ci
    Ks = [k(x) for k, x in zip(gp.kernels_, A)]
    dKs = [k.gradient(x)[1] for k, x in zip(gp.kernels_, A)]
    ref_g = [0.5 * np.sum(W * (C - n2 * np.eye(C.shape[0]))), 0.5 * n2 * np.trace(W)]
    for d in range(3):
        for p in range(dKs[d].shape[0]):
            M = np.ones((1, 1))
            for e in range(3):
                M = np.kron(M, dKs[d][p] if e == d else Ks[e])
            ref_g.append(0.5 * s2 * np.sum(W * M))
    assert np.allclose(g, ref_g, rtol=1e-10, atol=1e-10 * np.abs(ref_g).max())


def test_mean_and_variance_equal_dense_at_arbitrary_points_and_on_grids(grid_case):
    axes, kernels, Y2, gp, C, cf = grid_case
    A = [a[:, None] for a in axes]
    s2, n2 = gp.signal_variance_, gp.noise_
    rng = np.random.default_rng(1)
    Xs = np.c_[rng.uniform(0, 1, 25), rng.uniform(-1, 1, 25), rng.uniform(0, 2, 25)]
    Kc = s2 * np.ones((25, 1))
    for d, (k, x) in enumerate(zip(gp.kernels_, A)):
        Kc = np.einsum("mi,mj->mij", Kc, k(Xs[:, d:d + 1], x)).reshape(25, -1)
    mean = Kc @ sla.cho_solve(cf, Y2.reshape(-1, 2))
    var = s2 - np.einsum("mi,im->m", Kc, sla.cho_solve(cf, Kc.T)) + n2
    m, s = gp.predict(Xs, return_std=True)
    assert np.allclose(m, mean, rtol=1e-10, atol=1e-10) and np.allclose(s[:, 0], np.sqrt(var), rtol=1e-10)
    ga = [np.array([0.1, 0.55]), np.array([-0.3, 0.2, 0.9]), np.array([1.5])]
    mg, sg = gp.predict_grid(ga, return_std=True)
    P = np.stack([g.ravel() for g in np.meshgrid(*ga, indexing="ij")], 1)
    mp, sp = gp.predict(P, return_std=True)
    assert np.allclose(mg.reshape(-1, 2), mp, atol=1e-12) and np.allclose(sg.reshape(-1, 2), sp, atol=1e-12)


def test_hyperparameters_recovered_on_a_grid():
    rng = np.random.default_rng(0)
    axes = [np.linspace(0, 1, 40), np.linspace(0, 1, 30)]
    G = np.meshgrid(*axes, indexing="ij")
    Y = np.sin(5 * G[0]) + np.cos(4 * G[1]) + 0.1 * rng.standard_normal(G[0].shape)
    gp = KroneckerGP([Matern52(0.5), Matern52(0.5)], noise=0.5, random_state=0).fit(axes, Y)
    assert 0.006 < gp.noise_ < 0.015  # true noise variance 0.01
    Xt = rng.uniform(0, 1, (200, 2))
    assert np.sqrt(np.mean((gp.predict(Xt) - np.sin(5 * Xt[:, 0]) - np.cos(4 * Xt[:, 1])) ** 2)) < 0.05


def test_multi_dimensional_axis_parameters_times_space():
    # parameters (scattered, 2-D) x space (1-D grid): K_mu kron K_x
    rng = np.random.default_rng(2)
    mu = rng.uniform(0, 1, (12, 2))
    x = np.linspace(0, 1, 15)
    Y = np.sin(3 * x[None, :] * (1 + mu[:, :1])) + mu[:, 1:]
    gp = KroneckerGP([Matern52([0.5, 0.5]), Matern52(0.3)], noise=1e-3, optimizer=None).fit([mu, x], Y)
    ref = _dense_lml([Matern52([0.5, 0.5]), Matern52(0.3)], [mu, x[:, None]], Y, gp.theta_)
    assert abs(gp.log_marginal_likelihood() - ref) <= 1e-10 * abs(ref)
    m = gp.predict(np.c_[np.repeat(mu[:1], 15, 0), x])
    assert np.allclose(m, Y[0], atol=0.05)


def test_bad_grids_and_values_are_refused():
    gp = KroneckerGP(optimizer=None)
    x = np.linspace(0, 1, 5)
    with pytest.raises(ShapeError, match="strictly increasing"):
        gp.fit([x, np.array([0.0, 0.5, 0.5, 1.0])], np.zeros((5, 4)))
    with pytest.raises(ShapeError, match="strictly increasing"):
        gp.fit([x[::-1], x], np.zeros((5, 5)))
    with pytest.raises(ShapeError, match="duplicate points"):
        gp.fit([np.array([[0.0, 1.0], [0.0, 1.0]]), x], np.zeros((2, 5)))
    Y = np.zeros((5, 5))
    Y[2, 3] = np.nan
    with pytest.raises(ParameterError, match="complete grid"):
        gp.fit([x, x], Y)
    with pytest.raises(ShapeError, match="grid shape"):
        gp.fit([x, x], np.zeros((5, 4)))
    with pytest.raises(ShapeError, match="one kernel per axis"):
        KroneckerGP([Matern52(1.0)], optimizer=None).fit([x, x], np.zeros((5, 5)))
    with pytest.raises(ParameterError, match="noise"):
        KroneckerGP(noise=0.0)
    with pytest.raises(Exception, match="not fitted"):
        gp.predict(np.zeros((1, 2)))
    gp.fit([x, x], np.ones((5, 5)))
    with pytest.raises(ShapeError, match="columns"):
        gp.predict(np.zeros((3, 3)))
