"""Snapshot generation: run a full-order problem over a parameter sample into a store.

The problem protocol is small: an object with

* ``solve(mu) -> ndarray`` -- the field, ``(n_dofs,)`` for a steady problem or
  ``(n_steps, n_dofs)`` for a time series (under a distributed FOM: this rank's
  rows, concatenated over the ranks of its group in rank order);
* ``parameter_space`` -- anything with ``validate(mu)`` (a `ParameterSpace` or a
  `solvers.problems.base.Box`);
* optionally ``inner_product`` (a sparse matrix, or a method returning one),
  ``times`` (the time instants) and ``mesh`` (hashed for provenance).

`generate` is resumable: if the store exists it must hold the same sample of the same
model (its identity: case, options, mesh hash, parameter space, dof count; see
`SnapshotStore.identity`), and only the snapshots still missing are computed. Under mpirun the ranks are split
into groups of `group_size` (a sub-communicator each, passed to the problem's
``solve`` as ``comm=`` when it accepts it); groups take parameters round-robin,
and world rank 0 writes every result to the store. A `RomError` raised by one
solve (e.g. `ConvergenceError`) is recorded for that snapshot with its message
and the run goes on.
"""

from __future__ import annotations

import inspect
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rom.errors import ParameterError, RomError, ShapeError, StoreError
from rom.parallel import Comm, world
from rom.store import DONE, FAILED, MISSING, SnapshotStore, _romtk_version, array_hash, as_sample

__all__ = ["generate", "GenerationReport"]

log = logging.getLogger(__name__)


@dataclass
class GenerationReport:
    """What a `generate` call did (the same object on every rank)."""

    path: str
    n_samples: int
    n_done: int
    n_failed: int
    n_computed: int
    seconds: float
    failures: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"{self.path}: {self.n_done}/{self.n_samples} snapshots done, {self.n_failed} failed, "
                 f"{self.n_computed} computed in this run ({self.seconds:.1f} s)"]
        lines += [f"  warning: {w}" for w in self.warnings]
        lines += [f"  failed #{i}: {msg}" for i, msg in sorted(self.failures.items())]
        return "\n".join(lines)


def _inner_product(problem):
    ip = getattr(problem, "inner_product", None)
    return ip() if callable(ip) else ip


def _solve(problem, mu, group: Comm, pass_comm: bool):
    return problem.solve(mu, comm=group) if pass_comm else problem.solve(mu)


def _identity(problem, space, case, options) -> dict:
    """The identity of the full-order model as `SnapshotStore.identity()` spells it, from what
    is known before solving (the dof count and steps are checked on the first result)."""
    mesh = getattr(problem, "mesh", None)
    has_mesh = hasattr(mesh, "points") and hasattr(mesh, "cells")
    out = {"case": case or type(problem).__name__, "options": dict(options or {}),
           "mesh_hash": array_hash(mesh.points, mesh.cells) if has_mesh else "", "romtk_version": _romtk_version()}
    if hasattr(space, "to_dict"):
        out["parameter_space"] = space.to_dict()
    return out


def _check_resume(store: SnapshotStore, identity: dict, P: np.ndarray) -> list[str]:
    """Refuse (StoreError) to resume a store made for another model or sample; return warnings."""
    path = store.path
    if store.parameters.shape != P.shape or not np.array_equal(store.parameters, P):
        raise StoreError(f"{path} holds snapshots for another parameter sample ({store.parameters.shape[0]} "
                         f"points of dimension {store.parameters.shape[1]}, now {P.shape[0]} of {P.shape[1]}); "
                         "write to another file, or delete it to start over")
    differences = store.identity_differences(identity)
    if differences:
        raise StoreError(f"{path} holds snapshots of another full-order model; refusing to mix them: "
                         + "; ".join(differences) + ". Rerun with the store's settings, write to another file, "
                         "or delete it to start over")
    version = store.identity()["romtk_version"]
    if version != identity["romtk_version"]:
        return [f"{path} was written by romtk {version}; resuming it with romtk {identity['romtk_version']} "
                "(the store keeps the first version in its romtk_version attribute)"]
    return []


def _accepts_comm(problem) -> bool:
    try:
        return "comm" in inspect.signature(problem.solve).parameters
    except (TypeError, ValueError):
        return False


def generate(problem, mu_samples, store_path, comm: Comm | None = None, progress: bool = True, *,
             group_size: int = 1, case: str | None = None, options: dict | None = None,
             retry_failed: bool = False) -> GenerationReport:
    """Compute the snapshots of `problem` at `mu_samples` (m, dim) into the store at `store_path`.

    Resumes an existing store (`retry_failed` also recomputes recorded failures) only if it
    was made for the same model: same sample, case (default: the problem's class name),
    options, mesh hash (`array_hash(problem.mesh.points, problem.mesh.cells)`), parameter
    space, dof count and steps; otherwise StoreError names each difference. A store written
    by another romtk version is resumed with a warning (logged and in the report).
    `progress` shows a tqdm bar with ETA on rank 0. `case` and `options` (the options that
    define the problem and the run, JSON-able) are recorded in the store and compared on
    resume. Returns a `GenerationReport`.
    """
    comm = world() if comm is None else comm
    t0 = time.perf_counter()
    space = getattr(problem, "parameter_space", None)
    if space is None or not hasattr(problem, "solve"):
        raise RomError(f"{type(problem).__name__} is not a problem: it needs solve(mu) and parameter_space")
    P = as_sample("mu_samples", mu_samples)
    for j, mu in enumerate(P):
        try:
            space.validate(mu)
        except ParameterError as exc:
            raise ParameterError(f"mu_samples row {j}: {exc}") from None
    if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1 or comm.size % group_size:
        raise RomError(f"group_size={group_size!r} must be a positive divisor of the number of ranks ({comm.size})")
    n_groups = comm.size // group_size
    color = comm.rank // group_size
    group = comm.Split(color)
    path = Path(store_path)
    pass_comm = _accepts_comm(problem)
    # Every rank evaluates the inner product, so that a problem assembling it
    # collectively does not hang; a distributed one (owned rows) is not stored.
    inner = _inner_product(problem) if not path.exists() else None
    fom_space = getattr(problem, "space", None)
    to_serial = getattr(fom_space, "to_serial", None) if group.size > 1 else None

    # Rank 0 owns the file; everyone learns what is left to do.
    store = None
    todo = None
    error = None
    warnings: list[str] = []
    if comm.rank == 0:
        try:
            if path.exists():
                store = SnapshotStore(path, "r+")
                try:
                    warnings = _check_resume(store, _identity(problem, space, case, options), P)
                except StoreError:
                    store.close()
                    raise
                for w in warnings:
                    log.warning("%s", w)
                st = store.status
                todo = np.flatnonzero((st == MISSING) | ((st == FAILED) if retry_failed else False))
            else:
                todo = np.arange(P.shape[0])
        except RomError as exc:
            error = exc
    error = comm.bcast(error)
    if error is not None:
        raise error
    todo = comm.bcast(todo)
    resumed = store is not None

    bar = None
    if progress and comm.rank == 0 and todo.size:
        from tqdm.auto import tqdm

        bar = tqdm(total=int(todo.size), desc="snapshots", unit="snap", dynamic_ncols=True)
    pending_failures: list[tuple[int, str]] = []
    n_rounds = -(-todo.size // n_groups)
    try:
        for r in range(n_rounds):
            k = r * n_groups + color
            result = None
            if k < todo.size:
                i = int(todo[k])
                try:
                    value = np.asarray(_solve(problem, P[i], group, pass_comm), dtype=np.float64)
                    if group.size > 1:
                        parts = group.gather(value)
                        value = np.concatenate(parts, axis=-1) if group.rank == 0 else None
                        if value is not None and to_serial is not None:  # store the serial numbering
                            value = to_serial(value) if value.ndim == 1 else \
                                to_serial(np.ascontiguousarray(value.T)).T
                    result = (i, value, None)
                except RomError as exc:
                    result = (i, None, f"{type(exc).__name__}: {exc}")
            if group.rank != 0:
                result = None
            results = comm.gather(result, root=0)
            if comm.rank == 0:
                for res in results:
                    if res is None:
                        continue
                    i, value, message = res
                    if message is None and not np.all(np.isfinite(value)):
                        message = "the solution contains NaN or Inf"
                    if message is None and store is None:
                        store = _create(path, P, value, problem, space, case, options, inner)
                        for j, msg in pending_failures:
                            store.write_failure(j, msg)
                        pending_failures = []
                    if message is not None:
                        if store is None:
                            pending_failures.append((i, message))
                        else:
                            store.write_failure(i, message)
                    else:
                        want = (store.n_steps, store.n_dofs) if store.n_steps else (store.n_dofs,)
                        if value.shape != want:
                            raise (StoreError if resumed else ShapeError)(
                                f"solve(mu) for sample {i} returned shape {value.shape}; the snapshots in {path} "
                                f"have {want}" + (": it holds another full-order model (n_steps, n_dofs differ); "
                                                  "write to another file" if resumed else ""))
                        store.write(i, value)
                if bar is not None:
                    bar.update(sum(res is not None for res in results))
    finally:
        if bar is not None:
            bar.close()
    report = None
    if comm.rank == 0:
        if store is None:
            msgs = "; ".join(f"#{i}: {m}" for i, m in pending_failures[:5])
            raise RomError(f"every snapshot failed, no store was written ({msgs})") if pending_failures else \
                StoreError(f"nothing to compute and no store at {path}")
        st = store.status
        report = GenerationReport(str(path), int(st.size), int(np.sum(st == DONE)), int(np.sum(st == FAILED)),
                                  int(todo.size), time.perf_counter() - t0, store.failures(), warnings)
        store.close()
        if report.n_failed:
            log.warning("%s: %d of %d snapshots failed (the report lists them)", path, report.n_failed,
                        report.n_samples)
    return comm.bcast(report)


def _create(path: Path, P, first, problem, space, case, options, inner) -> SnapshotStore:
    if first.ndim not in (1, 2):
        raise ShapeError(f"solve(mu) returned shape {first.shape}; return (n_dofs,) or (n_steps, n_dofs)")
    n_steps, n_dofs = (first.shape if first.ndim == 2 else (0, first.shape[0]))
    mesh = getattr(problem, "mesh", None)
    mesh_hash = array_hash(mesh.points, mesh.cells) if hasattr(mesh, "points") and hasattr(mesh, "cells") else None
    times = getattr(problem, "times", None)
    if times is not None and np.shape(times) != (n_steps,):
        times = None
    return SnapshotStore.create(
        path, P, n_dofs, n_steps=n_steps, parameter_space=space, times=times,
        inner_product=inner if inner is not None and inner.shape == (n_dofs, n_dofs) else None,
        inner_product_rebuild="" if inner is None or inner.shape == (n_dofs, n_dofs) else
        f"{type(problem).__name__}.inner_product (assembled distributed; not stored)", mesh_hash=mesh_hash,
        mesh=mesh if mesh_hash is not None and getattr(mesh, "cell_type", None) else None,
        case=case or type(problem).__name__, options=options,
    )
