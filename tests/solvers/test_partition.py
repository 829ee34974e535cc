"""Recursive coordinate bisection: balanced, complete, deterministic, compact."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rom.errors import MeshError
from solvers.mesh import box, rectangle
from solvers.mesh.partition import partition_cells, rcb


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 400), st.integers(1, 9), st.integers(0, 2**31 - 1))
def test_rcb_parts_are_balanced_and_cover_every_point(n, nparts, seed):
    nparts = min(nparts, n)
    pts = np.random.default_rng(seed).random((n, 3))
    part = rcb(pts, nparts)
    counts = np.bincount(part, minlength=nparts)
    assert counts.sum() == n and counts.min() >= 1
    assert counts.max() - counts.min() <= nparts  # each bisection rounds by at most one
    np.testing.assert_array_equal(part, rcb(pts.copy(), nparts))


def test_rcb_bisects_a_square_into_halves_along_its_long_side():
    mesh = rectangle(40, 10, upper=(4.0, 1.0), cell_type="quad")
    part = partition_cells(mesh, 2)
    x = mesh.centroids[:, 0]
    assert x[part == 0].max() < x[part == 1].min()


def test_rcb_cut_is_small_on_a_structured_cube():
    mesh = box(12, 12, 12, cell_type="hexahedron")
    part = partition_cells(mesh, 4)
    # a node is shared when its cells lie in more than one part; planar cuts share O(n^2) nodes
    owners = np.zeros((mesh.n_points, 4), dtype=bool)
    owners[mesh.cells.ravel(), np.repeat(part, 8)] = True
    shared = (owners.sum(axis=1) > 1).sum()
    assert shared <= 2 * 13 * 13 + 13  # two orthogonal planes of 13x13 nodes meet on a line


def test_too_many_parts_is_refused():
    with pytest.raises(MeshError, match="nparts"):
        rcb(np.zeros((3, 2)), 4)
