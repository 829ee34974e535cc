"""Gauss quadrature on the reference cells: exact on the polynomials of its order."""

import itertools
from math import factorial

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from solvers.fem import gauss

SIMPLICES = {"line": 1, "triangle": 2, "tetra": 3}
TENSORS = {"line": 1, "quad": 2, "hexahedron": 3}
VOLUME = {"line": 1.0, "triangle": 0.5, "tetra": 1 / 6, "quad": 1.0, "hexahedron": 1.0}


def simplex_monomial_integral(exps) -> float:
    """int over the unit simplex of prod x_i^a_i = prod a_i! / (sum a_i + d)!"""
    return np.prod([factorial(a) for a in exps]) / factorial(sum(exps) + len(exps))


def cube_monomial_integral(exps) -> float:
    """int over [0,1]^d of prod x_i^a_i = prod 1/(a_i + 1)"""
    return float(np.prod([1.0 / (a + 1) for a in exps]))


def integrate(rule, exps) -> float:
    return float(rule.weights @ np.prod(rule.points ** np.array(exps), axis=1))


@settings(max_examples=40, deadline=None)
@given(order=st.integers(0, 8), cell=st.sampled_from(["triangle", "tetra"]))
def test_simplex_rules_are_exact_on_every_monomial_of_total_degree_up_to_the_order(order, cell):
    rule = gauss(cell, order)
    d = SIMPLICES[cell]
    for exps in itertools.product(range(order + 1), repeat=d):
        if sum(exps) <= order:
            assert integrate(rule, exps) == pytest.approx(simplex_monomial_integral(exps), rel=1e-13, abs=1e-15)


@settings(max_examples=40, deadline=None)
@given(order=st.integers(0, 8), cell=st.sampled_from(["line", "quad", "hexahedron"]))
def test_tensor_rules_are_exact_on_every_monomial_of_degree_up_to_the_order_per_direction(order, cell):
    rule = gauss(cell, order)
    d = TENSORS[cell]
    for exps in itertools.product(range(order + 1), repeat=d):
        assert integrate(rule, exps) == pytest.approx(cube_monomial_integral(exps), rel=1e-13, abs=1e-15)


@pytest.mark.parametrize("cell", ["line", "triangle", "tetra", "quad", "hexahedron"])
@pytest.mark.parametrize("order", range(9))
def test_weights_are_positive_sum_to_the_reference_volume_and_points_lie_inside(cell, order):
    rule = gauss(cell, order)
    assert (rule.weights > 0).all()
    assert rule.weights.sum() == pytest.approx(VOLUME[cell], rel=1e-14)
    x = rule.points
    assert (x >= -1e-14).all() and (x <= 1 + 1e-14).all()
    if cell in SIMPLICES:
        assert (x.sum(axis=1) <= 1 + 1e-14).all()


@pytest.mark.parametrize("cell,order", [("triangle", 2), ("triangle", 4), ("tetra", 2), ("quad", 3),
                                        ("hexahedron", 3), ("line", 5)])
def test_rules_are_not_exact_one_degree_beyond_the_order_they_were_built_for(cell, order):
    """The exactness tests above are not vacuous: x^(order+1) or x^(order+2) (Gauss rules of
    odd order are exact one degree higher) is integrated with an O(1) error."""
    rule = gauss(cell, order)
    d = rule.points.shape[1]
    errs = []
    for k in (order + 1, order + 2):
        exps = (k,) + (0,) * (d - 1)
        ref = simplex_monomial_integral(exps) if cell in ("triangle", "tetra") else cube_monomial_integral(exps)
        errs.append(abs(integrate(rule, exps) - ref))
    assert max(errs) > 1e-8
