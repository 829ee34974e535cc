"""Distributed full-order models equal serial ones (run under `mpiexec -n 2 pytest -m mpi`).

Every rank builds the serial reference too (Comm(None)) and compares its own rows; the
verdict is reduced over ranks so that all ranks assert the same thing and none hangs.
"""

import tempfile
from pathlib import Path

import numpy as np
import pytest

from rom.parallel import Comm, world
from solvers.fem import Space, diffusion, elasticity, lame
from solvers.linalg import LinearSolver
from solvers.mesh import Mesh, box, rectangle
from solvers.mesh.io import read_mesh
from solvers.problems import Heat, LinearElasticity, NonlinearHeat, ThermalBlock, linear_conductivity

pytestmark = pytest.mark.mpi
SERIAL = Comm(None)


def _max(value: float) -> float:
    return world().allreduce(float(value), op="max")


def _compare(space_dist, u_dist, u_serial) -> float:
    """Relative difference of a distributed solution (owned rows) and the serial one."""
    full = space_dist.to_serial(space_dist.gather(u_dist))
    return _max(np.linalg.norm(full - u_serial) / np.linalg.norm(u_serial))


def _gmsh_square(h: float) -> Mesh:
    """Unstructured unit square from gmsh (deterministic, so every rank gets the same mesh)."""
    geo = f'SetFactory("OpenCASCADE");\nRectangle(1) = {{0, 0, 0, 1, 1}};\nMesh.MeshSizeMax = {h};\n'
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "square.geo"
        path.write_text(geo)
        return read_mesh(path).tag_boundary("boundary")


@pytest.mark.parametrize("degree", [1, 2])
def test_distributed_matrix_rows_equal_the_serial_matrix(degree):
    mesh = rectangle(9, 7)
    V, Vs = Space(mesh, degree), Space(mesh, degree, comm=SERIAL)
    A, As = diffusion(V, 1.0 + np.arange(mesh.n_cells) % 3), diffusion(Vs, 1.0 + np.arange(mesh.n_cells) % 3)
    # permute the serial matrix into the distributed numbering and keep this rank's rows
    perm = np.arange(Vs.n_dofs) if V.serial_nodes is None else V.serial_nodes
    a, b = V.owned_range
    ref = As[perm][:, perm][a:b]
    assert _max(abs(A - ref).max()) < 1e-13
    # re-assembly into the same matrix: P1 takes the symmetric scatter and its mirror pass there
    A.data[:] = np.nan
    diffusion(V, 1.0 + np.arange(mesh.n_cells) % 3, out=A)
    assert _max(abs(A - ref).max()) < 1e-13
    assert ("symmetric_pattern" in V.__dict__) == (degree == 1)


@pytest.mark.parametrize("method", ["direct", "cg"])
@pytest.mark.parametrize("mesh_kind", ["structured", "gmsh"])
def test_thermal_block_equals_serial(method, mesh_kind):
    mesh = rectangle(30, 30) if mesh_kind == "structured" else _gmsh_square(0.04)
    mu = np.linspace(0.1, 1.0, 9)
    p = ThermalBlock((3, 3), mesh=mesh, solver=LinearSolver(method, "amg", rtol=1e-12))
    ps = ThermalBlock((3, 3), mesh=mesh, comm=SERIAL)
    tol = 1e-10 if method == "direct" else 1e-8
    assert _compare(p.space, p.solve(mu), ps.solve(mu)) < tol
    assert abs(p.output(p.solve(mu)) - ps.output(ps.solve(mu))) < 1e-10 * abs(ps.output(ps.solve(mu)))


def test_heat_with_robin_and_neumann_equals_serial():
    mesh = rectangle(20, 16, cell_type="quad")
    kw = dict(degree=2, conductivity=2.0, source=lambda x: np.sin(3 * x[..., 0]), dirichlet={"left": 1.0},
              neumann={"top": 0.5}, robin={"right": (4.0, 3.0)})
    p, ps = Heat(mesh, **kw), Heat(mesh, comm=SERIAL, **kw)
    assert _compare(p.space, p.solve(), ps.solve()) < 1e-10


def test_nonlinear_heat_equals_serial():
    k, dk = linear_conductivity(1.0, 0.8)
    mesh = rectangle(16, 16)
    kw = dict(degree=2, source=5.0, dirichlet={"left": 1.0, "right": 0.0})
    p, ps = NonlinearHeat(mesh, k, dk, **kw), NonlinearHeat(mesh, k, dk, comm=SERIAL, **kw)
    T, Ts = p.solve(rtol=1e-12), ps.solve(rtol=1e-12)
    assert _compare(p.space, T, Ts) < 1e-10
    assert len(p.last.history) == len(ps.last.history)


@pytest.mark.parametrize("dim", [2, 3])
def test_elasticity_equals_serial_with_direct_and_gamg(dim):
    mesh = rectangle(24, 8, upper=(3.0, 1.0)) if dim == 2 else box(8, 4, 4, upper=(2.0, 1.0, 1.0))
    kw = dict(degree=1, E=1.0, nu=0.3, body_force=[0.0] * (dim - 1) + [-1.0],
              dirichlet={"left": [0.0] * dim})
    ps = LinearElasticity(mesh, comm=SERIAL, **kw)
    us = ps.solve()
    p = LinearElasticity(mesh, **kw)
    assert _compare(p.space, p.solve(), us) < 1e-10
    pi = LinearElasticity(mesh, solver=LinearSolver("cg", "amg", rtol=1e-10), **kw)
    assert _compare(pi.space, pi.solve(), us) < 1e-7
    s = pi.stress(pi.solve())
    np.testing.assert_allclose(s, ps.stress(us), atol=1e-6 * np.abs(s).max())


def test_distributed_elasticity_matrix_has_rigid_body_kernel():
    V = Space(box(4, 4, 4), 1, (3,))
    lam, mu = lame(1.0, 0.25)
    from solvers.linalg import rigid_body_modes

    R = rigid_body_modes(V.node_coords)
    assert _max(np.abs(elasticity(V, lam, mu) @ R).max()) < 1e-12
