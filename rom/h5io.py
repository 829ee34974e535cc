"""Atomic writes and guarded reads of romtk's files (HDF5 and the files written beside them).

Every file romtk writes goes through `atomic`: it is written to `<name>.partial` in the same
folder and renamed into place only when complete, so a killed process never leaves a
half-written file under the real name. Every reader runs inside `reading`, which turns any
low-level failure of a damaged file (h5py's KeyError/OSError, wrong dtypes or shapes, missing
attributes) into a `StoreError` that names the file, the object being read and what to do.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import zlib
from pathlib import Path
from typing import Iterator

import h5py
import numpy as np

from rom.errors import RomError, StoreError

__all__ = ["atomic", "partial_path", "stale_partial", "reading", "read_array", "read_attr", "format_of", "expect_format",
           "read_group", "guarded", "create_checked", "put", "text"]

log = logging.getLogger("rom.h5io")

# What a damaged or foreign file raises inside h5py / numpy when read.
_DAMAGE = (KeyError, OSError, ValueError, TypeError, IndexError, AttributeError, RuntimeError,
           UnicodeDecodeError, OverflowError, AssertionError, ZeroDivisionError)


def partial_path(path) -> Path:
    """The name a file is written under before it is renamed into place."""
    path = Path(path)
    return path.with_name(path.name + ".partial")


def stale_partial(path) -> Path | None:
    """Remove a `.partial` left by a killed writer of `path` and return its name (None if none).

    A `.partial` file is never the real output, so removing it loses nothing that was finished.
    It is a folder for outputs of several files (an XDMF and its .h5, see solvers.mesh.io).
    """
    tmp = partial_path(path)
    if tmp.exists():
        log.warning("removing %s, left by a run that was stopped while writing %s", tmp, Path(path).name)
        if tmp.is_dir():
            shutil.rmtree(tmp)
        else:
            tmp.unlink()
        return tmp
    return None


@contextlib.contextmanager
def atomic(path) -> Iterator[Path]:
    """Yield the temporary path to write `path` through; rename it into place on success.

    On an exception the temporary file is removed and `path` is left as it was. The file is
    flushed to disk before the rename and the folder after it, so a power loss leaves either
    the old file or the whole new one under `path`.
    """
    path = Path(path)
    tmp = partial_path(path)
    if tmp.exists():
        stale_partial(path)
    try:
        yield tmp
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    if tmp.is_file():
        _fsync(tmp)
    os.replace(tmp, path)
    _fsync(path.parent)


def _fsync(path: Path) -> None:
    """Flush a file's or a folder's data to disk (a no-op where the system cannot)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # folders on some file systems refuse fsync: nothing more to be done there
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def reading(path, what: str = "romtk file", fix: str = "regenerate it") -> Iterator[h5py.File]:
    """Open `path` read-only; any failure while reading it becomes a StoreError.

    what : the kind of file, for the message ("snapshot store", "reduced model", ...).
    fix : what the user should do about a damaged file.
    """
    path = Path(path)
    if not path.exists():
        raise StoreError(f"{path}: no such file; give the path of an existing {what}")
    try:  # no lock: romtk's files change only by rename, or (stores) in raw data a reader may see
        f = h5py.File(path, "r", locking=False)
    except _DAMAGE as exc:
        raise StoreError(f"{path} is not a readable HDF5 file ({exc}); it is damaged or not a {what}: {fix}") from None
    with guarded(path, what, fix), f:
        yield f


@contextlib.contextmanager
def guarded(path, what: str = "romtk file", fix: str = "regenerate it") -> Iterator[None]:
    """Inside the block, any failure of reading a damaged file already open (h5py's KeyError/OSError,
    wrong dtypes or shapes) becomes a StoreError naming `path`; romtk's own errors pass through."""
    try:
        yield
    except RomError:
        raise
    except _DAMAGE as exc:
        raise StoreError(f"{path} is a damaged {what} ({type(exc).__name__}: {exc}); {fix}") from None


def format_of(f: h5py.File) -> str:
    """The file's `format` attribute as text ('' when absent)."""
    fmt = f.attrs.get("format", "")
    if isinstance(fmt, bytes):
        fmt = fmt.decode(errors="replace")
    return str(fmt)


def read_array(group: h5py.Group, name: str, *, ndim: int | None = None, dtype=np.float64,
               finite: bool = False, shape: tuple | None = None) -> np.ndarray:
    """`group[name]` as an array of `dtype`, checked; a mismatch raises StoreError naming the object.

    shape : expected shape with None for any size.
    """
    where = f"{group.file.filename}:{group.name.rstrip('/')}/{name}"
    if name not in group:
        raise StoreError(f"{where} is missing; the file is damaged or was written by another tool")
    obj = group[name]
    if not isinstance(obj, h5py.Dataset):
        raise StoreError(f"{where} is a {type(obj).__name__}, expected a dataset; the file is damaged")
    want, have = np.dtype(dtype), obj.dtype
    # the stored type itself (any byte order), or an integer type whose every value the wanted one
    # holds; a float32 or complex array where float64 is wanted would change the values silently
    same = have.kind == want.kind and have.itemsize == want.itemsize
    if not (same or (want.kind in "iu" and have.kind in "iu" and np.can_cast(have, want, "safe"))):
        raise StoreError(f"{where} has dtype {have}, expected {want}; the file is damaged")
    raw = obj[()]
    crc = obj.attrs.get("crc32")
    if crc is not None and int(np.asarray(crc).item()) != zlib.crc32(np.ascontiguousarray(raw)):
        raise StoreError(f"{where} does not match its checksum; the file is damaged")
    arr = np.asarray(raw, dtype=want)
    if ndim is not None and arr.ndim != ndim:
        raise StoreError(f"{where} has shape {arr.shape}, expected {ndim} dimensions; the file is damaged")
    if shape is not None and (arr.ndim != len(shape) or any(s is not None and s != n for s, n in zip(shape, arr.shape))):
        raise StoreError(f"{where} has shape {arr.shape}, expected {shape}; the file is damaged")
    if finite and arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise StoreError(f"{where} holds NaN or Inf; the file is damaged")
    return arr


def read_attr(obj, name: str, kind=str):
    """Attribute `name` of an HDF5 object as `kind` (str, int, float); StoreError when absent or wrong."""
    where = f"{obj.file.filename}:{obj.name}@{name}"
    if name not in obj.attrs:
        raise StoreError(f"{where} is missing; the file is damaged or was written by another tool")
    value = obj.attrs[name]
    try:
        if kind is str:
            if isinstance(value, bytes):
                return value.decode()
            if not isinstance(value, str):
                raise TypeError(type(value).__name__)
            return value
        return kind(np.asarray(value).item())
    except (TypeError, ValueError, UnicodeDecodeError):
        raise StoreError(f"{where} = {value!r} is not a {kind.__name__}; the file is damaged") from None


def expect_format(f: h5py.File, expected: str, what: str, fix: str, version=None) -> int | None:
    """StoreError unless the file's `format` attribute is `expected` (and, when `version` is given,
    its `format_version` attribute equals it, or is one of them for a tuple of versions read).
    what: the kind of file; fix: how to write one. Returns the version found (None if not asked)."""
    fmt = format_of(f)
    if fmt != expected:
        raise StoreError(f"{f.filename} is not a {what} (format attribute {fmt!r}, expected {expected!r}); {fix}")
    if version is None:
        return None
    accepted = tuple(version) if isinstance(version, (tuple, list)) else (version,)
    found = read_attr(f, "format_version", int)
    if found not in accepted:
        raise StoreError(f"{f.filename} is a {what} of format version {found}; this romtk reads version "
                         f"{' or '.join(map(str, accepted))}: {fix}, or read it with the romtk version that wrote it")
    return found


def read_group(parent: h5py.Group, name: str) -> h5py.Group:
    """parent[name] as a group; StoreError naming the object when it is missing or not a group."""
    obj = parent.get(name)
    if not isinstance(obj, h5py.Group):
        raise StoreError(f"{parent.file.filename}:{parent.name.rstrip('/')}/{name} is missing or not a group; "
                         "the file is damaged or was written by another tool")
    return obj


_COMPACT_ATTRIBUTES = 256


@contextlib.contextmanager
def create_checked(path, *, reopened: bool = False) -> Iterator[h5py.File]:
    """A new HDF5 file for writing whose metadata carry checksums (version-2 superblock and object
    headers), so that damaged metadata is an error on reading rather than a changed value
    or a hang. Text attributes are rewritten as fixed-length UTF-8 on closing: HDF5 keeps
    variable-length strings in a global heap without checksum, and zeroed bytes there made reads
    of HDF5 2.0 loop forever. Use `put` for datasets that should carry a checksum of their values.
    """
    fcpl = h5py.h5p.create(h5py.h5p.FILE_CREATE)
    # attributes stay in their object's checksummed header (HDF5 moves more than 8 into a dense heap)
    fcpl.set_attr_phase_change(_COMPACT_ATTRIBUTES, _COMPACT_ATTRIBUTES - 1)
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    # the latest format also checksums the index of chunked datasets (1.8's B-tree has none, and a
    # zeroed chunk address read back as fill values); a file reopened for writing (a store) takes
    # the 1.8 format, whose superblock has no "open for write" flag: with it, a store whose writer
    # was killed could not be reopened
    ver = h5py.h5f.LIBVER_V18 if reopened else h5py.h5f.LIBVER_LATEST
    fapl.set_libver_bounds(ver, ver)
    f = h5py.File(h5py.h5f.create(str(path).encode(), h5py.h5f.ACC_TRUNC, fapl=fapl, fcpl=fcpl))
    try:
        yield f
        objects = [f]
        f.visit(lambda name: objects.append(f[name]))
        for obj in objects:
            for key, value in list(obj.attrs.items()):
                if isinstance(value, str):
                    obj.attrs[key] = text(value)
    finally:
        f.close()


def put(group: h5py.Group, name: str, data) -> h5py.Dataset:
    """group[name] = data, with the crc32 of its bytes as an attribute (kept in the checksummed
    object header) that `read_array` verifies. Fletcher-32 on the chunks alone is not enough: a
    chunk zeroed together with its checksum passes it, and an unchecked 1.8 chunk index can read
    back as fill values."""
    arr = np.asarray(data)
    ds = group.create_dataset(name, data=arr)
    ds.attrs["crc32"] = np.uint32(zlib.crc32(np.ascontiguousarray(arr)))  # 0-d: the same bytes as 1-d
    return ds


def text(value: str) -> np.bytes_:
    """A string attribute stored inside its (checksummed) object header, as fixed-length UTF-8."""
    return np.bytes_(str(value).encode("utf-8"))
