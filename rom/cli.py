"""The `rom` command line: `rom --version`, `rom info PATH`, `rom cases`, `rom snapshots`, `rom pod`.

Subcommands live in one registry. A new one is a function decorated with
`@subcommand(name, help, configure)`: `configure(parser)` adds its arguments, the
function receives the parsed namespace and returns an exit status (None means 0).

Exit status: 0 success, 1 a RomError (a file, a solve), 2 a wrong command line (argparse's
errors and `UsageError`: a bad `--set`, paths that collide, a plan too large). `-v` shows
romtk's debug log (`-vv` also other libraries'), `-q` only errors (no summaries). A reader
that closes the pipe (`rom info X | head`) ends the command quietly.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import logging
import numbers
import os
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Callable

from rom.errors import RomError, StoreError

log = logging.getLogger("rom.cli")
PACKAGE_DIR = Path(__file__).resolve().parent  # where `rom cases` looks when the cwd has no cases/

Handler = Callable[[argparse.Namespace], "int | None"]
_OWN_LOGGERS = ("rom", "solvers")  # romtk's loggers, shown at debug level by -v


class UsageError(RomError):
    """A wrong command line (an option's value, colliding paths, a plan too large): exit status 2."""


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
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="romtk's debug log (-vv: also other libraries' debug log)")
    parser.add_argument("-q", "--quiet", action="store_true", help="errors only: no warnings, no summaries")
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
    if args.command is None:
        parser.print_help()
        return 2
    with _logging(args.verbose, args.quiet):
        try:
            status = args.run(args) or 0
            sys.stdout.flush()
            return status
        except BrokenPipeError:  # the reader of stdout went away (`rom info X | head`): nothing to say
            _stdout_to_devnull()
            return 0
        except RomError as exc:
            log.debug("rom %s failed", args.command, exc_info=True)
            print(f"rom {args.command}: error: {exc}", file=sys.stderr)
            return 2 if isinstance(exc, UsageError) else 1


class _logging:
    """Levels for one command: romtk's loggers at debug with -v, everything with -vv, errors
    only with -q, else warnings. The previous levels come back afterwards (main may be called
    more than once in a process, e.g. by tests)."""

    def __init__(self, verbose: int, quiet: bool):
        if quiet:
            self.own = self.other = logging.ERROR
        else:
            self.own = logging.DEBUG if verbose else logging.WARNING
            self.other = logging.DEBUG if verbose > 1 else logging.WARNING

    def __enter__(self):
        logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
        self.loggers = [logging.getLogger(), *map(logging.getLogger, _OWN_LOGGERS)]
        self.saved = [lg.level for lg in self.loggers]
        for lg, level in zip(self.loggers, (self.other,) + (self.own,) * len(_OWN_LOGGERS)):
            lg.setLevel(level)
        return self

    def __exit__(self, *exc):
        for lg, level in zip(self.loggers, self.saved):
            lg.setLevel(level)


def _stdout_to_devnull() -> None:
    """Point stdout's descriptor at /dev/null, so that the interpreter's last flush does not
    raise BrokenPipeError again at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # stdout without a descriptor (captured by a test)
        pass


def say(args: argparse.Namespace, text: str) -> None:
    """Print a summary line unless -q."""
    if not args.quiet:
        print(text)


# -- paths ----------------------------------------------------------------------------
def check_paths(inputs: dict, outputs: dict) -> None:
    """Refuse (UsageError) a command whose outputs overwrite one of its inputs or each other.

    inputs, outputs : argument name (as the user typed it, e.g. "--out") -> Path or None.
    An .xdmf output also writes the .h5 of the same stem beside it; both are checked. Two
    paths collide when they resolve to the same place, or are the same existing file
    (links). An output that is an existing folder is refused too.
    """
    from solvers.mesh.io import xdmf_companion

    entries = []  # (description, path, is_output, argument)
    for is_output, group in ((False, inputs), (True, outputs)):
        for arg, p in group.items():
            if p is None:
                continue
            p = Path(p)
            entries.append((f"{arg} {p}", p, is_output, arg))
            if is_output and p.is_dir():
                raise UsageError(f"{arg} {p} is a folder; give a file name inside it, e.g. {p / 'out.h5'}")
            if p.suffix.lower() == ".xdmf":
                h5 = xdmf_companion(p)
                entries.append((f"{h5} (the arrays of {arg} {p})", h5, is_output, arg))
    for i, a in enumerate(entries):
        for b in entries[i + 1:]:
            if (a[2] or b[2]) and _same_file(a[1], b[1]):
                writer, other = (b, a) if b[2] else (a, b)
                raise UsageError(f"{writer[0]} would overwrite {other[0]}: both are {a[1].resolve()}; "
                                 f"choose another name for {writer[3]}")


def _same_file(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _output_folder(arg: str, path: Path) -> None:
    """Create the folder of an output file (saying so), or refuse with UsageError."""
    folder = path.parent
    if folder.is_dir():
        return
    try:
        folder.mkdir(parents=True)
    except OSError as exc:
        raise UsageError(f"{arg} {path}: cannot create its folder {folder} ({exc.strerror}); "
                         "give a path in a folder you can write") from None
    log.warning("created folder %s for %s %s", folder, arg, path)


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
    fields = [] if path.suffix.lower() in (".msh", ".geo") else _mesh_fields(path)
    lines.append("regions: " + (", ".join(f"{k} ({len(v)} cells)" for k, v in sorted(mesh.regions.items()))
                                or _region_field(fields) or "none"))
    lines.append("boundaries: " + (", ".join(f"{k} ({len(v)} facets)" for k, v in sorted(mesh.boundaries.items()))
                                   or "none"))
    for where in ("point", "cell"):
        mine = [f for f in fields if f[0] == where]
        lines.append(f"{where} fields: {len(mine) or 'none'}")
        lines += [f"  {name}: {shape} {dtype}" for _, name, shape, dtype, _ in mine]
    return lines


def _mesh_fields(path: Path) -> list[tuple]:
    """(point|cell, name, shape, dtype, distinct values of an integer field or None) of each
    field in a file meshio reads; cell fields of several blocks are stacked."""
    import contextlib
    import io

    import meshio
    import numpy as np

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        m = meshio.read(path)
    out = []
    for name, a in m.point_data.items():
        out.append(("point", name, np.shape(a), np.asarray(a).dtype, None))
    for name, blocks in m.cell_data.items():
        a = np.concatenate([np.asarray(b) for b in blocks]) if blocks else np.zeros(0)
        values = np.unique(a) if a.dtype.kind in "iu" and a.ndim == 1 else None
        out.append(("cell", name, a.shape, a.dtype, values))
    return out


def _region_field(fields: list[tuple]) -> str:
    """The regions of an integer cell field "region" (as romtk's writers number them), or ''."""
    for where, name, _, _, values in fields:
        if where == "cell" and name == "region" and values is not None:
            tagged = values[values > 0]
            return (f"{tagged.size} numbered by the cell field 'region' ({', '.join(map(str, tagged[:20]))}"
                    f"{', ...' if tagged.size > 20 else ''}; 0 untagged); the names are not stored in this format")
    return ""


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

    from rom.h5io import format_of, reading

    fix = "check the file is complete, or regenerate it"
    with reading(path, "HDF5 file", fix) as f:  # no lock: a store being written can be watched
        fmt = format_of(f)
    head = _describe_romtk(path, fmt)
    with reading(path, "HDF5 file", fix) as f:
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
    if fmt.startswith("romtk.ReducedModel"):
        from rom.reduced import ReducedModel

        m = ReducedModel.load(path)
        return [f"romtk reduced model ({fmt}): N = {m.size}, {len(m.theta)} operator and {len(m.theta_f)} load terms, "
                f"{m.outputs.shape[0]} outputs",
                f"  parameters {', '.join(m.names)} in [{m.lower}, {m.upper}]; estimator {m.estimator['method']}, "
                f"stability {m.stability['kind']}"]
    if fmt == "romtk.greedy/1":
        from rom.rb import read_checkpoint

        V, hist = read_checkpoint(path)
        last = hist[-1]["max_estimate"] if hist else float("nan")
        return [f"romtk greedy checkpoint: N = {V.shape[1]} basis functions of {V.shape[0]} dofs, "
                f"last max estimate {last:.3e}"]
    if fmt == "romtk.PodGP":
        from rom.gp.podgp import PodGP

        g = PodGP.load(path)
        return [f"romtk PodGP: {g.modes_.shape[1]} modes of {g.modes_.shape[0]} dofs, GP from "
                f"{g.gp_.X_train_.shape[0]} parameters of dimension {g.gp_._dim}, kernel {type(g.gp_.kernel_).__name__}"]
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


_KINDS = {"int": int, "float": float, "str": str, "bool": bool, "tuple": tuple, "list": list}


def case_options(module) -> dict[str, tuple[type | None, object]]:
    """The options of a case's snapshot_problem: name -> (type or None for any, default).

    The type is the annotation when it names int, float, str, bool, tuple or list, else
    the type of the default (None when there is neither).
    """
    out = {}
    for name, prm in inspect.signature(module.snapshot_problem).parameters.items():
        if prm.kind in (prm.VAR_POSITIONAL, prm.VAR_KEYWORD):
            continue
        ann = prm.annotation  # a string under `from __future__ import annotations`
        if isinstance(ann, str):
            kind = _KINDS.get(ann.split("|")[0].strip())
        else:
            kind = ann if ann in _KINDS.values() else None
        if kind is None and prm.default is not prm.empty and prm.default is not None:
            kind = type(prm.default) if type(prm.default) in _KINDS.values() else None
        out[name] = (kind, prm.default)
    return out


def _describe_options(case: str, spec: dict) -> str:
    parts = [f"{name} ({kind.__name__ if kind else 'any'}"
             f"{'' if default is inspect.Parameter.empty else f', default {default!r}'})"
             for name, (kind, default) in spec.items()]
    return f"options of case {case}: " + (", ".join(parts) or "none")


def _options(pairs: list[str], case: str, spec: dict, open_ended: bool) -> dict:
    """--set KEY=VALUE pairs as snapshot_problem's keyword arguments, checked against `spec`
    (see case_options); a wrong key or value is a UsageError listing the options and types.
    Values are Python literals; a bare word is a string."""
    out = {}
    for pair in pairs or []:
        key, sep, text = pair.partition("=")
        if not sep or not key.isidentifier():
            raise UsageError(f"--set {pair!r}: write KEY=VALUE, e.g. --set n=64; {_describe_options(case, spec)}")
        if key not in spec and not open_ended:
            raise UsageError(f"--set {pair}: case {case} has no option {key!r}; {_describe_options(case, spec)}")
        kind = spec.get(key, (None, None))[0]
        try:
            value = text if kind is str else ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text
        ok = {bool: isinstance(value, bool), int: isinstance(value, int) and not isinstance(value, bool),
              float: isinstance(value, (int, float)) and not isinstance(value, bool),
              tuple: isinstance(value, (tuple, list)), list: isinstance(value, (tuple, list)),
              str: True, None: True}[kind]
        if not ok:
            raise UsageError(f"--set {pair}: option {key} of case {case} takes type {kind.__name__}, not {text!r}; "
                             f"{_describe_options(case, spec)}")
        out[key] = kind(value) if kind in (float, tuple, list) else value
    return out


LARGE_SAMPLES = 100_000  # plans above these need --large
LARGE_BYTES = 4 * 2**30


def _check_sampler(args) -> None:
    """--samples counts samples of lhs/sobol/uniform; a grid is sized by --grid-points (UsageError else)."""
    if args.sampler == "grid":
        if args.grid_points is None or args.samples is not None:
            raise UsageError("--sampler grid takes --grid-points N, the points per parameter entry (N^d samples "
                             "in all for d entries), not --samples")
        if args.grid_points < 1:
            raise UsageError(f"--grid-points {args.grid_points}: pass at least 1 point per entry")
    else:
        if args.samples is None or args.grid_points is not None:
            raise UsageError(f"--sampler {args.sampler} takes --samples N, the number of samples "
                             "(--grid-points is for --sampler grid)")
        if args.samples < 1:
            raise UsageError(f"--samples {args.samples}: pass at least one sample")


def _plan_size(args, problem, dim: int) -> int:
    """The number of samples the command asks for; UsageError for a plan too large without --large."""
    if args.sampler == "grid":
        m = args.grid_points ** dim
        what = f"{m} samples ({args.grid_points} per entry of {dim} parameter entries, {args.grid_points}^{dim})"
    else:
        m = args.samples
        what = f"{m} samples"
    n_dofs = getattr(getattr(problem, "space", None), "n_dofs", None) or getattr(problem, "n_dofs", None)
    times = getattr(problem, "times", None)
    steps = max(0 if times is None else len(times), 1)
    size = m * int(n_dofs) * steps * 8 if isinstance(n_dofs, numbers.Integral) else 0
    if (m > LARGE_SAMPLES or size > LARGE_BYTES) and not args.large:
        store = f" and a store of about {size / 1e9:.3g} GB ({n_dofs} dofs{f' x {steps} steps' if steps > 1 else ''} " \
                "per snapshot)" if size else ""
        raise UsageError(f"the plan is {what}{store}, above the limit of {LARGE_SAMPLES} samples or "
                         f"{LARGE_BYTES / 2**30:g} GiB; pass --large to run it anyway, or ask for fewer samples")
    log.info("plan: %s%s", what, f", about {size / 1e9:.3g} GB of snapshots" if size else "")
    return m


def _configure_snapshots(p: argparse.ArgumentParser) -> None:
    p.add_argument("case", help="case name in cases/ (e.g. thermal_block) or path to a case script")
    p.add_argument("--samples", type=int, metavar="N", help="number of parameter samples (lhs, sobol, uniform)")
    p.add_argument("--sampler", default="lhs", choices=("lhs", "sobol", "uniform", "grid"))
    p.add_argument("--grid-points", type=int, metavar="N",
                   help="--sampler grid: N points per parameter entry, N^d samples in all")
    p.add_argument("--large", action="store_true",
                   help=f"confirm a plan above {LARGE_SAMPLES} samples or {LARGE_BYTES // 2**30} GiB of snapshots")
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
    from rom.h5io import stale_partial
    from rom.parallel import world
    from rom.snapshots import generate

    _check_sampler(args)
    module = load_case(args.case)
    script = Path(module.__file__)
    check_paths({"CASE": script}, {"--out": args.out})
    name = script.stem
    spec = case_options(module)
    open_ended = any(p.kind == p.VAR_KEYWORD for p in inspect.signature(module.snapshot_problem).parameters.values())
    options = _options(args.options, name, spec, open_ended)
    comm = world()
    try:
        problem = module.snapshot_problem(**options)
    except RomError:
        raise
    except (TypeError, ValueError) as exc:  # an option the case's own checks refuse
        raise UsageError(f"case {name} refused the options {options}: {exc}; {_describe_options(name, spec)}") from None
    m = _plan_size(args, problem, problem.parameter_space.dim)
    sample = problem.parameter_space.sample(args.grid_points if args.sampler == "grid" else m, args.sampler,
                                            seed=args.seed)
    if comm.rank == 0:
        _output_folder("--out", args.out)
        stale_partial(args.out)
    # the defaults too, so that `--set degree=1` and no --set name the same model on resume
    defaults = {k: d for k, (_, d) in spec.items() if d is not inspect.Parameter.empty}
    provenance = {**defaults, **options, "samples": m, "sampler": args.sampler, "seed": args.seed}
    report = generate(problem, sample, args.out, comm, progress=not args.no_progress and not args.quiet,
                      group_size=args.group_size, case=name, options=provenance, retry_failed=args.retry_failed)
    if not args.quiet:
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


def _write_modes(basis, path: Path, basis_path: Path) -> Path:
    """The modes of `basis` as point fields on its stored mesh, written to `path` (.xdmf/.vtu).

    The basis holds the mesh as plain arrays (rom never imports solvers); it becomes a
    `solvers.mesh.Mesh` here, which checks the cell type and vertex counts."""
    from solvers.mesh import Mesh
    from solvers.mesh.io import write_mesh

    m = basis.mesh
    if m is None:
        raise StoreError(f"{basis_path} has no mesh (its store was written without one); drop --xdmf, or "
                         f"regenerate the store with a case that stores its mesh")
    try:
        mesh = Mesh(m.points, m.cells, m.cell_type, regions=dict(m.regions))
    except RomError as exc:
        raise StoreError(f"{basis_path}:/mesh is not a usable mesh ({exc}); regenerate the store") from None
    return write_mesh(path, mesh, point_data=basis.mode_fields(mesh.n_points))


@subcommand("pod", "POD basis of a snapshot store, with its singular values and projection errors",
            _configure_pod)
def pod_command(args: argparse.Namespace) -> int:
    from rom.basis import PodBasis
    from rom.h5io import stale_partial
    from rom.store import DONE, FAILED, SnapshotStore
    from solvers.mesh.io import xdmf_companion

    if args.tol is None and args.n_modes is None:
        raise UsageError("give --tol (relative energy, e.g. 1e-6) or --n-modes, or both")
    outputs = {"--out": args.out, "--xdmf": args.xdmf, "--plot": args.plot}
    check_paths({"STORE": args.store}, outputs)
    with SnapshotStore(args.store) as store:
        status = store.status
    n_done, n_failed = int((status == DONE).sum()), int((status == FAILED).sum())
    if 0 < n_done < status.size:
        log.warning("%s is incomplete: %d of %d snapshots done (%d failed, %d missing); the basis is built from "
                    "the %d done (resume with rom snapshots, --retry-failed for failures)", args.store, n_done,
                    status.size, n_failed, status.size - n_done - n_failed, n_done)
    basis = PodBasis.from_store(args.store, tol=args.tol, n_modes=args.n_modes, method=args.method,
                                block_size=args.block_size)
    error = float(basis.projection_error[-1])
    if args.tol is not None and error > args.tol * (1 + 1e-3):
        why = (f"--n-modes {args.n_modes} keeps too few modes" if args.n_modes is not None and
               basis.size == args.n_modes else f"the {basis.size} modes are all the snapshots resolve in float64")
        log.warning("the basis misses --tol %g: its relative projection error is %.3e (%s)", args.tol, error, why)
    for arg, path in outputs.items():
        if path is not None:
            _output_folder(arg, path)
            stale_partial(path)
    basis.save(args.out)
    say(args, basis.summary())
    say(args, f"wrote {args.out}")
    if args.xdmf:
        written = _write_modes(basis, args.xdmf, args.out)
        say(args, f"wrote {written}" + (f" and {xdmf_companion(written)}" if written.suffix.lower() == ".xdmf" else ""))
    if args.plot:
        say(args, f"wrote {basis.plot(args.plot)}")
    return 0
