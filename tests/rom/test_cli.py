"""The `rom` command line: version, info on mesh and HDF5 files, case listing, plug-in subcommands."""

import subprocess
import sys
from pathlib import Path

from importlib.metadata import version

import h5py
import numpy as np
import pytest

from rom import cli
from solvers.mesh import box, write_mesh

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
