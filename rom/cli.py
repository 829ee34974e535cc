"""The `rom` command line: `rom --version`, `rom info PATH`, `rom cases`.

Subcommands live in one registry. A new one is a function decorated with
`@subcommand(name, help, configure)`: `configure(parser)` adds its arguments, the
function receives the parsed namespace and returns an exit status (None means 0).
"""

from __future__ import annotations

import argparse
import ast
import logging
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Callable

from rom.errors import RomError, StoreError

log = logging.getLogger("rom.cli")
PACKAGE_DIR = Path(__file__).resolve().parent  # where `rom cases` looks when the cwd has no cases/

Handler = Callable[[argparse.Namespace], "int | None"]


@dataclass(frozen=True)
class Subcommand:
    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Handler


SUBCOMMANDS: dict[str, Subcommand] = {}


def subcommand(name: str, help: str, configure: Callable[[argparse.ArgumentParser], None] = lambda p: None):
    """Register the decorated function as `rom NAME`."""
    def register(run: Handler) -> Handler:
        SUBCOMMANDS[name] = Subcommand(name, help, configure, run)
        return run
    return register


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rom", description="romtk: reduced-order modelling of parametrized PDEs")
    parser.add_argument("--version", action="version", version=f"romtk {_version()}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    parser.add_argument("-q", "--quiet", action="store_true", help="log errors only")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for cmd in SUBCOMMANDS.values():
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help)
        cmd.configure(p)
        p.set_defaults(run=cmd.run)
    return parser


def _version() -> str:
    # from the package metadata, not rom.__version__: under pytest, tests/rom can shadow
    # the `rom` package (a namespace package whose __init__ never runs)
    try:
        return metadata.version("romtk")
    except metadata.PackageNotFoundError:
        return "unknown (source tree not installed)"


def main(argv=None) -> int:
    """Run `rom` with argv (sys.argv[1:] if None); returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.ERROR if args.quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger().setLevel(level)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return args.run(args) or 0
    except RomError as exc:
        log.debug("rom %s failed", args.command, exc_info=True)
        print(f"rom {args.command}: error: {exc}", file=sys.stderr)
        return 1


# -- rom info -------------------------------------------------------------------------
_HDF5_SUFFIXES = {".h5", ".hdf5", ".he5", ".hdf"}


def _configure_info(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", type=Path, help="a mesh file (any format read_mesh reads) or an HDF5 file")
    p.add_argument("--max-items", type=int, default=200, metavar="N",
                   help="list at most N groups/datasets of an HDF5 file (default 200)")


@subcommand("info", "describe a mesh file or an HDF5 (store, model, result) file", _configure_info)
def info(args: argparse.Namespace) -> int:
    import h5py

    path: Path = args.path
    if path.is_file() and (path.suffix.lower() in _HDF5_SUFFIXES or h5py.is_hdf5(path)):
        print("\n".join(describe_hdf5(path, args.max_items)))
    else:
        print("\n".join(describe_mesh(path)))
    return 0


def describe_mesh(path: Path) -> list[str]:
    """Lines describing the mesh in `path`: cell type, counts, bounding box, tags, volume."""
    from solvers.mesh import cell_volumes, read_mesh

    mesh = read_mesh(path)
    lo, hi = mesh.points.min(axis=0), mesh.points.max(axis=0)
    box = " x ".join(f"[{a:.6g}, {b:.6g}]" for a, b in zip(lo, hi))
    lines = [
        f"mesh file: {path}",
        f"cell type: {mesh.cell_type} ({mesh.tdim}D cells in {mesh.dim}D space)",
        f"points: {mesh.n_points}",
        f"cells: {mesh.n_cells}",
        f"boundary facets: {len(mesh.boundary_facets)}",
        f"bounding box: {box}",
        f"total measure: {cell_volumes(mesh).sum():.6g}",
        f"hash: {mesh.hash()[:16]}",
    ]
    lines.append("regions: " + (", ".join(f"{k} ({len(v)} cells)" for k, v in sorted(mesh.regions.items()))
                                or "none"))
    lines.append("boundaries: " + (", ".join(f"{k} ({len(v)} facets)" for k, v in sorted(mesh.boundaries.items()))
                                   or "none"))
    return lines


def _attr(value) -> str:
    """An HDF5 attribute as plain text, cut at 120 characters."""
    import numpy as np

    if isinstance(value, bytes):
        text = value.decode(errors="replace")
    elif isinstance(value, np.ndarray):
        text = np.array2string(value, threshold=8, separator=", ")
    else:
        text = str(value.item() if isinstance(value, np.generic) else value)
    text = " ".join(text.split())
    return text if len(text) <= 120 else text[:117] + "..."


def describe_hdf5(path: Path, max_items: int = 200) -> list[str]:
    """Lines describing an HDF5 file: root attributes, then every group and dataset
    (shape, dtype), at most max_items of them."""
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise StoreError(f"cannot open {str(path)!r} as HDF5: {exc}; check the file is complete") from exc
    with f:
        lines = [f"HDF5 file: {path}", "attributes:" if f.attrs else "attributes: none"]
        lines += [f"  {k} = {_attr(v)}" for k, v in sorted(f.attrs.items())]
        items: list[str] = []

        def visit(name, obj):
            indent = "  " * name.count("/")
            leaf = name.rsplit("/", 1)[-1]
            if isinstance(obj, h5py.Dataset):
                items.append(f"  {indent}{leaf}: dataset {obj.shape} {obj.dtype}")
            else:
                items.append(f"  {indent}{leaf}/ ({len(obj)} members)")

        f.visititems(visit)
        lines.append(f"contents ({len(items)} groups and datasets):")
        lines += items[:max_items]
        if len(items) > max_items:
            lines.append(f"  ... {len(items) - max_items} more (use --max-items)")
    return lines


# -- rom cases ------------------------------------------------------------------------
def find_cases_dir(start: Path | None = None) -> Path | None:
    """The nearest `cases/` folder holding .py files above `start` (default: the current
    directory), else above the installed package (a source checkout); None if neither."""
    origins = [Path.cwd() if start is None else Path(start), PACKAGE_DIR]
    for origin in origins:
        for d in (origin.resolve(), *origin.resolve().parents):
            cases = d / "cases"
            if cases.is_dir() and any(cases.glob("*.py")):
                return cases
    return None


def _summary(path: Path) -> str:
    """First line of the module docstring of `path`, read without running it."""
    try:
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
    except (SyntaxError, UnicodeDecodeError) as exc:
        return f"(cannot parse: {type(exc).__name__})"
    return doc.strip().splitlines()[0] if doc else "(no docstring)"


def _configure_cases(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dir", type=Path, default=None, help="the cases folder (default: found from here upwards)")


@subcommand("cases", "list the case and benchmark scripts under cases/ with one line each", _configure_cases)
def cases(args: argparse.Namespace) -> int:
    folder = args.dir if args.dir is not None else find_cases_dir()
    if folder is None or not folder.is_dir():
        where = str(args.dir) if args.dir is not None else f"above {Path.cwd()} or above the installed package"
        raise RomError(f"no cases folder found {where}; run rom cases from a romtk checkout or pass --dir")
    scripts = sorted(p for p in folder.rglob("*.py") if not p.name.startswith("_"))
    print(f"cases in {folder}:")
    width = max((len(str(p.relative_to(folder))) for p in scripts), default=0)
    for p in scripts:
        print(f"  {str(p.relative_to(folder)):<{width}}  {_summary(p)}")
    if not scripts:
        print("  (none)")
    return 0
