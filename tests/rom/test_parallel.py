"""Comm: the serial stand-in behaves as a one-rank communicator; launcher detection; mpi4py path."""

from __future__ import annotations

import numpy as np
import pytest

import rom.parallel as parallel
from rom.errors import RomError
from rom.parallel import Comm, launched_by_mpi, world


def test_serial_collectives_are_identities():
    c = Comm(None)
    assert (c.rank, c.size, c.is_root, c.mpi_comm) == (0, 1, True, None)
    a = np.arange(6.0).reshape(2, 3)
    for op in ("sum", "max", "min"):
        r = c.allreduce(a, op)
        np.testing.assert_array_equal(r, a)
        assert r is not a  # a new array, like MPI's result buffer
    assert c.allreduce(2.5, "max") == 2.5
    assert c.bcast({"x": 1}) == {"x": 1}
    assert c.gather(3) == [3] and c.allgather(3) == [3] and c.alltoall(["a"]) == ["a"]
    c.barrier()
    sub = c.Split(0)
    assert isinstance(sub, Comm) and sub.size == 1


def test_bad_arguments():
    c = Comm(None)
    with pytest.raises(ValueError, match="op="):
        c.allreduce(1.0, "prod")
    with pytest.raises(ValueError, match="color"):
        c.Split(-1)
    with pytest.raises(ValueError, match="one object per rank"):
        c.alltoall([1, 2])


def test_print_on_rank_zero_only(capsys):
    c = Comm(None)
    c.print("hello", 1)
    other = Comm(None)
    other.rank = 1
    other.print("not me")
    assert capsys.readouterr().out == "hello 1\n"


def test_world_is_cached_and_serial_without_launcher(monkeypatch):
    for var in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MPI_LOCALNRANKS", "SLURM_STEP_NUM_TASKS", "PMIX_RANK"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("ROMTK_MPI", raising=False)
    monkeypatch.setattr(parallel, "_WORLD", None)
    w = world()
    assert w.size == 1 and w.mpi_comm is None and world() is w


def test_launcher_detection(monkeypatch):
    for var in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MPI_LOCALNRANKS", "SLURM_STEP_NUM_TASKS", "PMIX_RANK"):
        monkeypatch.delenv(var, raising=False)
    assert not launched_by_mpi()
    monkeypatch.setenv("PMI_SIZE", "1")
    assert not launched_by_mpi()  # mpirun -n 1 runs serially
    monkeypatch.setenv("PMI_SIZE", "4")
    assert launched_by_mpi()


def test_bad_romtk_mpi_setting(monkeypatch):
    monkeypatch.setattr(parallel, "_WORLD", None)
    monkeypatch.setenv("ROMTK_MPI", "yes")
    with pytest.raises(RomError, match="ROMTK_MPI"):
        world()


def test_mpi4py_path_on_comm_self():
    """The mpi4py branch of every collective, on a one-rank MPI communicator."""
    from mpi4py import MPI

    c = Comm(MPI.COMM_SELF)
    assert (c.rank, c.size) == (0, 1) and c.mpi_comm is MPI.COMM_SELF
    a = np.array([[1.0, -2.0], [3.0, 4.0]])
    np.testing.assert_array_equal(c.allreduce(a, "sum"), a)
    np.testing.assert_array_equal(c.allreduce(a.T, "min"), a.T)  # non-contiguous input
    assert c.allreduce(3, "max") == 3
    assert c.bcast("x") == "x" and c.gather(1) == [1] and c.allgather(2) == [2] and c.alltoall([5]) == [5]
    c.barrier()
    sub = c.Split(0)
    assert sub.size == 1 and sub.mpi_comm is not None
    sub.mpi_comm.Free()
