"""Parameter spaces: samplers stay in the box with their defining properties; validation messages."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from rom.errors import ParameterError
from rom.parameters import BOUND_ULPS, Parameter, ParameterSpace, as_parameter_space, check_mu


@pytest.fixture
def space():
    return ParameterSpace({"k": (0.1, 10.0, "log"), "load": ([0.0, -1.0], [1.0, 1.0])})


def test_layout(space):
    assert space.dim == 3
    assert space.names == ("k", "load[0]", "load[1]")
    np.testing.assert_array_equal(space.lower, [0.1, 0.0, -1.0])
    np.testing.assert_array_equal(space.upper, [10.0, 1.0, 1.0])
    parts = space.split([1.0, 0.5, 0.0])
    assert parts["k"].shape == () and parts["load"].shape == (2,)
    np.testing.assert_array_equal(space.validate({"k": 2.0, "load": [0.1, 0.2]}), [2.0, 0.1, 0.2])
    assert ParameterSpace.from_dict(space.to_dict()).names == space.names


@pytest.mark.parametrize("sampler", ["uniform", "lhs", "sobol"])
def test_samplers_fill_the_box_and_are_seeded(space, sampler):
    X = space.sample(256, sampler, seed=3)
    assert X.shape == (256, 3)
    assert np.all(X >= space.lower) and np.all(X <= space.upper)
    np.testing.assert_array_equal(X, space.sample(256, sampler, seed=3))
    assert not np.array_equal(X, space.sample(256, sampler, seed=4))
    # log entry uniform in log space: mean of log10 k close to 0 (the middle of [-1, 1])
    assert abs(np.mean(np.log10(X[:, 0]))) < 0.15
    assert abs(np.mean(X[:, 1]) - 0.5) < 0.1


def test_latin_hypercube_has_one_point_per_stratum(space):
    n = 50
    X = space.lhs(n, seed=0)
    u = np.column_stack([(np.log(X[:, 0]) - np.log(0.1)) / np.log(100.0), X[:, 1], (X[:, 2] + 1) / 2])
    for j in range(3):
        strata = np.floor(u[:, j] * n).clip(0, n - 1).astype(int)
        assert np.array_equal(np.sort(strata), np.arange(n))


def test_sobol_power_of_two_balance():
    s = ParameterSpace({"a": (0.0, 1.0), "b": (0.0, 1.0)})
    X = s.sobol(64, seed=1)
    # a (t, m, s)-net in base 2 with t = 0 for d = 2: each of the 8 x 8 cells holds one point
    cells = np.floor(X * 8).astype(int)
    assert len({tuple(c) for c in cells}) == 64


def test_tensor_grid(space):
    G = space.grid([3, 2, 2])
    assert G.shape == (12, 3)
    np.testing.assert_allclose(np.unique(G[:, 0]), [0.1, 1.0, 10.0])  # geometric for log
    np.testing.assert_array_equal(np.unique(G[:, 2]), [-1.0, 1.0])
    assert ParameterSpace({"a": (0, 1)}).grid(1).tolist() == [[0.5]]


@settings(max_examples=50, deadline=None)
@given(lo=st.floats(-1e3, 1e3), width=st.floats(0, 1e3), log=st.booleans(),
       u=st.lists(st.floats(0, 1), min_size=1, max_size=20))
def test_from_unit_stays_in_box(lo, width, log, u):
    if log:
        lo = abs(lo) + 1e-3
    s = ParameterSpace({"p": (lo, lo + width, "log" if log else "linear")})
    X = s.from_unit(np.array(u)[:, None])
    assert np.all(X >= s.lower) and np.all(X <= s.upper)
    for x in X:
        s.validate(x)


def test_validation_messages(space):
    with pytest.raises(ParameterError, match=r"mu has 2 entries; this space takes 3: k, load\[0\], load\[1\]"):
        space.validate([1.0, 0.0])
    with pytest.raises(ParameterError, match=r"mu\[2\] \(load\[1\]\) = nan is NaN or infinite; "
                                             r"give a finite value in \[-1.0, 1.0\]"):
        space.validate([1.0, 0.0, np.nan])
    with pytest.raises(ParameterError, match=r"mu\[0\] \(k\) = 20.0 lies outside the box \[0.1, 10.0\]"):
        space.validate([20.0, 0.0, 0.0])
    with pytest.raises(ParameterError, match="mu is a str"):
        space.validate("abc")
    with pytest.raises(ParameterError, match="missing parameters"):
        space.validate({"k": 1.0})
    with pytest.raises(ParameterError, match=r"mu\['load'\]\[1\] \(load\[1\]\) = 3.0 lies outside"):
        space.validate({"k": 1.0, "load": [0.5, 3.0]})
    assert space.contains([1.0, 0.5, 0.5]) and not space.contains([0.0, 0.5, 0.5])


def test_check_mu_names_row_entry_and_parameter():
    """The error of a batch names the row, the entry index and the parameter, not the whole row."""
    lower, upper = np.zeros(6), np.ones(6)
    names = ["a", "b", "c", "d", "e", "f"]
    mu = np.full((3, 6), 0.5)
    mu[1, 5] = 1.5
    with pytest.raises(ParameterError, match=r"^mu\[1, 5\] \(f\) = 1.5 lies outside the box \[0.0, 1.0\]: "
                                             r"above its upper bound by 0.5"):
        check_mu(mu, lower, upper, names)
    mu[1, 5], mu[2, 3] = 0.5, -np.inf
    with pytest.raises(ParameterError, match=r"^training\[2, 3\] \(d\) = -inf is NaN or infinite"):
        check_mu(mu, lower, upper, names, argument="training")
    arr, single = check_mu(np.full(6, 0.25), lower, upper)
    assert single and arr.shape == (1, 6)
    arr, single = check_mu(np.full((4, 6), 0.25), lower, upper)
    assert not single and arr.shape == (4, 6)
    assert check_mu(0.5, [0.0], [1.0])[1]  # a scalar is one vector when p = 1


@pytest.mark.parametrize("bad", ["0.5", b"0.5", {"a": 0.5}, None, ["0.5", "0.5"], [0.5 + 1j, 0.5], [True, False],
                                 [[0.5, 0.5], [0.5]]])
def test_non_numbers_are_parameter_errors(bad):
    """Strings (even numeric ones), mappings, complex, booleans, ragged lists: ParameterError, never
    a bare ValueError/TypeError (ParameterError is a RomError; the test checks the class itself)."""
    with pytest.raises(ParameterError, match=r"pass 2 numbers per parameter vector"):
        check_mu(bad, [0.0, 0.0], [1.0, 1.0])


@settings(max_examples=60, deadline=None)
@given(bound=st.floats(-1e6, 1e6, allow_subnormal=False), width=st.floats(1e-3, 1e3),
       k=st.integers(-3 * BOUND_ULPS, 3 * BOUND_ULPS), upper_side=st.booleans())
def test_values_within_the_ulp_allowance_of_a_bound_are_the_bound(bound, width, k, upper_side):
    """At a bound b with scale s = max(|lower|, |upper|): b + j ulp(s) outside the box, 0 < j <=
    BOUND_ULPS, is returned as b exactly; beyond, ParameterError with the value's exact repr."""
    lo, hi = (bound - width, bound) if upper_side else (bound, bound + width)
    ulp = np.spacing(max(abs(lo), abs(hi)))
    b = hi if upper_side else lo
    v = b + (k if upper_side else -k) * ulp           # k > 0: outside by k ulps
    outside = (v > hi) if upper_side else (v < lo)
    dist = abs(v - b) / ulp
    if not outside or dist <= BOUND_ULPS:
        arr, _ = check_mu([v], [lo], [hi])
        assert arr[0, 0] == (b if outside else v)
    else:
        with pytest.raises(ParameterError, match=re.escape(f"= {float(v)!r} lies outside")):
            check_mu([v], [lo], [hi])


def test_one_plus_two_eps_is_the_bound_and_further_out_is_reported_with_all_digits(space):
    np.testing.assert_array_equal(space.validate([10.0 + 2e-15, 1.0 + 2e-16, -1.0 - 2e-16]), [10.0, 1.0, -1.0])
    with pytest.raises(ParameterError, match=r"mu\[1\] \(load\[0\]\) = 1.000000000000001 lies outside .* "
                                             r"by 1.11e-15 \(5 ulps; up to 4 count as round-off\)"):
        space.validate([1.0, 1.0 + 5 * 2.0**-52, 0.0])


def test_bad_definitions():
    with pytest.raises(ParameterError, match="exceeds upper"):
        ParameterSpace({"a": (2.0, 1.0)})
    with pytest.raises(ParameterError, match="log scale needs positive"):
        ParameterSpace({"a": (0.0, 1.0, "log")})
    with pytest.raises(ParameterError, match="scale="):
        ParameterSpace({"a": (0.0, 1.0, "cubic")})
    with pytest.raises(ParameterError, match="identifier"):
        Parameter("a b", 0.0, 1.0)
    with pytest.raises(ParameterError, match="at least one"):
        ParameterSpace({})
    with pytest.raises(ParameterError, match="finite"):
        ParameterSpace({"a": (0.0, np.inf)})
    with pytest.raises(ParameterError, match="one shape"):
        ParameterSpace({"a": ([0, 0], [1, 1, 1])})
    s = ParameterSpace({"a": (0, 1)})
    with pytest.raises(ParameterError, match="sampler="):
        s.sample(4, "halton")
    with pytest.raises(ParameterError, match="positive integer"):
        s.lhs(0)
    with pytest.raises(ParameterError, match="grid"):
        s.grid(0)


def test_box_from_solvers_converts():
    from solvers.problems.base import Box

    box = Box(("mu0", "mu1"), np.array([0.1, 0.1]), np.array([1.0, 2.0]))
    s = as_parameter_space(box)
    assert s.names == ("mu0", "mu1") and s.dim == 2
    with pytest.raises(ParameterError, match="not a parameter space"):
        as_parameter_space(object())
