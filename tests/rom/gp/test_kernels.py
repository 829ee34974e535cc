"""Kernels: hyperparameter gradients and input derivatives against central finite differences."""

import numpy as np
import pytest

from rom.errors import ParameterError, RomError, ShapeError
from rom.gp.kernels import (Matern12, Matern32, Matern52, Scaled, SpectralMixture, SquaredExponential,
                            StudentTMixture, White)

RNG = np.random.default_rng(3)
X = RNG.uniform(-1, 1, (9, 2))
Y = RNG.uniform(-1, 1, (7, 2))

KERNELS = {
    "se_iso": SquaredExponential(0.7),
    "se_ard": SquaredExponential([0.5, 1.3]),
    "m12": Matern12([0.6, 0.9]),
    "m32": Matern32([0.6, 0.9]),
    "m52": Matern52([0.6, 0.9]),
    "scaled_sum": Scaled(Matern52([0.8, 0.4]), 2.0) + White(0.1),
    "product": SquaredExponential(0.9) * Matern52([0.6, 1.1]),
    "sm_x": SpectralMixture([1.0, 0.3], [2.0, 0.5], [0.4, 1.7], dim=0),
    "stm_y": StudentTMixture([0.7, 0.2], [1.5, 0.4], [0.2, 1.1], dim=1),
    "sm_product": SpectralMixture([1.0, 0.3], [2.0, 0.5], [0.4, 1.7], dim=0)
    * StudentTMixture([0.7, 0.2], [1.5, 0.4], [0.2, 1.1], dim=1),
}
SMOOTH2 = ["se_iso", "se_ard", "m52", "product", "sm_x", "stm_y", "sm_product"]


@pytest.mark.parametrize("name", list(KERNELS))
def test_hyperparameter_gradient_equals_finite_differences(name):
    k = KERNELS[name]
    K, dK = k.gradient(X)
    assert np.allclose(K, k(X)) and dK.shape == (k.n_theta, 9, 9)
    h = 1e-6
    for p in range(k.n_theta):
        e = np.zeros(k.n_theta)
        e[p] = h
        fd = (k.clone_with_theta(k.theta + e)(X) - k.clone_with_theta(k.theta - e)(X)) / (2 * h)
        assert np.allclose(dK[p], fd, atol=1e-7, rtol=1e-6), (name, p)
    W = RNG.standard_normal((9, 9))
    assert np.allclose(k.contract(X, W), np.einsum("ij,pij->p", W, dK), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", [n for n in KERNELS if n != "m12"])
def test_first_input_derivative_equals_finite_differences(name):
    k = KERNELS[name]
    h = 1e-6
    for a in range(2):
        e = np.zeros(2)
        e[a] = h
        fd = (k(X + e, Y) - k(X - e, Y)) / (2 * h)
        assert np.allclose(k.d1(X, Y, a), fd, atol=1e-7), (name, a)


@pytest.mark.parametrize("name", SMOOTH2)
def test_second_input_derivatives_equal_finite_differences(name):
    k = KERNELS[name]
    h = 1e-5
    for a in range(2):
        for b in range(2):
            e = np.zeros(2)
            e[b] = h
            fd = (k.d1(X + e, Y, a) - k.d1(X - e, Y, a)) / (2 * h)
            assert np.allclose(k.d2(X, Y, a, b), fd, atol=1e-6), (name, a, b)


def test_mixture_terms_second_derivative_gradient_equals_finite_differences():
    for k in (KERNELS["sm_x"], KERNELS["stm_y"]):
        d = np.linspace(-2, 2, 11)
        _, _, k2, dk, dk2 = k.terms(d, grad=True)
        h = 1e-6
        for p in range(k.n_theta):
            e = np.zeros(k.n_theta)
            e[p] = h
            fd = (k.clone_with_theta(k.theta + e).terms(d)[2] - k.clone_with_theta(k.theta - e).terms(d)[2]) / (2 * h)
            assert np.allclose(dk2[p], fd, atol=1e-6, rtol=1e-6)


def test_known_values():
    # Matern-5/2 at r = 1 and the SE at r = 1, from their closed forms
    x, y = np.zeros((1, 1)), np.ones((1, 1))
    s5 = np.sqrt(5.0)
    assert np.isclose(Matern52(1.0)(x, y)[0, 0], (1 + s5 + 5 / 3) * np.exp(-s5))
    assert np.isclose(SquaredExponential(1.0)(x, y)[0, 0], np.exp(-0.5))
    assert np.isclose(SpectralMixture([2.0], [1.0], [0.25])(x, y)[0, 0], 2.0 * np.exp(-1.0) * np.cos(np.pi / 2))
    assert np.allclose(White(0.3)(X), 0.3 * np.eye(9)) and np.allclose(White(0.3)(X, Y), 0.0)


def test_kernel_matrices_are_positive_semidefinite():
    for k in KERNELS.values():
        assert np.linalg.eigvalsh(k(X)).min() > -1e-10


@pytest.mark.parametrize("bad", [0.0, -1.0, np.nan, [1.0, -0.5]])
def test_nonpositive_hyperparameters_are_refused(bad):
    with pytest.raises(ParameterError, match="length_scale"):
        Matern52(bad)
    with pytest.raises(ParameterError, match="weights"):
        SpectralMixture(bad, 1.0, 1.0)


def test_rough_kernels_refuse_second_derivatives_and_shapes_are_checked():
    with pytest.raises(RomError, match="not twice differentiable"):
        Matern32(1.0).d2(X, Y, 0, 0)
    with pytest.raises(ShapeError, match="length scales"):
        Matern52([1.0, 1.0, 1.0])(X)
    with pytest.raises(ShapeError, match="coordinate"):
        SpectralMixture([1.0], [1.0], [1.0], dim=3)(X)
    with pytest.raises(ParameterError, match="mu"):
        SpectralMixture([1.0], [1.0], [-1.0])


@pytest.mark.parametrize("name", ["se_iso", "se_ard", "m12", "m32", "m52", "scaled_sum"])
@pytest.mark.parametrize("n", [1, 8, 9])
def test_compiled_gram_and_contraction_equal_the_numpy_reference(name, n):
    """Numba kernels (pairs i > j, rows paired r and n-1-r, so odd and even n) against the
    (n_theta, n, n) tensor of `gradient` and numpy's g(q)."""
    from rom.gp.kernels import fused_contract_lower, fused_gram_lower, fused_terms

    k = KERNELS[name]
    Xn = RNG.uniform(-1, 1, (n, 2))
    K, dK = k.gradient(Xn)
    leaf = k.k1.kernel if name == "scaled_sum" else k
    D = (X[:, None, :] - Y[None, :, :]) / leaf._ls(2)
    ref = leaf._g((D**2).sum(-1)) * (k.k1.variance if name == "scaled_sum" else 1.0)
    assert np.allclose(k(X, Y), ref, rtol=1e-14, atol=1e-15)
    terms = fused_terms(k)
    C = np.full((n, n), np.nan)
    fused_gram_lower(terms, Xn, 0.25, C)
    assert np.allclose(np.tril(C), np.tril(K + 0.25 * np.eye(n)), rtol=1e-14, atol=1e-15)
    W = RNG.standard_normal((n, n))
    W = W + W.T
    Wl = np.tril(W) + np.triu(np.full((n, n), np.nan), 1)  # the upper triangle must not be read
    assert np.allclose(fused_contract_lower(terms, k.n_theta, Xn, Wl), np.einsum("ij,pij->p", W, dK),
                       rtol=1e-12, atol=1e-12)
