"""Local bases by clustering (cards B and C): dissimilarities, k-medoids, k-subspaces,
local POD, classifier, efficiency proxy and the switching local Galerkin driver."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.linalg as sla
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from rom.clustering import (
    ClusterClassifier,
    ClusteringError,
    KMedoids,
    KSubspaces,
    LocalBases,
    LocalGalerkinROM,
    efficiency_criterion,
    euclidean_dissimilarity,
    gram_matrix,
    parameter_dissimilarity,
    sine_dissimilarity,
    subspace_dissimilarity,
)
from rom.errors import RomError, ShapeError
from rom.parallel import Comm
from rom.pod import pod

SERIAL = Comm(None)


def bumps(m, rng, n=400):
    """Card C data: a exp(-((x - mu)/0.03)^2), mu ~ U[0.2, 0.8], a = 10^U[-1, 1]."""
    x = np.linspace(0.0, 1.0, n)[:, None]
    mu, a = rng.uniform(0.2, 0.8, m), 10.0 ** rng.uniform(-1.0, 1.0, m)
    return a * np.exp(-(((x - mu) / 0.03) ** 2)), np.column_stack([mu, np.log10(a)])


def mass_1d(n):
    h = 1.0 / (n - 1)
    M = sp.diags([np.full(n - 1, h / 6), np.full(n, 2 * h / 3), np.full(n - 1, h / 6)], [-1, 0, 1]).tolil()
    M[0, 0] = M[-1, -1] = h / 3
    return M.tocsr()


def rel_errors(T, Phi):
    """Relative Euclidean projection errors of the columns of T onto orthonormal Phi (direct residuals)."""
    return np.linalg.norm(T - Phi @ (Phi.T @ T), axis=0) / np.linalg.norm(T, axis=0)


# ---------------------------------------------------------------------------- card C
def test_card_c_sine_kmedoids_is_five_times_better_than_euclidean_and_global_pod():
    errs = {"sine": [], "euclidean": [], "global": []}
    for seed in (0, 2):
        rng = np.random.default_rng(seed)
        S, _ = bumps(400, rng)
        T, _ = bumps(200, rng)
        for dis in ("sine", "euclidean"):
            lb = LocalBases(5, 6, dissimilarity=dis, n_init=3, comm=SERIAL, random_state=seed).fit(S)
            lab = lb.predict(T)
            # independent check of the errors: direct residuals with each cluster's basis
            e = np.array([rel_errors(T[:, [i]], lb.bases_[k])[0] for i, k in enumerate(lab)])
            np.testing.assert_allclose(lb.projection_errors(T, lab), e, rtol=1e-8, atol=1e-12)
            errs[dis].append(e.mean())
        Phi, _ = np.linalg.svd(S, full_matrices=False)[:2]
        errs["global"].append(rel_errors(T, Phi[:, :6]).mean())
    sine, euc, glob = (float(np.mean(errs[k])) for k in ("sine", "euclidean", "global"))
    assert sine < 0.06  # card: 0.032
    assert 0.4 < euc < 0.6 and 0.5 < glob < 0.7  # card: 0.486, 0.594
    assert 5 * sine <= euc and 5 * sine <= glob


def test_minmax_radius_not_above_kmedoids_and_within_twice_the_optimum():
    rng = np.random.default_rng(3)
    S, _ = bumps(120, rng, n=200)
    D = sine_dissimilarity(S, comm=SERIAL)
    for seed in range(3):
        km = KMedoids(5, random_state=seed).fit(D)
        mm = KMedoids(5, objective="max", random_state=seed).fit(D)
        assert mm.radius_ <= km.radius_ + 1e-15
        assert mm.radius_ == pytest.approx(np.max(np.min(D[:, mm.medoid_indices_], axis=1)))
    # K-center optimum by brute force on a small set: farthest-first guarantees a factor 2
    small = D[:14, :14]
    opt = min(np.max(np.min(small[:, list(c)], axis=1)) for c in itertools.combinations(range(14), 3))
    mm = KMedoids(3, objective="max", random_state=0).fit(small)
    assert opt <= mm.radius_ <= 2 * opt


def test_minmax_max_heldout_error_with_medoids_is_not_above_kmedoids():
    rng = np.random.default_rng(4)
    S, _ = bumps(200, rng, n=200)
    D = sine_dissimilarity(S, comm=SERIAL)
    km = KMedoids(5, random_state=0).fit(D)
    mm = KMedoids(5, objective="max", random_state=0).fit(D)
    # the 1-width with medoid representatives: max sine of a snapshot to its medoid
    assert D[np.arange(200), mm.medoid_indices_[mm.labels_]].max() <= D[np.arange(200), km.medoid_indices_[km.labels_]].max()


# ---------------------------------------------------------------------------- dissimilarities
def test_sine_of_a_tiny_known_angle_is_accurate_and_scale_invariant():
    n = 50
    e1, e2 = np.eye(n)[:, 0], np.eye(n)[:, 1]
    for theta in (1e-3, 1e-6, 1e-9, 1e-12):
        U = np.column_stack([e1, np.cos(theta) * e1 + np.sin(theta) * e2])
        d = sine_dissimilarity(U, comm=SERIAL)[0, 1]
        assert d == pytest.approx(np.sin(theta), rel=1e-6)  # sqrt(1 - c^2) would give 0 below 1e-8
    rng = np.random.default_rng(0)
    base = rng.standard_normal((n, 1))
    U = base + np.hstack([np.zeros((n, 1)), 1e-7 * rng.standard_normal((n, 5)), rng.standard_normal((n, 4))])
    D = sine_dissimilarity(U, comm=SERIAL)
    for scale in (1e-8, 1e-3, 7.0, -3e5, 1e9):
        a = scale * rng.uniform(0.5, 2.0, 10) * rng.choice([-1, 1], 10)
        assert np.max(np.abs(sine_dissimilarity(U * a, comm=SERIAL) - D)) <= 1e-12


def test_sine_and_euclidean_in_the_mass_inner_product_match_direct_formulas():
    n = 300
    M = mass_1d(n)
    rng = np.random.default_rng(1)
    X, Y = rng.standard_normal((n, 6)), rng.standard_normal((n, 4))
    G = gram_matrix(X, Y, M, comm=SERIAL)
    np.testing.assert_allclose(G, X.T @ (M @ Y), rtol=1e-12, atol=1e-12)
    E = euclidean_dissimilarity(X, Y, M, comm=SERIAL)
    diff = (X[:, :, None] - Y[:, None, :]).reshape(n, 24)
    np.testing.assert_allclose(E.ravel(), np.sqrt(np.einsum("ni,ni->i", diff, M @ diff)), rtol=1e-10)
    Sn = sine_dissimilarity(X, Y, M, comm=SERIAL)
    nx, ny = np.sqrt(np.diag(X.T @ M @ X)), np.sqrt(np.diag(Y.T @ M @ Y))
    cos = (X.T @ M @ Y) / np.outer(nx, ny)
    np.testing.assert_allclose(Sn, np.sqrt(1 - cos**2), rtol=1e-10)
    Es = euclidean_dissimilarity(X, inner=M, comm=SERIAL)
    assert np.all(np.diag(Es) == 0) and np.allclose(Es, Es.T)


def test_parameter_dissimilarity():
    mu = np.array([[0.0, 0.0], [3.0, 4.0], [1.0, 0.0]])
    np.testing.assert_allclose(parameter_dissimilarity(mu), [[0, 5, 1], [5, 0, np.hypot(2, 4)], [1, np.hypot(2, 4), 0]])
    np.testing.assert_allclose(parameter_dissimilarity(mu, mu[:1], scale=[1.0, 2.0])[:, 0], [0, np.hypot(3, 2), 1])


@settings(max_examples=40, deadline=None)
@given(arrays(np.float64, (12, 7), elements=st.floats(-1e3, 1e3, allow_subnormal=False)),
       arrays(np.float64, 7, elements=st.floats(1e-6, 1e6)), st.integers(0, 1))
def test_sine_dissimilarity_properties(U, scales, flip):
    norms = np.linalg.norm(U, axis=0)
    U = U[:, norms > 1e-3 * max(norms.max(), 1e-300)]
    if U.shape[1] < 2:
        U = np.eye(12)[:, :3] + 0.1
    D = sine_dissimilarity(U, comm=SERIAL)
    assert np.array_equal(D, D.T)
    assert np.all(np.diag(D) == 0)
    assert np.all((D >= 0) & (D <= 1))
    a = scales[: U.shape[1]] * (-1.0 if flip else 1.0)
    assert np.max(np.abs(sine_dissimilarity(U * a, comm=SERIAL) - D)) <= 1e-12


def test_subspace_dissimilarity_is_the_sine_of_the_largest_principal_angle():
    n, rng = 60, np.random.default_rng(2)
    Q = np.linalg.qr(rng.standard_normal((n, n)))[0]
    t = 0.3
    A = Q[:, :2] @ rng.standard_normal((2, 8))  # trajectory spanning q0, q1
    B = np.column_stack([Q[:, 0], np.cos(t) * Q[:, 1] + np.sin(t) * Q[:, 2]]) @ rng.standard_normal((2, 8))
    C = Q[:, :3] @ rng.standard_normal((3, 8))  # rank 3
    D = subspace_dissimilarity([A, B, 5 * A], comm=SERIAL, n_modes=2)
    assert D[0, 1] == pytest.approx(np.sin(t), rel=1e-10)
    assert D[0, 2] == pytest.approx(0.0, abs=1e-7) and np.allclose(D, D.T)
    ref = np.sin(np.max(sla.subspace_angles(A, B)))
    assert D[1, 0] == pytest.approx(ref, rel=1e-10)
    D3 = subspace_dissimilarity(np.stack([A, C], axis=1), comm=SERIAL, n_modes=3)
    assert D3[0, 1] == pytest.approx(1.0)  # dimensions differ: gap metric is 1


# ---------------------------------------------------------------------------- k-medoids
def test_pam_never_increases_the_objective_and_ends_at_a_swap_local_optimum():
    rng = np.random.default_rng(5)
    S, _ = bumps(60, rng, n=200)
    D = sine_dissimilarity(S, comm=SERIAL)
    init = np.array([0, 1, 2, 3])
    prev = np.inf
    for steps in range(1, 12):
        km = KMedoids(4, method="pam", init=init, max_iter=steps).fit(D)
        assert km.inertia_ <= prev + 1e-12
        prev = km.inertia_
    assert prev < np.min(D[:, init], axis=1).sum()
    med = km.medoid_indices_
    for k, h in itertools.product(range(4), np.setdiff1d(np.arange(60), med)):
        trial = med.copy()
        trial[k] = h
        assert np.min(D[:, trial], axis=1).sum() >= km.inertia_ - 1e-12


def test_alternating_kmedoids_recovers_separated_groups_and_predicts():
    rng = np.random.default_rng(6)
    centres = np.array([[0, 0], [10, 0], [0, 10]])
    X = np.repeat(centres, 20, axis=0) + rng.standard_normal((60, 2))
    D = parameter_dissimilarity(X)
    for method in ("alternating", "pam"):
        km = KMedoids(3, method=method, random_state=1).fit(D)
        groups = km.labels_.reshape(3, 20)
        assert all(np.unique(g).size == 1 for g in groups) and np.unique(groups[:, 0]).size == 3
        new = np.array([[9.5, 0.2]])
        assert km.predict(parameter_dissimilarity(new, X[km.medoid_indices_]))[0] == groups[1, 0]
    a = KMedoids(3, random_state=7).fit(D)
    b = KMedoids(3, random_state=7).fit(D)
    assert np.array_equal(a.medoid_indices_, b.medoid_indices_)  # seeded


def test_ksubspaces_recovers_a_union_of_subspaces():
    rng = np.random.default_rng(7)
    n = 80
    bases = [np.linalg.qr(rng.standard_normal((n, 2)))[0] for _ in range(3)]
    S = np.hstack([B @ rng.standard_normal((2, 15)) * 10.0 ** rng.uniform(-2, 2, 15) for B in bases])
    ks = KSubspaces(3, 2, comm=SERIAL, random_state=0).fit(S)
    groups = ks.labels_.reshape(3, 15)
    assert all(np.unique(g).size == 1 for g in groups) and np.unique(groups[:, 0]).size == 3
    assert ks.radius_ < 1e-12
    new = bases[1] @ rng.standard_normal((2, 4))
    assert np.all(ks.predict(new) == groups[1, 0])


# ---------------------------------------------------------------------------- local bases
def test_local_bases_widths_overlap_and_tolerance():
    rng = np.random.default_rng(8)
    S, _ = bumps(150, rng, n=200)
    lb = LocalBases(4, 5, comm=SERIAL, random_state=0).fit(S)
    U = S / np.linalg.norm(S, axis=0)
    for k in range(4):
        idx = lb.labels_ == k
        assert lb.widths_[k] == pytest.approx(rel_errors(S[:, idx], lb.bases_[k]).max(), rel=1e-8)
        np.testing.assert_allclose(lb.bases_[k].T @ lb.bases_[k], np.eye(lb.sizes_[k]), atol=1e-12)
        # the local basis is the POD of the normalized cluster snapshots
        Phi = np.linalg.svd(U[:, idx], full_matrices=False)[0][:, :5]
        assert np.linalg.norm(Phi - lb.bases_[k] @ (lb.bases_[k].T @ Phi)) < 1e-8
    ov = LocalBases(4, 5, overlap=7, comm=SERIAL, random_state=0).fit(S)
    assert np.array_equal(ov.labels_, lb.labels_)
    assert [m.size for m in ov.members_] == [np.sum(lb.labels_ == k) + 7 for k in range(4)]
    # POD modes are nested: truncating equals refitting with fewer modes
    three = LocalBases(4, 3, comm=SERIAL, random_state=0).fit(S)
    cut = lb.truncated(3)
    assert cut.widths_ is None and list(cut.sizes_) == [3] * 4 and list(lb.sizes_) == [5] * 4
    np.testing.assert_allclose(cut.projection_errors(S, lb.labels_), three.projection_errors(S, lb.labels_),
                               rtol=1e-8)
    tol = LocalBases(4, tol=1e-3, normalize=False, comm=SERIAL, random_state=0).fit(S)
    for k in range(4):
        Sk = S[:, tol.labels_ == k]
        R = Sk - tol.bases_[k] @ (tol.bases_[k].T @ Sk)
        assert np.linalg.norm(R) <= 1e-3 * np.linalg.norm(Sk)


def test_online_selection_from_reduced_coordinates_matches_full_state():
    rng = np.random.default_rng(9)
    S, _ = bumps(150, rng, n=200)
    T, _ = bumps(30, rng, n=200)
    lb = LocalBases(4, 6, comm=SERIAL, random_state=0).fit(S)
    for i in range(30):
        k = int(lb.predict(T[:, [i]])[0])
        a = lb.bases_[k].T @ T[:, i]
        v = lb.bases_[k] @ a  # the state a reduced model in cluster k would hold
        j = lb.select_reduced(a, k)
        cos = np.abs(lb.medoids_.T @ v) / np.linalg.norm(v)
        assert j == int(np.argmax(cos)) == lb.select_full(v)


def test_cluster_classifier_from_parameters():
    rng = np.random.default_rng(10)
    X = rng.uniform(0, 1, (300, 2))
    y = (X[:, 0] > 0.5).astype(np.int64) + 2 * (X[:, 1] > 0.5)
    clf = ClusterClassifier(5).fit(X, y)
    Xt = rng.uniform(0.05, 0.95, (200, 2))
    yt = (Xt[:, 0] > 0.5).astype(np.int64) + 2 * (Xt[:, 1] > 0.5)
    assert np.mean(clf.predict(Xt) == yt) > 0.95
    P = clf.predict_proba(Xt)
    np.testing.assert_allclose(P.sum(axis=1), 1.0)
    tie = ClusterClassifier(2).fit([[0.0], [1.0], [10.0]], [0, 1, 1])
    assert tie.predict([[0.1]])[0] == 0  # 1 vote each: the nearest decides


def test_efficiency_criterion_picks_local_bases_only_when_they_pay():
    rng = np.random.default_rng(11)
    S, P = bumps(240, rng, n=200)
    rep = efficiency_criterion(S, P, candidates=(2, 4, 6), tol=0.05, comm=SERIAL, random_state=0)
    assert rep.worth_it and rep.best_n_clusters > 1
    best = next(r for r in rep.rows if r["n_clusters"] == rep.best_n_clusters)
    assert best["gain"] >= 1.5 and best["val_mean_error"] <= 0.1
    assert rep.n_global == pod(S[:, np.sort(np.random.default_rng(0).permutation(240)[60:])], tol=0.05,
                               comm=SERIAL)[0].shape[1]
    tight = efficiency_criterion(S, P, candidates=(2, 4, 6), tol=0.05, budget=240, comm=SERIAL, random_state=0)
    assert all((r["extra_snapshots"] == 0) == r["feasible"] or not r["feasible"] for r in tight.rows)
    # data on one 3-D subspace: local bases cannot beat the global one
    L = rng.standard_normal((200, 3)) @ rng.standard_normal((3, 120))
    flat = efficiency_criterion(L, candidates=(2, 3), tol=1e-6, comm=SERIAL, random_state=0)
    assert flat.n_global == 3 and not flat.worth_it and flat.best_n_clusters == 1


# ---------------------------------------------------------------------------- local Galerkin driver
def advection_diffusion_1d(n=240, nu=2e-3):
    """Periodic upwind advection-diffusion matrices on [0, 1): M = I, A_adv, A_diff (finite differences)."""
    h = 1.0 / n
    I = sp.identity(n, format="csr")
    shift = sp.diags([np.ones(n - 1), [1.0]], [-1, n - 1], format="csr")  # u_{i-1}
    adv = (I - shift) / h
    diff = nu * (2 * I - shift - shift.T) / h**2
    x = np.arange(n) * h
    return I, adv.tocsr(), diff.tocsr(), x


def fom_trajectory(M, A, u0, dt, n_steps):
    lu = sp.linalg.splu((M + dt * A).tocsc())
    U = [u0]
    for _ in range(n_steps):
        U.append(lu.solve(M @ U[-1]))
    return np.column_stack(U)


def test_local_galerkin_rom_switches_and_reaches_the_error_its_bases_promise():
    M, adv, diff, x = advection_diffusion_1d()
    u0 = np.exp(-(((x - 0.2) / 0.05) ** 2))
    dt, n_steps = 0.005, 120
    train = [fom_trajectory(M, c * adv + diff, u0, dt, n_steps) for c in (0.8, 1.0, 1.2, 1.4)]
    # overlapping clusters make the carried-over state representable in the next basis;
    # without overlap the ratio below is 1.3-3.7 here, with 10 borrowed snapshots 1.1-1.4
    lb = LocalBases(6, 5, overlap=10, comm=SERIAL, random_state=0).fit(np.hstack(train))
    rom = LocalGalerkinROM(lb, M, [adv, diff])
    c = 1.1
    ref = fom_trajectory(M, c * adv + diff, u0, dt, n_steps)
    traj = rom.solve([c, 1.0], [], u0, dt, n_steps)
    U = rom.reconstruct(traj)
    assert traj.n_switches >= 3
    rom_err = np.linalg.norm(U - ref) / np.linalg.norm(ref)
    # what the bases promise: the FOM states projected onto the basis in use at each step
    P = np.column_stack([lb.bases_[k] @ (lb.bases_[k].T @ ref[:, i]) for i, k in enumerate(traj.clusters)])
    promise = np.linalg.norm(P - ref) / np.linalg.norm(ref)
    assert rom_err <= 2.0 * promise
    # one cluster with a complete basis reproduces the FOM (theta-scheme included)
    full = LocalBases(1, 240, normalize=False, comm=SERIAL).fit(np.eye(240))
    for theta in (1.0, 0.5):
        exact = LocalGalerkinROM(full, M, [adv, diff]).solve([c, 1.0], [], u0, dt, 20, theta=theta)
        lhs = (M + theta * dt * (c * adv + diff)).toarray()
        rhs = (M - (1 - theta) * dt * (c * adv + diff)).toarray()
        u = u0.copy()
        for _ in range(20):
            u = np.linalg.solve(lhs, rhs @ u)
        np.testing.assert_allclose(full.bases_[0] @ exact.coefficients[-1], u, atol=1e-10)
    # affine mass and a non-affine extra load enter the same theta-scheme
    f1, f2 = np.sin(2 * np.pi * x), np.cos(2 * np.pi * x) ** 2
    split = LocalGalerkinROM(full, [M, 2 * M], [adv, diff], [f1])
    got = split.solve([c, 1.0], [3.0], u0, dt, 10, theta_m=[0.5, 0.25], load=f2)
    lhs = (M + dt * (c * adv + diff)).toarray()
    u = u0.copy()
    for _ in range(10):
        u = np.linalg.solve(lhs, M @ u + dt * (3 * f1 + f2))
    np.testing.assert_allclose(full.bases_[0] @ got.coefficients[-1], u, atol=1e-10)


# ---------------------------------------------------------------------------- distributed
def test_distributed_gram_sine_and_clustering_equal_serial():
    from test_pod import run_ranks  # in-process ranks over threads (tests/rom/test_pod.py)

    n = 400
    M = mass_1d(n)
    rng = np.random.default_rng(12)
    S, _ = bumps(80, rng)
    D = sine_dissimilarity(S, inner=M, comm=SERIAL)
    lb = LocalBases(4, 5, inner=M, comm=SERIAL, random_state=0).fit(S)
    cuts = [0, 170, n]

    def work(comm):
        lo, hi = cuts[comm.rank], cuts[comm.rank + 1]
        Dd = sine_dissimilarity(S[lo:hi], inner=M[lo:hi], comm=comm)
        lbd = LocalBases(4, 5, inner=M[lo:hi], comm=comm, random_state=0).fit(S[lo:hi])
        return Dd, lbd

    parts = run_ranks(2, work)
    for Dd, lbd in parts:
        np.testing.assert_allclose(Dd, D, atol=1e-13)
        assert np.array_equal(lbd.labels_, lb.labels_)
        np.testing.assert_allclose(lbd.widths_, lb.widths_, rtol=1e-10)
    for k in range(4):
        Phi = np.vstack([p[1].bases_[k] for p in parts])
        np.testing.assert_allclose(np.abs(Phi), np.abs(lb.bases_[k]), atol=1e-9)


@pytest.mark.mpi
def test_world_ranks_equal_serial():
    """Under `mpiexec -n 2 pytest -m mpi`: rows split over the real ranks (any size, 1 included)."""
    from rom.parallel import world

    comm = world()
    n = 400
    M = mass_1d(n)
    S, _ = bumps(60, np.random.default_rng(14))
    D = sine_dissimilarity(S, inner=M, comm=SERIAL)
    lb = LocalBases(3, 4, inner=M, comm=SERIAL, random_state=0).fit(S)
    trajs = [S[:, 10 * i : 10 * i + 10] for i in range(6)]
    Ds = subspace_dissimilarity(trajs, inner=M, comm=SERIAL, n_modes=3)
    cuts = np.linspace(0, n, comm.size + 1).astype(int)
    lo, hi = cuts[comm.rank], cuts[comm.rank + 1]
    Dd = sine_dissimilarity(S[lo:hi], inner=M[lo:hi], comm=comm)
    lbd = LocalBases(3, 4, inner=M[lo:hi], comm=comm, random_state=0).fit(S[lo:hi])
    Dsd = subspace_dissimilarity([t[lo:hi] for t in trajs], inner=M[lo:hi], comm=comm, n_modes=3)
    worst = comm.allreduce(max(np.abs(Dd - D).max(), np.abs(Dsd - Ds).max(), np.abs(lbd.widths_ - lb.widths_).max(),
                               float(not np.array_equal(lbd.labels_, lb.labels_))), "max")
    assert worst < 1e-12


# ---------------------------------------------------------------------------- bad input
def test_bad_input_raises_clear_errors():
    rng = np.random.default_rng(13)
    S, _ = bumps(10, rng, n=50)
    D = sine_dissimilarity(S, comm=SERIAL)
    with pytest.raises(ClusteringError, match="n_clusters=11 is larger than the number of snapshots"):
        KMedoids(11).fit(D)
    with pytest.raises(ClusteringError, match="n_clusters=11 is larger"):
        LocalBases(11, 3, comm=SERIAL).fit(S)
    with pytest.raises(ClusteringError, match="n_clusters=11 is larger"):
        KSubspaces(11, 2, comm=SERIAL).fit(S)
    Z = S.copy()
    Z[:, 3] = 0.0
    with pytest.raises(ClusteringError, match=r"column\(s\) \[3\] have zero norm.*angle"):
        sine_dissimilarity(Z, comm=SERIAL)
    with pytest.raises(ClusteringError, match="no snapshots"):
        sine_dissimilarity(np.zeros((50, 0)), comm=SERIAL)
    with pytest.raises(ClusteringError, match="empty"):
        KMedoids(1).fit(np.zeros((0, 0)))
    lb = LocalBases(3, 2, comm=SERIAL, random_state=0).fit(S)
    with pytest.raises(ClusteringError, match=r"labels holds unknown cluster\(s\) \[7\].*0\.\.2"):
        lb.projection_errors(S[:, :2], np.array([0, 7]))
    with pytest.raises(ClusteringError, match="cluster=5 is unknown"):
        lb.select_reduced(np.ones(2), 5)
    with pytest.raises(ClusteringError, match="cluster=-1 is unknown"):
        LocalGalerkinROM(lb, sp.identity(50), [sp.identity(50)]).solve([1.0], [], S[:, 0], 0.1, 2, cluster=-1)
    with pytest.raises(ShapeError, match="D has shape"):
        KMedoids(2).fit(np.ones((3, 4)))
    with pytest.raises(ClusteringError, match="method="):
        KMedoids(2, method="clara").fit(D)
    with pytest.raises(ClusteringError, match="dissimilarity="):
        LocalBases(2, 2, dissimilarity="cosine", comm=SERIAL).fit(S)
    assert issubclass(ClusteringError, RomError) and issubclass(ClusteringError, ValueError)


def test_kmeans_on_parameters_recovers_well_separated_parameter_blobs():
    rng = np.random.default_rng(3)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    truth = np.repeat(np.arange(3), 20)
    P = centres[truth] + 0.3 * rng.standard_normal((60, 2))
    S = rng.standard_normal((50, 60))
    lb = LocalBases(3, 2, dissimilarity="parameters", method="kmeans", comm=SERIAL, random_state=0).fit(S, P)
    # the partition equals the blobs up to a relabelling
    pairs = set(zip(truth.tolist(), lb.labels_.tolist()))
    assert len(pairs) == 3 and len({b for _, b in pairs}) == 3
    np.testing.assert_array_equal(lb.labels_[lb.medoid_indices_], np.arange(3))  # each medoid in its cluster
    with pytest.raises(ClusteringError, match="kmeans"):
        LocalBases(3, 2, dissimilarity="sine", method="kmeans", comm=SERIAL).fit(S)


def test_project_is_the_m_orthogonal_projection_whose_error_projection_errors_reports():
    rng = np.random.default_rng(3)
    n, q = 40, 30
    M = sp.diags(rng.uniform(0.5, 2.0, n)).tocsr()
    S = rng.standard_normal((n, q))
    lb = LocalBases(3, 4, inner=M, random_state=0).fit(S)
    labels = rng.integers(0, 3, q)
    P = lb.project(S, labels)
    for i in range(q):  # Galerkin orthogonality: the residual is M-orthogonal to its cluster's basis
        np.testing.assert_allclose(lb.bases_[labels[i]].T @ (M @ (S[:, i] - P[:, i])), 0, atol=1e-12)
    E = S - P
    want = np.sqrt(np.einsum("ij,ij->j", E, M @ E) / np.einsum("ij,ij->j", S, M @ S))
    np.testing.assert_allclose(lb.projection_errors(S, labels), want, rtol=1e-10)
