"""The RB greedy under `mpiexec -n 2 pytest -m mpi`: the training set is split across ranks
(each rank evaluates the bound on its share, the pieces are gathered), and the greedy picks
the same parameters with the same bounds as the serial greedy, to round-off.

The FOM data are serial on every rank (the reductor works on serial FOM data); verdicts are
reduced over ranks so that all ranks assert the same thing and none hangs.
"""

import numpy as np
import pytest

from rom import _rb_kernels as K
from rom.parallel import Comm, world
from rom.rb import Reductor, greedy
from solvers.problems import ThermalBlock

pytestmark = pytest.mark.mpi
SERIAL = Comm(None)


def _max(value: float) -> float:
    return world().allreduce(float(value), op="max")


def _reductor(tb):
    box = tb.parameter_space
    return Reductor(tb.affine, tb.inner_product, box.lower, box.upper, outputs=[tb.affine.rhs[0]])


def test_two_rank_greedy_picks_the_serial_parameters_with_the_serial_bounds(monkeypatch):
    comm = world()   # serial in a plain pytest run, where the claim holds trivially
    tb = ThermalBlock((2, 2), n=24, comm=SERIAL)
    train = np.random.default_rng(5).uniform(0.1, 1.0, (37, 4))   # odd: the ranks get unequal shares
    serial = greedy(_reductor(tb), train, tol=0.0, max_size=12, comm=SERIAL)

    evaluated = []
    solve = K.reduced_solve

    def counting_solve(theta, theta_f, ops, rhs):
        evaluated.append(theta.shape[0])
        return solve(theta, theta_f, ops, rhs)

    monkeypatch.setattr(K, "reduced_solve", counting_solve)
    dist = greedy(_reductor(tb), train, tol=0.0, max_size=12, comm=comm)
    monkeypatch.undo()

    # each rank evaluated only its own share of the training set at every greedy step
    share = len(range(comm.rank, len(train), comm.size))
    assert _max(abs(max(evaluated) - share)) == 0 and _max(abs(min(evaluated) - share)) == 0

    picks = [h["index"] for h in dist.history]
    assert _max(picks != [h["index"] for h in serial.history]) == 0
    assert all(p == picks for p in comm.allgather(picks))            # every rank chose the same parameters
    rel = np.abs(dist.max_estimates - serial.max_estimates) / serial.max_estimates
    assert _max(rel.max()) <= 1e-12

    # the final models agree too: same bounds on parameters outside the training set
    test = np.random.default_rng(6).uniform(0.1, 1.0, (20, 4))
    b_s, b_d = serial.model.estimate(test), dist.model.estimate(test)
    for key in ("energy", "x_norm", "output"):
        assert _max(np.max(np.abs(b_d[key] - b_s[key]) / np.abs(b_s[key]))) <= 1e-12


def test_two_rank_greedy_stops_at_the_same_tolerance():
    comm = world()
    tb = ThermalBlock((2, 2), n=16, comm=SERIAL)
    train = np.random.default_rng(8).uniform(0.1, 1.0, (24, 4))
    serial = greedy(_reductor(tb), train, tol=1e-4, relative=True, max_size=30, comm=SERIAL)
    dist = greedy(_reductor(tb), train, tol=1e-4, relative=True, max_size=30, comm=comm)
    assert _max(abs(dist.model.size - serial.model.size)) == 0
    assert _max(abs(len(dist.history) - len(serial.history))) == 0
