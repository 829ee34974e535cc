"""Independent agreement with scikit-fem: on the same (distorted) mesh, stiffness matrices,
elasticity matrices and Dirichlet solutions equal scikit-fem's to 1e-10 relative.

The two libraries number dofs differently (P2 edge dofs, interleaved vector components), so
scikit-fem's dofs are matched to ours by their coordinates (basis.doflocs) and component
(basis.split_indices()). On quadrilaterals the stiffness integrand is rational, so both
libraries use the same Gauss rule (order 2k + 2); on simplices every rule used is exact.
"""

import numpy as np
import pytest
import scipy.sparse.linalg as sla
import skfem
from scipy.spatial import cKDTree
from skfem.models.elasticity import linear_elasticity
from skfem.models.poisson import laplace

from solvers.fem import Space, diffusion, elasticity, lame, load
from solvers.fem.bc import DirichletBC, apply_dirichlet
from solvers.mesh import box, rectangle

LAM, MU = lame(2.0, 0.3)
SK = {
    ("triangle", 1): (skfem.MeshTri, skfem.ElementTriP1), ("triangle", 2): (skfem.MeshTri, skfem.ElementTriP2),
    ("tetra", 1): (skfem.MeshTet, skfem.ElementTetP1), ("tetra", 2): (skfem.MeshTet, skfem.ElementTetP2),
    ("quad", 1): (skfem.MeshQuad, skfem.ElementQuad1), ("quad", 2): (skfem.MeshQuad, skfem.ElementQuad2),
}
CASES = list(SK)
ORDER = {1: 4, 2: 6}  # the same quadrature order in both libraries


def distorted(cell, seed=1):
    m = rectangle(5, 4, cell_type=cell) if cell in ("triangle", "quad") else box(3, 3, 2, cell_type=cell)
    inner = ((m.points > 1e-12) & (m.points < 1 - 1e-12)).all(axis=1)
    m.points[inner] += 0.06 * np.random.default_rng(seed).uniform(-1, 1, (inner.sum(), m.dim))
    return m


def bases(cell, k, vector):
    m = distorted(cell)
    MeshT, Elem = SK[(cell, k)]
    e = Elem()
    sk = skfem.Basis(MeshT(m.points.T.copy(), m.cells.T.copy()), skfem.ElementVector(e) if vector else e,
                     intorder=ORDER[k])
    V = Space(m, k, (m.dim,) if vector else ())
    return V, sk


def permutation(V, sk):
    """perm[i] = scikit-fem's index of our dof i, by coordinates and component."""
    ncomp = V.ncomp
    comps = sk.split_indices() if ncomp > 1 else [np.arange(sk.N)]
    perm = np.empty(V.n_dofs, dtype=np.int64)
    for c, idx in enumerate(comps):
        dist, j = cKDTree(sk.doflocs[:, idx].T).query(V.node_coords)
        assert dist.max() < 1e-12  # every node of ours is a dof of theirs
        perm[np.arange(V.n_nodes) * ncomp + c] = idx[j]
    assert len(np.unique(perm)) == V.n_dofs == sk.N
    return perm


def rel(a, b):
    return np.abs(a - b).max() / np.abs(b).max()


@pytest.mark.parametrize("cell,k", CASES)
def test_poisson_stiffness_and_solution_equal_scikit_fems(cell, k):
    V, sk = bases(cell, k, vector=False)
    p = permutation(V, sk)
    K_sk = skfem.asm(laplace, sk).toarray()
    assert rel(diffusion(V, order=ORDER[k]).toarray(), K_sk[np.ix_(p, p)]) < 1e-10

    f = lambda x: 1.0 + x[..., 0] * x[..., 1]  # noqa: E731
    b_sk = skfem.asm(skfem.LinearForm(lambda v, w: (1.0 + w.x[0] * w.x[1]) * v), sk)
    assert rel(load(V, f, order=ORDER[k]), b_sk[p]) < 1e-10
    D = sk.get_dofs(lambda x: x[0] < 1e-12).all()  # u = 0 on the left side
    u_sk = skfem.solve(*skfem.condense(skfem.asm(laplace, sk), b_sk, D=D))
    A, b = diffusion(V, order=ORDER[k]), load(V, f, order=ORDER[k])
    apply_dirichlet(A, b, DirichletBC(V, "left"))
    u = sla.spsolve(A.tocsc(), b)
    assert rel(u, u_sk[p]) < 1e-10


@pytest.mark.parametrize("cell,k", CASES)
def test_elasticity_stiffness_and_solution_equal_scikit_fems(cell, k):
    V, sk = bases(cell, k, vector=True)
    p = permutation(V, sk)
    K_sk = skfem.asm(linear_elasticity(LAM, MU), sk)
    assert rel(elasticity(V, LAM, MU, order=ORDER[k]).toarray(), K_sk.toarray()[np.ix_(p, p)]) < 1e-10

    d = V.mesh.dim
    g = np.arange(1.0, d + 1)  # a constant body force
    b_sk = skfem.asm(skfem.LinearForm(lambda v, w: sum(g[i] * v[i] for i in range(d))), sk)
    D = sk.get_dofs(lambda x: x[0] < 1e-12).all()  # clamped on the left side
    u_sk = skfem.solve(*skfem.condense(K_sk, b_sk, D=D))
    A, b = elasticity(V, LAM, MU, order=ORDER[k]), load(V, g, order=ORDER[k])
    apply_dirichlet(A, b, DirichletBC(V, "left"))
    u = sla.spsolve(A.tocsc(), b)
    assert rel(u, u_sk[p]) < 1e-10
