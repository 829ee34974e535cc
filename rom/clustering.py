"""Local reduced bases by physics-informed clustering (cards B and C).

One global linear basis fails on curved solution manifolds (moving fronts,
sources that move, loads over decades). A dictionary of local bases, each the
POD of one cluster of snapshots, recovers low dimension when the snapshots are
clustered by the *angle* between solutions (the sine dissimilarity): the angle
ignores the amplitude, so a cluster gathers solutions of the same shape and its
normalized Kolmogorov width is small.

Pieces, all on plain arrays:

* dissimilarities, all from Gram matrices `X^T M Y` in the problem's inner
  product (row-distributed snapshots: local products plus one allreduce, through
  `rom.pod.InnerProduct`): `parameter_dissimilarity`, `euclidean_dissimilarity`,
  `sine_dissimilarity` (stable: small angles are recomputed as projection
  residuals), `subspace_dissimilarity` (trajectories, principal angles);
* clustering estimators: `KMedoids` (alternating or PAM swap, k-medoids++ or
  farthest-first initialization, sum or max (K-center) objective), `KSubspaces`
  (k-subspaces for local bases of size N > 1);
* `LocalBases`: clustering + POD per cluster (fixed size or tolerance, optional
  overlap), intra-cluster normalized widths, projection errors;
* `ClusterClassifier` (k nearest neighbours, parameters -> cluster) and
  `efficiency_criterion` (card B's a priori criterion, as the documented proxy);
* online: `LocalBases.select_reduced` (nearest medoid in angle from reduced
  coordinates, FOM-free) and `LocalGalerkinROM`, a time-stepping driver for
  linear affine problems that switches basis when the state leaves its cluster.

Shapes: snapshots `(n_dofs_local, m)` float64, one per column (the rows this
rank owns under MPI); parameters `(m, p)` float64; dissimilarity matrices
`(m, q)` float64 with entries in [0, 1] for the sine and subspace ones.
Equations and the choices made where the papers were not at hand:
docs/methods/clustering.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla

from rom.errors import RomError, ShapeError
from rom.parallel import Comm, world
from rom.pod import InnerProduct, pod

__all__ = [
    "ClusteringError",
    "gram_matrix",
    "parameter_dissimilarity",
    "euclidean_dissimilarity",
    "sine_dissimilarity",
    "subspace_dissimilarity",
    "KMedoids",
    "KSubspaces",
    "LocalBases",
    "ClusterClassifier",
    "EfficiencyReport",
    "efficiency_criterion",
    "LocalGalerkinROM",
    "LocalTrajectory",
]

# Below this sine, 1 - cos^2 from a Gram entry has lost more than ~7 of its
# digits (absolute error ~ eps / sin); such pairs are recomputed from vectors.
_REFINE_BELOW = 1e-3
# Pairs per block when residual vectors are formed: bounds memory to
# _PAIR_BLOCK * n_local doubles.
_PAIR_BLOCK = 256


class ClusteringError(RomError, ValueError):
    """Bad clustering input: too many clusters, zero snapshots, unknown labels."""


# ---------------------------------------------------------------------------- validation
def _comm(comm):
    return world() if comm is None else comm


def _snapshots(name: str, X, comm: Comm) -> np.ndarray:
    S = np.asarray(X)
    if S.ndim == 1:
        S = S[:, None]
    if S.ndim != 2:
        raise ShapeError(f"{name} has shape {S.shape}; pass a (n_dofs, n_snapshots) array, one snapshot per column")
    S = np.asarray(S, dtype=np.float64)
    m_all = comm.allgather(S.shape[1])
    if len(set(m_all)) != 1:
        raise ShapeError(f"{name} has {S.shape[1]} columns on rank {comm.rank} but {m_all} across ranks; "
                         "every rank holds the same snapshots (its own rows of them)")
    if S.shape[1] == 0:
        raise ClusteringError(f"{name} has no snapshots (0 columns); generate snapshots before clustering")
    return S


def _finite(name: str, a: np.ndarray) -> None:
    if not np.all(np.isfinite(a)):
        raise ShapeError(f"{name} contains NaN or Inf; drop the failed snapshots before clustering")


def _nonzero_norms(name: str, norms2: np.ndarray) -> np.ndarray:
    _finite(name, norms2)
    zero = np.flatnonzero(~(norms2 > 0.0))
    if zero.size:
        raise ClusteringError(
            f"{name} column(s) {zero[:10].tolist()} have zero norm: the angle to a zero snapshot is undefined; "
            "drop them (or add the lifting of the boundary data) before using the sine dissimilarity"
        )
    return np.sqrt(norms2)


def _n_clusters(n_clusters, m: int, name: str = "n_clusters") -> int:
    if isinstance(n_clusters, bool) or not isinstance(n_clusters, (int, np.integer)) or n_clusters < 1:
        raise ClusteringError(f"{name}={n_clusters!r}; pass a positive integer")
    if n_clusters > m:
        raise ClusteringError(f"{name}={n_clusters} is larger than the number of snapshots ({m}); "
                              f"pass {name} <= {m} or generate more snapshots")
    return int(n_clusters)


def _check_labels(name: str, labels, n_clusters: int, m: int) -> np.ndarray:
    lab = np.asarray(labels)
    if lab.shape != (m,) or not np.issubdtype(lab.dtype, np.integer):
        raise ShapeError(f"{name} has shape {lab.shape} and dtype {lab.dtype}; pass ({m},) integer cluster labels")
    bad = np.flatnonzero((lab < 0) | (lab >= n_clusters))
    if bad.size:
        raise ClusteringError(f"{name} holds unknown cluster(s) {np.unique(lab[bad])[:10].tolist()} "
                              f"(at positions {bad[:5].tolist()}); labels must be in 0..{n_clusters - 1}, "
                              "the clusters this model was fitted with")
    return lab.astype(np.int64)


# ---------------------------------------------------------------------------- dissimilarities
def gram_matrix(X, Y=None, inner=None, comm: Comm | None = None) -> np.ndarray:
    """Global Gram matrix `X^T M Y` (`Y = X` by default), shape (p, q).

    X : (n_dofs_local, p), Y : (n_dofs_local, q) float64, this rank's rows.
    inner : scipy sparse SPD M (see `rom.pod.pod`) or None (Euclidean).
    Each rank forms its local contribution; one allreduce sums them.
    """
    comm = _comm(comm)
    X = _snapshots("X", X, comm)
    Y = None if Y is None else _snapshots("Y", Y, comm)
    ip = InnerProduct(inner, X.shape[0], comm)
    G = ip.gram(X, Y)
    _finite("X or Y", np.diag(G) if Y is None else G)
    return G


def parameter_dissimilarity(mu, nu=None, scale=None) -> np.ndarray:
    """Euclidean distances between parameter vectors, (m, q).

    mu : (m, p), nu : (q, p) float64 (default `mu`).
    scale : (p,) positive, optional; each coordinate is divided by it first
        (e.g. the box widths, or use log10 of a parameter sampled log-uniformly).
    """
    a = np.atleast_2d(np.asarray(mu, dtype=np.float64))
    b = a if nu is None else np.atleast_2d(np.asarray(nu, dtype=np.float64))
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ShapeError(f"mu has shape {a.shape} and nu {b.shape}; pass (m, p) and (q, p) arrays")
    _finite("mu", a)
    _finite("nu", b)
    if scale is not None:
        s = np.asarray(scale, dtype=np.float64)
        if s.shape != (a.shape[1],) or not np.all(s > 0):
            raise ShapeError(f"scale has shape {s.shape}; pass ({a.shape[1]},) positive numbers")
        a, b = a / s, b / s
    d2 = np.einsum("ij,ij->i", a, a)[:, None] + np.einsum("ij,ij->i", b, b)[None, :] - 2.0 * (a @ b.T)
    D = np.sqrt(np.clip(d2, 0.0, None))
    if nu is None:
        np.fill_diagonal(D, 0.0)
        D = 0.5 * (D + D.T)
    return D


def euclidean_dissimilarity(X, Y=None, inner=None, comm: Comm | None = None, *, gram=None,
                            norms2=None) -> np.ndarray:
    """||x_i - y_j||_M for the columns of X and Y, (p, q), from one Gram matrix.

    gram : (p, q) `X^T M Y`, when already computed (then X and Y are not read
        and `norms2 = (||x_i||^2, ||y_j||^2)` must be given when Y is not X).
    """
    comm = _comm(comm)
    if gram is None:
        gram = gram_matrix(X, Y, inner, comm)
    G = np.asarray(gram, dtype=np.float64)
    sym = Y is None and norms2 is None
    if sym:
        nx = ny = np.diag(G)
    elif norms2 is None:
        ip = InnerProduct(inner, np.shape(X)[0], comm, check=False)
        nx, ny = ip.norms2(np.asarray(X, dtype=np.float64)), ip.norms2(np.asarray(Y, dtype=np.float64))
    else:
        nx, ny = (np.asarray(v, dtype=np.float64) for v in norms2)
    D = np.sqrt(np.clip(nx[:, None] + ny[None, :] - 2.0 * G, 0.0, None))
    if sym:
        np.fill_diagonal(D, 0.0)
        D = 0.5 * (D + D.T)
    return D


def sine_dissimilarity(X, Y=None, inner=None, comm: Comm | None = None, *, gram=None) -> np.ndarray:
    """Sine of the angle between the columns of X and Y in the M inner product, (p, q).

        delta(u, v) = sin angle(u, v) = || u/|u| - <u/|u|, v/|v|> v/|v| ||_M   in [0, 1].

    It ignores scale and sign: delta(a u, b v) = delta(u, v) for a, b != 0.
    The cosines come from one Gram matrix (`gram`, else computed); where the
    sine is below 1e-3, sqrt(1 - cos^2) would have lost digits (its absolute
    error is ~eps/sin), so those pairs are recomputed from the vectors as the
    norm of the projection residual, which is accurate to ~eps (card B).
    Raises ClusteringError for a zero column (undefined angle).
    """
    comm = _comm(comm)
    X = _snapshots("X", X, comm)
    sym = Y is None
    Yv = X if sym else _snapshots("Y", Y, comm)
    ip = InnerProduct(inner, X.shape[0], comm, check=gram is None)
    G = ip.gram(X, None if sym else Yv) if gram is None else np.asarray(gram, dtype=np.float64)
    if G.shape != (X.shape[1], Yv.shape[1]):
        raise ShapeError(f"gram has shape {G.shape}; pass X^T M Y of shape ({X.shape[1]}, {Yv.shape[1]})")
    nx = _nonzero_norms("X", np.diag(G).copy() if sym else ip.norms2(X))
    ny = nx if sym else _nonzero_norms("Y", ip.norms2(Yv))
    C = np.clip(G / nx[:, None] / ny[None, :], -1.0, 1.0)
    a = np.abs(C)
    D = np.sqrt(np.clip((1.0 - a) * (1.0 + a), 0.0, 1.0))
    if sym:
        np.fill_diagonal(D, 0.0)
        close = np.triu(D < _REFINE_BELOW, k=1)
    else:
        close = D < _REFINE_BELOW
    i, j = np.nonzero(close)
    for b0 in range(0, i.size, _PAIR_BLOCK):  # blocks of pairs, each a vectorized residual
        ib, jb = i[b0 : b0 + _PAIR_BLOCK], j[b0 : b0 + _PAIR_BLOCK]
        R = X[:, ib] / nx[ib] - Yv[:, jb] * (C[ib, jb] / ny[jb])
        D[ib, jb] = np.sqrt(np.clip(ip.norms2(R), 0.0, 1.0))
    if sym:
        D = np.triu(D, 1)
        D = D + D.T
    return D


def _trajectory_bases(trajectories, inner, comm, n_modes, tol):
    if isinstance(trajectories, np.ndarray) and trajectories.ndim == 3:
        trajectories = [trajectories[:, i, :] for i in range(trajectories.shape[1])]
    trajs = list(trajectories)
    if not trajs:
        raise ClusteringError("trajectories is empty; pass a list of (n_dofs, n_steps) arrays")
    bases = []
    for t, U in enumerate(trajs):  # one POD per trajectory (BLAS-3 each)
        U = _snapshots(f"trajectories[{t}]", U, comm)
        Phi, _ = pod(U, inner, n_modes=n_modes, tol=tol, comm=comm)
        if Phi.shape[1] == 0:
            raise ClusteringError(f"trajectories[{t}] is zero: the angle to it is undefined; drop it")
        bases.append(Phi)
    return bases


def subspace_dissimilarity(trajectories, inner=None, comm: Comm | None = None, *, n_modes: int | None = 5,
                           tol: float | None = None) -> np.ndarray:
    """Dissimilarity between trajectories: sine of the largest principal angle, (T, T).

    trajectories : list of T arrays (n_dofs_local, n_steps_t), or one array
        (n_dofs_local, T, n_steps).
    Each trajectory is replaced by the span V_t of its POD modes (`n_modes`,
    `tol` as in `rom.pod.pod`); then

        delta(V_s, V_t) = max(||(I - P_t) Phi_s||, ||(I - P_s) Phi_t||)   (gap metric)

    which is the sine of the largest principal angle when the dimensions agree
    and 1 when they differ. Computed from one Gram matrix of all the modes:
    ||(I - P_s) Phi_t||^2 = lambda_max(I - C_st^T C_st), C_st = Phi_s^T M Phi_t.
    """
    comm = _comm(comm)
    bases = _trajectory_bases(trajectories, inner, comm, n_modes, tol)
    T = len(bases)
    r = max(B.shape[1] for B in bases)
    mask = np.zeros((T, r))
    Phi = np.zeros((bases[0].shape[0], T * r))
    for t, B in enumerate(bases):
        Phi[:, t * r : t * r + B.shape[1]] = B
        mask[t, : B.shape[1]] = 1.0
    G = InnerProduct(inner, Phi.shape[0], comm, check=False).gram(Phi).reshape(T, r, T, r).transpose(0, 2, 1, 3)
    lam = np.empty((T, T))
    rows = max(1, int(4_000_000 // max(T * r * r, 1)))
    for s0 in range(0, T, rows):  # blocks of rows bound the (rows, T, r, r) temporary
        C = G[s0 : s0 + rows]
        E = np.einsum("stab,stac->stbc", C, C)
        E = mask[None, :, :, None] * np.eye(r) - E
        lam[s0 : s0 + rows] = np.linalg.eigvalsh(0.5 * (E + E.transpose(0, 1, 3, 2)))[..., -1]
    D = np.sqrt(np.clip(np.maximum(lam, lam.T), 0.0, 1.0))
    np.fill_diagonal(D, 0.0)
    return D


# ---------------------------------------------------------------------------- k-medoids
def _check_dissimilarity(D, name: str = "D") -> np.ndarray:
    D = np.asarray(D, dtype=np.float64)
    if D.ndim != 2 or D.shape[0] != D.shape[1]:
        raise ShapeError(f"{name} has shape {D.shape}; pass a square (m, m) dissimilarity matrix")
    if D.shape[0] == 0:
        raise ClusteringError(f"{name} is empty (no snapshots); generate snapshots before clustering")
    _finite(name, D)
    if np.any(D < 0):
        raise ShapeError(f"{name} has negative entries; a dissimilarity is >= 0")
    return D


def _assign(D: np.ndarray, medoids: np.ndarray):
    """Nearest and second-nearest medoid distances; labels (ties to the lower index)."""
    Dm = D[:, medoids]
    labels = np.argmin(Dm, axis=1)
    d1 = Dm[np.arange(D.shape[0]), labels]
    if medoids.size > 1:
        d2 = np.partition(Dm, 1, axis=1)[:, 1]
    else:
        d2 = np.full(D.shape[0], np.inf)
    labels[medoids] = np.arange(medoids.size)  # a medoid is in its own cluster, even on ties
    d1[medoids] = 0.0
    return labels, d1, d2


def _objective(d1: np.ndarray, kind: str) -> float:
    return float(d1.sum() if kind == "sum" else d1.max())


def _init_plusplus(D: np.ndarray, K: int, rng) -> np.ndarray:
    """k-medoids++: first medoid uniform, then each with probability ~ d(x, medoids)^2."""
    m = D.shape[0]
    med = [int(rng.integers(m))]
    dmin = D[:, med[0]].copy()
    for _ in range(1, K):
        w = dmin**2
        total = w.sum()
        nxt = int(rng.choice(m, p=w / total)) if total > 0 else int(rng.choice(np.setdiff1d(np.arange(m), med)))
        med.append(nxt)
        dmin = np.minimum(dmin, D[:, nxt])
    return np.asarray(med, dtype=np.int64)


def _init_farthest(D: np.ndarray, K: int, rng) -> np.ndarray:
    """Farthest-first traversal (Gonzalez): a 2-approximation of the K-center objective."""
    med = [int(rng.integers(D.shape[0]))]
    dmin = D[:, med[0]].copy()
    for _ in range(1, K):
        dmin[med] = -1.0
        med.append(int(np.argmax(dmin)))
        dmin = np.minimum(dmin, D[:, med[-1]])
    return np.asarray(med, dtype=np.int64)


def _alternate(D, medoids, kind, max_iter):
    """Voronoi iteration: assign, then each cluster's medoid minimizes its sum (or max)."""
    medoids = medoids.copy()
    it = 0
    for it in range(1, max_iter + 1):
        labels, d1, _ = _assign(D, medoids)
        new = medoids.copy()
        for k in range(medoids.size):  # loop over clusters
            idx = np.flatnonzero(labels == k)
            sub = D[np.ix_(idx, idx)]
            cost = sub.sum(axis=0) if kind == "sum" else sub.max(axis=0)
            # keep the current medoid on ties, so the iteration cannot cycle
            cur = int(np.flatnonzero(idx == medoids[k])[0])
            best = int(np.argmin(cost))
            if cost[best] < cost[cur] - 1e-14 * max(abs(cost[cur]), 1e-300):
                new[k] = idx[best]
        if np.array_equal(new, medoids):
            break
        medoids = new
    return medoids, it


def _swap(D, medoids, kind, max_iter):
    """PAM SWAP with best improvement: try every (medoid, non-medoid) exchange."""
    medoids = medoids.copy()
    m, K = D.shape[0], medoids.size
    it = 0
    for it in range(1, max_iter + 1):
        labels, d1, d2 = _assign(D, medoids)
        current = _objective(d1, kind)
        best_cost, best_k, best_h = current, -1, -1
        for k in range(K):  # loop over clusters; all candidates h at once
            # distance of each point to its nearest remaining medoid once k is removed
            rest = np.where(labels == k, d2, d1)
            new = np.minimum(D, rest[:, None])  # (m points, m candidates)
            cost = new.sum(axis=0) if kind == "sum" else new.max(axis=0)
            cost[medoids] = np.inf
            h = int(np.argmin(cost))
            if cost[h] < best_cost:
                best_cost, best_k, best_h = cost[h], k, h
        if best_k < 0 or best_cost >= current - 1e-12 * max(abs(current), 1e-300):
            break
        medoids[best_k] = best_h
    return medoids, it


class KMedoids:
    """k-medoids on a precomputed dissimilarity matrix (scikit-learn style).

    Parameters
    ----------
    n_clusters : int
        K, at most the number of snapshots.
    method : "alternating" | "pam"
        Alternating (Voronoi iteration: assign, recentre each cluster) or PAM
        SWAP (best (medoid, non-medoid) exchange until none improves). Neither
        ever increases the objective.
    objective : "sum" | "max"
        "sum": sum of dissimilarities to the nearest medoid (classic k-medoids);
        "max": the largest one (min-max / K-center), which for the sine
        dissimilarity is the normalized 1-width of the clusters (card C). The
        "max" fit starts from the "sum" solution (and from a farthest-first
        one) and keeps the better, so its max is never above k-medoids'.
    init : "k-medoids++" | "farthest" | (K,) int array of medoid indices
    n_init : int
        Restarts with different seeds; the lowest objective wins.
    max_iter : int
    random_state : int or numpy Generator, for reproducible fits.

    Attributes
    ----------
    medoid_indices_ : (K,) int64, labels_ : (m,) int64,
    inertia_ : float (sum objective), radius_ : float (max objective),
    n_iter_ : int.
    """

    def __init__(self, n_clusters: int = 5, *, method: str = "alternating", objective: str = "sum",
                 init="k-medoids++", n_init: int = 1, max_iter: int = 300, random_state=None):
        self.n_clusters = n_clusters
        self.method = method
        self.objective = objective
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.random_state = random_state

    def _check_params(self):
        if self.method not in ("alternating", "pam"):
            raise ClusteringError(f"method={self.method!r}; use 'alternating' or 'pam'")
        if self.objective not in ("sum", "max"):
            raise ClusteringError(f"objective={self.objective!r}; use 'sum' (k-medoids) or 'max' (K-center)")
        if int(self.n_init) < 1 or int(self.max_iter) < 1:
            raise ClusteringError(f"n_init={self.n_init}, max_iter={self.max_iter}; pass positive integers")

    def _run(self, D, K, kind, init, rng):
        if isinstance(init, str):
            if init == "k-medoids++":
                med = _init_plusplus(D, K, rng)
            elif init == "farthest":
                med = _init_farthest(D, K, rng)
            else:
                raise ClusteringError(f"init={init!r}; use 'k-medoids++', 'farthest' or an array of K indices")
        else:
            med = np.asarray(init, dtype=np.int64)
            if med.shape != (K,) or np.unique(med).size != K or med.min() < 0 or med.max() >= D.shape[0]:
                raise ClusteringError(f"init={init!r}; pass {K} distinct snapshot indices in 0..{D.shape[0] - 1}")
        step = _alternate if self.method == "alternating" else _swap
        med, it = step(D, med, kind, int(self.max_iter))
        return med, it

    def fit(self, D, y=None) -> "KMedoids":
        """Cluster the m items of the (m, m) dissimilarity matrix D."""
        self._check_params()
        D = _check_dissimilarity(D)
        K = _n_clusters(self.n_clusters, D.shape[0])
        rng = np.random.default_rng(self.random_state)
        best = None
        for _ in range(int(self.n_init)):
            seed = rng.integers(2**63)
            med, it = self._run(D, K, "sum", self.init, np.random.default_rng(seed))
            cands = [(med, it)]
            if self.objective == "max":
                cands = [self._run(D, K, "max", med, None),
                         self._run(D, K, "max", "farthest", np.random.default_rng(seed))]
            for med_c, it_c in cands:
                _, d1, _ = _assign(D, med_c)
                score = _objective(d1, self.objective)
                if best is None or score < best[0]:
                    best = (score, med_c, it_c)
        _, med, it = best
        self.medoid_indices_ = med
        self.labels_, d1, _ = _assign(D, med)
        self.inertia_ = _objective(d1, "sum")
        self.radius_ = _objective(d1, "max")
        self.n_iter_ = int(it)
        return self

    def predict(self, D_to_medoids) -> np.ndarray:
        """Labels of new items from their (q, K) dissimilarities to the medoids."""
        D = np.asarray(D_to_medoids, dtype=np.float64)
        K = self.medoid_indices_.size
        if D.ndim != 2 or D.shape[1] != K:
            raise ShapeError(f"D_to_medoids has shape {D.shape}; pass (q, {K}) dissimilarities to the medoids "
                             "(e.g. D[:, model.medoid_indices_])")
        return np.argmin(D, axis=1).astype(np.int64)


# ---------------------------------------------------------------------------- k-subspaces
def _relative_residuals(S, norms, bases, ip):
    """(m, K) relative projection errors ||u - P_k u|| / ||u|| of the columns of S."""
    m = S.shape[1]
    out = np.empty((m, len(bases)))
    for k, Phi in enumerate(bases):  # loop over clusters
        if Phi.shape[1] == 0:
            out[:, k] = 1.0
            continue
        c = ip.gram(Phi, S)
        r2 = ip.norms2(S - Phi @ c)
        out[:, k] = np.sqrt(np.clip(r2, 0.0, None)) / norms
    return out


class KSubspaces:
    """k-subspaces (VQPCA): clusters whose local POD bases of size N fit best (card C, N > 1).

    Assign each snapshot to the cluster whose basis leaves the smallest
    relative projection residual ||u - P_k u||_M / ||u||_M, refit a POD basis
    of size `n_modes` on each cluster's normalized snapshots, repeat until the
    labels stop changing. Initial labels: sine k-medoids (seeded), or `init`.

    Attributes: labels_ (m,), bases_ (list of K (n_local, N_k)),
    residuals_ (m,) relative error of each snapshot in its cluster, radius_
    (max of residuals_), n_iter_.
    """

    def __init__(self, n_clusters: int = 5, n_modes: int = 5, *, inner=None, comm: Comm | None = None,
                 init=None, max_iter: int = 50, random_state=None):
        self.n_clusters = n_clusters
        self.n_modes = n_modes
        self.inner = inner
        self.comm = comm
        self.init = init
        self.max_iter = max_iter
        self.random_state = random_state

    def fit(self, snapshots, y=None) -> "KSubspaces":
        comm = _comm(self.comm)
        S = _snapshots("snapshots", snapshots, comm)
        m = S.shape[1]
        K = _n_clusters(self.n_clusters, m)
        ip = InnerProduct(self.inner, S.shape[0], comm)
        norms = _nonzero_norms("snapshots", ip.norms2(S))
        U = S / norms
        if self.init is None:
            D = sine_dissimilarity(U, inner=self.inner, comm=comm)
            labels = KMedoids(K, random_state=self.random_state).fit(D).labels_
        else:
            labels = _check_labels("init", self.init, K, m)
        it = 0
        for it in range(1, int(self.max_iter) + 1):
            bases = [_local_pod(U[:, labels == k], self.inner, comm, self.n_modes, None) for k in range(K)]
            R = _relative_residuals(U, 1.0, bases, ip)
            new = np.argmin(R, axis=1)
            # an emptied cluster restarts from the worst-approximated snapshot
            for k in np.setdiff1d(np.arange(K), new):
                worst = int(np.argmax(R[np.arange(m), new]))
                new[worst] = k
            if np.array_equal(new, labels):
                break
            labels = new
        self.labels_ = labels.astype(np.int64)
        self.bases_ = [_local_pod(U[:, labels == k], self.inner, comm, self.n_modes, None) for k in range(K)]
        self.residuals_ = _relative_residuals(U, 1.0, self.bases_, ip)[np.arange(m), labels]
        self.radius_ = float(self.residuals_.max())
        self.n_iter_ = it
        self._ip = ip
        return self

    def predict(self, snapshots) -> np.ndarray:
        """Cluster whose basis leaves the smallest relative residual, (q,) int64."""
        comm = _comm(self.comm)
        S = _snapshots("snapshots", snapshots, comm)
        norms = _nonzero_norms("snapshots", self._ip.norms2(S))
        return np.argmin(_relative_residuals(S, norms, self.bases_, self._ip), axis=1).astype(np.int64)


# ---------------------------------------------------------------------------- local bases
def _local_pod(S, inner, comm, n_modes, tol):
    if S.shape[1] == 0:
        return np.zeros((S.shape[0], 0))
    Phi, _ = pod(S, inner, n_modes=n_modes, tol=tol, comm=comm)
    return Phi


_DISSIMILARITIES = ("sine", "euclidean", "parameters", "subspace")


def _kmeans_parameters(P, K: int, dissimilarity: str, seed):
    if dissimilarity != "parameters" or P is None:
        raise ClusteringError("method='kmeans' clusters parameters: use dissimilarity='parameters' and "
                              "fit(snapshots, parameters)")
    from scipy.cluster.vq import kmeans2

    Z = (P - P.mean(axis=0)) / np.where(P.std(axis=0) > 0, P.std(axis=0), 1.0)
    centroids, labels = kmeans2(Z, K, minit="++", seed=seed)
    labels = np.unique(labels, return_inverse=True)[1]  # empty clusters dropped, labels 0..K'-1
    med = np.array([np.flatnonzero(labels == k)[np.argmin(((Z[labels == k] - Z[labels == k].mean(0)) ** 2).sum(1))]
                    for k in range(labels.max() + 1)])
    return labels, med


class LocalBases:
    """A dictionary of local POD bases, one per cluster of snapshots (cards B, C).

    Parameters
    ----------
    n_clusters : int
    n_modes : int, optional; tol : float in (0, 1), optional
        Size of each local basis: at most `n_modes`, or the card 0.1 tolerance
        rule on the cluster's snapshots (both: the smaller).
    dissimilarity : "sine" | "euclidean" | "parameters" | "subspace"
        What the snapshots are clustered by: the angle between solutions
        (k-medoids), the M-distance between solutions (k-medoids), the
        Euclidean distance between parameters (k-medoids on them), or
        k-subspaces (`KSubspaces` with bases of size `n_modes`).
    method, objective, init, n_init : passed to `KMedoids`; method="kmeans" (parameters only)
        clusters the standardized parameters by k-means (scipy.cluster.vq.kmeans2, k-means++),
        the classic baseline, with the member nearest each centroid as medoid.
    overlap : int >= 0
        Each cluster's POD also uses the `overlap` snapshots nearest (in the
        same dissimilarity) to its medoid that belong to other clusters.
    normalize : bool
        POD of the normalized snapshots u/||u|| (default): every shape counts
        the same whatever its amplitude, matching the normalized widths.
    inner : sparse SPD M or None; comm : Comm or None.
    random_state : seed.

    Attributes
    ----------
    labels_ (m,), medoid_indices_ (K,), medoids_ (n_local, K) normalized medoid
    snapshots, bases_ (list of K arrays (n_local, N_k)), sizes_ (K,),
    widths_ (K,) the intra-cluster normalized widths: the largest relative
    projection error of a training snapshot of the cluster onto its basis
    (empirical d_N of card C), parameters_ (m, p) when given.
    """

    def __init__(self, n_clusters: int = 5, n_modes: int | None = None, tol: float | None = None, *,
                 dissimilarity: str = "sine", method: str = "alternating", objective: str = "sum",
                 init="k-medoids++", n_init: int = 1, overlap: int = 0, normalize: bool = True,
                 inner=None, comm: Comm | None = None, random_state=None):
        self.n_clusters = n_clusters
        self.n_modes = n_modes
        self.tol = tol
        self.dissimilarity = dissimilarity
        self.method = method
        self.objective = objective
        self.init = init
        self.n_init = n_init
        self.overlap = overlap
        self.normalize = normalize
        self.inner = inner
        self.comm = comm
        self.random_state = random_state

    def fit(self, snapshots, parameters=None) -> "LocalBases":
        """Cluster the snapshots (n_local, m) and build one POD basis per cluster.

        parameters : (m, p), needed for dissimilarity="parameters"; stored for
        a `ClusterClassifier`.
        """
        if self.dissimilarity not in _DISSIMILARITIES:
            raise ClusteringError(f"dissimilarity={self.dissimilarity!r}; use one of {_DISSIMILARITIES}")
        if self.n_modes is None and self.tol is None:
            raise ClusteringError("give n_modes (local basis size) or tol (POD tolerance), or both")
        if isinstance(self.overlap, bool) or not isinstance(self.overlap, (int, np.integer)) or self.overlap < 0:
            raise ClusteringError(f"overlap={self.overlap!r}; pass an integer >= 0")
        comm = _comm(self.comm)
        S = _snapshots("snapshots", snapshots, comm)
        m = S.shape[1]
        K = _n_clusters(self.n_clusters, m)
        ip = InnerProduct(self.inner, S.shape[0], comm)
        norms = _nonzero_norms("snapshots", ip.norms2(S))
        P = None
        if parameters is not None:
            P = np.atleast_2d(np.asarray(parameters, dtype=np.float64))
            if P.shape[0] != m:
                P = P.T if P.shape[1] == m else P
            if P.shape[0] != m:
                raise ShapeError(f"parameters has shape {np.shape(parameters)}; pass ({m}, p), one row per snapshot")
        km = dict(method=self.method, objective=self.objective, init=self.init, n_init=self.n_init,
                  random_state=self.random_state)
        if self.dissimilarity == "subspace":
            ks = KSubspaces(K, self.n_modes or 5, inner=self.inner, comm=comm, random_state=self.random_state).fit(S)
            labels = ks.labels_
            D = sine_dissimilarity(S, inner=self.inner, comm=comm)
            med = np.array([np.flatnonzero(labels == k)[np.argmin(D[np.ix_(labels == k, labels == k)].sum(0))]
                            for k in range(K)])
        else:
            if self.dissimilarity == "parameters":
                if P is None:
                    raise ClusteringError("dissimilarity='parameters' needs fit(snapshots, parameters)")
                D = parameter_dissimilarity(P)
            else:
                dis = sine_dissimilarity if self.dissimilarity == "sine" else euclidean_dissimilarity
                D = dis(S, None, self.inner, comm)
            if self.method == "kmeans":
                labels, med = _kmeans_parameters(P, K, self.dissimilarity, self.random_state)
                K = len(med)
            else:
                model = KMedoids(K, **km).fit(D)
                labels, med = model.labels_, model.medoid_indices_
        members = [np.flatnonzero(labels == k) for k in range(K)]
        if self.overlap:
            for k in range(K):  # borrow the nearest foreign snapshots
                d = D[:, med[k]].copy()
                d[members[k]] = np.inf
                extra = np.argsort(d, kind="stable")[: min(self.overlap, m - members[k].size)]
                members[k] = np.union1d(members[k], extra)
        U = S / norms if self.normalize else S
        self.bases_ = [_local_pod(U[:, idx], self.inner, comm, self.n_modes, self.tol) for idx in members]
        self.labels_ = labels.astype(np.int64)
        self.medoid_indices_ = np.asarray(med, dtype=np.int64)
        self.medoids_ = S[:, self.medoid_indices_] / norms[self.medoid_indices_]
        self._medoids_raw = S[:, self.medoid_indices_].copy()
        self.members_ = members
        self.sizes_ = np.array([B.shape[1] for B in self.bases_], dtype=np.int64)
        self.parameters_ = P
        self._ip = ip
        err = self.projection_errors(S, self.labels_)
        self.widths_ = np.array([err[labels == k].max() for k in range(K)])
        return self

    @property
    def n_clusters_(self) -> int:
        return len(self.bases_)

    def truncated(self, n_modes: int) -> "LocalBases":
        """A copy whose bases keep their first `n_modes` modes (same clusters).

        POD modes are nested, so this equals refitting with `n_modes` without
        clustering again. `widths_` of the copy is None (it needs the training
        snapshots: recompute it with `projection_errors`).
        """
        if isinstance(n_modes, bool) or not isinstance(n_modes, (int, np.integer)) or n_modes < 1:
            raise ClusteringError(f"n_modes={n_modes!r}; pass a positive integer")
        import copy

        out = copy.copy(self)
        out.n_modes = int(n_modes) if self.n_modes is None else min(int(n_modes), self.n_modes)
        out.bases_ = [B[:, :n_modes] for B in self.bases_]
        out.sizes_ = np.array([B.shape[1] for B in out.bases_], dtype=np.int64)
        out.widths_ = None
        if hasattr(out, "_proj"):
            del out._proj
        return out

    def predict(self, snapshots) -> np.ndarray:
        """Cluster of each new snapshot: nearest medoid in the fitting dissimilarity, (q,) int64.

        "sine": smallest angle; "euclidean": nearest in the M-norm; "subspace":
        smallest projection residual onto the local bases. For "parameters"
        use a `ClusterClassifier` (parameters are the input there).
        """
        comm = _comm(self.comm)
        S = _snapshots("snapshots", snapshots, comm)
        if self.dissimilarity == "subspace":
            norms = _nonzero_norms("snapshots", self._ip.norms2(S))
            return np.argmin(_relative_residuals(S, norms, self.bases_, self._ip), axis=1).astype(np.int64)
        if self.dissimilarity == "parameters":
            raise ClusteringError("a model clustered on parameters predicts from parameters: "
                                  "use ClusterClassifier().fit(model.parameters_, model.labels_)")
        if self.dissimilarity == "sine":
            D = sine_dissimilarity(S, self.medoids_, self.inner, comm)
        else:
            D = euclidean_dissimilarity(S, self._medoids_raw, self.inner, comm)
        return np.argmin(D, axis=1).astype(np.int64)

    def projection_errors(self, snapshots, labels=None) -> np.ndarray:
        """Relative M-norm errors ||u - P_k u|| / ||u|| with the basis of cluster k, (q,).

        labels : (q,) cluster of each snapshot; default `predict(snapshots)`.
        """
        comm = _comm(self.comm)
        S = _snapshots("snapshots", snapshots, comm)
        lab = self.predict(S) if labels is None else _check_labels("labels", labels, len(self.bases_), S.shape[1])
        norms = _nonzero_norms("snapshots", self._ip.norms2(S))
        err = np.empty(S.shape[1])
        for k, Phi in enumerate(self.bases_):  # loop over clusters
            idx = np.flatnonzero(lab == k)
            if idx.size:
                err[idx] = _relative_residuals(S[:, idx], norms[idx], [Phi], self._ip)[:, 0]
        return err

    def project(self, snapshots, labels) -> np.ndarray:
        """Best approximations Phi_k Phi_k^T M u_i, each snapshot in the basis of its cluster
        labels[i]: snapshots (n_local, q) -> (n_local, q) (e.g. the promise of a local ROM along
        the clusters it visited)."""
        comm = _comm(self.comm)
        S = _snapshots("snapshots", snapshots, comm)
        lab = _check_labels("labels", labels, len(self.bases_), S.shape[1])
        P = np.zeros_like(S)
        for k, Phi in enumerate(self.bases_):  # loop over clusters
            idx = np.flatnonzero(lab == k)
            if idx.size:
                P[:, idx] = Phi @ self._ip.gram(Phi, S[:, idx])
        return P

    def select_reduced(self, coefficients, cluster: int) -> int:
        """Cluster of the state `Phi_cluster @ coefficients`: nearest medoid in angle. FOM-free.

        coefficients : (N_cluster,) reduced coordinates in the basis of `cluster`.
        Uses the precomputed (K, N_k) cosines Phi_k^T M m_j, so it costs O(K N).
        """
        K = len(self.bases_)
        if isinstance(cluster, bool) or not isinstance(cluster, (int, np.integer)) or not 0 <= cluster < K:
            raise ClusteringError(f"cluster={cluster!r} is unknown; pass a cluster index in 0..{K - 1}")
        a = np.asarray(coefficients, dtype=np.float64)
        if a.shape != (self.sizes_[cluster],):
            raise ShapeError(f"coefficients has shape {a.shape}; pass ({self.sizes_[cluster]},) reduced coordinates")
        na = np.linalg.norm(a)
        if not na > 0:
            raise ClusteringError("coefficients is zero: the angle to a zero state is undefined")
        cos = np.abs(self._medoid_projections()[cluster] @ a) / na
        return int(np.argmax(cos))

    def _medoid_projections(self):
        if not hasattr(self, "_proj"):
            self._proj = [self._ip.gram(Phi, self.medoids_).T for Phi in self.bases_]  # K x (K, N_k)
        return self._proj

    def select_full(self, state) -> int:
        """Cluster of a full state (n_local,): nearest medoid in angle."""
        return int(sine_dissimilarity(np.asarray(state, dtype=np.float64)[:, None], self.medoids_,
                                      self.inner, _comm(self.comm)).argmin())



# ---------------------------------------------------------------------------- online classifier
class ClusterClassifier:
    """k-nearest-neighbours classifier from parameters to cluster labels (scikit-learn style).

    Parameters are standardized by their training standard deviations (or by
    `scale`), so coordinates of different units weigh alike; log-sampled
    parameters are best passed as their logarithm. Majority vote of the
    `n_neighbors` nearest training points; a tie goes to the nearest one's label.

    Attributes: X_ (m, p), labels_ (m,), classes_ (K,) = 0..K-1, scale_ (p,).
    """

    def __init__(self, n_neighbors: int = 5, *, scale=None):
        self.n_neighbors = n_neighbors
        self.scale = scale

    def fit(self, parameters, labels) -> "ClusterClassifier":
        X = np.atleast_2d(np.asarray(parameters, dtype=np.float64))
        if X.ndim != 2 or X.shape[0] == 0:
            raise ShapeError(f"parameters has shape {X.shape}; pass (m, p), one row per training snapshot")
        _finite("parameters", X)
        lab = np.asarray(labels)
        if lab.shape != (X.shape[0],) or not np.issubdtype(lab.dtype, np.integer) or lab.min() < 0:
            raise ShapeError(f"labels has shape {lab.shape} and dtype {lab.dtype}; pass ({X.shape[0]},) "
                             "cluster labels >= 0 (e.g. LocalBases.labels_)")
        if isinstance(self.n_neighbors, bool) or not isinstance(self.n_neighbors, (int, np.integer)) \
                or self.n_neighbors < 1:
            raise ClusteringError(f"n_neighbors={self.n_neighbors!r}; pass a positive integer")
        if self.scale is None:
            s = X.std(axis=0)
            s[~(s > 0)] = 1.0
        else:
            s = np.asarray(self.scale, dtype=np.float64)
            if s.shape != (X.shape[1],) or not np.all(s > 0):
                raise ShapeError(f"scale has shape {s.shape}; pass ({X.shape[1]},) positive numbers")
        self.X_, self.labels_, self.scale_ = X, lab.astype(np.int64), s
        self.classes_ = np.arange(int(lab.max()) + 1)
        return self

    def predict_proba(self, parameters) -> np.ndarray:
        """Share of the neighbours in each cluster, (q, K)."""
        X = np.atleast_2d(np.asarray(parameters, dtype=np.float64))
        if X.ndim != 2 or X.shape[1] != self.X_.shape[1]:
            raise ShapeError(f"parameters has shape {X.shape}; pass (q, {self.X_.shape[1]})")
        _finite("parameters", X)
        k = min(int(self.n_neighbors), self.X_.shape[0])
        D = parameter_dissimilarity(X, self.X_, scale=self.scale_)
        idx = np.argpartition(D, k - 1, axis=1)[:, :k]
        votes = (self.labels_[idx][:, :, None] == self.classes_).sum(axis=1).astype(np.float64)
        return votes / k

    def predict(self, parameters) -> np.ndarray:
        """Cluster label of each parameter vector, (q,) int64."""
        X = np.atleast_2d(np.asarray(parameters, dtype=np.float64))
        P = self.predict_proba(X)
        D = parameter_dissimilarity(X, self.X_, scale=self.scale_)
        nearest = self.labels_[np.argmin(D, axis=1)]
        P[np.arange(P.shape[0]), nearest] += 0.5 / max(int(self.n_neighbors), 1)  # ties -> nearest
        return np.argmax(P, axis=1).astype(np.int64)


# ---------------------------------------------------------------------------- a priori efficiency
@dataclass(frozen=True)
class EfficiencyReport:
    """Outcome of `efficiency_criterion`.

    rows : one dict per candidate K with n_clusters, sizes (N_k), mean_size,
        max_size, val_mean_error, val_max_error, gain (= n_global / mean_size),
        extra_snapshots (training runs still needed), feasible.
    n_global : global POD size for the tolerance.
    best_n_clusters : feasible K with the largest gain (1 when none beats global).
    worth_it : True when best gain >= min_gain.
    """

    rows: list
    n_global: int
    best_n_clusters: int
    worth_it: bool


def efficiency_criterion(snapshots, parameters=None, candidates=(2, 3, 4, 5, 6, 8), tol: float = 1e-2, *,
                         budget: int | None = None, snapshots_per_mode: float = 2.0, min_gain: float = 1.5,
                         error_factor: float = 2.0, validation_fraction: float = 0.25,
                         dissimilarity: str = "sine", inner=None, comm: Comm | None = None,
                         random_state=None) -> EfficiencyReport:
    """Choose the number of clusters a priori (card B's criterion, documented proxy [P]).

    The paper's formula was not recovered; this proxy (card B, step 6) uses a
    validation split of the snapshots:

    1. N_global = size of the global POD basis for `tol` on the training part.
    2. For each K: local bases for `tol` (sizes N_k); each validation snapshot
       goes to a cluster by the k-NN `ClusterClassifier` on `parameters` (or by
       its nearest medoid when no parameters are given); record the mean and
       max relative projection errors.
    3. Cost of the extra training: cluster k needs `snapshots_per_mode * N_k`
       snapshots for its basis to generalize; the shortfall summed over
       clusters is the extra FOM runs. K is feasible when the validation mean
       error is at most `error_factor * tol` and the training set plus the
       extra runs fit in `budget` (FOM runs; default: no limit).
    4. gain = N_global / mean_k N_k (an online Galerkin solve costs ~N^3);
       the best K is the feasible one with the largest gain, and local bases
       are worth it when that gain is at least `min_gain` (to repay the
       classifier and the K-fold storage).
    """
    comm = _comm(comm)
    S = _snapshots("snapshots", snapshots, comm)
    m = S.shape[1]
    if not 0.0 < validation_fraction < 1.0:
        raise ClusteringError(f"validation_fraction={validation_fraction}; pass a number in (0, 1)")
    rng = np.random.default_rng(random_state)
    perm = rng.permutation(m)
    n_val = max(1, int(round(validation_fraction * m)))
    val, tr = np.sort(perm[:n_val]), np.sort(perm[n_val:])
    P = None if parameters is None else np.atleast_2d(np.asarray(parameters, dtype=np.float64))
    Phi_g = _local_pod(S[:, tr], inner, comm, None, tol)
    n_global = int(Phi_g.shape[1])
    rows = []
    for K in candidates:  # loop over candidate cluster counts
        K = _n_clusters(K, tr.size, "candidates")
        lb = LocalBases(K, tol=tol, dissimilarity=dissimilarity, inner=inner, comm=comm,
                        random_state=random_state).fit(S[:, tr], None if P is None else P[tr])
        if P is not None:
            lab = ClusterClassifier().fit(P[tr], lb.labels_).predict(P[val])
        else:
            lab = lb.predict(S[:, val])
        err = lb.projection_errors(S[:, val], lab)
        counts = np.bincount(lb.labels_, minlength=K)
        need = np.ceil(snapshots_per_mode * lb.sizes_).astype(np.int64)
        extra = int(np.clip(need - counts, 0, None).sum())
        mean_size = float(lb.sizes_.mean())
        feasible = bool(err.mean() <= error_factor * tol and (budget is None or m + extra <= budget))
        rows.append(dict(n_clusters=K, sizes=lb.sizes_.tolist(), mean_size=mean_size,
                         max_size=int(lb.sizes_.max()), val_mean_error=float(err.mean()),
                         val_max_error=float(err.max()), gain=n_global / mean_size,
                         extra_snapshots=extra, feasible=feasible))
    ok = [r for r in rows if r["feasible"]]
    best = max(ok, key=lambda r: r["gain"]) if ok else None
    worth = best is not None and best["gain"] >= min_gain
    return EfficiencyReport(rows, n_global, best["n_clusters"] if worth else 1, bool(worth))


# ---------------------------------------------------------------------------- local Galerkin driver
@dataclass(frozen=True)
class LocalTrajectory:
    """Result of `LocalGalerkinROM.solve`.

    coefficients : list of (N_k,) arrays, one per time level (n_steps + 1),
    clusters : (n_steps + 1,) int64 cluster in use at each level,
    n_switches : number of basis changes.
    """

    coefficients: list
    clusters: np.ndarray
    n_switches: int


class LocalGalerkinROM:
    """Galerkin time stepping with a dictionary of local bases, switching online.

    Full-order model (rows of this rank), affine in its coefficients:

        (sum_q theta_m[q] M_q) du/dt + (sum_q theta_a[q] A_q) u = sum_q theta_f[q] f_q (+ f),

    theta-scheme (theta = 1 backward Euler, 1/2 Crank-Nicolson). Each cluster k
    has its reduced operators Phi_k^T M_q Phi_k, Phi_k^T A_q Phi_k, Phi_k^T f_q
    and the transition matrices Phi_j^T W Phi_k (W the inner product of the
    bases), all computed here once; `solve` touches a FOM-size array only to
    project an optional non-affine load f (one GEMV per cluster).
    After each step the state's cluster is re-selected as the nearest medoid in
    angle from its reduced coordinates (`LocalBases.select_reduced`); when it
    changes, the state is carried over by W-orthogonal projection
    a_j = Phi_j^T W Phi_k a_k.

    mass : sparse matrix, or a list of them (then pass `theta_m` to `solve`).
    stiffness_terms : list of sparse (n_local, n_local or n_global) A_q.
    load_terms : list of (n_local,) vectors f_q.
    """

    def __init__(self, bases: LocalBases, mass, stiffness_terms, load_terms=()):
        comm = _comm(bases.comm)
        self.bases = bases
        self._comm = comm
        Phis = bases.bases_
        n_local = Phis[0].shape[0]

        def red(A, X, Y):
            return InnerProduct(A, n_local, comm, check=False).gram(X, Y)

        masses = list(mass) if isinstance(mass, (list, tuple)) else [mass]
        self.mass_ = [np.stack([red(Mq, P, P) for Mq in masses]) for P in Phis]
        self.stiffness_ = [np.stack([red(A, P, P) for A in stiffness_terms]) if len(stiffness_terms)
                           else np.zeros((0, P.shape[1], P.shape[1])) for P in Phis]
        F = np.column_stack([np.asarray(f, dtype=np.float64) for f in load_terms]) if len(load_terms) else \
            np.zeros((n_local, 0))
        self.load_ = [comm.allreduce(P.T @ F, "sum") for P in Phis]
        self.transition_ = [[bases._ip.gram(Pj, Pk) for Pk in Phis] for Pj in Phis]
        self._inner_ip = bases._ip

    def project(self, state, cluster: int) -> np.ndarray:
        """Reduced coordinates Phi_k^T W u of a full state (n_local,)."""
        u = np.asarray(state, dtype=np.float64)[:, None]
        return self._inner_ip.gram(self.bases.bases_[cluster], u)[:, 0]

    def solve(self, theta_a, theta_f, u0, dt: float, n_steps: int, *, theta: float = 1.0,
              cluster: int | None = None, switch: bool = True, theta_m=None, load=None) -> LocalTrajectory:
        """March `n_steps` of size `dt` from the full initial state u0 (n_local,).

        theta_a (Q_a,), theta_f (Q_f,), theta_m (Q_m,) (default ones): the
        affine coefficients. load : optional extra (n_local,) load vector.
        cluster : starting cluster (default: nearest medoid in angle to u0; a
        zero u0 needs it, e.g. from a `ClusterClassifier` on the parameters).
        """
        K = len(self.bases.bases_)
        ta = np.asarray(theta_a, dtype=np.float64)
        tf = np.asarray(theta_f, dtype=np.float64)
        tm = np.ones(self.mass_[0].shape[0]) if theta_m is None else np.asarray(theta_m, dtype=np.float64)
        if ta.shape != (len(self.stiffness_[0]),) or tf.shape != (self.load_[0].shape[1],) \
                or tm.shape != (self.mass_[0].shape[0],):
            raise ShapeError(f"theta_a has shape {ta.shape}, theta_f {tf.shape}, theta_m {tm.shape}; pass "
                             f"({len(self.stiffness_[0])},), ({self.load_[0].shape[1]},) and "
                             f"({self.mass_[0].shape[0]},) coefficients")
        extra = None
        if load is not None:
            f = np.asarray(load, dtype=np.float64)
            if f.shape != (self.bases.bases_[0].shape[0],):
                raise ShapeError(f"load has shape {f.shape}; pass ({self.bases.bases_[0].shape[0]},), this rank's rows")
            extra = self._comm.allreduce(np.concatenate([P.T @ f for P in self.bases.bases_]), "sum")
            cuts = np.concatenate([[0], np.cumsum(self.bases.sizes_)])
            extra = [extra[cuts[k] : cuts[k + 1]] for k in range(K)]
        if not (dt > 0 and 0.0 <= theta <= 1.0):
            raise ClusteringError(f"dt={dt}, theta={theta}; pass dt > 0 and theta in [0, 1]")
        if cluster is None:
            k = self.bases.select_full(u0)
        else:
            if isinstance(cluster, bool) or not isinstance(cluster, (int, np.integer)) or not 0 <= cluster < K:
                raise ClusteringError(f"cluster={cluster!r} is unknown; pass a cluster index in 0..{K - 1}")
            k = int(cluster)
        systems = {}

        def system(k):
            if k not in systems:
                Mk = np.tensordot(tm, self.mass_[k], axes=1)
                A = np.tensordot(ta, self.stiffness_[k], axes=1) if ta.size else 0.0 * Mk
                f = self.load_[k] @ tf + (0.0 if extra is None else extra[k])
                systems[k] = (sla.lu_factor(Mk + theta * dt * A), Mk - (1.0 - theta) * dt * A, dt * f)
            return systems[k]

        a = self.project(u0, k)
        coeffs, clusters, switches = [a], [k], 0
        for _ in range(int(n_steps)):  # time loop
            lu, rhs, f = system(k)
            a = sla.lu_solve(lu, rhs @ a + f)
            if switch and np.linalg.norm(a) > 0:
                j = self.bases.select_reduced(a, k)
                if j != k:
                    a, k, switches = self.transition_[j][k] @ a, j, switches + 1
            coeffs.append(a)
            clusters.append(k)
        return LocalTrajectory(coeffs, np.asarray(clusters, dtype=np.int64), switches)

    def reconstruct(self, trajectory: LocalTrajectory) -> np.ndarray:
        """Full states (n_local, n_steps + 1) of a reduced trajectory."""
        Phis = self.bases.bases_
        out = np.empty((Phis[0].shape[0], len(trajectory.coefficients)))
        for k in np.unique(trajectory.clusters):  # loop over clusters used
            idx = np.flatnonzero(trajectory.clusters == k)
            out[:, idx] = Phis[k] @ np.column_stack([trajectory.coefficients[i] for i in idx])
        return out
