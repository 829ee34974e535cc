"""Shared pytest configuration."""

import os

import numba

# Under mpirun each rank gets one Numba thread (ranks already use the cores).
if int(os.environ.get("PMI_SIZE", os.environ.get("OMPI_COMM_WORLD_SIZE", "1"))) > 1:
    numba.set_num_threads(1)
