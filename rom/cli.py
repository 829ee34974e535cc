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
        fmt = f.attrs.get("format", b"")
        fmt = fmt.decode() if isinstance(fmt, bytes) else str(fmt)
    head = _describe_romtk(path, fmt)
    f = h5py.File(path, "r")
    with f:
        lines = head + [f"HDF5 file: {path}", "attributes:" if f.attrs else "attributes: none"]
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


def _describe_romtk(path: Path, fmt: str) -> list[str]:
    """A summary of a romtk snapshot store or POD basis (empty for other files)."""
    if fmt == "romtk.snapshots":
        from rom.store import SnapshotStore

        with SnapshotStore(path) as store:
            return store.summary().splitlines()
    if fmt == "romtk.basis":
        from rom.basis import PodBasis

        return PodBasis.load(path).summary().splitlines()
    return []


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


# -- rom snapshots --------------------------------------------------------------------
def load_case(case: str):
    """The module of case `case`: a path to a .py file, or a name in the cases folder.

    A case exposes its full-order problem to `rom snapshots` through a function
    ``snapshot_problem(**options)`` returning an object with ``solve(mu)`` and
    ``parameter_space`` (see rom.snapshots).
    """
    import importlib.util

    path = Path(case)
    if path.suffix != ".py":
        folder = find_cases_dir()
        if folder is None:
            raise RomError(f"case {case!r}: no cases folder found above {Path.cwd()}; pass the script's path")
        path = folder / f"{case}.py"
    if not path.is_file():
        raise RomError(f"case {case!r}: no file {path}; `rom cases` lists the cases")
    spec = importlib.util.spec_from_file_location(f"romtk_case_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not callable(getattr(module, "snapshot_problem", None)):
        raise RomError(f"case {path} defines no snapshot_problem(**options); only cases that expose their "
                       "problem can generate snapshots from the command line")
    return module


def _options(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs or []:
        key, sep, text = pair.partition("=")
        if not sep or not key.isidentifier():
            raise RomError(f"--set {pair!r}: write KEY=VALUE, e.g. --set n=64")
        try:
            out[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            out[key] = text  # a bare word is a string
    return out


def _configure_snapshots(p: argparse.ArgumentParser) -> None:
    p.add_argument("case", help="case name in cases/ (e.g. thermal_block) or path to a case script")
    p.add_argument("--samples", type=int, required=True, metavar="N", help="number of parameter samples")
    p.add_argument("--sampler", default="lhs", choices=("lhs", "sobol", "uniform", "grid"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True, metavar="FILE", help="the snapshot store (HDF5)")
    p.add_argument("--set", dest="options", action="append", metavar="KEY=VALUE",
                   help="option for the case's snapshot_problem (repeatable), e.g. --set n=64")
    p.add_argument("--group-size", type=int, default=1, help="ranks per FOM solve under mpirun (default 1)")
    p.add_argument("--retry-failed", action="store_true", help="recompute snapshots recorded as failed")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


@subcommand("snapshots", "run a case's full-order problem over a parameter sample into a snapshot store "
                         "(resumes an interrupted run)", _configure_snapshots)
def snapshots(args: argparse.Namespace) -> int:
    from rom.parallel import world
    from rom.snapshots import generate

    if args.samples < 1:
        raise RomError(f"--samples {args.samples}: pass at least one sample")
    options = _options(args.options)
    module = load_case(args.case)
    comm = world()
    problem = module.snapshot_problem(**options)
    sample = problem.parameter_space.sample(args.samples, args.sampler, seed=args.seed)
    provenance = {**options, "samples": args.samples, "sampler": args.sampler, "seed": args.seed}
    report = generate(problem, sample, args.out, comm, progress=not args.no_progress, group_size=args.group_size,
                      case=Path(module.__file__).stem, options=provenance, retry_failed=args.retry_failed)
    comm.print(str(report))
    return 0 if report.n_done else 1


# -- rom pod --------------------------------------------------------------------------
def _configure_pod(p: argparse.ArgumentParser) -> None:
    p.add_argument("store", type=Path, help="a snapshot store written by `rom snapshots`")
    p.add_argument("--tol", type=float, help="relative energy tolerance in (0, 1), e.g. 1e-6")
    p.add_argument("--n-modes", type=int, help="keep at most this many modes")
    p.add_argument("--method", default="snapshots", choices=("snapshots", "svd", "tsqr", "randomized", "streaming"))
    p.add_argument("--block-size", type=int, default=64, help="snapshots per block when streaming (default 64)")
    p.add_argument("--out", type=Path, required=True, metavar="BASIS", help="the basis file (HDF5)")
    p.add_argument("--xdmf", type=Path, help="also write the modes for ParaView here (.xdmf)")
    p.add_argument("--plot", type=Path, help="also write the singular values and projection errors here (.png)")


@subcommand("pod", "POD basis of a snapshot store, with its singular values and projection errors",
            _configure_pod)
def pod_command(args: argparse.Namespace) -> int:
    from rom.basis import PodBasis

    if args.tol is None and args.n_modes is None:
        raise RomError("give --tol (relative energy, e.g. 1e-6) or --n-modes, or both")
    basis = PodBasis.from_store(args.store, tol=args.tol, n_modes=args.n_modes, method=args.method,
                                block_size=args.block_size)
    basis.save(args.out)
    print(basis.summary())
    print(f"wrote {args.out}")
    if args.xdmf:
        print(f"wrote {basis.write_xdmf(args.xdmf)}")
    if args.plot:
        print(f"wrote {basis.plot(args.plot)}")
    return 0
