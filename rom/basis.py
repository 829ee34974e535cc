"""PodBasis: a POD basis with its singular values, saved to HDF5, plotted, and as point fields for ParaView.

`PodBasis.from_store` runs POD (`rom.pod`) on the finished snapshots of a
`SnapshotStore`, in its inner product, batch or streaming (block by block, bounded
memory). It keeps what a user needs to judge the basis: the retained singular values,
the total energy of the snapshots (so the discarded energy is known without the
discarded values), and the projection error of the snapshots onto the first n modes,
measured for n = 0..N in one extra pass (it must equal the square root of the discarded
energy: a check of the basis that the plot shows).

File layout (format "romtk.basis", version 1; docs/store.md): root attributes format,
format_version, romtk_version, created, method, tol, n_snapshots, total_energy, source,
inner_product_hash, provenance (JSON); datasets modes (n_dofs, N), singular_values (N,),
projection_error (N+1,) (relative, measured); optional group mesh (as in the store).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rom.errors import RomError, ShapeError, StoreError
from rom.h5io import atomic, create_checked, expect_format, put, read_array, read_attr, reading
from rom.pod import IncrementalPOD, PODArgumentError, _check_truncation, _subtraction_allowance, pod
from rom.store import MeshArrays, SnapshotStore, _read_mesh_group, _romtk_version, _write_mesh_group, array_hash

__all__ = ["PodBasis", "FORMAT", "FORMAT_VERSION"]

FORMAT = "romtk.basis"
FORMAT_VERSION = 1
_METHODS = ("snapshots", "svd", "tsqr", "randomized", "streaming")


@dataclass
class PodBasis:
    """POD modes and what they came from.

    modes : (n_dofs, N) float64, M-orthonormal. singular_values : (N,) decreasing.
    total_energy : ||S||_{M,F}^2 of the snapshot set. projection_error : (N+1,) relative
    M-norm projection error of the snapshots onto the first n modes, n = 0..N (measured).
    mesh : the store's mesh as plain arrays (`rom.store.MeshArrays`), or None.
    """

    modes: np.ndarray
    singular_values: np.ndarray
    total_energy: float
    projection_error: np.ndarray
    n_snapshots: int
    method: str = "snapshots"
    tol: float | None = None
    source: str = ""
    inner_product_hash: str = ""
    mesh: MeshArrays | None = None
    provenance: dict = field(default_factory=dict)

    @property
    def size(self) -> int:
        return int(self.modes.shape[1])

    @property
    def n_dofs(self) -> int:
        return int(self.modes.shape[0])

    def energy_error(self) -> np.ndarray:
        """(N+1,) relative projection error predicted by the discarded energy,
        sqrt(sum_{k>n} sigma_k^2 / ||S||^2) for n = 0..N.

        The retained part is summed from the smallest value up. The energy beyond the
        retained values is 0 when every snapshot has its mode (N = n_snapshots: nothing
        was discarded); otherwise it is the difference total - sum sigma_k^2, and a
        difference within its round-off allowance (`rom.pod._subtraction_allowance`, a few
        eps ||S||^2) is reported as 0: nothing discarded that the arithmetic can resolve.
        """
        e = self.singular_values**2
        tail = 0.0
        if self.size < self.n_snapshots:
            tail = max(self.total_energy - math.fsum(e), 0.0)
            if tail <= _subtraction_allowance(self.total_energy, e.size):
                tail = 0.0
        left = tail + np.concatenate([np.cumsum(e[::-1])[::-1], [0.0]])
        return np.sqrt(left / self.total_energy)

    # ------------------------------------------------------------------ building
    @classmethod
    def from_store(cls, path, *, tol: float | None = None, n_modes: int | None = None,
                   method: str = "snapshots", block_size: int = 64, seed=None) -> "PodBasis":
        """POD of the finished snapshots in the store at `path` (serial).

        Time series are flattened (every step a snapshot). method "streaming" reads
        `block_size` snapshots at a time (Brand's update); the others load all of them.
        """
        if method not in _METHODS:
            raise PODArgumentError(f"method={method!r}; use one of {_METHODS}")
        _check_truncation(n_modes, tol)
        if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)) or block_size < 1:
            raise PODArgumentError(f"block_size={block_size!r}; pass a positive number of snapshots per block")
        with SnapshotStore(path) as store:
            done = np.flatnonzero(store.done)
            if done.size == 0:
                raise StoreError(f"{path} holds no finished snapshot ({len(store)} planned); "
                                 "run the generation first (rom snapshots ...)")
            M = store.inner_product()
            mesh = store.mesh()
            steps = max(store.n_steps, 1)
            if method == "streaming":
                inc = IncrementalPOD(M, tol=tol, n_modes=n_modes)
                for block in store.iter_blocks(block_size, indices=done):
                    inc.update(block, overwrite=True)
                modes, sigma = inc.result()
            else:
                S = np.ascontiguousarray(store.snapshots(done))
                kw = {"seed": seed} if method == "randomized" else {}
                modes, sigma = pod(S, M, n_modes=n_modes, tol=tol, method=method, **kw)
            total, err2 = _energies(store, M, modes, block_size, done)
            a = store.attrs
        err = np.sqrt(err2 / total)
        return cls(modes, sigma, total, err, int(done.size * steps), method, tol, str(path),
                   array_hash(M.data, M.indices, M.indptr) if M is not None else "", mesh,
                   {"case": a.get("case", ""), "store_options": a.get("options", {}),
                    "store_created": a.get("created", "")})

    # ------------------------------------------------------------------ HDF5
    def save(self, path) -> Path:
        """Write the basis to `path` (HDF5; written beside and renamed, so never half-written)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic(path) as tmp, create_checked(tmp) as f:  # checksummed metadata and values (rom.h5io)
            f.attrs.update({
                "format": FORMAT, "format_version": FORMAT_VERSION, "romtk_version": _romtk_version(),
                "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "method": self.method, "tol": np.nan if self.tol is None else float(self.tol),
                "n_snapshots": self.n_snapshots, "total_energy": float(self.total_energy), "n_dofs": self.n_dofs,
                "source": self.source, "inner_product_hash": self.inner_product_hash,
                "provenance": json.dumps(self.provenance, sort_keys=True, default=str),
            })
            put(f, "modes", self.modes)
            put(f, "singular_values", self.singular_values)
            put(f, "projection_error", self.projection_error)
            if self.mesh is not None:
                _write_mesh_group(f, self.mesh)
        return path

    @classmethod
    def load(cls, path) -> "PodBasis":
        """Read a basis written by `save`; a damaged or foreign file raises StoreError naming the
        file and the object, with what to do."""
        fix = "recompute it with `rom pod STORE --out BASIS`"
        with reading(path, "romtk basis", fix) as f:
            expect_format(f, FORMAT, "romtk basis", fix, FORMAT_VERSION)
            n = read_attr(f, "n_dofs", int) if "n_dofs" in f.attrs else None  # absent in older files
            modes = read_array(f, "modes", shape=(n, None), finite=True)
            N = modes.shape[1]
            sigma = read_array(f, "singular_values", shape=(N,), finite=True)
            err = read_array(f, "projection_error", shape=(N + 1,), finite=True)
            tol = read_attr(f, "tol", float)
            total = read_attr(f, "total_energy", float)
            n_snapshots = read_attr(f, "n_snapshots", int)
            # POD keeps positive singular values in decreasing order, whose energy is part of the total
            if np.any(sigma <= 0) or np.any(np.diff(sigma) > 0) or not np.isfinite(total) \
                    or np.sum(sigma**2) > total * (1 + 1e-8) or n_snapshots < 0 or np.any(err < 0):
                raise StoreError(f"{path}: singular values, total energy, projection errors or snapshot count are "
                                 f"invalid (sigma not positive and decreasing, sum sigma^2 > total energy {total}, "
                                 f"or n_snapshots {n_snapshots}); the basis is damaged: {fix}")
            try:
                provenance = json.loads(read_attr(f, "provenance"))
            except ValueError:
                raise StoreError(f"{path}@provenance is not JSON; the basis is damaged: {fix}") from None
            return cls(modes, sigma, total, err, n_snapshots, read_attr(f, "method"), None if np.isnan(tol) else tol,
                       read_attr(f, "source"), read_attr(f, "inner_product_hash"), _read_mesh_group(f),
                       provenance if isinstance(provenance, dict) else {})

    def summary(self) -> str:
        e = self.projection_error
        return "\n".join([
            f"romtk POD basis ({FORMAT} v{FORMAT_VERSION}) from {self.source or '-'}",
            f"  {self.size} modes of {self.n_dofs} dofs from {self.n_snapshots} snapshots, method {self.method}, "
            f"tol {self.tol if self.tol is not None else '-'}",
            f"  sigma_1 = {self.singular_values[0]:.4e}, sigma_N / sigma_1 = "
            f"{self.singular_values[-1] / self.singular_values[0]:.3e}" if self.size else "  no modes",
            f"  relative projection error of the snapshots: {e[-1]:.3e} (predicted by the discarded energy "
            f"{self.energy_error()[-1]:.3e})",
            f"  mesh stored: {'yes' if self.mesh is not None else 'no'}",
        ])

    # ------------------------------------------------------------------ outputs
    def plot(self, path) -> Path:
        """PNG (or any matplotlib format, by the suffix): singular-value decay and projection
        error against basis size. Written beside and renamed."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        n = np.arange(self.size + 1)
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.6))
        a1.semilogy(n[1:], self.singular_values / self.singular_values[0], "o-", ms=3)
        a1.set_xlabel("k")
        a1.set_ylabel(r"$\sigma_k / \sigma_1$")
        a1.set_title("singular values")
        a2.semilogy(n, np.maximum(self.projection_error, 1e-17), "o-", ms=3, label="measured")
        predicted = self.energy_error()  # an exact 0 (nothing discarded) is left out, not drawn at a floor
        a2.semilogy(n, np.where(predicted > 0, predicted, np.nan), "--", label="discarded energy")
        if self.tol is not None:
            a2.axhline(self.tol, color="k", lw=0.7, ls=":", label=f"tol {self.tol:g}")
        a2.set_xlabel("basis size N")
        a2.set_ylabel("relative projection error")
        a2.set_title("snapshots onto the first N modes")
        a2.legend(fontsize=8)
        for ax in (a1, a2):
            ax.grid(True, which="both", lw=0.3)
        fig.tight_layout()
        try:
            with atomic(path) as tmp:  # beside and renamed: an interrupted run keeps the old image
                fig.savefig(tmp, dpi=120, format=path.suffix.lstrip(".").lower() or "png")
        finally:
            plt.close(fig)
        return path

    def mode_fields(self, n_points: int, n_modes: int | None = None, components: int = 1) -> dict[str, np.ndarray]:
        """The first `n_modes` modes (all by default) as point fields mode_000, mode_001, ...:
        name -> (n_points,) float64, or (n_points, components) for a vector field.

        The dofs must start with the mesh vertices in vertex order (romtk's serial
        numbering; of P2 fields only the vertex values are kept), `components`
        node-interleaved values per vertex. Write them with the mesh on the full-order side,
        e.g. `solvers.mesh.io.write_mesh(path, mesh, point_data=basis.mode_fields(mesh.n_points))`
        (`rom pod --xdmf` does this with the stored mesh).
        """
        n_points, components = int(n_points), int(components)
        if n_points < 1 or components < 1:
            raise ShapeError(f"n_points={n_points}, components={components}; pass positive counts")
        k = self.size if n_modes is None else min(int(n_modes), self.size)
        nv = n_points * components
        if self.n_dofs < nv:
            raise ShapeError(f"{self.n_dofs} dofs cannot start with {components} value(s) per vertex of "
                             f"{n_points} points; pass the mesh the snapshots were computed on")
        shape = (n_points,) if components == 1 else (n_points, components)
        return {f"mode_{j:03d}": self.modes[:nv, j].reshape(shape) for j in range(k)}


def _energies(store, M, modes, block_size, done) -> tuple[float, np.ndarray]:
    """||S||_M^2 and the squared projection errors ||S - Phi_n Phi_n^T M S||_M^2, n = 0..N, block by block.

    The residual of all N modes is measured directly; the errors of fewer modes add
    the captured energies of the modes left out (sums of positive terms: no
    cancellation, so errors far below sqrt(eps) are resolved).
    """
    MPhi = modes if M is None else np.asarray(M @ modes)
    total = rest = 0.0
    coef2 = np.zeros(modes.shape[1])
    for S in store.iter_blocks(block_size, indices=done):
        MS = S if M is None else M @ S
        total += float(np.einsum("ij,ij->", S, MS))
        C = MPhi.T @ S
        coef2 += np.einsum("ij,ij->i", C, C)
        R = S - modes @ C
        rest += float(np.einsum("ij,ij->", R, R if M is None else M @ R))
    if not total > 0:
        raise RomError(f"the snapshots in {store.path} are all zero: there is nothing to compress")
    err2 = rest + np.concatenate([np.cumsum(coef2[::-1])[::-1], [0.0]])
    return total, err2
