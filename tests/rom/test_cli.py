"""The `rom` command line: version, info on mesh and HDF5 files, case listing, plug-in subcommands."""

import hashlib
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

from importlib.metadata import version

import h5py
import numpy as np
import pytest

from rom import cli
from rom.basis import PodBasis
from rom.store import SnapshotStore
from solvers.mesh import box, rectangle, write_mesh

REPO = Path(__file__).resolve().parents[2]


def test_version_is_the_installed_package_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"romtk {version('romtk')}"


def test_console_script_prints_the_version():
    script = Path(sys.executable).parent / "rom"
    out = subprocess.run([str(script), "--version"], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == f"romtk {version('romtk')}"


def test_no_command_prints_help_and_fails(capsys):
    assert cli.main([]) == 2
    assert "info" in capsys.readouterr().out


def test_info_describes_a_mesh_file(tmp_path, capsys):
    path = write_mesh(tmp_path / "box.vtu", box(2, 3, 1, lower=(0, 0, 0), upper=(2.0, 3.0, 0.5), cell_type="hexahedron"))
    assert cli.main(["info", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "cell type: hexahedron (3D cells in 3D space)" in out
    assert "points: 24" in out and "cells: 6" in out  # 3*4*2 points, 2*3*1 cells
    assert "boundary facets: 22" in out  # 2*(2*3 + 3*1 + 2*1)
    assert "bounding box: [0, 2] x [0, 3] x [0, 0.5]" in out
    assert "total measure: 3" in out


def test_info_lists_the_tags_of_a_gmsh_file(capsys):
    assert cli.main(["info", str(REPO / "data" / "meshes" / "l_shape.geo")]) == 0
    out = capsys.readouterr().out
    assert "total measure: 0.75" in out
    assert "regions: lower (" in out and "upper (" in out
    assert "boundaries: bottom (" in out and "outer (" in out and "reentrant (" in out


def test_info_walks_an_hdf5_file(tmp_path, capsys):
    path = tmp_path / "store.h5"
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "romtk-store"
        f.attrs["version"] = 3
        f.attrs["shape"] = np.arange(3)
        f.create_dataset("parameters", data=np.zeros((7, 2)))
        f.create_group("fields").create_dataset("u", data=np.zeros((10, 7), dtype=np.float32))
    assert cli.main(["info", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[:5] == [f"HDF5 file: {path}", "attributes:", "  format = romtk-store", "  shape = [0, 1, 2]",
                       "  version = 3"]
    assert "  parameters: dataset (7, 2) float64" in out
    assert "  fields/ (1 members)" in out and "    u: dataset (10, 7) float32" in out
    assert cli.main(["info", str(path), "--max-items", "1"]) == 0
    assert "... 2 more (use --max-items)" in capsys.readouterr().out


def test_info_on_a_missing_file_fails_with_the_path(capsys):
    assert cli.main(["info", "no/such/mesh.msh"]) == 1
    err = capsys.readouterr().err
    assert "rom info: error:" in err and "no/such/mesh.msh" in err and "does not exist" in err


def test_cases_lists_every_script_with_its_docstring_line(capsys):
    assert cli.main(["cases"]) == 0
    out = capsys.readouterr().out
    assert f"cases in {REPO / 'cases'}" in out
    for script in (REPO / "cases").rglob("*.py"):
        if not script.name.startswith("_"):
            assert str(script.relative_to(REPO / "cases")) in out
    assert "thermal_block.py" in out and "Thermal block" in out


def test_cases_in_another_folder_and_scripts_without_docstrings(tmp_path, capsys):
    (tmp_path / "beam.py").write_text('"""Cantilever beam.\n\nMore text."""\n')
    (tmp_path / "bare.py").write_text("x = 1\n")
    (tmp_path / "_helper.py").write_text('"""Not a case."""\n')
    assert cli.main(["cases", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "beam.py  Cantilever beam." in out and "bare.py  (no docstring)" in out and "_helper" not in out


def test_cases_says_when_no_folder_is_found(tmp_path, monkeypatch, capsys):
    assert cli.find_cases_dir(tmp_path) == REPO / "cases"  # found from the package's checkout
    monkeypatch.setattr(cli, "PACKAGE_DIR", tmp_path / "rom")
    assert cli.find_cases_dir(tmp_path) is None
    monkeypatch.chdir(tmp_path)
    assert cli.main(["cases"]) == 1
    assert "no cases folder found" in capsys.readouterr().err


def test_a_registered_subcommand_is_dispatched_with_its_arguments(monkeypatch, capsys):
    monkeypatch.setattr(cli, "SUBCOMMANDS", dict(cli.SUBCOMMANDS))

    @cli.subcommand("echo", "print a word", lambda p: p.add_argument("word"))
    def echo(args):
        print(args.word.upper())

    assert cli.main(["echo", "snapshots"]) == 0
    assert capsys.readouterr().out == "SNAPSHOTS\n"


# -- rom snapshots / rom pod: paths, store identity, options, plans, warnings ------------
def _run(argv, capsys):
    """cli.main(argv) and its (status, stdout, stderr)."""
    status = cli.main(argv)
    out = capsys.readouterr()
    return status, out.out, out.err


def _digest(*paths):
    return [hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths]


@pytest.fixture(scope="module")
def block_store(tmp_path_factory):
    """A thermal-block store of 6 LHS samples on an 8 x 8 mesh (81 P1 dofs), written by the CLI
    into a folder that did not exist."""
    folder = tmp_path_factory.mktemp("cli") / "new" / "folder"
    path = folder / "s.h5"
    assert cli.main(["snapshots", "thermal_block", "--samples", "6", "--set", "n=8", "--out", str(path),
                     "--no-progress"]) == 0
    return path


@pytest.fixture
def store_copy(block_store, tmp_path):
    path = tmp_path / "s.h5"
    shutil.copyfile(block_store, path)
    return path


def test_out_into_a_missing_folder_is_created(block_store):
    with SnapshotStore(block_store) as s:
        assert s.n_dofs == 81 and int(s.done.sum()) == 6  # (8 + 1)^2 vertices


@pytest.mark.parametrize("extra, culprit", [
    (["--out", "b.h5", "--xdmf", "s.xdmf"], "s.h5 (the arrays of --xdmf s.xdmf) would overwrite STORE s.h5"),
    (["--out", "s.h5"], "--out s.h5 would overwrite STORE s.h5"),
    (["--out", "b.h5", "--xdmf", "b.xdmf"], "b.h5 (the arrays of --xdmf b.xdmf) would overwrite --out b.h5"),
    (["--out", "b.h5", "--plot", "b.h5"], "--plot b.h5 would overwrite --out b.h5"),
    (["--out", "link.h5"], "--out link.h5 would overwrite STORE s.h5"),  # a hard link to the store
])
def test_pod_refuses_outputs_that_overwrite_an_input_or_each_other(store_copy, monkeypatch, capsys, extra, culprit):
    monkeypatch.chdir(store_copy.parent)
    os.link("s.h5", "link.h5")
    before = _digest("s.h5")
    status, out, err = _run(["pod", "s.h5", "--n-modes", "2", *extra], capsys)
    assert status == 2 and culprit in err and "choose another name" in err
    assert _digest("s.h5") == before and not Path("b.h5").exists() and out == ""


def test_resume_refuses_another_model_with_the_same_dof_count(store_copy, capsys):
    # the issue's n=120 P1 vs n=60 P2, scaled down: both have (8 + 1)^2 = (2*4 + 1)^2 = 81 dofs
    from solvers.problems import ThermalBlock

    assert ThermalBlock(n=4, degree=2).space.n_dofs == 81
    with SnapshotStore(store_copy, "r+") as s:
        s.reset([4, 5])  # an interrupted run: two snapshots missing
    before = _digest(store_copy)
    status, _, err = _run(["snapshots", "thermal_block", "--samples", "6", "--set", "n=4", "--set", "degree=2",
                           "--out", str(store_copy), "--no-progress"], capsys)
    assert status == 1 and "another full-order model" in err
    assert "option n: store 8, now 4" in err and "option degree: store 1, now 2" in err and "mesh_hash" in err
    assert _digest(store_copy) == before
    # the same model spelled differently (a default given explicitly) resumes the two missing
    status, out, _ = _run(["snapshots", "thermal_block", "--samples", "6", "--set", "n=8", "--set", "degree=1",
                           "--out", str(store_copy), "--no-progress"], capsys)
    assert status == 0 and "6/6 snapshots done, 0 failed, 2 computed in this run" in out


@pytest.mark.parametrize("option, message", [
    ("n=abc", "--set n=abc: option n of case thermal_block takes type int, not 'abc'"),
    ("m=3", "--set m=3: case thermal_block has no option 'm'"),
    ("blocks=2", "--set blocks=2: option blocks of case thermal_block takes type tuple, not '2'"),
    ("n", "--set 'n': write KEY=VALUE"),
])
def test_a_wrong_option_names_itself_and_lists_the_options(tmp_path, capsys, option, message):
    status, _, err = _run(["snapshots", "thermal_block", "--samples", "3", "--set", option,
                           "--out", str(tmp_path / "s.h5")], capsys)
    assert status == 2 and message in err and "Traceback" not in err
    assert "options of case thermal_block: blocks (tuple, default (3, 3)), n (int, default 198), " \
           "degree (int, default 1)" in err
    assert not (tmp_path / "s.h5").exists()


def test_grid_is_sized_per_entry_and_large_plans_need_confirming(tmp_path, monkeypatch, capsys):
    out = str(tmp_path / "g.h5")
    status, _, err = _run(["snapshots", "thermal_block", "--sampler", "grid", "--samples", "5", "--out", out], capsys)
    assert status == 2 and "--sampler grid takes --grid-points N" in err
    status, _, err = _run(["snapshots", "thermal_block", "--sampler", "grid", "--grid-points", "5", "--set", "n=4",
                           "--out", out], capsys)
    assert status == 2 and "1953125 samples (5 per entry of 9 parameter entries, 5^9)" in err and "--large" in err
    # a plan under the sample limit but over the size limit: 10 snapshots of 81 float64
    monkeypatch.setattr(cli, "LARGE_BYTES", 10 * 81 * 8 - 1)
    argv = ["snapshots", "thermal_block", "--samples", "10", "--set", "n=8", "--out", out, "--no-progress"]
    status, _, err = _run(argv, capsys)
    assert status == 2 and "a store of about 6.48e-06 GB (81 dofs per snapshot)" in err
    assert not Path(out).exists()
    assert _run(argv + ["--large"], capsys)[0] == 0
    # a 3 x 3 grid over the two blocks of a 1 x 2 block: 9 samples, corners and midpoints of [0.1, 1]^2
    grid = str(tmp_path / "grid.h5")
    status, _, _ = _run(["snapshots", "thermal_block", "--sampler", "grid", "--grid-points", "3", "--set",
                         "blocks=[1, 2]", "--set", "n=4", "--out", grid, "--no-progress"], capsys)
    assert status == 0
    with SnapshotStore(grid) as s:
        levels = np.array([0.1, 0.55, 1.0])
        grid_points = np.stack(np.meshgrid(levels, levels, indexing="ij"), -1).reshape(-1, 2)
        np.testing.assert_allclose(s.parameters, grid_points)


def test_pod_warns_of_an_incomplete_store_and_a_missed_tolerance(store_copy, tmp_path, capsys, caplog):
    with SnapshotStore(store_copy, "r+") as s:
        s.reset([2])
        s.write_failure(3, "ConvergenceError: made up")
    basis = tmp_path / "b.h5"
    status, out, _ = _run(["pod", str(store_copy), "--tol", "1e-12", "--n-modes", "2", "--out", str(basis)], capsys)
    assert status == 0 and f"wrote {basis}" in out
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("is incomplete: 4 of 6 snapshots done (1 failed, 1 missing)" in w for w in warnings)
    miss = [w for w in warnings if "misses --tol 1e-12" in w]
    assert len(miss) == 1 and "--n-modes 2 keeps too few modes" in miss[0]
    # the error it reports is the basis's own measured projection error
    assert f"{PodBasis.load(basis).projection_error[-1]:.3e}" in miss[0]
    caplog.clear()
    status, out, err = _run(["-q", "pod", str(store_copy), "--n-modes", "2", "--out", str(basis)], capsys)
    assert status == 0 and out == "" and not [r for r in caplog.records if r.levelno < logging.ERROR]


def test_an_interrupted_xdmf_or_png_write_keeps_the_previous_files(store_copy, tmp_path, monkeypatch, capsys):
    import matplotlib.figure
    import meshio

    xdmf, h5, png = tmp_path / "m.xdmf", tmp_path / "m.h5", tmp_path / "p.png"
    argv = ["pod", str(store_copy), "--out", str(tmp_path / "b.h5"), "--xdmf", str(xdmf), "--plot", str(png)]
    assert _run(argv + ["--n-modes", "3"], capsys)[0] == 0
    before = _digest(xdmf, h5, png)

    def killed(self, *args, **kwargs):  # meshio has written the points and cells into the .h5
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(meshio.xdmf.main.XdmfWriter, "write_point_data", killed)
        with pytest.raises(KeyboardInterrupt):
            cli.main(argv + ["--n-modes", "2"])
    assert _digest(xdmf, h5, png) == before and not (tmp_path / "m.xdmf.partial").exists()
    assert len(meshio.read(xdmf).point_data) == 3

    def half_png(self, fname, **kwargs):
        Path(fname).write_bytes(b"\x89PNG half")
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(matplotlib.figure.Figure, "savefig", half_png)
        with pytest.raises(KeyboardInterrupt):
            cli.main(argv + ["--n-modes", "2"])
    assert _digest(png) == before[2:] and not (tmp_path / "p.png.partial").exists()
    # what a kill -9 leaves (a .partial folder) is removed, with a warning, by the next run
    (tmp_path / "m.xdmf.partial").mkdir()
    (tmp_path / "m.xdmf.partial" / "m.h5").write_bytes(b"half")
    status, _, err = _run(argv + ["--n-modes", "2"], capsys)
    assert status == 0 and not (tmp_path / "m.xdmf.partial").exists()
    assert len(meshio.read(xdmf).point_data) == 2


def test_verbose_shows_romtk_debug_log_and_quiet_only_errors(monkeypatch, caplog, capsys):
    monkeypatch.setattr(cli, "SUBCOMMANDS", dict(cli.SUBCOMMANDS))

    @cli.subcommand("talk", "log at every level")
    def talk(args):
        for name in ("rom.pod", "solvers.fem", "numba.core"):
            logging.getLogger(name).debug("debug from %s", name)
            logging.getLogger(name).warning("warning from %s", name)
        cli.say(args, "summary")

    def seen(flags):
        caplog.clear()
        assert cli.main([*flags, "talk"]) == 0
        return {r.getMessage() for r in caplog.records}, capsys.readouterr().out

    msgs, out = seen([])
    assert msgs == {f"warning from {n}" for n in ("rom.pod", "solvers.fem", "numba.core")} and out == "summary\n"
    msgs, _ = seen(["-v"])
    assert "debug from rom.pod" in msgs and "debug from solvers.fem" in msgs and "debug from numba.core" not in msgs
    msgs, _ = seen(["-vv"])
    assert "debug from numba.core" in msgs
    msgs, out = seen(["-q"])
    assert msgs == set() and out == ""
    assert logging.getLogger("rom").level == logging.NOTSET  # levels restored after the command


def test_a_closed_pipe_ends_quietly(tmp_path):
    path = tmp_path / "long.h5"
    with h5py.File(path, "w") as f:  # about 600 kB of description, far more than a pipe holds
        for i in range(2000):
            f.create_dataset(f"{i:04d}_" + "x" * 300, data=np.zeros(1))
    script = Path(sys.executable).parent / "rom"
    err = tmp_path / "err.txt"
    done = subprocess.run(["bash", "-c", f"set -o pipefail; '{script}' info '{path}' --max-items 100000 "
                                         f"2>'{err}' | head -1"], capture_output=True, text=True, timeout=120)
    assert done.stdout == f"HDF5 file: {path}\n"
    assert done.returncode == 0 and err.read_text() == ""


def test_info_lists_the_fields_of_an_xdmf_file(tmp_path, capsys):
    mesh = rectangle(2, 2)
    mesh.tag_region("left", lambda x: x[:, 0] < 0.5)
    mesh.tag_region("right", lambda x: x[:, 0] > 0.5)
    fields = {f"mode_{j:03d}": np.full(mesh.n_points, float(j)) for j in range(76)}
    path = write_mesh(tmp_path / "m.xdmf", mesh, point_data=fields, cell_data={"vel": np.zeros((mesh.n_cells, 2))})
    assert cli.main(["info", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "point fields: 76" in out and "  mode_000: (9,) float64" in out and "  mode_075: (9,) float64" in out
    assert "cell fields: 2" in out and "  vel: (8, 3) float64" in out and "  region: (8,) int32" in out
    assert "regions: 2 numbered by the cell field 'region' (1, 2; 0 untagged); " \
           "the names are not stored in this format" in out
