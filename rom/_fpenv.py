"""Subnormal numbers flushed to zero on the calling thread: LAPACK on a nearly diagonal GP
covariance (rom.gp.exact), the POD's products with snapshots that decay through the whole
floating-point range (rom.pod).

A covariance whose length scale is short against the spacing of the inputs (an optimizer
restart drawn near the lower bound) has off-diagonal values that decay through the whole
floating-point range. Its Cholesky factor and inverse then fill with subnormal numbers, which
x86 processors handle in microcode: potrf + potri at N = 2000 took 6.4 s instead of 0.3 s.
Flush-to-zero and denormals-are-zero (MXCSR bits 15 and 6) change results only below 2.2e-308
in absolute value. The mode is per thread and OpenBLAS's worker threads keep their own, so the
calls run on one BLAS thread (threadpoolctl) inside the context. Available on x86-64 Linux
(glibc's fenv_t holds MXCSR at byte 28); elsewhere `available` is False and nothing changes.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import platform
import sys

_FTZ_DAZ = 0x8040
_MXCSR_OFFSET = 28
_FENV_BYTES = 64  # glibc's x86-64 fenv_t has 32; the buffer is larger to be safe


def _libm():
    if sys.platform != "linux" or platform.machine() not in ("x86_64", "AMD64"):
        return None
    try:
        lib = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
        lib.fegetenv.argtypes = lib.fesetenv.argtypes = [ctypes.c_void_p]
        return lib
    except OSError:
        return None


_LIBM = _libm()
available = _LIBM is not None


def mxcsr() -> int:
    """The calling thread's MXCSR (x86-64 Linux only)."""
    buf = ctypes.create_string_buffer(_FENV_BYTES)
    _LIBM.fegetenv(buf)
    return int.from_bytes(buf.raw[_MXCSR_OFFSET:_MXCSR_OFFSET + 4], "little")


def _set(raw: bytes) -> None:
    buf = ctypes.create_string_buffer(raw, _FENV_BYTES)
    _LIBM.fesetenv(buf)


@contextlib.contextmanager
def flush_subnormals():
    """Flush-to-zero on this thread and BLAS/LAPACK on this thread only, restored on exit."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, user_api="blas"), flushed_on_this_thread():
        yield


@contextlib.contextmanager
def flushed_on_this_thread():
    """Flush-to-zero and denormals-are-zero on the calling thread only, restored on exit; a
    no-op where `available` is False. BLAS calls made here keep IEEE subnormals in any worker
    thread they spread to: callers run them on one BLAS thread."""
    if not available:
        yield
        return
    buf = ctypes.create_string_buffer(_FENV_BYTES)
    _LIBM.fegetenv(buf)
    saved = buf.raw
    mx = int.from_bytes(saved[_MXCSR_OFFSET:_MXCSR_OFFSET + 4], "little") | _FTZ_DAZ
    _set(saved[:_MXCSR_OFFSET] + mx.to_bytes(4, "little") + saved[_MXCSR_OFFSET + 4:])
    try:
        yield
    finally:
        _set(saved)
