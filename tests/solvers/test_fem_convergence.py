"""Manufactured solutions: Lagrange P1/Q1 and P2/Q2 converge at the rates of the theory
(L2: k + 1, H1: k), in 2D and 3D, for heat and linear elasticity, on structured meshes and
on meshes with randomly moved interior vertices; the patch test passes to round-off."""

import numpy as np
import pytest
import scipy.sparse.linalg as sla

from solvers.fem import Space, diffusion, elasticity, lame, load, post
from solvers.fem.bc import DirichletBC, apply_dirichlet
from solvers.mesh import Mesh, box, rectangle

PI = np.pi
LAM, MU = lame(1.0, 0.3)
A = np.array([1.0, -0.5, 0.75])  # displacement directions of the elastic solution


def unit(cell: str, n: int, perturb: float = 0.0, coarse: int = 0, seed: int = 0) -> Mesh:
    """Unit square/cube with n cells per side.

    perturb > 0: the interior vertices of a coarse mesh (`coarse` cells per side, dividing n)
    are moved at random by up to `perturb` coarse cell widths (seeded), and the n-mesh is its
    uniform refinement: every fine cell is mapped by the coarse cell's affine (simplices) or
    multilinear (quads/hexes) map. The meshes of a sequence are then nested and equally
    irregular, so rates are not biased by a distortion that changes with n.
    """
    m = rectangle(n, n, cell_type=cell) if cell in ("triangle", "quad") else box(n, n, n, cell_type=cell)
    if not perturb:
        return m
    d, nc = m.dim, coarse
    rng = np.random.default_rng(seed)
    shift = perturb / nc * rng.uniform(-1, 1, (nc + 1,) * d + (d,))
    edge = np.zeros((nc + 1,) * d, dtype=bool)
    for a in range(d):
        edge[(slice(None),) * a + (0,)] = edge[(slice(None),) * a + (nc,)] = True
    shift[edge] = 0.0  # the boundary stays where it is
    y = m.points * nc
    i0 = np.minimum(np.floor(y + 1e-9).astype(int), nc - 1)  # coarse cell of each fine vertex
    s = y - i0  # local coordinates in [0, 1]^d
    corner = lambda e: shift[tuple((i0 + e).T)]  # noqa: E731
    disp = np.zeros_like(m.points)
    if cell in ("quad", "hexahedron"):  # multilinear interpolation
        for e in np.ndindex(*(2,) * d):
            e = np.array(e)
            disp += np.prod(np.where(e, s, 1 - s), axis=1)[:, None] * corner(e)
    else:  # piecewise linear on the Kuhn/Freudenthal split (diagonal from corner 0 to corner 1...1)
        order = np.argsort(-s, axis=1)
        ss = np.take_along_axis(s, order, axis=1)
        ss = np.concatenate([np.ones((len(s), 1)), ss, np.zeros((len(s), 1))], axis=1)
        e = np.zeros_like(i0)
        for j in range(d + 1):
            disp += (ss[:, j] - ss[:, j + 1])[:, None] * corner(e)
            if j < d:
                e[np.arange(len(e)), order[:, j]] += 1
    m.points[:] += disp
    return m


# -- the exact solutions --------------------------------------------------------------------
# phi = sin(b.x + c) + exp(e.x): smooth, not aligned with the mesh, and with derivatives of
# moderate size, so that the coarse meshes below are already in the asymptotic range.
B, C, E = np.array([1.3, -0.9, 1.1]), 0.4, np.array([0.5, 0.7, -0.6])


def phi(x):
    d = x.shape[-1]
    return np.sin(x @ B[:d] + C) + np.exp(x @ E[:d])


def phi_grad(x):
    d = x.shape[-1]
    return np.cos(x @ B[:d] + C)[..., None] * B[:d] + np.exp(x @ E[:d])[..., None] * E[:d]


def phi_hess(x):
    d = x.shape[-1]
    return (-np.sin(x @ B[:d] + C)[..., None, None] * np.outer(B[:d], B[:d])
            + np.exp(x @ E[:d])[..., None, None] * np.outer(E[:d], E[:d]))


def kappa(x):  # variable conductivity
    return 1.0 + x[..., 0] ** 2


def heat_source(x):
    """f = -div(kappa grad phi) = -kappa lap phi - 2 x_0 d_0 phi."""
    return -kappa(x) * np.trace(phi_hess(x), axis1=-2, axis2=-1) - 2 * x[..., 0] * phi_grad(x)[..., 0]


def disp(x):
    d = x.shape[-1]
    return phi(x)[..., None] * A[:d]


def disp_grad(x):
    d = x.shape[-1]
    return A[:d, None] * phi_grad(x)[..., None, :]


def body_force(x):
    """f = -div sigma = -(mu lap u + (lam + mu) grad div u) for u = a phi."""
    d = x.shape[-1]
    H = phi_hess(x)
    lap = np.trace(H, axis1=-2, axis2=-1)
    grad_div = np.einsum("...ic,c->...i", H, A[:d])
    return -(MU * lap[..., None] * A[:d] + (LAM + MU) * grad_div)


def solve(K, b, bcs):
    """Lift the Dirichlet conditions, then a sparse LU with a symmetric fill-reducing ordering."""
    apply_dirichlet(K, b, bcs)
    return sla.splu(K.tocsc(), permc_spec="MMD_AT_PLUS_A").solve(b)


def heat_errors(mesh, k):
    V = Space(mesh, k)
    u = solve(diffusion(V, kappa), load(V, heat_source), DirichletBC(V, "boundary", phi))
    return post.errornorm(V, u, phi), post.errornorm(V, u, exact_grad=phi_grad, kind="H1semi")


def elasticity_errors(mesh, k):
    V = Space(mesh, k, (mesh.dim,))
    u = solve(elasticity(V, LAM, MU), load(V, body_force), DirichletBC(V, "boundary", disp))
    return post.errornorm(V, u, disp), post.errornorm(V, u, exact_grad=disp_grad, kind="H1semi")


def rates(errors, ns):
    """Least-squares slope of log(error) against log(h), h = 1/n."""
    e = np.asarray(errors)
    return [np.polyfit(np.log(1.0 / np.asarray(ns)), np.log(e[:, j]), 1)[0] for j in range(e.shape[1])]


# (cell, degree, cells per side): small enough for the whole file to run in well under a minute
# (cell, degree, cells per side, cells per side of the coarse random mesh refined into them)
CASES = [
    ("triangle", 1, (16, 32, 64), 4), ("triangle", 2, (4, 8, 16), 4),
    ("quad", 1, (8, 16, 32), 4), ("quad", 2, (4, 8, 16), 4),
    ("tetra", 1, (4, 8, 16), 4), ("tetra", 2, (4, 8), 4),
    ("hexahedron", 1, (4, 8, 16), 4), ("hexahedron", 2, (3, 6), 3),
]
MEASURED = {}


@pytest.mark.parametrize("perturb", [0.0, 0.3], ids=["structured", "unstructured"])
@pytest.mark.parametrize("cell,k,ns,coarse", CASES)
@pytest.mark.parametrize("physics", ["heat", "elasticity"])
def test_lagrange_k_converges_at_rate_k_plus_1_in_L2_and_k_in_H1(physics, cell, k, ns, coarse, perturb):
    errors = heat_errors if physics == "heat" else elasticity_errors
    errs = [errors(unit(cell, n, perturb, coarse=coarse), k) for n in ns]
    r_l2, r_h1 = rates(errs, ns)
    MEASURED[(physics, cell, k, perturb)] = (r_l2, r_h1)
    assert abs(r_l2 - (k + 1)) < 0.1, errs
    assert abs(r_h1 - k) < 0.1, errs


# -- patch test ---------------------------------------------------------------------------------
def _polynomial(dim, k, seed):
    """Random polynomial of total degree k in dim variables: value, gradient and Laplacian."""
    rng = np.random.default_rng(seed)
    c0, g, Q = rng.standard_normal(), rng.standard_normal(dim), rng.standard_normal((dim, dim))
    Q = (Q + Q.T) / 2 if k == 2 else np.zeros((dim, dim))
    val = lambda x: c0 + x @ g + np.einsum("...i,ij,...j->...", x, Q, x)  # noqa: E731
    grad = lambda x: g + 2 * x @ Q  # noqa: E731
    return val, grad, Q


PATCH = [(c, k) for c in ("triangle", "quad", "tetra", "hexahedron") for k in (1, 2)]


@pytest.mark.parametrize("cell,k", PATCH)
def test_heat_patch_test_reproduces_a_polynomial_of_the_space_to_round_off(cell, k):
    """-lap u = f with u of degree k and Dirichlet data u on the boundary: the discrete
    solution is u itself on a distorted mesh (quadrature exact for the integrands)."""
    mesh = unit(cell, 3, perturb=0.3, coarse=3)
    val, grad, Q = _polynomial(mesh.dim, k, seed=7)
    V = Space(mesh, k)
    order = 2 * k + 2  # exact for grad u . adj(J) grad v on trilinear hexes
    f = -2 * np.trace(Q)
    u = solve(diffusion(V, 1.0, order=order), load(V, f, order=order), DirichletBC(V, "boundary", val))
    exact = val(V.node_coords)
    assert np.abs(u - exact).max() < 1e-11 * np.abs(exact).max()
    assert post.errornorm(V, u, val, grad, kind="H1") < 1e-11


@pytest.mark.parametrize("cell,k", PATCH)
def test_elasticity_patch_test_reproduces_a_polynomial_displacement_to_round_off(cell, k):
    mesh = unit(cell, 3, perturb=0.3, coarse=3)
    d = mesh.dim
    comps = [_polynomial(d, k, seed=11 + c) for c in range(d)]
    u_exact = lambda x: np.stack([p[0](x) for p in comps], -1)  # noqa: E731
    # f = -(mu lap u + (lam + mu) grad div u), constant for quadratic u
    lap = np.array([2 * np.trace(p[2]) for p in comps])
    grad_div = np.array([sum(2 * comps[c][2][c, i] for c in range(d)) for i in range(d)])
    f = -(MU * lap + (LAM + MU) * grad_div)
    V = Space(mesh, k, (d,))
    order = 2 * k + 2
    u = solve(elasticity(V, LAM, MU, order=order), load(V, f, order=order), DirichletBC(V, "boundary", u_exact))
    exact = u_exact(V.node_coords).ravel()
    assert np.abs(u - exact).max() < 1e-11 * np.abs(exact).max()


@pytest.mark.parametrize("cell,k", [("triangle", 1), ("quad", 2)])
def test_patch_test_is_not_vacuous_a_polynomial_of_higher_degree_is_not_reproduced(cell, k):
    mesh = unit(cell, 3, perturb=0.3, coarse=3)
    V = Space(mesh, k)
    val = lambda x: x[..., 0] ** (k + 1)  # noqa: E731
    f = lambda x: -(k + 1) * k * x[..., 0] ** (k - 1)  # noqa: E731  (-lap val)
    u = solve(diffusion(V), load(V, f), DirichletBC(V, "boundary", val))
    assert np.abs(u - val(V.node_coords)).max() > 1e-6


def test_print_measured_rates():
    """Writes the table of measured rates (pytest -s shows it); asserts they were measured."""
    for key, (a, b) in sorted(MEASURED.items(), key=str):
        print(f"{key[0]:10s} {key[1]:10s} k={key[2]} perturb={key[3]:.2f}  L2 {a:.3f}  H1 {b:.3f}")
    assert all(np.isfinite(v).all() for v in MEASURED.values())
