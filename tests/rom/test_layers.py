"""One direction between the layers: `rom` imports nothing from `solvers` (the CLI aside).

The full-order side (`solvers`) satisfies `rom`'s protocols; the reduced side stores
meshes as plain arrays (`rom.store.MeshArrays`) and leaves writing them to the caller.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

from rom.basis import PodBasis
from rom.store import MeshArrays, SnapshotStore

REPO = Path(__file__).resolve().parents[2]

# Run in a fresh interpreter: marking `solvers` unimportable must not leak into this one,
# and modules imported earlier by other tests must not hide an import.
_PROBE = textwrap.dedent("""
    import importlib, pkgutil, sys
    sys.modules["solvers"] = None  # any `import solvers...` now raises ImportError
    import rom
    names = sorted(m.name for m in pkgutil.walk_packages(rom.__path__, "rom."))
    failed = []
    for name in names:
        if name == "rom.cli" or name.startswith("rom.cli."):
            continue
        try:
            importlib.import_module(name)
        except Exception as exc:
            failed.append(f"{name}: {type(exc).__name__}: {exc}")
    if not failed:  # the mesh round trip runs with solvers blocked too (lazy imports included)
        sys.path.insert(0, sys.argv[1])
        from test_layers import mesh_round_trip
        mesh_round_trip(sys.argv[2])
    print(len(names))
    print("\\n".join(failed))
""")


def mesh_round_trip(folder) -> None:
    """A mesh given as arrays comes back from the store and from the basis file as the same arrays."""
    folder = Path(folder)
    points = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    cells = np.array([[0, 1, 2], [0, 2, 3]])
    mesh = MeshArrays(points, cells, "triangle", regions={"upper": [1]})
    rng = np.random.default_rng(0)
    with SnapshotStore.create(folder / "s.h5", rng.uniform(size=(3, 1)), 4, mesh=mesh) as store:
        for j in range(3):
            store.write(j, rng.standard_normal(4))
    with SnapshotStore(folder / "s.h5") as store:
        stored = store.mesh()
    basis = PodBasis.load(PodBasis.from_store(folder / "s.h5", n_modes=2).save(folder / "b.h5"))
    for m in (stored, basis.mesh):
        assert type(m) is MeshArrays and m.cell_type == "triangle" and (m.n_points, len(m.cells)) == (4, 2)
        assert m.points.dtype == np.float64 and m.cells.dtype == np.int64
        np.testing.assert_array_equal(m.points, points)
        np.testing.assert_array_equal(m.cells, cells)
        assert list(m.regions) == ["upper"] and m.regions["upper"].tolist() == [1]
        assert not m.points.flags.writeable  # plain data, shared, never edited in place


def test_every_rom_module_imports_and_keeps_meshes_without_solvers(tmp_path):
    out = subprocess.run([sys.executable, "-c", _PROBE, str(Path(__file__).parent), str(tmp_path)], cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    count, *problems = out.stdout.strip().split("\n")
    assert int(count) >= 20  # the walk found the package (store, basis, pod, gp, ...), not an empty path
    assert [p for p in problems if p] == []


def test_no_rom_module_but_the_cli_names_solvers_in_an_import():
    """Also imports inside functions, which importing the module does not run."""
    offenders = []
    for path in sorted((REPO / "rom").rglob("*.py")):
        if path.relative_to(REPO).parts[:2] == ("rom", "cli.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            offenders += [f"{path.relative_to(REPO)}:{node.lineno} {n}" for n in names
                          if n == "solvers" or n.startswith("solvers.")]
    assert offenders == []


def test_store_and_basis_keep_the_mesh_as_the_arrays_given(tmp_path):
    mesh_round_trip(tmp_path)
