"""The tall-product kernels (rom._tall_kernels) equal numpy's X^T X and X V; POD uses them."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from rom import _fpenv, _tall_kernels as gk
from rom import pod as pod_module
from rom.errors import RomError


def lower_to_full(G: np.ndarray, n: int) -> np.ndarray:
    L = np.tril(G[:n, :n])
    return L + np.tril(L, -1).T


def test_kernel_compiles_for_this_cpu():
    fn, width = gk.compiled()
    assert fn is not None, width
    assert width in (gk.W_AVX512, gk.W_AVX2)


@settings(max_examples=40, deadline=None)
@given(rows=st.integers(1, 700), cols=st.integers(1, 70), extra=st.integers(0, 9), kc=st.integers(1, 160),
       width=st.sampled_from([gk.W_AVX512, gk.W_AVX2]), seed=st.integers(0, 10**6))
def test_lower_triangle_equals_numpy_gram(rows, cols, extra, kc, width, seed):
    """Every chunk size, panel padding, diagonal tile depth and row stride (a column slice of a
    wider array) gives X^T X to round-off: |error| <= 8 eps rows max|x|^2 entrywise."""
    fn, w = gk.compiled(width)
    assert fn is not None, w
    rng = np.random.default_rng(seed)
    wide = rng.standard_normal((rows, cols + extra))
    X = wide[:, extra // 2: extra // 2 + cols]
    G = gk.gram_lower(X, fn, w, kc=kc)
    assert G.shape == (gk.panels(cols, w) * w,) * 2
    ref = X.T @ X
    bound = 8 * np.finfo(float).eps * rows * np.max(np.abs(X)) ** 2
    assert np.max(np.abs(lower_to_full(G, cols) - ref)) <= bound


def test_tiles_per_chunk_counts_the_kernels_tiles():
    """Blocks of 3 panels, each paired with the panels from its own on: 3q (q + 1) / 2 tiles
    for 3q panels (693 for 500 columns), 4 + 1 for 4 panels."""
    assert gk.MP == 3
    for q in (1, 2, 21):
        assert gk.tiles_per_chunk(3 * q) == 3 * q * (q + 1) // 2
    assert gk.tiles_per_chunk(gk.panels(500, 8)) == 693
    assert gk.tiles_per_chunk(4) == 5 and gk.tiles_per_chunk(1) == 1
    assert gk.panels(500, 8) == 63 and gk.panels(17, 8) == 3 and gk.panels(100, 8) == 13


@pytest.mark.parametrize("npan", [1, 2, 3, 4, 7, 63])
def test_tiles_cover_the_lower_triangle_once(npan):
    """The kernel's G tiles, in visiting order, hold each cell (j >= i) of G exactly once, and
    unpack_tiles puts tile t's cell (c, s) at row J W + c, column I W + s."""
    w = gk.W_AVX512
    ntiles = gk.tiles_per_chunk(npan)
    rows, cols = gk._tile_cells(npan, w)
    assert rows.shape == cols.shape == (ntiles, w, gk.MP * w)
    npad = npan * w
    keep = (cols < npad) & (rows >= cols)
    hits = np.zeros((npad, npad), dtype=int)
    np.add.at(hits, (rows[keep], cols[keep]), 1)
    assert np.array_equal(hits, np.tril(np.ones((npad, npad), dtype=int)))
    Gt = np.arange(ntiles * w * gk.MP * w, dtype=float).reshape(ntiles, w, gk.MP * w) + 1.0
    G = gk.unpack_tiles(Gt, npan)
    assert G.shape == (npad, npad)
    t = ntiles - 1  # the last tile: block I = the last multiple of MP, panel J = npan - 1
    I, J = (npan - 1) // gk.MP * gk.MP, npan - 1
    assert G[J * w + 2, I * w] == Gt[t, 2, 0]


def test_pod_gram_step_goes_through_the_kernel_and_matches_dsyrk(monkeypatch):
    """A tall snapshot matrix whose pulses underflow to subnormals (flushed on the slab
    threads): the kernel is called and its Gram matrix is numpy's to round-off, exactly symmetric."""
    x = np.linspace(0.0, 1.0, 20000)
    c = np.linspace(0.2, 0.8, 37)
    S = np.exp(-((x[:, None] - c) / 0.01) ** 2)
    calls = []
    real = gk.gram_lower
    monkeypatch.setattr(gk, "gram_lower", lambda *a, **k: calls.append(a[0].shape) or real(*a, **k))
    G = pod_module._syrk(S)
    # on AVX-512 the kernel takes every row; elsewhere numpy's dsyrk all of them
    assert sum(r for r, _ in calls) == (S.shape[0] if gk.tuned() else 0)
    with _fpenv.flush_subnormals():
        ref = S.T @ S
    assert np.array_equal(G, G.T)
    assert np.max(np.abs(G - ref)) <= 1e-13 * np.max(np.abs(ref))


def test_wide_or_strided_snapshots_take_numpy_and_agree():
    rng = np.random.default_rng(3)
    wide = rng.standard_normal((2000, pod_module._KERNEL_MAX_COLS + 5))
    strided = rng.standard_normal((3000, 40))[:, ::2]
    for X in (wide, strided):
        assert not pod_module._kernel_applies(X, pod_module._KERNEL_MAX_COLS)
        G = pod_module._syrk(X)
        assert np.allclose(G, X.T @ X, rtol=0, atol=1e-11 * np.max(np.abs(X)) ** 2 * X.shape[0])


@settings(max_examples=40, deadline=None)
@given(rows=st.integers(1, 400), k=st.integers(1, 90), l=st.integers(1, 70), extra=st.integers(0, 5),
       rc=st.integers(1, 40), ki=st.integers(1, 100), width=st.sampled_from([gk.W_AVX512, gk.W_AVX2]),
       seed=st.integers(0, 10**6))
def test_times_equals_numpy_product(rows, k, l, extra, rc, ki, width, seed):
    """Every row chunk, block of V, tail tile and masked last vector gives X V to round-off, and
    the output's columns past l (a wider array's) are left untouched."""
    fn, w = gk.compiled_times(-(-l // width), width)
    assert fn is not None, w
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, k + extra))[:, extra:]
    V = rng.standard_normal((k, l))
    wide_out = np.full((rows, l + 3), 7.0)
    gk.times(X, gk.pack_right(V, w), l, wide_out[:, :l], fn, rows_per_chunk=rc, ki=ki)
    bound = 8 * np.finfo(float).eps * k * np.max(np.abs(X)) * np.max(np.abs(V))
    assert np.max(np.abs(wide_out[:, :l] - X @ V)) <= bound
    assert np.all(wide_out[:, l:] == 7.0)


def test_pod_modes_product_goes_through_the_kernel_in_column_groups(monkeypatch):
    """130 columns: three passes (56 + 56 + 18 on AVX-512, numpy's matmul elsewhere), the product
    numpy's to round-off."""
    rng = np.random.default_rng(5)
    X = rng.standard_normal((5000, 60))
    V = rng.standard_normal((60, 130))
    calls = []
    real = gk.times
    monkeypatch.setattr(gk, "times", lambda *a, **k: calls.append(a[2]) or real(*a, **k))
    P = pod_module._times(X, V)
    group = pod_module._TIMES_GROUP_VECTORS * (gk.lanes() or gk.W_AVX512)
    expected = {min(group, 130 - a) for a in range(0, 130, group)} if gk.tuned() else set()
    assert set(calls) == expected
    assert np.max(np.abs(P - X @ V)) <= 1e-13 * np.max(np.abs(X @ V))


def test_nonfinite_snapshot_is_refused_by_name_on_the_kernel_path():
    """Inf or NaN in a tall snapshot matrix reaches G's diagonal through the kernel: the POD
    refuses it naming the column, as on numpy's path."""
    from rom.errors import ShapeError

    for bad in (np.inf, np.nan):
        S = np.random.default_rng(0).standard_normal((3000, 30))
        S[1234, 17] = bad
        assert pod_module._kernel_applies(S, pod_module._KERNEL_MAX_COLS) == gk.tuned()
        with pytest.raises(ShapeError, match=r"\[17\]"):
            pod_module.pod(S, n_modes=5)


@pytest.fixture
def fresh_kernel_log(monkeypatch):
    """No reason logged yet in this process; the kernels built afresh on each call, past their
    caches (a cache must not be cleared: dropping a compiled kernel frees its machine code)."""
    monkeypatch.setattr(pod_module, "_TOLD", set())
    monkeypatch.delenv("ROMTK_TALL_KERNELS", raising=False)
    monkeypatch.setattr(gk, "compiled", gk.compiled.__wrapped__)
    monkeypatch.setattr(gk, "compiled_times", gk.compiled_times.__wrapped__)


def _reasons(caplog, level):
    return [r.getMessage() for r in caplog.records if r.name == "rom.pod" and r.levelno == level]


def test_a_failed_compile_is_logged_and_pod_runs_through_numpy(monkeypatch, caplog, fresh_kernel_log):
    """IR that LLVM refuses (on a CPU taken for AVX-512, so that the kernels are wanted): the
    LLVM error is logged once at INFO, then at DEBUG, and the POD is numpy's: its singular
    values are those of numpy's SVD of the snapshots to round-off."""
    monkeypatch.setattr(gk, "tuned", lambda: True)
    monkeypatch.setattr(gk, "_gram_ir", lambda *a: "define void @gram_lower( this is not IR")
    monkeypatch.setattr(gk, "_times_ir", lambda *a: "define void @times( this is not IR")
    calls = []
    monkeypatch.setattr(gk, "gram_lower", lambda *a, **k: calls.append(a) or 1 / 0)
    S = np.random.default_rng(7).standard_normal((3000, 25)) * 0.5 ** np.arange(25)
    with caplog.at_level(logging.DEBUG, logger="rom.pod"):
        Phi, sigma = pod_module.pod(S, n_modes=10, method="snapshots")
    assert calls == []
    info = _reasons(caplog, logging.INFO)
    assert len(info) == 1 and "the Gram kernel failed to compile" in info[0]
    assert "RuntimeError: LLVM IR parsing error" in info[0]  # the exception, as llvmlite raised it
    assert any("the product kernel failed to compile" in m for m in _reasons(caplog, logging.DEBUG))
    ref = np.linalg.svd(S, compute_uv=False)[:10]
    np.testing.assert_allclose(sigma, ref, rtol=1e-10)
    assert np.max(np.abs(Phi.T @ Phi - np.eye(10))) < 1e-12


def test_each_reason_for_numpy_is_logged_once_at_info(monkeypatch, caplog, fresh_kernel_log):
    """Not AVX-512, a shape outside the kernels' range, switched off: each kind of reason is
    told at INFO the first time only; a bad switch value is an error naming it."""
    wide = np.ones((2000, pod_module._KERNEL_MAX_COLS + 1))
    with caplog.at_level(logging.DEBUG, logger="rom.pod"):
        monkeypatch.setattr(gk, "tuned", lambda: False)
        for _ in range(2):
            assert pod_module._tall_kernel(np.ones((4000, 8))) is None
        monkeypatch.setattr(gk, "tuned", lambda: True)
        assert pod_module._tall_kernel(np.ones((100, 8))) is None
        assert pod_module._tall_kernel(wide) is None
        monkeypatch.setenv("ROMTK_TALL_KERNELS", "0")
        assert pod_module._tall_kernel(np.ones((4000, 8))) is None
    info, debug = _reasons(caplog, logging.INFO), _reasons(caplog, logging.DEBUG)
    assert len(info) == 3 and len(debug) == 2
    assert "not AVX-512's 8" in info[0] and "not AVX-512's 8" in debug[0]
    assert "100 rows, under the 1024" in info[1] and "2001 columns, outside 1..2000" in debug[1]
    assert "ROMTK_TALL_KERNELS=0" in info[2]
    monkeypatch.setenv("ROMTK_TALL_KERNELS", "yes")
    with pytest.raises(RomError, match="ROMTK_TALL_KERNELS='yes'"):
        pod_module.pod(np.ones((50, 3)), n_modes=1)
