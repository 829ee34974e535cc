"""Convergence rates on unstructured gmsh meshes (Delaunay/Frontal triangles, tetrahedra)."""

import tempfile
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse.linalg as sla

from solvers.fem import Space, diffusion, elasticity, lame, load, post
from solvers.fem.bc import DirichletBC, apply_dirichlet
from solvers.mesh import Mesh
from solvers.mesh.io import read_mesh

PI = np.pi


def _gmsh_unit(dim: int, h: float) -> Mesh:
    """Unit square/cube meshed by gmsh (Frontal-Delaunay, target size h) through read_mesh."""
    shape = "Rectangle(1) = {0, 0, 0, 1, 1};" if dim == 2 else "Box(1) = {0, 0, 0, 1, 1, 1};"
    geo = f'SetFactory("OpenCASCADE");\n{shape}\nMesh.MeshSizeMin = {h};\nMesh.MeshSizeMax = {h};\n'
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "unit.geo"
        path.write_text(geo)
        return read_mesh(path).tag_boundary("boundary")


def _rates(errors, hs):
    e, h = np.asarray(errors), np.asarray(hs)
    return np.polyfit(np.log(h), np.log(e), 1)[0]


def _mesh_size(mesh: Mesh) -> float:
    return (1.0 / mesh.n_cells) ** (1.0 / mesh.dim)


@pytest.mark.parametrize("dim,degree,sizes", [(2, 1, (0.1, 0.05, 0.025)), (2, 2, (0.1, 0.05, 0.025)),
                                              (3, 1, (0.25, 0.17, 0.12)), (3, 2, (0.2, 0.14, 0.1))])
def test_poisson_converges_at_the_optimal_rates_on_gmsh_meshes(dim, degree, sizes):
    ex = lambda x: np.prod(np.sin(PI * x), axis=-1)  # noqa: E731

    def grad(x):
        s, c = np.sin(PI * x), np.cos(PI * x)
        return np.stack([PI * c[..., i] * np.prod(np.delete(s, i, axis=-1), axis=-1) for i in range(dim)], -1)

    l2, h1, hs = [], [], []
    for h in sizes:
        V = Space(_gmsh_unit(dim, h), degree)
        A, b = diffusion(V), load(V, lambda x: dim * PI**2 * ex(x))
        apply_dirichlet(A, b, DirichletBC(V, "boundary"))
        u = sla.spsolve(A.tocsc(), b)
        l2.append(post.errornorm(V, u, ex))
        h1.append(post.errornorm(V, u, exact_grad=grad, kind="H1semi"))
        hs.append(_mesh_size(V.mesh))
    assert abs(_rates(l2, hs) - (degree + 1)) < 0.1
    assert abs(_rates(h1, hs) - degree) < 0.1


@pytest.mark.parametrize("degree,sizes", [(1, (0.1, 0.05, 0.025)), (2, (0.1, 0.05, 0.025))])
def test_plane_strain_elasticity_converges_at_the_optimal_rates_on_gmsh_meshes(degree, sizes):
    lam, mu = lame(1.0, 0.3)
    # u = (sin(pi x) sin(pi y), x y (1-x)(1-y)); body force f = -div sigma(u) computed symbolically
    def exact(x):
        X, Y = x[..., 0], x[..., 1]
        return np.stack([np.sin(PI * X) * np.sin(PI * Y), X * Y * (1 - X) * (1 - Y)], -1)

    def grad(x):
        X, Y = x[..., 0], x[..., 1]
        g = np.empty(x.shape[:-1] + (2, 2))
        g[..., 0, 0] = PI * np.cos(PI * X) * np.sin(PI * Y)
        g[..., 0, 1] = PI * np.sin(PI * X) * np.cos(PI * Y)
        g[..., 1, 0] = (1 - 2 * X) * Y * (1 - Y)
        g[..., 1, 1] = X * (1 - X) * (1 - 2 * Y)
        return g

    def force(x):
        X, Y = x[..., 0], x[..., 1]
        s, c = np.sin(PI * X) * np.sin(PI * Y), np.cos(PI * X) * np.cos(PI * Y)
        # second derivatives of u1 and u2
        u1xx, u1yy, u1xy = -PI**2 * s, -PI**2 * s, PI**2 * c
        u2xx, u2yy, u2xy = -2 * Y * (1 - Y), -2 * X * (1 - X), (1 - 2 * X) * (1 - 2 * Y)
        div_x = u1xx + u2xy  # d/dx (div u)
        div_y = u1xy + u2yy
        f1 = -(mu * (u1xx + u1yy) + (lam + mu) * div_x)
        f2 = -(mu * (u2xx + u2yy) + (lam + mu) * div_y)
        return np.stack([f1, f2], -1)

    l2, h1, hs = [], [], []
    for h in sizes:
        V = Space(_gmsh_unit(2, h), degree, (2,))
        K, f = elasticity(V, lam, mu), load(V, force)
        apply_dirichlet(K, f, DirichletBC(V, "boundary"))
        u = sla.spsolve(K.tocsc(), f)
        l2.append(post.errornorm(V, u, exact))
        h1.append(post.errornorm(V, u, exact_grad=grad, kind="H1semi"))
        hs.append(_mesh_size(V.mesh))
    assert abs(_rates(l2, hs) - (degree + 1)) < 0.1
    assert abs(_rates(h1, hs) - degree) < 0.1
