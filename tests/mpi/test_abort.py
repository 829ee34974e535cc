"""An exception on one rank ends the whole MPI job with its message instead of hanging it."""

import shutil
import subprocess
import sys
import time

CODE = """
from rom.parallel import world
comm = world()
if comm.rank == 1:
    raise RuntimeError("rank one failed on purpose")
comm.barrier()  # rank 0 would wait here forever without the abort
"""


def test_an_error_on_rank_one_aborts_the_job_within_seconds():
    mpiexec = shutil.which("mpiexec")
    assert mpiexec, "mpiexec is missing: run `make mpi` (make test does it)"
    t = time.perf_counter()
    proc = subprocess.run([mpiexec, "-n", "2", sys.executable, "-c", CODE], capture_output=True, text=True,
                          timeout=120)
    elapsed = time.perf_counter() - t
    assert proc.returncode != 0
    assert "rank one failed on purpose" in proc.stderr
    assert elapsed < 60
