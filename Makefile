# Two entry points for a fresh machine: `make demo` and `make test`.
PY      ?= python3
VENV    ?= .venv
VPY     := $(VENV)/bin/python
PIP     := $(VPY) -m pip
# Built MPI/PETSc wheels are kept here so that a second install takes seconds, not minutes.
WHEELS  ?= $(HOME)/.cache/romtk-wheels
MPI4PY_VERSION   ?= 4.1.2
PETSC_VERSION    ?= 3.26.1
PETSC_CONFIGURE_OPTIONS ?= --with-fc=0 --with-cuda=0 --with-debugging=0 COPTFLAGS=-O2 CXXOPTFLAGS=-O2 \
                           --with-blaslapack-lib=-lopenblas

.PHONY: demo test venv sysdeps mpi mpi-sysdeps mpi-wheels bench clean

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

# MPI (Debian's MPICH), then mpi4py, PETSc and petsc4py built against it once (wheels cached).
mpi-sysdeps:
	@command -v mpicc >/dev/null && command -v patchelf >/dev/null && [ -n "$$(ldconfig -p | grep libopenblas)" ] \
	  || (apt-get update -qq && apt-get install -y -qq mpich libmpich-dev libopenblas-dev liblapack-dev patchelf >/dev/null)

mpi-wheels: $(VPY)
	mkdir -p $(WHEELS)
	$(PIP) install -q cython setuptools wheel numpy
	ls $(WHEELS)/mpi4py-$(MPI4PY_VERSION)-*.whl >/dev/null 2>&1 || MPICC=$$(command -v mpicc) \
	  $(PIP) wheel -q --no-binary=mpi4py --no-deps -w $(WHEELS) mpi4py==$(MPI4PY_VERSION)
	ls $(WHEELS)/petsc-$(PETSC_VERSION)-*.whl >/dev/null 2>&1 || PETSC_CONFIGURE_OPTIONS="$(PETSC_CONFIGURE_OPTIONS)" \
	  $(PIP) wheel -q --no-build-isolation --no-deps -w $(WHEELS) petsc==$(PETSC_VERSION)
	$(PIP) install -q --no-deps $(WHEELS)/mpi4py-$(MPI4PY_VERSION)-*.whl $(WHEELS)/petsc-$(PETSC_VERSION)-*.whl
	ls $(WHEELS)/petsc4py-$(PETSC_VERSION)-*.whl >/dev/null 2>&1 || \
	  PETSC_DIR=$$($(VPY) -c "import petsc; print(petsc.get_petsc_dir())") \
	  $(PIP) wheel -q --no-build-isolation --no-deps -w $(WHEELS) petsc4py==$(PETSC_VERSION)
	$(PIP) install -q --no-deps $(WHEELS)/petsc4py-$(PETSC_VERSION)-*.whl
	@# the cached petsc4py wheel points at the PETSc of the venv it was built in: point it at ours
	patchelf --set-rpath '$$ORIGIN/../../petsc/lib' $(VENV)/lib/python3*/site-packages/petsc4py/lib/PETSc*.so

mpi: mpi-sysdeps $(VPY)
	@$(VPY) -c "import mpi4py, petsc4py" 2>/dev/null || $(MAKE) mpi-wheels

test: sysdeps mpi $(VPY)
	$(PIP) install -q -e ".[test]"
	$(VPY) -m pytest -q -m "not mpi"
	timeout 1200 mpiexec -n 2 $(VPY) -m pytest -q -p no:cacheprovider -m mpi tests

bench: venv
	$(PIP) install -q -e ".[bench]"
	$(VPY) cases/benchmarks/assembly.py --json results/bench_assembly.json
	$(VPY) cases/benchmarks/solve.py --json results/bench_solve.json

clean:
	rm -rf $(VENV) results build *.egg-info
