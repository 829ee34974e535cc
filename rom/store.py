"""SnapshotStore: snapshots, their parameters and provenance in one HDF5 file.

The layout (version 1, documented in docs/store.md) is fixed when the store is
created: the parameter sample `(m, dim)` and every dataset, preallocated with a
contiguous layout and early allocation. After creation, writing a snapshot only
writes raw data -- no HDF5 metadata changes -- so a process killed at any moment
(Ctrl-C, ``kill -9``, a node failure) leaves a file that h5py opens and whose
finished snapshots are intact. A snapshot counts as done only once its `status`
entry is set, which is written (and flushed) after its field data. The file is
created beside its final name and renamed into place, so a half-created file is
never taken for a store.

Status codes: 0 missing, 1 done, 2 failed (the message is in `failures`).
"""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import inspect
import json
import zlib
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Iterator, Mapping

import h5py
import numpy as np
import scipy.sparse as sp

from rom.errors import RomError, ShapeError, StoreError
from rom.h5io import _DAMAGE, atomic, create_checked, expect_format, guarded, put, read_array, read_attr, read_group

__all__ = ["SnapshotStore", "MeshArrays", "FORMAT", "FORMAT_VERSION", "array_hash", "MISSING", "DONE", "FAILED"]

FORMAT = "romtk.snapshots"
FORMAT_VERSION = 2  # 2: checksums of every snapshot (required); version 1 stores are read unverified
_VERSIONS_READ = (1, 2)
MISSING, DONE, FAILED = 0, 1, 2
_MESSAGE_BYTES = 512  # failure messages are stored as fixed-size bytes (raw data, crash-safe)
_CHECK_BLOCK = 1 << 16  # values per checksum (512 KB): crc32 of each block, verified on every read


def _crc_blocks(v: np.ndarray, block: int = _CHECK_BLOCK) -> np.ndarray:
    """crc32 of each run of `block` values along the last axis of v (..., n): (..., ceil(n/block)) uint32.

    One zlib call per 512 KB buffer (rows are snapshots or time steps, never dofs): zlib runs at
    memory speed, a compiled loop of our own would not."""
    v = np.ascontiguousarray(v, dtype=np.float64)
    n = v.shape[-1]
    flat = v.reshape(-1, n)
    nb = -(-n // block)
    out = np.empty((flat.shape[0], nb), dtype=np.uint32)
    for r in range(flat.shape[0]):
        row = flat[r]
        for b in range(nb):
            out[r, b] = zlib.crc32(row[b * block:(b + 1) * block])
    return out.reshape(v.shape[:-1] + (nb,))


def array_hash(*arrays) -> str:
    """sha256 of the dtypes, shapes and bytes of arrays (e.g. mesh points and cells)."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str(a.dtype).encode())
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def as_sample(name: str, values) -> np.ndarray:
    """A parameter sample as an (m, dim) float64 array, m >= 1 (a 1-D array is m scalars)."""
    P = np.asarray(values, dtype=np.float64)
    if P.ndim == 1:
        P = P[:, None]
    if P.ndim != 2 or P.shape[0] == 0:
        raise ShapeError(f"{name} has shape {np.shape(values)}; pass an (m, dim) sample with m >= 1")
    return P


def _romtk_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("romtk")
    except PackageNotFoundError:  # a source tree that was not installed
        return "0.1.0+src"


def _preallocated(group: h5py.Group, name: str, shape: tuple, dtype) -> h5py.Dataset:
    """Contiguous dataset allocated at creation, never filled (the OS keeps it sparse).

    Writing into it later touches raw data only, never the file's metadata.
    """
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_layout(h5py.h5d.CONTIGUOUS)
    dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
    dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
    space = h5py.h5s.create_simple(tuple(int(s) for s in shape))
    tid = h5py.h5t.py_create(np.dtype(dtype), logical=True)
    dsid = h5py.h5d.create(group.id, name.encode(), tid, space, dcpl=dcpl)
    return h5py.Dataset(dsid)


def _write_mesh_group(f: h5py.File, mesh) -> None:
    """The optional "mesh" group: points, cells, cell_type, regions/<name> (cell indices)."""
    g = f.create_group("mesh")
    put(g, "points", np.asarray(mesh.points, dtype=np.float64))
    put(g, "cells", np.asarray(mesh.cells, dtype=np.int64))
    g.attrs["cell_type"] = mesh.cell_type
    r = g.create_group("regions")
    for name, cells in getattr(mesh, "regions", {}).items():
        put(r, name, np.asarray(cells, dtype=np.int64))


_FIX = "regenerate it (rom snapshots) or give another store"


def _dataset(f: h5py.File, name: str, dtype, ndim: int) -> h5py.Dataset:
    """f[name], checked to be a dataset of `dtype` with `ndim` dimensions (no raw data read)."""
    obj = f.get(name)
    if not isinstance(obj, h5py.Dataset) or obj.dtype != np.dtype(dtype) or obj.ndim != ndim:
        found = f"dtype {obj.dtype}, shape {obj.shape}" if isinstance(obj, h5py.Dataset) else "missing"
        raise StoreError(f"{f.filename}:/{name} is {found}, expected {ndim}-D {np.dtype(dtype)}; the store is damaged: "
                         f"{_FIX}")
    return obj


def _reader(method):
    """Run a reading method of SnapshotStore (or each step of a generator) with damage turned into
    StoreError naming the store."""
    if inspect.isgeneratorfunction(method):
        @functools.wraps(method)
        def gen(self, *args, **kw):
            with guarded(self.path, "romtk snapshot store", _FIX):
                yield from method(self, *args, **kw)
        return gen

    @functools.wraps(method)
    def run(self, *args, **kw):
        with guarded(self.path, "romtk snapshot store", _FIX):
            return method(self, *args, **kw)
    return run


@dataclass(frozen=True, eq=False)
class MeshArrays:
    """A mesh as the store and the basis file hold it: plain arrays, no finite-element meaning.

    points: (n, dim) float64, the length unit of the problem; cells: (ne, k) int64 vertex
    indices into points; cell_type: the meshio name ("triangle", "tetra", ...); regions:
    name -> (m,) int64 cell indices. The arrays are read-only. `solvers.mesh.Mesh(m.points,
    m.cells, m.cell_type, regions=m.regions)` turns it into a mesh to compute or write on;
    `rom` itself never imports `solvers` (docs/concepts.md, "Layers").
    """

    points: np.ndarray
    cells: np.ndarray
    cell_type: str
    regions: Mapping[str, np.ndarray] | None = None

    def __post_init__(self):
        points = np.array(self.points, dtype=np.float64)
        cells = np.array(self.cells, dtype=np.int64)
        if points.ndim != 2 or not 1 <= points.shape[1] <= 3 or not np.isfinite(points).all():
            raise ShapeError(f"points has shape {points.shape} or non-finite values; pass (n, dim) finite "
                             f"coordinates, 1 <= dim <= 3")
        if cells.ndim != 2 or (cells.size and (cells.min() < 0 or cells.max() >= len(points))):
            raise ShapeError(f"cells has shape {cells.shape} or indices outside [0, {len(points)}); pass "
                             f"(n_cells, k) indices into the {len(points)} points")
        if not isinstance(self.cell_type, str) or not self.cell_type:
            raise ShapeError(f"cell_type={self.cell_type!r}; pass the meshio cell type name, e.g. 'triangle'")
        regions = {}
        for name, idx in dict(self.regions or {}).items():
            idx = np.array(idx, dtype=np.int64)
            if idx.ndim != 1 or (idx.size and (idx.min() < 0 or idx.max() >= len(cells))):
                raise ShapeError(f"region {name!r} has shape {idx.shape} or cell indices outside [0, {len(cells)}); "
                                 f"pass (m,) indices into the {len(cells)} cells")
            idx.flags.writeable = False
            regions[str(name)] = idx
        points.flags.writeable = cells.flags.writeable = False
        object.__setattr__(self, "points", points)
        object.__setattr__(self, "cells", cells)
        object.__setattr__(self, "regions", MappingProxyType(regions))

    @property
    def n_points(self) -> int:
        return len(self.points)


def _read_mesh_group(f: h5py.File) -> MeshArrays | None:
    """The optional "mesh" group as MeshArrays (None when absent); damage is a StoreError."""
    if "mesh" not in f:
        return None
    g = read_group(f, "mesh")
    regions = {}
    if "regions" in g:
        r = read_group(g, "regions")
        regions = {k: read_array(r, k, ndim=1, dtype=np.int64) for k in r}
    try:
        return MeshArrays(read_array(g, "points", ndim=2, finite=True), read_array(g, "cells", ndim=2, dtype=np.int64),
                          read_attr(g, "cell_type"), regions=regions)
    except RomError as exc:
        raise StoreError(f"{f.filename}:/mesh holds an invalid mesh ({exc}); the file is damaged: regenerate it") \
            from None


class SnapshotStore:
    """A romtk snapshot store (HDF5), opened for reading (`mode="r"`) or writing (`"r+"`).

    Create one with `SnapshotStore.create(...)`; open an existing one with
    `SnapshotStore(path)`. Use as a context manager, or call `close()`.

    Attributes (read from the file): `parameters` (m, dim) float64, `status` (m,)
    int8, `n_dofs`, `n_steps` (0 for steady fields), `fields` (names), `attrs`
    (provenance: case, romtk_version, created, options, mesh_hash).
    """

    def __init__(self, path, mode: str = "r"):
        if mode not in ("r", "r+"):
            raise StoreError(f"mode={mode!r}; open a store with 'r' (read) or 'r+' (write)")
        self.path = Path(path)
        if not self.path.exists():
            raise StoreError(f"no snapshot store at {self.path}; create it with SnapshotStore.create or rom snapshots")
        try:  # read-only needs no lock: a writer changes only raw data after creation (see above),
            # so `rom info` can watch a store that another process is filling
            self._f = h5py.File(self.path, mode, locking=False if mode == "r" else None)
        except _DAMAGE as exc:
            hint = " (another process may hold it open for writing: open it read-only)" if mode == "r+" else ""
            raise StoreError(f"{self.path} is not a readable HDF5 file ({exc}){hint}; it is corrupt or not a romtk "
                             "store: regenerate it") from None
        try:
            with guarded(self.path, "romtk snapshot store", _FIX):
                self._validate()
        except StoreError:
            self._f.close()
            raise

    # ------------------------------------------------------------------ validation
    def _validate(self) -> None:
        """Check the layout against format version 1 (any failure here is a damaged store)."""
        f = self._f
        self.format_version = expect_format(f, FORMAT, "romtk snapshot store",
                                            "give the path of a store written by romtk", _VERSIONS_READ)
        where = f"{self.path}:"
        self._params = _dataset(f, "parameters/values", np.float64, 2)
        self._status = _dataset(f, "status", np.int8, 1)
        self._messages = _dataset(f, "failures", np.uint8, 2)
        m = self._params.shape[0]
        self.n_dofs = read_attr(f, "n_dofs", int)
        self.n_steps = read_attr(f, "n_steps", int)
        if self.n_dofs < 1 or self.n_steps < 0:
            raise StoreError(f"{where} n_dofs={self.n_dofs}, n_steps={self.n_steps}; the store is damaged: {_FIX}")
        self.fields = tuple(read_group(f, "fields").keys())
        if not self.fields:
            raise StoreError(f"{where}/fields holds no field; the store is damaged: {_FIX}")
        shape = (m, self.n_steps, self.n_dofs) if self.n_steps else (m, self.n_dofs)
        for name in self.fields:
            ds = _dataset(f, f"fields/{name}", np.float64, len(shape))
            if ds.shape != shape:
                raise StoreError(f"{where}/fields/{name} has shape {ds.shape}, expected {shape}; the store is damaged: "
                                 f"{_FIX}")
        self._check = None  # version 1 stores, written before checksums existed, are read unverified
        if self.format_version >= 2:
            cg = read_group(f, "checksums")
            self._check = read_attr(cg, "block", int)
            if self._check < 1:
                raise StoreError(f"{where}/checksums@block = {self._check}; the store is damaged: {_FIX}")
            want = shape[:-1] + (-(-self.n_dofs // self._check),)
            for name in self.fields:
                ds = _dataset(f, f"checksums/{name}", np.uint32, len(want))
                if ds.shape != want:
                    raise StoreError(f"{where}/checksums/{name} has shape {ds.shape}, expected {want}; the store is "
                                     f"damaged: {_FIX}")
        if self._status.shape != (m,) or self._messages.shape != (m, _MESSAGE_BYTES):
            raise StoreError(f"{where} status {self._status.shape} / failures {self._messages.shape} do not match "
                             f"the {m} parameters; the store is damaged: {_FIX}")
        for name in ("case", "options", "mesh_hash", "created", "romtk_version"):  # provenance, always written
            read_attr(f, name)
        if not isinstance(json.loads(read_attr(f, "options")), dict):
            raise StoreError(f"{where}@options is not a JSON object; the store is damaged: {_FIX}")
        read_attr(read_group(f, "inner_product"), "rebuild")
        self.parameters = read_array(f["parameters"], "values", ndim=2, finite=True)
        if m == 0:
            raise StoreError(f"{where}/parameters/values is empty; the store is damaged: {_FIX}")
        self.status  # reading the mask proves the raw data is reachable and valid

    # ------------------------------------------------------------------ creation
    @classmethod
    def create(cls, path, parameters, n_dofs: int, *, n_steps: int = 0, fields=("u",),
               parameter_space=None, times=None, inner_product=None, inner_product_rebuild: str | None = None,
               mesh_hash: str | None = None, mesh=None, case: str = "", options: Mapping | None = None,
               overwrite: bool = False) -> "SnapshotStore":
        """Create a store for the sample `parameters` (m, dim) and open it for writing.

        n_dofs : size of one field (global); n_steps : number of time steps (0: steady).
        fields : names of the fields stored per snapshot (the driver writes "u").
        parameter_space : a ParameterSpace (its description is stored) or None.
        times : (n_steps,) time instants, for time series.
        inner_product : scipy sparse (n_dofs, n_dofs), stored as CSR arrays;
        inner_product_rebuild : how to rebuild it instead (a sentence or a call).
        mesh_hash : e.g. `array_hash(mesh.points, mesh.cells)`.
        mesh : anything with points, cells, cell_type and regions (a `solvers.mesh.Mesh`,
            a `MeshArrays`), stored as plain arrays in the optional group "mesh", so that
            modes can be written for ParaView later.
        case, options : provenance (case name, options of the run as JSON-able dict).

        The file is written as `<path>.partial` and renamed to `path` when complete.
        """
        path = Path(path)
        if path.exists() and not overwrite:
            raise StoreError(f"{path} exists; open it with SnapshotStore(path, 'r+') or pass overwrite=True")
        P = as_sample("parameters", parameters)
        if not np.all(np.isfinite(P)):
            raise ShapeError("parameters contain NaN or Inf; validate the sample first")
        n_dofs, n_steps = int(n_dofs), int(n_steps)
        if n_dofs < 1 or n_steps < 0:
            raise ShapeError(f"n_dofs={n_dofs}, n_steps={n_steps}; pass n_dofs >= 1 and n_steps >= 0")
        fields = tuple(fields)
        if not fields or len(set(fields)) != len(fields):
            raise ShapeError(f"fields={fields!r}; pass distinct field names")
        if times is not None and (n_steps == 0 or np.shape(times) != (n_steps,)):
            raise ShapeError(f"times has shape {np.shape(times)}; pass ({n_steps},) instants for a time series")
        M = None
        if inner_product is not None:
            if not sp.issparse(inner_product):
                raise ShapeError(f"inner_product has type {type(inner_product).__name__}; pass a scipy.sparse matrix")
            M = sp.csr_matrix(inner_product, dtype=np.float64)
            if M.shape != (n_dofs, n_dofs):
                raise ShapeError(f"inner_product has shape {M.shape}; expected ({n_dofs}, {n_dofs})")
        m = P.shape[0]
        with atomic(path) as tmp, create_checked(tmp, reopened=True) as f:  # checksummed metadata (rom.h5io)
            f.attrs["format"] = FORMAT
            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs["romtk_version"] = _romtk_version()
            f.attrs["created"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
            f.attrs["case"] = str(case)
            f.attrs["options"] = json.dumps(dict(options or {}), sort_keys=True, default=str)
            f.attrs["mesh_hash"] = mesh_hash or ""
            f.attrs["n_dofs"] = n_dofs
            f.attrs["n_steps"] = n_steps
            g = f.create_group("parameters")
            put(g, "values", P)
            if parameter_space is not None:
                names = list(getattr(parameter_space, "names", []))
                g.attrs["names"] = json.dumps(names)
                if hasattr(parameter_space, "to_dict"):
                    g.attrs["space"] = json.dumps(parameter_space.to_dict())
            if times is not None:
                put(f, "times", np.asarray(times, dtype=np.float64))
            shape = (m, n_steps, n_dofs) if n_steps else (m, n_dofs)
            fg = f.create_group("fields")
            cg = f.create_group("checksums")
            cg.attrs["block"] = _CHECK_BLOCK
            for name in fields:
                _preallocated(fg, name, shape, np.float64)
                _preallocated(cg, name, shape[:-1] + (-(-n_dofs // _CHECK_BLOCK),), np.uint32)
            st = _preallocated(f, "status", (m,), np.int8)
            st[...] = MISSING
            msg = _preallocated(f, "failures", (m, _MESSAGE_BYTES), np.uint8)
            msg[...] = 0
            ig = f.create_group("inner_product")
            if M is not None:
                put(ig, "data", M.data)
                put(ig, "indices", M.indices.astype(np.int64))
                put(ig, "indptr", M.indptr.astype(np.int64))
                ig.attrs["shape"] = M.shape
            ig.attrs["rebuild"] = inner_product_rebuild or ""
            if mesh is not None:
                _write_mesh_group(f, mesh)
        return cls(path, "r+")

    # ------------------------------------------------------------------ identity
    @_reader
    def identity(self) -> dict:
        """What defines the full-order model whose snapshots this store holds.

        case, options (JSON object of the run's options), mesh_hash, n_dofs, n_steps,
        parameter_space (its description, {} if none was stored) and romtk_version,
        all read from the attributes written by `create`.
        """
        a = self._f.attrs
        text = lambda v: v.decode() if isinstance(v, bytes) else str(v)  # noqa: E731
        space = self._f["parameters"].attrs.get("space")
        return {
            "case": text(a.get("case", "")),
            "options": json.loads(text(a.get("options", "{}"))),
            "mesh_hash": text(a.get("mesh_hash", "")),
            "n_dofs": self.n_dofs,
            "n_steps": self.n_steps,
            "parameter_space": json.loads(text(space)) if space is not None else {},
            "romtk_version": text(a.get("romtk_version", "")),
        }

    def identity_differences(self, expected: Mapping) -> list[str]:
        """The entries of `expected` (keys as in `identity()`, any subset) that differ from this
        store's, one 'name: store X, now Y' line each; romtk_version is left out (see
        `generate`, which only warns about it). Options are compared as JSON (tuples as lists)."""
        mine = self.identity()
        out = []
        for key, want in expected.items():
            if key == "romtk_version" or key not in mine:
                continue
            have = mine[key]
            if key in ("options", "parameter_space"):
                want = json.loads(json.dumps(dict(want or {}), sort_keys=True, default=str))
                if key == "options":
                    keys = sorted(set(have) | set(want))
                    out += [f"option {k}: store {have.get(k, '(unset)')!r}, now {want.get(k, '(unset)')!r}"
                            for k in keys if have.get(k, "(unset)") != want.get(k, "(unset)")]
                    continue
            if have != want:
                show = (lambda h: h[:12] or "(none)") if key == "mesh_hash" else \
                    (lambda h: json.dumps(h, sort_keys=True)) if isinstance(have, dict) else repr  # noqa: E731
                out.append(f"{key}: store {show(have)}, now {show(want)}")
        return out

    # ------------------------------------------------------------------ context
    def close(self) -> None:
        if self._f.id.valid:
            self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __len__(self) -> int:
        return int(self.parameters.shape[0])

    # ------------------------------------------------------------------ metadata
    @property
    @_reader
    def attrs(self) -> dict:
        a = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in self._f.attrs.items()}
        a["options"] = json.loads(a.get("options", "{}"))
        return a

    @property
    def status(self) -> np.ndarray:
        """(m,) int8: 0 missing, 1 done, 2 failed."""
        with guarded(self.path, "romtk snapshot store", _FIX):
            st = self._status[...]
        if not np.all((st >= MISSING) & (st <= FAILED)):
            raise StoreError(f"{self.path}:/status holds codes other than 0, 1, 2; the store is damaged: {_FIX}")
        return st

    @property
    def done(self) -> np.ndarray:
        """Boolean mask (m,) of finished snapshots."""
        return self.status == DONE

    @property
    def missing(self) -> np.ndarray:
        """Indices of snapshots neither done nor failed."""
        return np.flatnonzero(self.status == MISSING)

    @property
    @_reader
    def times(self) -> np.ndarray | None:
        return read_array(self._f, "times", shape=(self.n_steps,), finite=True) if "times" in self._f else None

    @_reader
    def failures(self) -> dict[int, str]:
        """Failed snapshots: index -> message."""
        idx = np.flatnonzero(self.status == FAILED)
        if idx.size == 0:
            return {}
        raw = self._messages[idx.tolist()]
        return {int(i): bytes(r).rstrip(b"\0").decode("utf-8", "replace") for i, r in zip(idx, raw)}

    @_reader
    def inner_product(self) -> sp.csr_matrix | None:
        """The stored inner-product matrix, or None (see `inner_product_rebuild`)."""
        g = read_group(self._f, "inner_product")
        parts = [k in g for k in ("data", "indices", "indptr")] + ["shape" in g.attrs]
        if not any(parts):
            return None
        if not all(parts):
            raise StoreError(f"{self.path}:/inner_product lacks some of data, indices, indptr and shape; the store is "
                             f"damaged: {_FIX}")
        shape = tuple(np.asarray(g.attrs["shape"], dtype=np.int64).tolist())
        M = sp.csr_matrix((read_array(g, "data", ndim=1, finite=True), read_array(g, "indices", ndim=1, dtype=np.int64),
                           read_array(g, "indptr", ndim=1, dtype=np.int64)), shape=shape)
        M.check_format(full_check=True)
        if M.shape != (self.n_dofs, self.n_dofs):
            raise StoreError(f"{self.path}:/inner_product has shape {M.shape}, expected ({self.n_dofs}, {self.n_dofs}); "
                             f"the store is damaged: {_FIX}")
        return M

    @_reader
    def mesh(self):
        """The stored mesh as `MeshArrays`, or None when the store was written without one."""
        return _read_mesh_group(self._f)

    @property
    @_reader
    def inner_product_rebuild(self) -> str:
        v = self._f["inner_product"].attrs.get("rebuild", "")
        return v.decode() if isinstance(v, bytes) else str(v)

    @_reader
    def summary(self) -> str:
        a = self.attrs
        st = self.status
        kind = f"time series of {self.n_steps} steps" if self.n_steps else "steady"
        lines = [
            f"romtk snapshot store {self.path} (format {FORMAT} v{self.format_version}"
            f"{'' if self._check else ', snapshots not checksummed'})",
            f"  case {a.get('case') or '-'}, written by romtk {a.get('romtk_version')}, created {a.get('created')}",
            f"  {len(st)} parameters of dimension {self.parameters.shape[1]}; fields {', '.join(self.fields)} "
            f"({self.n_dofs} dofs, {kind})",
            f"  done {int(np.sum(st == DONE))}, failed {int(np.sum(st == FAILED))}, missing {int(np.sum(st == MISSING))} "
            f"of {len(st)} planned",
        ]
        for i, msg in self.failures().items():
            lines.append(f"  failed #{i}: {msg}")
        return "\n".join(lines)

    # ------------------------------------------------------------------ writing
    def _writable(self) -> None:
        if self._f.mode != "r+":
            raise StoreError(f"{self.path} is open read-only; open it with SnapshotStore(path, 'r+') to write")

    def write(self, index: int, values, field: str = "u") -> None:
        """Write snapshot `index` of `field` ((n_dofs,) or (n_steps, n_dofs)) and mark it done.

        Field data are flushed before the status, so a kill in between leaves
        the snapshot marked missing (it is recomputed), never done-but-partial.
        For several fields, call `write_field` for each, then `mark_done`.
        """
        self.write_field(index, values, field)
        self.mark_done(index)

    def write_field(self, index: int, values, field: str = "u") -> None:
        self._writable()
        if field not in self.fields:
            raise StoreError(f"field {field!r} is not in this store (fields: {', '.join(self.fields)})")
        v = np.asarray(values, dtype=np.float64)
        want = (self.n_steps, self.n_dofs) if self.n_steps else (self.n_dofs,)
        if v.shape != want:
            raise ShapeError(f"snapshot {index} of {field} has shape {v.shape}; this store holds {want}")
        if not np.all(np.isfinite(v)):
            raise ShapeError(f"snapshot {index} of {field} contains NaN or Inf; record it with write_failure instead")
        self._f["fields"][field][int(index)] = v
        if self._check is not None:  # before the status: a kill in between leaves the snapshot missing
            self._f["checksums"][field][int(index)] = _crc_blocks(v, self._check)
        self._f.flush()

    def mark_done(self, index: int) -> None:
        self._writable()
        self._status[int(index)] = DONE
        self._f.flush()

    def write_failure(self, index: int, message: str) -> None:
        """Record that snapshot `index` failed, with `message` (truncated to 512 bytes)."""
        self._writable()
        raw = np.zeros(_MESSAGE_BYTES, dtype=np.uint8)
        b = str(message).encode("utf-8")[:_MESSAGE_BYTES]
        raw[: len(b)] = np.frombuffer(b, dtype=np.uint8)
        self._messages[int(index)] = raw
        self._f.flush()
        self._status[int(index)] = FAILED
        self._f.flush()

    def reset(self, indices) -> None:
        """Mark snapshots as missing again (e.g. to retry failures)."""
        self._writable()
        for i in np.atleast_1d(indices):
            self._status[int(i)] = MISSING
        self._f.flush()

    # ------------------------------------------------------------------ reading
    def _field(self, field: str) -> h5py.Dataset:
        if field not in self.fields:
            raise StoreError(f"field {field!r} is not in this store (fields: {', '.join(self.fields)})")
        return self._f["fields"][field]

    def _rows(self, rows):
        if rows is None:
            return slice(None)
        if isinstance(rows, slice):
            if rows.step not in (None, 1):
                raise ShapeError(f"rows={rows}: pass a contiguous slice of dof indices (step 1), e.g. this rank's "
                                 "owned range")
            return rows
        raise ShapeError("rows: pass a slice of dof indices (this rank's owned range) or None")

    def _read(self, idx: np.ndarray, field: str, rows) -> np.ndarray:
        ds = self._field(field)
        rows = self._rows(rows)
        if idx.size and np.all(np.diff(idx) == 1):
            sel = slice(int(idx[0]), int(idx[-1]) + 1)
        else:
            sel = idx.tolist()
        if self._check is not None and (rows.step or 1) == 1:
            data = self._read_checked(ds, idx, sel, field, rows)
        else:
            data = ds[sel, :, rows] if self.n_steps else ds[sel, rows]
        if not np.all(np.isfinite(data)):  # the writer refuses NaN and Inf: these are damaged bytes
            raise StoreError(f"{self.path}:/fields/{field} holds NaN or Inf in snapshots marked done; the store is "
                             f"damaged: {_FIX}")
        return data

    def _read_checked(self, ds: h5py.Dataset, idx: np.ndarray, sel, field: str, rows: slice) -> np.ndarray:
        """The rows of snapshots `idx`, read out to whole checksum blocks and verified against
        /checksums/<field>; a mismatch is damage (StoreError naming snapshot, field and dofs)."""
        B = self._check
        start, stop, _ = rows.indices(self.n_dofs)
        stop = max(stop, start)
        b0, b1 = start // B, -(-stop // B)
        lo, hi = b0 * B, min(b1 * B, self.n_dofs)
        data = ds[sel, :, lo:hi] if self.n_steps else ds[sel, lo:hi]
        want = self._f["checksums"][field][sel, :, b0:b1] if self.n_steps else self._f["checksums"][field][sel, b0:b1]
        if b1 > b0:
            have = _crc_blocks(data, B)
            bad = np.argwhere(have != want)
            if bad.size:
                i, b = int(idx[bad[0, 0]]), b0 + int(bad[0, -1])
                raise StoreError(f"{self.path}:/fields/{field} snapshot {i}, dofs {b * B}..{min((b + 1) * B, self.n_dofs) - 1}"
                                 f" do not match their checksum ({len(bad)} block(s) differ); the store is damaged: "
                                 f"{_FIX}")
        return data[..., start - lo:stop - lo]

    def _done_indices(self, indices) -> np.ndarray:
        done = np.flatnonzero(self.done)
        if indices is None:
            return done
        idx = np.asarray(indices, dtype=np.int64).ravel()
        if np.any((idx < 0) | (idx >= len(self))):
            raise ShapeError(f"indices must lie in [0, {len(self)}); got {idx.min()}..{idx.max()}")
        if np.unique(idx).size != idx.size:
            raise ShapeError(f"indices repeat some snapshots ({idx[:10].tolist()}...); pass each index once")
        not_done = np.setdiff1d(idx, done)
        if not_done.size:
            raise StoreError(f"snapshots {not_done[:10].tolist()} are not done (missing or failed); "
                             "resume the generation or leave them out")
        return idx

    @_reader
    def snapshots(self, indices=None, field: str = "u", rows=None) -> np.ndarray:
        """Snapshot matrix (n_rows, k) of the done snapshots (or the given done `indices`).

        For time series the columns are (snapshot, step) pairs, steps fastest.
        rows : slice of dofs (e.g. this rank's owned range) or None for all.
        """
        idx = self._done_indices(indices)
        if idx.size == 0:
            raise StoreError(f"{self.path} holds no finished snapshots; run the generation first")
        data = self._read(np.sort(idx), field, rows)
        return data.reshape(-1, data.shape[-1]).T

    @_reader
    def iter_blocks(self, block_size: int, field: str = "u", rows=None, indices=None) -> Iterator[np.ndarray]:
        """Yield fresh (n_rows, k) arrays of at most `block_size` done snapshots, in index order.

        Only one block is in memory at a time (each yielded array is new, so
        `pod_streaming(..., overwrite_blocks=True)` may use it as work space).
        For time series, a block holds all steps of up to `block_size` snapshots.
        """
        if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)) or block_size < 1:
            raise ShapeError(f"block_size={block_size!r}; pass a positive integer")
        idx = np.sort(self._done_indices(indices))
        if idx.size == 0:
            raise StoreError(f"{self.path} holds no finished snapshots; run the generation first")
        for start in range(0, idx.size, int(block_size)):
            data = self._read(idx[start : start + block_size], field, rows)
            yield np.ascontiguousarray(data.reshape(-1, data.shape[-1]).T)

    @_reader
    def iter_trajectories(self, field: str = "u", rows=None, indices=None) -> Iterator[np.ndarray]:
        """Yield each done time series as (n_rows, n_steps) (for `pod_two_level`)."""
        if not self.n_steps:
            raise StoreError(f"{self.path} holds steady fields; use iter_blocks")
        for i in np.sort(self._done_indices(indices)):
            yield np.ascontiguousarray(self._read(np.array([i]), field, rows)[0].T)
