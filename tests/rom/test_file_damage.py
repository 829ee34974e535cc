"""Damaged romtk files: every reader gives the right result or a rom.errors exception, never
another exception type and never a hang.

Each file kind (snapshot store, POD basis, reduced model, greedy checkpoint, PodGP) is written
once; hypothesis then damages a copy (truncation, a zeroed block, a deleted group, dataset or
attribute, a dataset replaced by one of another dtype or shape) and the natural reads of that
kind run on it under a time limit.

Known limit, asserted as such: a store checks its snapshots (crc32 per block of each row) and everything written at
its creation, but not `status` and `failures`, which are updated in place one snapshot at a time
(zeros there read as "missing" and an empty message). A changed result is accepted only when the
zeroed block lies in the raw data of such an unchecked dataset; the POD basis, the reduced model,
the greedy checkpoint and the PodGP file carry checksums of everything, so any change there must
be an error.
"""

from __future__ import annotations

import faulthandler
import shutil
import signal
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import h5py
import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rom import cli
from rom.basis import PodBasis
from rom.errors import RomError, StoreError
from rom.gp.podgp import PodGP
from rom.rb import _resume, _save_checkpoint
from rom.reduced import ReducedModel
from rom.store import SnapshotStore

TIME_LIMIT_S = 5


# ---------------------------------------------------------------------------- the files
class _Reductor:
    """What `_resume` needs of a Reductor: an empty basis of the problem's size and extend()."""

    def __init__(self, n):
        self.V, self.size = np.zeros((n, 0)), 0

    def extend(self, V):
        self.V, self.size = V, V.shape[1]


def _read_store(path):
    with SnapshotStore(path) as s:
        M = s.inner_product()
        return (s.parameters, s.status, s.snapshots(), [b for b in s.iter_blocks(2)], s.failures(),
                None if M is None else M.toarray(), s.summary().replace(str(path), "STORE"), s.identity(), s.times)


def _read_basis(path):
    b = PodBasis.load(path)
    return b.modes, b.singular_values, b.projection_error, b.total_energy, b.n_snapshots, b.tol, b.provenance, \
        b.summary()


MU = np.array([[1.2, 0.3], [1.7, 0.9]])


def _read_model(path):
    m = ReducedModel.load(path)
    return m.solve(MU), m.estimate(MU), m.output(MU), m.reconstruct(np.eye(m.size)), m.names


def _read_checkpoint(path):
    red = _Reductor(12)
    hist = _resume(red, path)
    return red.V, hist


def _read_podgp(path):
    g = PodGP.load(path)
    return g.predict(MU, return_std=True)


@dataclass
class Kind:
    name: str
    path: Path
    read: Callable
    expected: object
    unchecked: tuple | None  # datasets whose raw values carry no checksum (None: all of them)


def _write_store(path):
    rng = np.random.default_rng(0)
    M = sp.diags(np.linspace(1, 2, 12)).tocsr()
    with SnapshotStore.create(path, rng.uniform(0, 1, (5, 2)), 12, inner_product=M, case="damage",
                              options={"n": 3}) as s:
        for i in range(4):
            s.write(i, rng.standard_normal(12))
        s.write_failure(4, "diverged")


def _write_basis(path):
    V, _ = np.linalg.qr(np.random.default_rng(1).standard_normal((12, 3)))
    PodBasis(V, np.array([3.0, 2.0, 0.5]), 14.0, np.array([1.0, 0.5, 0.1, 0.01]), 5, "snapshots", 1e-3,
             "store.h5", "abc", None, {"case": "damage"}).save(path)


def _write_model(path):
    rng = np.random.default_rng(2)
    A0 = rng.standard_normal((3, 3))
    ops = np.stack([A0 @ A0.T + 3 * np.eye(3), np.eye(3)])
    V, _ = np.linalg.qr(rng.standard_normal((12, 3)))
    ReducedModel(operators=ops, rhs=rng.standard_normal((2, 3)), theta=("mu[0]", "1 + mu[1] ** 2"),
                 theta_f=("1", "exp(-mu[1])"), lower=np.array([1.0, 0.0]), upper=np.array([2.0, 1.0]),
                 estimator={"method": "gram", "gram": np.eye(2 + 2 * 3)},
                 stability={"kind": "min_theta", "theta_bar": np.array([2.0, 2.0]), "alpha_bar": 0.5},
                 outputs=rng.standard_normal((1, 3)), output_dual_norms=np.array([1.5]),
                 compliant=np.array([False]), names=("kappa", "b"), basis=V).save(path)


def _write_checkpoint(path):
    class Red:
        V = np.linalg.qr(np.random.default_rng(3).standard_normal((12, 3)))[0]
    history = [{"index": i, "mu": [0.1 * i, 1.0], "max_estimate": 1.0 / (i + 1), "seconds": 0.5 * i}
               for i in range(3)]
    _save_checkpoint(Red(), history, path)


def _write_podgp(path):
    rng = np.random.default_rng(4)
    mu = rng.uniform([1.0, 0.0], [2.0, 1.0], (12, 2))
    x = np.linspace(0, 1, 15)
    S = np.exp(-np.outer(x, mu[:, 0])) * np.cos(np.outer(x, mu[:, 1]))
    PodGP(n_modes=3, n_restarts=0).fit(mu, S).save(path)


_WRITERS = {"store": (_write_store, _read_store, ("status", "failures")), "basis": (_write_basis, _read_basis, ()),
            "model": (_write_model, _read_model, ()), "checkpoint": (_write_checkpoint, _read_checkpoint, ()),
            "podgp": (_write_podgp, _read_podgp, ())}


@pytest.fixture(scope="module")
def kinds(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pristine")
    out = {}
    for name, (write, read, checked) in _WRITERS.items():
        path = folder / f"{name}.h5"
        write(path)
        out[name] = Kind(name, path, read, read(path), checked)
    return out


# ---------------------------------------------------------------------------- comparisons
def _same(a, b) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        return a.shape == b.shape and a.dtype.kind == b.dtype.kind and np.array_equal(a, b, equal_nan=True)
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (np.isnan(a) and np.isnan(b))
    return type(a) is type(b) and a == b


def _raw_ranges(path, names=None) -> list[tuple[int, int]]:
    """Byte ranges of the raw values of the contiguous datasets of a pristine file (those in
    `names` only, when given)."""
    ranges = []
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset) and obj.id.get_offset() is not None and (names is None or name in names):
                ranges.append((obj.id.get_offset(), obj.id.get_offset() + obj.id.get_storage_size()))
        f.visititems(visit)
    return ranges


class _TimeLimit(Exception):
    pass


def _alarm(signum, frame):
    raise _TimeLimit(f"a read took more than {TIME_LIMIT_S} s")


def _outcome(kind: Kind, path: Path):
    """('ok', result) or ('error', exception); any other exception or a hang fails the test."""
    old = signal.signal(signal.SIGALRM, _alarm)
    # a hang inside HDF5's C code, which the alarm cannot interrupt, ends the run with a traceback
    faulthandler.dump_traceback_later(10 * TIME_LIMIT_S, exit=True, file=sys.__stderr__)
    signal.alarm(TIME_LIMIT_S)
    try:
        return "ok", kind.read(path)
    except RomError as exc:
        return "error", exc
    finally:
        signal.alarm(0)
        faulthandler.cancel_dump_traceback_later()
        signal.signal(signal.SIGALRM, old)


# ---------------------------------------------------------------------------- damage
def _objects(path) -> list[str]:
    names = []
    with h5py.File(path, "r") as f:
        f.visit(names.append)
    return names


def _truncate(path, frac):
    size = path.stat().st_size
    with open(path, "r+b") as fh:
        fh.truncate(int(frac * size))
    return None


def _zero(path, frac, length):
    size = path.stat().st_size
    start = min(int(frac * size), size - 1)
    with open(path, "r+b") as fh:
        fh.seek(start)
        fh.write(bytes(min(length, size - start)))
    return (start, start + length)


def _delete(path, pick, attribute):
    with h5py.File(path, "r+") as f:
        names = [""] + sorted(n for n in _objects_in(f))
        name = names[pick % len(names)]
        obj = f[name] if name else f
        if attribute and len(obj.attrs):
            keys = sorted(obj.attrs)
            del obj.attrs[keys[pick % len(keys)]]
        elif name:
            del f[name]
    return None


def _objects_in(f):
    out = []
    f.visit(out.append)
    return out


_WRONG = [lambda a: a.astype(np.float32), lambda a: a.astype(np.int16), lambda a: np.full(a.shape, b"x"),
          lambda a: a.astype(np.complex128), lambda a: a.reshape(-1), lambda a: a[..., None],
          lambda a: a[:-1] if a.ndim and a.shape[0] > 1 else np.zeros((2, 2)), lambda a: np.full(a.shape, np.nan)]


def _replace(path, pick, how):
    with h5py.File(path, "r+") as f:
        dsets = sorted(n for n in _objects_in(f) if isinstance(f[n], h5py.Dataset))
        name = dsets[pick % len(dsets)]
        data = f[name][()]
        try:
            new = _WRONG[how](np.asarray(data))
        except (TypeError, ValueError):
            new = np.zeros(3, dtype=np.int8)
        del f[name]
        f[name] = new
    return None


damage = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0.0, 0.999)),
    st.tuples(st.just("zero"), st.floats(0.0, 1.0), st.integers(1, 512)),
    st.tuples(st.just("delete"), st.integers(0, 10_000), st.booleans()),
    st.tuples(st.just("replace"), st.integers(0, 10_000), st.integers(0, len(_WRONG) - 1)),
)
_APPLY = {"truncate": _truncate, "zero": _zero, "delete": _delete, "replace": _replace}


def _check(kind: Kind, how):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / kind.path.name
        shutil.copyfile(kind.path, path)
        zeroed = _APPLY[how[0]](path, *how[1:])
        status, value = _outcome(kind, path)
        if status == "error" or _same(value, kind.expected):
            return
        # a changed result without an error: only zeros over the raw values of an unchecked dataset
        raw = kind.unchecked != () and zeroed is not None and any(
            zeroed[0] < hi and lo < zeroed[1] for lo, hi in _raw_ranges(kind.path, kind.unchecked))
        assert raw, f"{kind.name} damaged by {how} read back a different result without an error"


@pytest.mark.parametrize("name", list(_WRITERS))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(how=damage)
def test_damaged_file_reads_right_or_raises_a_rom_error(kinds, name, how):
    _check(kinds[name], how)


@pytest.mark.parametrize("name", list(_WRITERS))
def test_every_single_object_deleted(kinds, name):
    """Deleting each group, dataset and attribute in turn (the exhaustive version of one strategy)."""
    kind = kinds[name]
    n_objects = len(_objects(kind.path)) + 1
    for pick in range(n_objects):
        for attribute in (False, True):
            _check(kind, ("delete", pick, attribute))


# ---------------------------------------------------------------------------- issue examples
def _zero_header(path, name):
    with h5py.File(path, "r") as f:
        addr = h5py.h5o.get_info(f[name].id).addr
    with open(path, "r+b") as fh:
        fh.seek(addr)
        fh.write(bytes(64))


def test_zeroed_metadata_block_of_a_store_is_a_store_error_in_rom_info_and_rom_pod(kinds, tmp_path, capsys):
    path = tmp_path / "store.h5"
    shutil.copyfile(kinds["store"].path, path)
    _zero_header(path, "status")
    for argv in (["info", str(path)], ["pod", str(path), "--tol", "1e-3", "--out", str(tmp_path / "b.h5")]):
        assert cli.main(argv) == 1
        err = capsys.readouterr().err
        assert str(path) in err and "damaged" in err and "regenerate" in err
        assert "Traceback" not in err and "KeyError" not in err.split(":")[0]
    with pytest.raises(StoreError, match="status"):
        SnapshotStore(path)


def test_reduced_model_missing_operators_is_a_store_error(kinds, tmp_path):
    path = tmp_path / "model.h5"
    shutil.copyfile(kinds["model"].path, path)
    with h5py.File(path, "r+") as f:
        del f["online/operators"]
    with pytest.raises(StoreError, match="online/operators is missing"):
        ReducedModel.load(path)


def test_rom_info_shows_the_progress_of_a_store_another_process_is_writing(kinds, tmp_path, capsys):
    """The writer holds the file open (and locked) for writing; info opens it without the lock."""
    import subprocess

    path = tmp_path / "store.h5"
    shutil.copyfile(kinds["store"].path, path)
    writer = subprocess.Popen(
        [sys.executable, "-c", "import sys, h5py; f = h5py.File(sys.argv[1], 'r+'); print('open', flush=True); "
         "sys.stdin.read()", str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "open"
        assert cli.main(["info", str(path)]) == 0
        out = capsys.readouterr().out
        assert "done 4, failed 1, missing 0 of 5 planned" in out
    finally:
        writer.stdin.close()
        writer.wait(timeout=30)


def _info(kind: Kind, path: Path):
    """`rom info` on a damaged file: it describes it (0) or reports a RomError (1)."""
    status = cli.main(["info", str(path)])
    assert status in (0, 1)
    return status


@pytest.mark.parametrize("name", list(_WRITERS))
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(how=damage)
def test_rom_info_on_a_damaged_file_describes_it_or_says_what_is_wrong(kinds, name, how, capsys):
    kind = kinds[name]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / kind.path.name
        shutil.copyfile(kind.path, path)
        _APPLY[how[0]](path, *how[1:])
        _outcome(Kind(name, path, lambda p: _info(kind, p), None, kind.unchecked), path)
    err = capsys.readouterr().err
    assert "Traceback" not in err


@pytest.mark.parametrize("target", ["fields/u", "parameters/values", "inner_product/data"])
def test_zeros_over_a_stores_values_are_a_store_error(kinds, tmp_path, target):
    """The store's snapshots and creation-time arrays carry checksums: zeros written over their
    raw values are reported, never read back as numbers."""
    path = tmp_path / "store.h5"
    shutil.copyfile(kinds["store"].path, path)
    with h5py.File(path, "r") as f:
        ds = f[target]
        start = ds.id.get_offset() if ds.id.get_offset() is not None else None
        size = ds.id.get_storage_size()
    assert start is not None and size > 8
    with open(path, "r+b") as fh:
        fh.seek(start + 8)
        fh.write(bytes(8))
    with pytest.raises(StoreError, match="checksum"):
        _read_store(path)
