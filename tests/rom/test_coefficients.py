"""rom.coefficients: theta functions are data. Legitimate expressions give the values of the same
formula written in numpy; anything outside the allow-list is refused (ParameterError in code,
StoreError from a file) and nothing in it runs."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rom.coefficients import Coefficients, evaluate, max_index
from rom.errors import ParameterError, StoreError
from rom.reduced import ReducedModel
from solvers.problems.base import Theta


def test_values_equal_the_numpy_formula():
    mu = np.random.default_rng(1).uniform(0.1, 2.0, (50, 4))
    exprs = ("1", "mu[..., 3]", "mu[2]", "2.5e-1 * mu[0] ** 2 - mu[1] / 3", "exp(-mu[0]) + sqrt(mu[1])",
             "(0.025 * (1 / tanh((0.1 / mu[..., 3])) - 1 / (0.1 / mu[..., 3])))",
             "max(mu[0], mu[1]) - min(mu[2], 1)", "abs(sin(pi * mu[0])) + cos(e) + log(mu[3]) + tan(mu[0] / 4)",
             "-mu[0] + +mu[1]")
    want = np.stack([np.ones(50), mu[:, 3], mu[:, 2], 0.25 * mu[:, 0] ** 2 - mu[:, 1] / 3,
                     np.exp(-mu[:, 0]) + np.sqrt(mu[:, 1]),
                     0.025 * (1 / np.tanh(0.1 / mu[:, 3]) - mu[:, 3] / 0.1),
                     np.maximum(mu[:, 0], mu[:, 1]) - np.minimum(mu[:, 2], 1),
                     np.abs(np.sin(np.pi * mu[:, 0])) + np.cos(np.e) + np.log(mu[:, 3]) + np.tan(mu[:, 0] / 4),
                     mu[:, 1] - mu[:, 0]], axis=1)
    got = Coefficients(exprs)(mu)
    np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(Coefficients(exprs)(mu[7]), want[7], rtol=1e-14, atol=1e-15)
    assert got.shape == (50, 9) and max_index(exprs) == 3


def test_every_problem_theta_parses_and_matches_its_direct_formula():
    from solvers.problems import ThermalBlock
    from solvers.problems.advection_diffusion import AdvectionDiffusion

    tb = ThermalBlock((2, 2), n=4)
    mu = np.random.default_rng(0).uniform(tb.parameter_space.lower, tb.parameter_space.upper, (8, 4))
    np.testing.assert_array_equal(tb.affine.theta(mu), np.c_[mu, np.ones(8)])
    ad = AdvectionDiffusion(n=8)
    box = ad.parameter_space
    mus = np.random.default_rng(2).uniform(box.lower, box.upper, (6, box.lower.size))
    th_m, th_a = ad.theta_functions()
    direct_m = np.stack([ad.theta_mass(m) for m in mus])
    direct_a = np.stack([ad.theta_stiffness(m) for m in mus])
    np.testing.assert_allclose(th_m(mus), direct_m, rtol=1e-12)
    np.testing.assert_allclose(th_a(mus), direct_a, rtol=1e-12)


# A payload that escapes an empty-__builtins__ eval: it reaches os.system through a subclass's
# globals. The old reader executed it when the model was solved; it must never run now.
def _escape(marker) -> str:
    return ("[c for c in ().__class__.__base__.__subclasses__() if c.__name__ == '_wrap_close'][0]"
            f".__init__.__globals__['system']('touch {marker}')")


PAYLOADS = ["().__class__.__base__.__subclasses__()", "__import__('os').system('true')", "(lambda: 1)()",
            "mu.__class__", "mu[0].real", "[x for x in (1, 2)]", "'text'", "mu[-1]", "mu[0:2]", "mu[mu]",
            "exp(mu[0], 2)", "exp(x=1)", "open('f')", "1 if mu[0] else 2", "mu[0] < 1", "True", "1j",
            "9 ** 9 ** 9 ** 9 ** 9 if 1 else 0", "(" * 300 + "1" + ")" * 300, "1 +" * 5000 + "1", "numpy.exp(1)",
            "mu[0] @ mu[1]", "mu[0] // 2", "mu[0] % 2", "exp(*mu)", "\x00",
            # deep enough for the evaluator (not the parser) to exhaust Python's stack; a huge literal
            "-" * 600 + "mu[0]", "1+" * 600 + "mu[0]", "9" * 4000, "(1 +\n mu[0])"]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_code_in_an_expression_is_refused(payload):
    with pytest.raises(ParameterError, match="refused"):
        Coefficients(("1", payload))
    with pytest.raises(ParameterError, match="refused"):
        Theta((payload,))


def test_a_crafted_file_is_refused_and_nothing_runs(tmp_path):
    model = ReducedModel(operators=np.eye(2)[None], rhs=np.ones((1, 2)), theta=("mu[0]",), theta_f=("1",),
                         lower=np.array([1.0]), upper=np.array([2.0]), estimator={"method": "gram",
                                                                                  "gram": np.eye(3)},
                         stability={"kind": "constant", "alpha": 1.0})
    path = tmp_path / "model.h5"
    model.save(path)
    np.testing.assert_allclose(ReducedModel.load(path).solve([1.5]), [1 / 1.5, 1 / 1.5])
    marker = tmp_path / "pwned"
    for payload in [_escape(marker), "__import__('os').system('touch %s')" % marker, "(lambda: 0)()"]:
        with h5py.File(path, "r+") as h:
            h["online"].attrs["theta"] = payload
        with pytest.raises(StoreError, match="refused") as info:
            ReducedModel.load(path).solve([1.5])
        assert str(path) in str(info.value)
        assert not marker.exists()
    # the same text passed in code is refused too, before it can run
    with pytest.raises(ParameterError, match="refused"):
        ReducedModel(operators=np.eye(2)[None], rhs=np.ones((1, 2)), theta=(_escape(marker),), theta_f=("1",),
                     lower=np.array([1.0]), upper=np.array([2.0]), estimator=model.estimator,
                     stability=model.stability)
    assert not marker.exists()


def test_names_round_trip_and_default(tmp_path):
    kw = dict(operators=np.eye(2)[None], rhs=np.ones((1, 2)), theta=("mu[1]",), theta_f=("1",),
              lower=np.array([1.0, 1.0]), upper=np.array([2.0, 2.0]),
              estimator={"method": "gram", "gram": np.eye(3)}, stability={"kind": "constant", "alpha": 1.0})
    assert ReducedModel(**kw).names == ("mu0", "mu1")
    ReducedModel(**kw, names=("kappa", "b")).save(tmp_path / "m.h5")
    assert ReducedModel.load(tmp_path / "m.h5").names == ("kappa", "b")
    with h5py.File(tmp_path / "m.h5", "r+") as h:  # a file of format 1, which had no names
        h.attrs["format"] = "romtk.ReducedModel/1"
        del h["online"].attrs["names"]
    old = ReducedModel.load(tmp_path / "m.h5")
    assert old.names == ("mu0", "mu1")
    np.testing.assert_allclose(old.solve([1.5, 1.25]), np.full(2, 1 / 1.25))
    with pytest.raises(ParameterError, match="mu\\[1\\]"):
        ReducedModel(**dict(kw, lower=np.array([1.0]), upper=np.array([2.0])))


def test_a_value_outside_the_domain_is_an_error_not_nan():
    with pytest.raises(ParameterError, match="not finite"):
        evaluate(("log(mu[0])",), np.array([[1.0], [-1.0]]))
    with pytest.raises(ParameterError, match="mu\\[2\\]"):
        evaluate(("mu[2]",), np.ones((3, 2)))
    with pytest.raises(ParameterError, match="not finite"):  # float arithmetic: no huge integers, no hang
        evaluate(("9 ** 9 ** 9 ** 9 * mu[0]",), np.ones((3, 1)))


# random expression trees: the text and a numpy function built from the same tree agree
_LEAVES = st.one_of(st.integers(0, 2).map(lambda i: (f"mu[{i}]", lambda m, i=i: m[:, i])),
                    st.floats(0.5, 4.0).map(lambda c: (repr(c), lambda m, c=c: np.full(m.shape[0], c))))


def _extend(children):
    ops = {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide}
    binary = st.tuples(st.sampled_from(sorted(ops)), children, children).map(
        lambda t: (f"({t[1][0]} {t[0]} {t[2][0]})", lambda m, t=t: ops[t[0]](t[1][1](m), t[2][1](m))))
    unary = st.tuples(st.sampled_from(["tanh", "sin", "sqrt"]), children).map(
        lambda t: (f"{t[0]}(abs({t[1][0]}))", lambda m, t=t: getattr(np, t[0])(np.abs(t[1][1](m)))))
    # exp with its argument clipped so that deep trees stay finite
    clipped = children.map(lambda c: (f"exp(max(-5, min(5, {c[0]})))",
                                      lambda m, c=c: np.exp(np.maximum(-5, np.minimum(5, c[1](m))))))
    return st.one_of(binary, unary, clipped)


@settings(max_examples=60, deadline=None)
@given(st.recursive(_LEAVES, _extend, max_leaves=8))
def test_random_expressions_agree_with_numpy(tree):
    text, fn = tree
    mu = np.random.default_rng(0).uniform(1.0, 2.0, (5, 3))
    with np.errstate(all="ignore"):
        want = fn(mu)
    if np.all(np.isfinite(want)):
        np.testing.assert_allclose(Coefficients((text,))(mu)[:, 0], want, rtol=1e-13, atol=0)
    else:  # a division by zero: refused with the expression named, never a NaN passed on
        with pytest.raises(ParameterError, match="not finite"):
            Coefficients((text,))(mu)
