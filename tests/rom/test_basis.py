"""PodBasis from a store, its HDF5 round-trip, mode fields for XDMF, PNG outputs, and `rom snapshots` / `rom pod`."""

from __future__ import annotations

import textwrap

import h5py
import meshio
import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from rom import cli
from rom.basis import PodBasis
from rom.errors import RomError, ShapeError, StoreError
from rom.pod import PODArgumentError
from rom.store import MeshArrays, SnapshotStore
from solvers.mesh import rectangle, write_mesh


def known_store(path, n=300, m=24, mesh=None, M=None, seed=0):
    """A store whose snapshots have singular values 2^-k in the M inner product."""
    rng = np.random.default_rng(seed)
    sigma = 2.0 ** -np.arange(m)
    U, _ = np.linalg.qr(rng.standard_normal((n, m)))
    if M is not None:  # M-orthonormal left factor: U <- L^{-T} U with M = L L^T
        L = np.linalg.cholesky(M.toarray())
        U = np.linalg.solve(L.T, U)
    V, _ = np.linalg.qr(rng.standard_normal((m, m)))
    S = (U * sigma) @ V.T
    with SnapshotStore.create(path, rng.uniform(size=(m, 2)), n, inner_product=M, mesh=mesh) as store:
        for j in range(m):
            store.write(j, S[:, j])
    return S, sigma


def test_singular_values_and_projection_errors_match_the_known_spectrum(tmp_path):
    _, sigma = known_store(tmp_path / "s.h5")
    b = PodBasis.from_store(tmp_path / "s.h5", tol=1e-5, method="svd")
    # smallest N with sqrt(sum_{k>N} 4^-k / sum 4^-k) <= 1e-5, and sigma_N > tol sigma_1 in (0, 1e-5]
    expected_err = np.sqrt(np.cumsum((sigma**2)[::-1])[::-1] / np.sum(sigma**2))
    N = b.size
    assert expected_err[N] <= 1e-5 and sigma[N - 1] > 1e-5
    np.testing.assert_allclose(b.singular_values, sigma[:N], rtol=1e-10)
    np.testing.assert_allclose(b.projection_error[:N], expected_err[:N], rtol=1e-8)
    # the discarded energy is known to a few eps ||S||^2 only (total minus retained)
    np.testing.assert_allclose(b.energy_error()[:N] ** 2, expected_err[:N] ** 2, rtol=1e-10,
                               atol=20 * np.finfo(float).eps)
    np.testing.assert_allclose(b.modes.T @ b.modes, np.eye(N), atol=1e-12)
    # the method of snapshots resolves sigma_k to about eps (sigma_1 / sigma_k)^2 relative
    g = PodBasis.from_store(tmp_path / "s.h5", tol=1e-5)
    assert g.size == N
    rel = np.abs(g.singular_values / sigma[:N] - 1)
    assert np.all(rel <= 20 * np.finfo(float).eps * (sigma[0] / sigma[:N]) ** 2)


def test_weighted_streaming_equals_batch_and_is_m_orthonormal(tmp_path):
    n = 200
    M = sp.diags(np.linspace(1.0, 3.0, n)) + sp.diags(0.2 * np.ones(n - 1), 1) + sp.diags(0.2 * np.ones(n - 1), -1)
    M = sp.csr_matrix(M)
    known_store(tmp_path / "m.h5", n=n, m=20, M=M)
    batch = PodBasis.from_store(tmp_path / "m.h5", n_modes=8)
    stream = PodBasis.from_store(tmp_path / "m.h5", n_modes=8, method="streaming", block_size=3)
    np.testing.assert_allclose(batch.modes.T @ M @ batch.modes, np.eye(8), atol=1e-12)
    np.testing.assert_allclose(stream.singular_values, batch.singular_values, rtol=1e-9)
    # same subspace: the M-orthogonal projector of one onto the other is the identity
    P = batch.modes.T @ M @ stream.modes
    np.testing.assert_allclose(np.linalg.svd(P, compute_uv=False), np.ones(8), atol=1e-8)
    assert batch.inner_product_hash == stream.inner_product_hash != ""


@settings(max_examples=15, deadline=None)
@given(n=st.integers(3, 40), k=st.integers(1, 6), tol=st.one_of(st.none(), st.floats(1e-12, 0.9)),
       seed=st.integers(0, 2**31 - 1))
def test_save_load_round_trip(tmp_path_factory, n, k, tol, seed):
    rng = np.random.default_rng(seed)
    sigma = np.sort(rng.uniform(0.1, 2, k))[::-1]  # the load checks sum sigma^2 <= total energy
    b = PodBasis(rng.standard_normal((n, k)), sigma, float(sigma @ sigma) + 5.0,
                 rng.uniform(0, 1, k + 1), 11, "svd", tol, "x.h5", "abc", None, {"case": "t", "n": n})
    path = tmp_path_factory.mktemp("rt") / "b.h5"
    c = PodBasis.load(b.save(path))
    assert np.array_equal(c.modes, b.modes) and np.array_equal(c.singular_values, b.singular_values)
    assert np.array_equal(c.projection_error, b.projection_error)
    assert (c.total_energy, c.n_snapshots, c.method, c.tol, c.source, c.inner_product_hash, c.provenance) == \
        (b.total_energy, b.n_snapshots, b.method, b.tol, b.source, b.inner_product_hash, b.provenance)


def test_xdmf_modes_and_plot(tmp_path):
    mesh = rectangle(9, 7)
    mesh.tag_region("left", lambda x: x[:, 0] < 0.5)
    known_store(tmp_path / "s.h5", n=mesh.n_points, m=10, mesh=mesh)
    b = PodBasis.from_store(tmp_path / "s.h5", n_modes=4)
    # the basis carries the store's mesh as plain arrays, and so does its file
    for m in (b.mesh, PodBasis.load(b.save(tmp_path / "b.h5")).mesh):
        assert isinstance(m, MeshArrays) and m.cell_type == mesh.cell_type
        assert np.array_equal(m.points, mesh.points) and np.array_equal(m.cells, mesh.cells)
        assert np.array_equal(m.regions["left"], mesh.regions["left"])
    write_mesh(tmp_path / "modes.xdmf", mesh, point_data=b.mode_fields(mesh.n_points))
    back = meshio.read(tmp_path / "modes.xdmf")
    for j in range(4):
        np.testing.assert_array_equal(back.point_data[f"mode_{j:03d}"], b.modes[:, j])
    png = b.plot(tmp_path / "pod.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_mode_fields_split_interleaved_vector_modes_per_vertex():
    rng = np.random.default_rng(3)
    modes = rng.standard_normal((2 * 6 + 5, 3))  # 6 vertices x 2 components, then 5 higher-order dofs
    b = PodBasis(modes, np.array([3.0, 2.0, 1.0]), 14.0, np.zeros(4), 3)
    f = b.mode_fields(6, n_modes=2, components=2)
    assert sorted(f) == ["mode_000", "mode_001"]
    np.testing.assert_array_equal(f["mode_001"][:, 0], modes[0:12:2, 1])
    np.testing.assert_array_equal(f["mode_001"][:, 1], modes[1:12:2, 1])
    with pytest.raises(ShapeError, match="cannot start with 2 value"):
        b.mode_fields(9, components=2)


def test_bad_files_and_arguments(tmp_path):
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = 1.0
    with pytest.raises(StoreError, match="not a romtk basis"):
        PodBasis.load(tmp_path / "other.h5")
    known_store(tmp_path / "s.h5", n=50, m=5)
    b = PodBasis.from_store(tmp_path / "s.h5", n_modes=2)
    b.save(tmp_path / "b.h5")
    with h5py.File(tmp_path / "b.h5", "r+") as f:
        f.attrs["format_version"] = 99
    with pytest.raises(StoreError, match="version 99"):
        PodBasis.load(tmp_path / "b.h5")
    with pytest.raises(PODArgumentError, match="tol"):
        PodBasis.from_store(tmp_path / "s.h5", tol=1.5)
    with pytest.raises(PODArgumentError, match="method"):
        PodBasis.from_store(tmp_path / "s.h5", n_modes=2, method="qr")
    SnapshotStore.create(tmp_path / "empty.h5", np.zeros((3, 1)), 10).close()
    with pytest.raises(StoreError, match="no finished snapshot"):
        PodBasis.from_store(tmp_path / "empty.h5", n_modes=1)
    with pytest.raises(StoreError, match="no mesh"):  # `rom pod --xdmf` of a store written without a mesh
        cli._write_modes(b, tmp_path / "m.xdmf", tmp_path / "b.h5")


CASE = textwrap.dedent('''
    """A tiny case: u(x; mu) = sin(mu0 x) + mu1 x^2 on 101 points."""
    import numpy as np
    from rom.parameters import ParameterSpace

    class Problem:
        parameter_space = ParameterSpace({"a": (1.0, 3.0), "b": (0.0, 1.0)})
        x = np.linspace(0, 1, 101)

        def solve(self, mu):
            return np.sin(mu[0] * self.x) + mu[1] * self.x**2

    def snapshot_problem(scale=1.0):
        p = Problem()
        p.x = p.x * scale
        return p
''')


def test_cli_snapshots_then_pod_then_info(tmp_path, capsys):
    case = tmp_path / "tiny.py"
    case.write_text(CASE)
    store = tmp_path / "s.h5"
    args = ["snapshots", str(case), "--samples", "30", "--seed", "3", "--out", str(store), "--no-progress",
            "--set", "scale=2.0"]
    assert cli.main(args) == 0
    with SnapshotStore(store) as s:
        assert s.done.all() and s.attrs["case"] == "tiny" and s.attrs["options"]["scale"] == 2.0
        x = np.linspace(0, 2, 101)
        mu = s.parameters[7]
        np.testing.assert_allclose(s.snapshots([7])[:, 0], np.sin(mu[0] * x) + mu[1] * x**2, rtol=1e-15)
    assert cli.main(args) == 0  # a re-run resumes: nothing left to compute
    assert "0 computed in this run" in capsys.readouterr().out
    assert cli.main(["pod", str(store), "--tol", "1e-6", "--out", str(tmp_path / "b.h5"),
                     "--plot", str(tmp_path / "p.png")]) == 0
    b = PodBasis.load(tmp_path / "b.h5")
    assert b.projection_error[-1] <= 1e-6 and (tmp_path / "p.png").is_file()
    capsys.readouterr()
    assert cli.main(["info", str(tmp_path / "b.h5")]) == 0
    assert "romtk POD basis" in capsys.readouterr().out
    assert cli.main(["info", str(store)]) == 0
    assert "done 30, failed 0" in capsys.readouterr().out


def test_cli_refuses_bad_cases_and_options(tmp_path, capsys):
    (tmp_path / "noproblem.py").write_text('"""No problem here."""\n')
    assert cli.main(["snapshots", str(tmp_path / "noproblem.py"), "--samples", "2", "--out", "x.h5"]) == 1
    assert "defines no snapshot_problem" in capsys.readouterr().err
    assert cli.main(["snapshots", str(tmp_path / "missing.py"), "--samples", "2", "--out", "x.h5"]) == 1
    assert "no file" in capsys.readouterr().err
    (tmp_path / "tiny.py").write_text(CASE)
    assert cli.main(["snapshots", str(tmp_path / "tiny.py"), "--samples", "2", "--out", "x.h5", "--set", "oops"]) == 2  # a usage error
    assert "KEY=VALUE" in capsys.readouterr().err
    assert cli.main(["pod", str(tmp_path / "x.h5"), "--out", "b.h5"]) == 2
    assert "--tol" in capsys.readouterr().err
    with pytest.raises(RomError):
        cli.load_case(str(tmp_path / "noproblem.py"))


def test_thermal_block_case_exposes_its_problem(tmp_path):
    mod = cli.load_case(str(cli.find_cases_dir(cli.PACKAGE_DIR) / "thermal_block.py"))
    p = mod.snapshot_problem(blocks=(2, 2), n=8)
    assert p.space.n_dofs == 81 and p.parameter_space.dim == 4


def test_energy_error_is_zero_when_nothing_is_discarded_and_the_tail_otherwise():
    """All 30 modes kept: the prediction at N = 30 is exactly 0 (total - sum sigma^2 was 2.3e-8 of
    round-off for this seed and was printed and plotted); 20 kept: sqrt(tail / total) of the known
    tail; rank 12 data with 12 kept of 30 snapshots: the difference is round-off, reported as 0."""
    rng = np.random.default_rng(3)
    S = rng.standard_normal((500, 30)) * np.logspace(0, -3, 30)
    U, s, _ = np.linalg.svd(S, full_matrices=False)
    total = float(np.sum(np.einsum("ij,ij->j", S, S)))
    assert total - float(np.sum(s**2)) > 0  # the round-off the old prediction showed
    full = PodBasis(U, s, total, np.zeros(31), 30).energy_error()
    assert full[-1] == 0.0
    np.testing.assert_allclose(full[:-1], np.sqrt(np.cumsum((s**2)[::-1])[::-1] / total), rtol=1e-12)
    part = PodBasis(U[:, :20], s[:20], total, np.zeros(21), 30).energy_error()
    np.testing.assert_allclose(part[-1], np.sqrt(np.sum(s[20:] ** 2) / total), rtol=1e-10)
    L = S[:, :12] @ rng.standard_normal((12, 30))  # rank 12
    U, s, _ = np.linalg.svd(L, full_matrices=False)
    low = PodBasis(U[:, :12], s[:12], float(np.sum(L * L)), np.zeros(13), 30).energy_error()
    assert low[-1] == 0.0 and low[-2] > 0
