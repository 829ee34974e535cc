# Two entry points for a fresh machine: `make demo` and `make test`.
PY      ?= python3
VENV    ?= .venv
VPY     := $(VENV)/bin/python
PIP     := $(VPY) -m pip

.PHONY: demo test venv sysdeps bench clean

# gmsh's wheel links the system's X11/GL client libraries; install them only when missing.
sysdeps:
	@$(PY) -c "import ctypes.util as u, sys; sys.exit(0 if all(u.find_library(n) for n in ('GLU','Xcursor','Xft','Xinerama')) else 1)" \
	  || (apt-get update -qq && apt-get install -y -qq libglu1-mesa libxcursor1 libxft2 libxinerama1 >/dev/null)

$(VPY):
	$(PY) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

venv: sysdeps $(VPY)
	$(PIP) install -q -e .

demo: venv
	$(VPY) cases/thermal_block.py --out results/thermal_block

test: sysdeps $(VPY)
	$(PIP) install -q -e ".[test]"
	$(VPY) -m pytest -q

bench: venv
	$(PIP) install -q -e ".[bench]"
	$(VPY) cases/benchmarks/assembly.py --json results/bench_assembly.json
	$(VPY) cases/benchmarks/solve.py --json results/bench_solve.json

clean:
	rm -rf $(VENV) results build *.egg-info
