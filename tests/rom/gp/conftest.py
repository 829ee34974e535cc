"""Make `rom.gp` the package, not this test folder.

tests/conftest.py puts tests/ on sys.path (rootdir conftest, no __init__.py), so
`import rom` may resolve to the namespace folder tests/rom, and `rom.gp` to this
folder. Load the real rom/gp before any test module imports it.
"""

import importlib.util
import sys
from pathlib import Path

if not hasattr(sys.modules.get("rom.gp"), "GaussianProcess"):
    import rom

    _init = Path(__file__).resolve().parents[3] / "rom" / "gp" / "__init__.py"
    _spec = importlib.util.spec_from_file_location("rom.gp", _init, submodule_search_locations=[str(_init.parent)])
    _mod = importlib.util.module_from_spec(_spec)
    sys.modules["rom.gp"] = _mod
    _spec.loader.exec_module(_mod)
    rom.gp = _mod

# The GP tests work on small matrices: one BLAS thread is faster than several that
# busy-wait for each other when the machine is shared (tens of times on a loaded 2-core box).
from threadpoolctl import threadpool_limits  # noqa: E402

_limits = threadpool_limits(limits=1, user_api="blas")
