"""Exact GP: scikit-learn's GaussianProcessRegressor as the independent reference."""

import numpy as np
import pytest
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

from rom.errors import ParameterError, RomError, ShapeError
from rom.gp import GaussianProcess, Matern12, Matern32, Matern52, Scaled, SquaredExponential, White


def branin(X):
    x1, x2 = 15 * X[:, 0] - 5, 15 * X[:, 1]
    return ((x2 - 5.1 / (4 * np.pi**2) * x1**2 + 5 / np.pi * x1 - 6) ** 2
            + 10 * (1 - 1 / (8 * np.pi)) * np.cos(x1) + 10)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 1, (200, 2))
    Xt = rng.uniform(0, 1, (500, 2))
    y = branin(X) + 0.5 * rng.standard_normal(200)
    return X, y, Xt, branin(Xt) + 0.5 * rng.standard_normal(500)


def _sk_kernel():
    return ConstantKernel(1.0) * Matern([1.0, 1.0], nu=2.5) + WhiteKernel(1e-2)


def _kernel():
    return Scaled(Matern52([1.0, 1.0]), 1.0) + White(1e-2)


def test_lml_gradient_and_prediction_equal_sklearn_at_the_same_theta(data):
    X, y, Xt, _ = data
    theta = np.log([3.0, 0.4, 0.7, 0.05])
    sk = GaussianProcessRegressor(_sk_kernel().clone_with_theta(theta), optimizer=None, normalize_y=True).fit(X, y)
    ours = GaussianProcess(_kernel().clone_with_theta(theta), optimizer=None, normalize_y=True).fit(X, y)
    l0, g0 = sk.log_marginal_likelihood(theta, eval_gradient=True)
    l1, g1 = ours.log_marginal_likelihood(theta, eval_gradient=True)
    assert np.isclose(l1, l0, rtol=1e-10) and np.allclose(g1, g0, rtol=1e-8)
    m0, s0 = sk.predict(Xt, return_std=True)
    m1, s1 = ours.predict(Xt, return_std=True)
    assert np.allclose(m1, m0, rtol=1e-8, atol=1e-8) and np.allclose(s1, s0, rtol=1e-7, atol=1e-9)
    _, c0 = sk.predict(Xt[:20], return_cov=True)
    _, c1 = ours.predict(Xt[:20], return_cov=True)
    assert np.allclose(c1, c0, atol=1e-8)


def test_lml_gradient_equals_finite_differences(data):
    X, y, _, _ = data
    gp = GaussianProcess(SquaredExponential([0.3, 0.5]) * Scaled(Matern52(0.8), 2.0) + White(0.1),
                         optimizer=None, normalize_y=True).fit(X[:60], y[:60])
    theta = gp.kernel_.theta
    _, g = gp.log_marginal_likelihood(theta, eval_gradient=True)
    fd = [(gp.log_marginal_likelihood(theta + 1e-6 * e) - gp.log_marginal_likelihood(theta - 1e-6 * e)) / 2e-6
          for e in np.eye(theta.size)]
    assert np.allclose(g, fd, rtol=1e-5, atol=1e-5)


def test_branin_rmse_within_10_percent_of_sklearn_and_95_percent_coverage(data):
    X, y, Xt, yt = data
    sk = GaussianProcessRegressor(_sk_kernel(), n_restarts_optimizer=2, normalize_y=True, random_state=0).fit(X, y)
    gp = GaussianProcess(_kernel(), n_restarts=2, normalize_y=True, random_state=0).fit(X, y)
    rmse_sk = np.sqrt(np.mean((sk.predict(Xt) - yt) ** 2))
    m, s = gp.predict(Xt, return_std=True)
    rmse = np.sqrt(np.mean((m - yt) ** 2))
    assert rmse <= 1.1 * rmse_sk
    assert gp.log_marginal_likelihood_value_ >= sk.log_marginal_likelihood_value_ - 1e-3 * abs(
        sk.log_marginal_likelihood_value_)
    coverage = np.mean(np.abs(m - yt) <= 1.96 * s)
    assert 0.90 <= coverage <= 0.99


def test_multi_output_shares_the_kernel_and_independent_outputs_fit_separately(data):
    X, y, Xt, _ = data
    Y = np.c_[y, np.sin(6 * X[:, 0])]
    k = _kernel().clone_with_theta(np.log([1.0, 0.3, 0.4, 1e-3]))
    shared = GaussianProcess(k, normalize_y=True, optimizer=None).fit(X, Y)
    sk = GaussianProcessRegressor(_sk_kernel(), normalize_y=True, optimizer=None)
    sk.kernel = sk.kernel.clone_with_theta(shared.kernel_.theta)
    sk.fit(X, Y)
    m0, s0 = sk.predict(Xt, return_std=True)
    m1, s1 = shared.predict(Xt, return_std=True)
    assert m1.shape == (500, 2) and s1.shape == (500, 2)
    # the fitted noise is small (cond K ~ 1e8): agreement to ~1e-7 of the output scale
    assert np.allclose(m1, m0, atol=1e-6 * np.abs(m0).max(0)) and np.allclose(s1, s0, atol=1e-6 * s0.max(0))
    indep = GaussianProcess(_kernel(), normalize_y=True, independent_outputs=True, random_state=0,
                            max_iter=20).fit(X[:80], Y[:80])
    single = GaussianProcess(_kernel(), normalize_y=True, random_state=0, max_iter=20).fit(X[:80], Y[:80, 1])
    assert np.allclose(indep.predict(Xt)[:, 1], single.predict(Xt))
    assert indep.sample_y(Xt[:5], 3).shape == (5, 2, 3)


def test_sample_y_has_the_posterior_mean_and_covariance(data):
    X, y, Xt, _ = data
    gp = GaussianProcess(_kernel(), normalize_y=True, random_state=0).fit(X[:50], y[:50])
    S = gp.sample_y(Xt[:4], 40000, random_state=1)
    m, C = gp.predict(Xt[:4], return_cov=True)
    sd = np.sqrt(np.diag(C))
    assert np.all(np.abs(S.mean(1) - m) < 5 * sd / np.sqrt(40000))
    assert np.allclose(np.cov(S), C, atol=0.05 * C.max())


def test_normalize_X_gives_the_same_fit_as_scaling_by_hand(data):
    X, y, Xt, _ = data
    Xs = 10 * X + 3
    a = GaussianProcess(_kernel(), normalize_X=True, normalize_y=True, max_iter=30).fit(Xs, y)
    mu, sd = Xs.mean(0), Xs.std(0)
    b = GaussianProcess(_kernel(), normalize_y=True, max_iter=30).fit((Xs - mu) / sd, y)
    assert np.allclose(a.predict(10 * Xt + 3), b.predict((10 * Xt + 3 - mu) / sd), atol=1e-8)


def test_bad_input_is_refused_with_clear_errors(data):
    X, y, Xt, _ = data
    gp = GaussianProcess(_kernel())
    with pytest.raises(RomError, match="not fitted"):
        gp.predict(Xt)
    Xn = X.copy()
    Xn[3, 1] = np.nan
    with pytest.raises(ParameterError, match="X contains NaN"):
        gp.fit(Xn, y)
    with pytest.raises(ParameterError, match="y contains NaN"):
        gp.fit(X, np.where(np.arange(200) == 5, np.inf, y))
    with pytest.raises(ShapeError, match="expected \\(200,\\)"):
        gp.fit(X, y[:-1])
    gp.fit(X[:30], y[:30])
    with pytest.raises(ShapeError, match="3 columns"):
        gp.predict(np.ones((4, 3)))
    with pytest.raises(ParameterError, match="alpha"):
        GaussianProcess(alpha=-1.0)


class _NotPositive(SquaredExponential):
    """exp(-r^2/2) - 0.6: an invalid covariance with negative eigenvalues that no jitter fixes."""

    def _g(self, q):
        return np.exp(-0.5 * q) - 0.6


def test_singular_kernel_matrix_raises_rom_error():
    X = np.linspace(0, 5, 8)[:, None]
    with pytest.raises(RomError, match="singular or not positive definite"):
        GaussianProcess(_NotPositive(1.0), alpha=0.0, optimizer=None).fit(X, np.arange(8.0))


def test_jitter_ladder_rescues_a_nearly_singular_matrix():
    X = np.linspace(0, 1, 40)[:, None]
    gp = GaussianProcess(SquaredExponential(2.0), alpha=0.0, optimizer=None).fit(X, np.sin(X[:, 0]))
    assert gp.jitter_ > 0
    assert np.allclose(gp.predict(X[::7]), np.sin(X[::7, 0]), atol=1e-4)


@pytest.mark.parametrize("kernel", [
    Scaled(Matern52([0.3, 0.5]), 2.0) + White(0.1),
    SquaredExponential(0.4) + White(0.05),
    Scaled(Matern32([0.3, 0.2]), 1.5) + Scaled(Matern12(0.3), 0.5) + White(1e-2),
])
def test_fused_gradient_equals_finite_differences_and_the_generic_contract(data, kernel, monkeypatch):
    """The compiled path (one pass over pairs for every log-parameter, no dK tensor) computes
    the same likelihood and gradient as kernel.contract on the full dK, and both are the
    derivative of the likelihood."""
    import rom.gp.exact as exact
    from rom.gp.kernels import fused_terms

    X, y, _, _ = data
    X, Y = X[:80], np.c_[y[:80], np.cos(4 * X[:80, 1])]
    assert fused_terms(kernel) is not None
    gp = GaussianProcess(kernel, optimizer=None, normalize_y=True).fit(X, Y)
    theta = gp.kernel_.theta
    lml, g = gp.log_marginal_likelihood(theta, eval_gradient=True)
    fd = [(gp.log_marginal_likelihood(theta + 1e-6 * e) - gp.log_marginal_likelihood(theta - 1e-6 * e)) / 2e-6
          for e in np.eye(theta.size)]
    assert np.allclose(g, fd, rtol=1e-5, atol=1e-5)
    monkeypatch.setattr(exact, "fused_terms", lambda k: None)
    lml0, g0 = gp.log_marginal_likelihood(theta, eval_gradient=True)
    assert np.isclose(lml, lml0, rtol=1e-12) and np.allclose(g, g0, rtol=1e-10, atol=1e-10 * np.abs(g0).max())


def test_products_and_subclasses_keep_the_generic_path():
    from rom.gp.kernels import fused_terms

    assert fused_terms(SquaredExponential(0.3) * Matern52(0.5) + White(0.1)) is None
    assert fused_terms(_NotPositive(1.0)) is None
    assert fused_terms(Scaled(White(0.1), 2.0)) is None


def test_subnormals_are_flushed_inside_the_context_only():
    """tiny * tiny is subnormal in IEEE arithmetic; with flush-to-zero it is 0, and the thread's
    MXCSR is restored on exit (also after an exception)."""
    from rom import _fpenv

    if not _fpenv.available:  # the claim is about x86-64 Linux; elsewhere nothing is changed
        assert not _fpenv.available
        return
    tiny = np.array([1e-160])
    control = lambda: _fpenv.mxcsr() & ~0x3F  # noqa: E731  (the low six bits are sticky exception flags)
    before = control()
    assert 0.0 < (tiny * tiny)[0] < 2.3e-308
    with _fpenv.flush_subnormals():
        assert (tiny * tiny)[0] == 0.0
    assert control() == before and (tiny * tiny)[0] > 0.0
    with pytest.raises(ZeroDivisionError), _fpenv.flush_subnormals():
        1 / 0
    assert control() == before


def test_nearly_diagonal_kernel_gives_the_likelihood_of_the_unflushed_generic_path(data, monkeypatch):
    """A length scale far below the spacing of the inputs (a restart near the lower bound): the
    compiled path factors K with subnormals flushed (on one BLAS thread), and its likelihood and
    gradient equal those of the generic path, which runs in IEEE arithmetic."""
    import rom.gp.exact as exact
    from rom.gp.kernels import fused_gram_lower, fused_terms

    X, y, _, _ = data
    gp = GaussianProcess(_kernel(), optimizer=None, normalize_y=True).fit(X, y)
    theta = np.array([5.74, -6.55, 3.0, -11.51])  # c = 311, l = (1.4e-3, 20), noise 1e-5
    kernel = gp.kernel_.clone_with_theta(theta)
    C = np.empty((len(X), len(X)))
    assert fused_gram_lower(fused_terms(kernel), gp.X_train_, 0.0, C) > exact._NEARLY_DIAGONAL
    calls = []
    real = exact._fpenv.flush_subnormals
    monkeypatch.setattr(exact._fpenv, "flush_subnormals", lambda: calls.append(1) or real())
    lml, g = gp.log_marginal_likelihood(theta, eval_gradient=True)
    assert calls == ([1] if exact._fpenv.available else [])
    monkeypatch.setattr(exact, "fused_terms", lambda k: None)
    lml0, g0 = gp.log_marginal_likelihood(theta, eval_gradient=True)
    assert np.isclose(lml, lml0, rtol=1e-12) and np.allclose(g, g0, rtol=1e-10, atol=1e-10 * np.abs(g0).max())
