"""EIM family (rom.eim): interpolation at magic points, exponential decay on a Gaussian bump,
Lebesgue constant from its definition, DEIM/Q-DEIM exact on their span, nonintrusive matrix
EIM exact for affine operators and accurate on the card D Helmholtz-like matrix."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from rom.eim import MatrixEIM, deim, eim, qdeim
from rom.errors import ParameterError, ShapeError


def bump(x, mu):
    """Gaussian bump exp(-(x - mu)^2 / (2 0.15^2)): x (n,), mu (m,) -> (n, m)."""
    return np.exp(-((x[:, None] - mu[None, :]) ** 2) / (2 * 0.15**2))


@settings(max_examples=30, deadline=None)
@given(n=st.integers(10, 60), m=st.integers(3, 30), rank=st.integers(1, 8), seed=st.integers(0, 10**6))
def test_eim_interpolates_exactly_at_magic_points(n, m, rank, seed):
    rng = np.random.default_rng(seed)
    S = rng.standard_normal((n, rank)) @ rng.standard_normal((rank, m))
    I = eim(S)
    assert I.size <= min(rank, n, m)
    np.testing.assert_allclose(np.diag(I.B), 1.0)
    np.testing.assert_allclose(np.triu(I.B, 1), 0.0, atol=1e-12)      # unit lower triangular
    assert len(set(I.points.tolist())) == I.size
    approx = I(S[I.points])
    np.testing.assert_allclose(approx[I.points], S[I.points], rtol=1e-9, atol=1e-9 * np.abs(S).max())
    np.testing.assert_allclose(approx, S, atol=1e-7 * np.abs(S).max())  # the span is recovered


def test_eim_error_decays_exponentially_on_gaussian_bump():
    x = np.linspace(0, 1, 400)
    I = eim(bump(x, np.linspace(0.2, 0.8, 200)), max_terms=40)
    test = bump(x, np.random.default_rng(0).uniform(0.2, 0.8, 50))
    err = np.array([np.abs(test - I(test[I.points[:d]], d)).max() for d in range(1, I.size + 1)])
    assert err[4] < 1e-1 and err[9] < 1e-3 and err[19] < 1e-7 and err.min() < 1e-10
    # exponential: a log-linear fit over the first 20 terms has a steep negative slope
    slope = np.polyfit(np.arange(1, 21), np.log10(err[:20] + 1e-300), 1)[0]
    assert slope < -0.3
    assert (np.diff(I.errors) <= 1e-12).sum() >= I.size - 3  # greedy errors (almost) decrease


def test_lebesgue_constant_matches_its_definition():
    x = np.linspace(0, 1, 100)
    I = eim(bump(x, np.linspace(0.2, 0.8, 50)), max_terms=8)
    # Lambda = max_x sum_j |l_j(x)| with cardinal functions l_j = basis B^{-1} e_j
    cardinal = np.stack([I(np.eye(I.size)[:, j]) for j in range(I.size)], axis=1)
    assert I.lebesgue == pytest.approx(np.abs(cardinal).sum(axis=1).max(), rel=1e-12)
    assert I.lebesgue >= 1.0


def test_deim_and_qdeim_are_exact_on_the_span():
    rng = np.random.default_rng(3)
    U, _ = np.linalg.qr(rng.standard_normal((80, 6)))
    v = U @ rng.standard_normal(6)
    for I in (deim(U), qdeim(U)):
        assert len(set(I.points.tolist())) == 6
        np.testing.assert_allclose(I(v[I.points]), v, atol=1e-12)
    # Q-DEIM's bound ||(P^T U)^{-1}||_2 <= sqrt(n - m + 1) O(2^m) holds with room; DEIM's first point is argmax |u_1|
    assert np.linalg.norm(np.linalg.inv(U[qdeim(U).points])) < np.sqrt(80) * 2**6
    assert deim(U).points[0] == np.argmax(np.abs(U[:, 0]))


def test_matrix_eim_reproduces_an_affine_operator_with_q_terms():
    rng = np.random.default_rng(0)
    n, Q = 40, 3
    base = sp.random(n, n, density=0.1, random_state=1, format="csr") + sp.eye(n)
    ops = [base.copy() for _ in range(Q)]
    for A in ops:
        A.data = rng.standard_normal(A.nnz)
    theta = lambda mu: np.array([1.0, np.sin(mu[0]), mu[0] * mu[1]])  # noqa: E731
    matrix = lambda mu: sum(t * A for t, A in zip(theta(mu), ops))  # noqa: E731
    meim = MatrixEIM().fit(matrix, rng.uniform(0, 2, (30, 2)))
    assert meim.size == Q
    for mu in rng.uniform(0, 2, (10, 2)):
        A = matrix(mu)
        entries = np.asarray(A[meim.rows_, meim.cols_]).ravel()    # the only d entries read online
        approx = meim.approximate(entries)
        assert abs(approx - A).max() <= 1e-12 * abs(A).max()


def card_d_matrix(mu, n=150):
    t = 2 * np.pi * np.arange(n) / n
    P = np.stack([2 * np.cos(t), np.sin(t)], axis=1)
    R = np.linalg.norm(P[:, None] - P[None], axis=2)
    h = np.linalg.norm(P[1] - P[0])
    return 0.5 * np.eye(n) + h * np.exp(1j * mu[0] * R) / (4 * np.pi * (R + h))


def test_matrix_eim_card_d_helmholtz_like():
    rng = np.random.default_rng(0)
    meim = MatrixEIM(max_terms=20).fit(card_d_matrix, np.linspace(1, 10, 300)[:, None])
    test = rng.uniform(1, 10, (20, 1))
    errs, sol = [], []
    for mu in test:
        A = card_d_matrix(mu)
        approx = meim.approximate(A[meim.rows_, meim.cols_])
        errs.append(np.linalg.norm(approx - A) / np.linalg.norm(A))
        b = np.ones(A.shape[0])
        x = np.linalg.solve(A, b)
        sol.append(np.linalg.norm(np.linalg.solve(approx, b) - x) / np.linalg.norm(x))
    assert meim.size <= 20 and max(errs) <= 1e-9 and max(sol) <= 1e-8
    # the A(mu_m) basis becomes ill-conditioned (card: ~10^{0.7 d}); the model keeps the q-basis then
    assert meim.cond_ > 1e10 and meim.use_q_basis_
    # exponential decay with d
    A = card_d_matrix(test[0])
    e = [np.linalg.norm(sum(c * Qk for c, Qk in zip(meim.q_coefficients(A[meim.rows_, meim.cols_], d),
                                                  meim.q_matrices(d))) - A) for d in (5, 10, 15)]
    assert e[0] > 1e2 * e[1] > 1e4 * e[2]


def test_interpolation_matrix_is_unit_lower_triangular_as_stored():
    """basis[points] is documented unit lower triangular: its strict upper part is exactly 0 and its
    diagonal exactly 1 (round-off at the earlier points, divided by a small pivot, reached 1.2e-3 on
    the bump and 1.4e-6 on card D before), each basis function is reproduced by the interpolant at the
    magic points (and everywhere: it is in the span) to 1e-12, and the triangular q-coefficients
    equal a dense solve with the whole matrix."""
    x = np.linspace(0, 1, 400)
    I = eim(bump(x, np.linspace(0.2, 0.8, 200)), max_terms=40)
    assert I.size >= 15
    assert np.all(np.triu(I.B, 1) == 0.0) and np.all(np.diag(I.B) == 1.0)
    for d in (5, 10, I.size):
        Q = I.basis[:, :d]
        np.testing.assert_allclose(I(Q[I.points], d)[I.points[:d]], Q[I.points[:d]], rtol=0, atol=1e-12)
        np.testing.assert_allclose(I(Q[I.points], d), Q, rtol=0, atol=1e-12 * I.lebesgue)
    meim = MatrixEIM(max_terms=20).fit(card_d_matrix, np.linspace(1, 10, 300)[:, None])
    B = meim.interpolant_.B
    assert np.all(np.triu(B, 1) == 0.0) and np.all(np.diag(B) == 1.0)
    for mu in (1.7, 4.2, 9.9):
        a = card_d_matrix([mu])[meim.rows_, meim.cols_]
        dense = np.linalg.solve(B, a)
        np.testing.assert_allclose(meim.q_coefficients(a), dense, rtol=0, atol=1e-12 * np.abs(dense).max())


def test_bad_input_is_named():
    with pytest.raises(ShapeError, match="snapshots"):
        eim(np.ones(5))
    with pytest.raises(ShapeError, match="NaN"):
        eim(np.full((3, 3), np.nan))
    with pytest.raises(ShapeError, match="tol"):
        eim(np.ones((3, 3)), tol=-1)
    with pytest.raises(ShapeError, match="max_terms"):
        eim(np.ones((3, 3)), max_terms=0)
    with pytest.raises(ShapeError, match="modes"):
        deim(np.ones(4))
    with pytest.raises(ParameterError, match="training"):
        MatrixEIM().fit(lambda mu: sp.eye(3), np.array([[np.nan]]))
