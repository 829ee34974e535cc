"""One communicator interface for serial runs and for runs under `mpirun`.

Every romtk module that may run distributed is written against `Comm`. On one
process (a laptop, a test) `Comm` is a serial stand-in whose collectives are the
identity; under `mpirun -n P` it wraps mpi4py's communicator. Serial is therefore
the case `size == 1`, not a separate code path.

Which one `world()` returns:

* ``ROMTK_MPI=0`` in the environment: always serial;
* ``ROMTK_MPI=1``: mpi4py's COMM_WORLD (an error if mpi4py is missing);
* otherwise mpi4py's COMM_WORLD when the process was started by an MPI launcher
  (``mpirun``/``mpiexec``/``srun`` set one of the environment variables below)
  and mpi4py imports; the serial stand-in in every other case. mpi4py is not
  imported (so MPI is not initialized) in a plain serial run.

Array collectives (`allreduce` on an ndarray) use mpi4py's buffer interface
(no serialization); object collectives (`bcast`, `gather`, `allgather`) serialize Python
objects through mpi4py, between ranks of one job only: nothing romtk reads from a file.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from typing import Any

import numpy as np

from rom.errors import RomError

__all__ = ["Comm", "world", "launched_by_mpi"]

# Environment variables that MPI launchers set in the processes they start.
_LAUNCHER_VARS = (
    "OMPI_COMM_WORLD_SIZE",  # Open MPI
    "PMI_SIZE",  # MPICH / Hydra, Intel MPI
    "PMIX_RANK",  # PMIx (Open MPI 5, Slurm)
    "MPI_LOCALNRANKS",  # MPICH
    "SLURM_STEP_NUM_TASKS",  # srun (only when an MPI step is launched)
)

_OPS = ("sum", "max", "min")


def launched_by_mpi() -> bool:
    """True when an MPI launcher started this process with more than one rank."""
    for var in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MPI_LOCALNRANKS", "SLURM_STEP_NUM_TASKS"):
        value = os.environ.get(var)
        if value is not None:
            try:
                if int(value) > 1:
                    return True
            except ValueError:
                pass
    return "PMIX_RANK" in os.environ and "OMPI_COMM_WORLD_SIZE" in os.environ


def _check_op(op: str) -> str:
    if op not in _OPS:
        raise ValueError(f"op={op!r} is not a reduction; use one of {_OPS}")
    return op


class Comm:
    """A communicator: mpi4py's when `mpi_comm` is given, serial when it is None.

    Attributes
    ----------
    rank, size : int
        This process's rank and the number of ranks.
    mpi_comm : mpi4py.MPI.Comm or None
        The wrapped communicator, for libraries that need it (petsc4py); None
        in a serial run.
    """

    def __init__(self, mpi_comm=None):
        self.mpi_comm = mpi_comm
        if mpi_comm is None:
            self.rank, self.size = 0, 1
        else:
            self.rank, self.size = int(mpi_comm.Get_rank()), int(mpi_comm.Get_size())

    def __repr__(self) -> str:
        kind = "serial" if self.mpi_comm is None else "mpi"
        return f"Comm({kind}, rank={self.rank}, size={self.size})"

    @property
    def is_root(self) -> bool:
        """True on rank 0, the rank that prints and writes metadata."""
        return self.rank == 0

    # ---------------------------------------------------------------- collectives
    def allreduce(self, value, op: str = "sum"):
        """Reduce `value` over all ranks and return the result on every rank.

        value : ndarray (any shape; reduced elementwise, a new array is returned)
            or a Python/numpy scalar (a scalar is returned).
        op : "sum", "max" or "min".
        """
        _check_op(op)
        if isinstance(value, np.ndarray):
            if self.mpi_comm is None:
                return value.copy()
            from mpi4py import MPI

            send = np.ascontiguousarray(value)
            recv = np.empty_like(send)
            mpi_op = {"sum": MPI.SUM, "max": MPI.MAX, "min": MPI.MIN}[op]
            self.mpi_comm.Allreduce(send, recv, op=mpi_op)
            return recv
        if self.mpi_comm is None:
            return value
        from mpi4py import MPI

        mpi_op = {"sum": MPI.SUM, "max": MPI.MAX, "min": MPI.MIN}[op]
        return self.mpi_comm.allreduce(value, op=mpi_op)

    def bcast(self, obj: Any, root: int = 0) -> Any:
        """Return rank `root`'s `obj` on every rank."""
        if self.mpi_comm is None:
            return obj
        return self.mpi_comm.bcast(obj, root=root)

    def gather(self, obj: Any, root: int = 0) -> list | None:
        """List of every rank's `obj` (in rank order) on `root`, None elsewhere."""
        if self.mpi_comm is None:
            return [obj]
        return self.mpi_comm.gather(obj, root=root)

    def allgather(self, obj: Any) -> list:
        """List of every rank's `obj`, in rank order, on every rank."""
        if self.mpi_comm is None:
            return [obj]
        return self.mpi_comm.allgather(obj)

    def alltoall(self, objs: list) -> list:
        """Send `objs[r]` to rank r; return the list of what each rank sent here."""
        if len(objs) != self.size:
            raise ValueError(f"alltoall needs one object per rank ({self.size}), got {len(objs)}")
        if self.mpi_comm is None:
            return list(objs)
        return self.mpi_comm.alltoall(objs)

    def barrier(self) -> None:
        """Wait until every rank reaches this call."""
        if self.mpi_comm is not None:
            self.mpi_comm.Barrier()

    def Split(self, color: int, key: int | None = None) -> "Comm":
        """Sub-communicator of the ranks that pass the same `color` (an int >= 0).

        Ranks are ordered by `key` (default: their rank here). Used to split
        parameters across groups of ranks, each group running one FOM.
        """
        if int(color) < 0:
            raise ValueError(f"color={color} must be >= 0")
        if self.mpi_comm is None:
            return Comm(None)
        return Comm(self.mpi_comm.Split(int(color), self.rank if key is None else int(key)))

    def abort(self, code: int = 1) -> None:
        """Stop every rank of the job (used when one rank raised)."""
        if self.mpi_comm is None:
            raise SystemExit(code)
        self.mpi_comm.Abort(code)

    # ---------------------------------------------------------------- output
    def print(self, *args, **kwargs) -> None:
        """`print` on rank 0 only (flushes, so output under mpirun is not held back)."""
        if self.rank == 0:
            kwargs.setdefault("flush", True)
            print(*args, **kwargs)


_WORLD: Comm | None = None


def _abort_on_exception(comm: Comm):
    """Excepthook: print the traceback, then abort every rank instead of hanging."""
    def hook(exc_type, exc, tb):
        # one write, then a pause: the launcher must forward the message before Abort tears the
        # job down (a line-by-line traceback was seen cut after its first line)
        text = "".join(traceback.format_exception(exc_type, exc, tb))
        sys.stderr.write(f"[rank {comm.rank} of {comm.size}] {text}")
        sys.stderr.flush()
        time.sleep(0.5)
        comm.abort(1)

    return hook


def world() -> Comm:
    """The process-wide communicator (created on first call, then cached)."""
    global _WORLD
    if _WORLD is not None:
        return _WORLD
    choice = os.environ.get("ROMTK_MPI", "").strip()
    if choice not in ("", "0", "1"):
        raise RomError(f"ROMTK_MPI={choice!r}; set it to 0 (serial), 1 (mpi4py) or leave it unset")
    use_mpi = choice == "1" or (choice == "" and launched_by_mpi())
    if use_mpi:
        try:
            from mpi4py import MPI
        except ImportError as exc:
            if choice == "1":
                raise RomError("ROMTK_MPI=1 but mpi4py does not import; `pip install mpi4py`") from exc
            MPI = None
        _WORLD = Comm(MPI.COMM_WORLD if MPI is not None else None)
        if _WORLD.size > 1:
            sys.excepthook = _abort_on_exception(_WORLD)
            if "NUMBA_NUM_THREADS" not in os.environ:  # ranks already use the cores
                import numba

                numba.set_num_threads(1)
    else:
        _WORLD = Comm(None)
    return _WORLD
