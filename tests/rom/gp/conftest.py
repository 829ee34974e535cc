"""GP tests work on small matrices: one BLAS thread is faster than several that busy-wait
for each other when the machine is shared (tens of times on a loaded 2-core box)."""

from threadpoolctl import threadpool_limits

_limits = threadpool_limits(limits=1, user_api="blas")
