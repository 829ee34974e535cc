"""SnapshotStore: round trips, crash-safe layout, streaming readers, and refusal of foreign files."""

from __future__ import annotations

import zlib

import h5py
import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings, strategies as st

from rom.errors import ShapeError, StoreError
from rom.parameters import ParameterSpace
from rom.store import DONE, FAILED, MISSING, FORMAT_VERSION, MeshArrays, SnapshotStore, array_hash


def make(tmp_path, m=6, n=10, name="s.h5", **kw):
    P = np.arange(m * 2, dtype=float).reshape(m, 2)
    return SnapshotStore.create(tmp_path / name, P, n, **kw)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(m=st.integers(1, 8), n=st.integers(1, 30), steps=st.integers(0, 3), seed=st.integers(0, 1000),
       data=st.data())
def test_round_trip(tmp_path_factory, m, n, steps, seed, data):
    rng = np.random.default_rng(seed)
    path = tmp_path_factory.mktemp("rt") / "s.h5"
    P = rng.standard_normal((m, 3))
    U = rng.standard_normal((m, steps, n) if steps else (m, n))
    done = data.draw(st.lists(st.integers(0, m - 1), unique=True, min_size=1))
    with SnapshotStore.create(path, P, n, n_steps=steps, times=np.arange(steps) * 0.1 if steps else None) as s:
        for i in done:
            s.write(i, U[i])
    with SnapshotStore(path) as s:
        np.testing.assert_array_equal(s.parameters, P)
        idx = np.sort(done)
        assert np.array_equal(np.flatnonzero(s.done), idx)
        S = s.snapshots()
        expect = U[idx].reshape(-1, n).T
        np.testing.assert_array_equal(S, expect)
        blocks = list(s.iter_blocks(2))
        np.testing.assert_array_equal(np.hstack(blocks), expect)
        assert all(b.shape[1] <= 2 * max(steps, 1) for b in blocks)
        if steps:
            trajs = list(s.iter_trajectories())
            np.testing.assert_array_equal(trajs[0], U[idx[0]].T)
            np.testing.assert_allclose(s.times, np.arange(steps) * 0.1)


def test_metadata_inner_product_and_provenance(tmp_path):
    M = sp.random(10, 10, density=0.3, random_state=0, format="csr") + sp.eye(10)
    space = ParameterSpace({"a": (0, 100), "b": (0, 100)})
    h = array_hash(np.zeros((3, 2)), np.array([[0, 1, 2]]))
    with make(tmp_path, inner_product=M, parameter_space=space, mesh_hash=h, case="toy",
              options={"sampler": "lhs", "seed": 3}) as s:
        a = s.attrs
        assert a["format_version"] == FORMAT_VERSION and a["case"] == "toy" and a["mesh_hash"] == h
        assert a["options"] == {"sampler": "lhs", "seed": 3}
        assert (s.inner_product() != M).nnz == 0
        assert "0 missing" not in s.summary() and "missing 6" in s.summary()
    with make(tmp_path, name="t.h5", inner_product_rebuild="problem.inner_product()") as s:
        assert s.inner_product() is None and s.inner_product_rebuild == "problem.inner_product()"


def test_identity_is_what_create_wrote_and_differences_are_named(tmp_path):
    space = ParameterSpace({"a": (0, 100), "b": (0, 100)})
    h = array_hash(np.zeros((3, 2)), np.array([[0, 1, 2]]))
    with make(tmp_path, n=7, n_steps=3, parameter_space=space, mesh_hash=h, case="toy",
              options={"blocks": (3, 3), "n": 8}) as s:
        ident = s.identity()
        assert ident.pop("romtk_version") == s.attrs["romtk_version"] != ""
        assert ident == {"case": "toy", "options": {"blocks": [3, 3], "n": 8}, "mesh_hash": h, "n_dofs": 7,
                         "n_steps": 3, "parameter_space": space.to_dict()}
        same = {**ident, "options": {"n": 8, "blocks": (3, 3)}, "romtk_version": "0.0.1"}  # tuple == list
        assert s.identity_differences(same) == []
        other = {"case": "tok", "options": {"n": 9}, "mesh_hash": "", "n_dofs": 8}
        assert s.identity_differences(other) == [
            "case: store 'toy', now 'tok'", "option blocks: store [3, 3], now '(unset)'",
            "option n: store 8, now 9", f"mesh_hash: store {h[:12]}, now (none)", "n_dofs: store 7, now 8"]
    with make(tmp_path, name="bare.h5") as s:
        assert s.identity()["parameter_space"] == {} and s.identity()["options"] == {}


def test_a_stale_partial_is_removed_by_the_next_create(tmp_path, caplog):
    (tmp_path / "s.h5.partial").write_bytes(b"left by a killed run")
    make(tmp_path).close()
    assert not (tmp_path / "s.h5.partial").exists()
    assert any("removing" in r.getMessage() and "s.h5.partial" in r.getMessage() for r in caplog.records)


def test_failures_and_status(tmp_path):
    with make(tmp_path) as s:
        s.write(0, np.ones(10))
        s.write_failure(2, "ConvergenceError: Newton diverged after 50 iterations")
        assert s.status.tolist() == [DONE, MISSING, FAILED, MISSING, MISSING, MISSING]
        assert s.failures() == {2: "ConvergenceError: Newton diverged after 50 iterations"}
        assert s.missing.tolist() == [1, 3, 4, 5]
        s.reset([2])
        assert s.failures() == {}
        with pytest.raises(StoreError, match="not done"):
            s.snapshots([1])


def test_writes_touch_raw_data_only(tmp_path):
    """After creation the file size never changes: snapshots land in preallocated space."""
    path = tmp_path / "s.h5"
    with make(tmp_path, m=20, n=1000) as s:
        size0 = path.stat().st_size
        for i in range(20):
            s.write(i, np.full(1000, float(i)))
        assert path.stat().st_size == size0
    with h5py.File(path, "r") as f:
        assert f["fields/u"].chunks is None  # contiguous


def test_creation_is_atomic(tmp_path):
    path = tmp_path / "s.h5"
    with pytest.raises(ShapeError, match="inner_product has shape"):
        make(tmp_path, inner_product=sp.eye(9))
    assert not path.exists()
    make(tmp_path).close()
    assert path.exists() and not (tmp_path / "s.h5.partial").exists()
    with pytest.raises(StoreError, match="exists"):
        make(tmp_path)


def test_foreign_other_version_and_corrupt_files(tmp_path):
    with pytest.raises(StoreError, match="no snapshot store"):
        SnapshotStore(tmp_path / "nope.h5")
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["x"] = 1
    with pytest.raises(StoreError, match="not a romtk snapshot store"):
        SnapshotStore(foreign)
    make(tmp_path, name="old.h5").close()
    with h5py.File(tmp_path / "old.h5", "r+") as f:
        f.attrs["format_version"] = 99
    with pytest.raises(StoreError, match="version 99"):
        SnapshotStore(tmp_path / "old.h5")
    text = tmp_path / "text.h5"
    text.write_text("not hdf5 at all")
    with pytest.raises(StoreError, match="corrupt or not a romtk store"):
        SnapshotStore(text)
    make(tmp_path, name="cut.h5").close()
    data = (tmp_path / "cut.h5").read_bytes()
    (tmp_path / "cut.h5").write_bytes(data[: len(data) // 3])
    with pytest.raises(StoreError):
        SnapshotStore(tmp_path / "cut.h5")
    make(tmp_path, name="damaged.h5").close()
    with h5py.File(tmp_path / "damaged.h5", "r+") as f:
        del f["status"]
    with pytest.raises(StoreError, match="damaged"):
        SnapshotStore(tmp_path / "damaged.h5")


def test_bad_writes_and_reads(tmp_path):
    with make(tmp_path) as s:
        with pytest.raises(ShapeError, match=r"shape \(9,\)"):
            s.write(0, np.ones(9))
        with pytest.raises(ShapeError, match="NaN"):
            s.write(0, np.full(10, np.nan))
        with pytest.raises(StoreError, match="field 'v'"):
            s.write(0, np.ones(10), field="v")
        with pytest.raises(StoreError, match="no finished snapshots"):
            s.snapshots()
        with pytest.raises(StoreError, match="no finished snapshots"):
            next(s.iter_blocks(2))
        with pytest.raises(ShapeError, match="block_size"):
            next(s.iter_blocks(0))
        with pytest.raises(StoreError, match="steady"):
            next(s.iter_trajectories())
    with SnapshotStore(tmp_path / "s.h5") as s, pytest.raises(StoreError, match="read-only"):
        s.write(0, np.ones(10))
    with pytest.raises(StoreError, match="mode="):
        SnapshotStore(tmp_path / "s.h5", "w")
    with pytest.raises(ShapeError, match="parameters"):
        SnapshotStore.create(tmp_path / "e.h5", np.zeros((0, 2)), 5)
    with pytest.raises(ShapeError, match="NaN"):
        SnapshotStore.create(tmp_path / "e.h5", np.array([[np.nan]]), 5)


def test_row_ranges_for_distributed_readers(tmp_path):
    rng = np.random.default_rng(0)
    U = rng.standard_normal((6, 10))
    with make(tmp_path) as s:
        for i in range(6):
            s.write(i, U[i])
        np.testing.assert_array_equal(s.snapshots(rows=slice(3, 7)), U[:, 3:7].T)
        np.testing.assert_array_equal(np.hstack(list(s.iter_blocks(4, rows=slice(0, 5)))), U[:, :5].T)


@pytest.mark.parametrize("cells, why", [([[0, 1, 9]], "indices outside"), ([[0, -1, 2]], "indices outside")])
def test_a_mesh_group_whose_cells_leave_the_points_is_damage(tmp_path, cells, why):
    """The checksum matches (the file was written so), yet a cell names a vertex that does not exist."""
    mesh = MeshArrays(np.eye(3)[:, :2], [[0, 1, 2]], "triangle")
    make(tmp_path, mesh=mesh).close()
    with h5py.File(tmp_path / "s.h5", "r+") as f:
        del f["mesh/cells"]
        arr = np.asarray(cells, dtype=np.int64)
        f["mesh/cells"] = arr
        f["mesh/cells"].attrs["crc32"] = np.uint32(zlib.crc32(arr))
    with SnapshotStore(tmp_path / "s.h5") as s, pytest.raises(StoreError, match=f"invalid mesh.*{why}"):
        s.mesh()


def _small_store(path):
    rng = np.random.default_rng(7)
    values = rng.standard_normal((3, 70000))  # two checksum blocks per snapshot
    with SnapshotStore.create(path, rng.uniform(size=(3, 2)), 70000) as s:
        for i in range(3):
            s.write(i, values[i])
    return values


def test_checksums_catch_damage_in_full_partial_and_unchecked_reads_refused(tmp_path):
    path = tmp_path / "s.h5"
    values = _small_store(path)
    with SnapshotStore(path) as s:
        assert s.format_version == FORMAT_VERSION == 2
        np.testing.assert_array_equal(s.snapshots(rows=slice(65530, 65540)), values[:, 65530:65540].T)
        with pytest.raises(ShapeError, match="step 1"):
            s.snapshots(rows=slice(0, 10, 2))
        with pytest.raises(ShapeError, match="once"):
            s.snapshots([1, 1])
    with h5py.File(path, "r") as f:
        offset = f["fields/u"].id.get_offset()
    with open(path, "r+b") as fh:  # one value of snapshot 1 in the second block
        fh.seek(offset + (70000 + 66000) * 8)
        fh.write(np.float64(99.0).tobytes())
    with SnapshotStore(path) as s:
        np.testing.assert_array_equal(s.snapshots(rows=slice(0, 100)), values[:, :100].T)  # first block intact
        with pytest.raises(StoreError, match="snapshot 1, dofs 65536"):
            s.snapshots(rows=slice(65999, 66001))
        with pytest.raises(StoreError, match="checksum"):
            s.snapshots()


def test_a_version_2_store_without_its_checksums_is_damaged_and_version_1_reads_unverified(tmp_path):
    path = tmp_path / "s.h5"
    values = _small_store(path)
    with h5py.File(path, "r+") as f:
        del f["checksums"]
    with pytest.raises(StoreError, match="checksums"):
        SnapshotStore(path)
    with h5py.File(path, "r+") as f:
        f.attrs["format_version"] = 1
    with SnapshotStore(path) as s:
        assert s.format_version == 1 and "not checksummed" in s.summary()
        np.testing.assert_array_equal(s.snapshots(), values.T)
