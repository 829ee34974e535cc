"""Mesh files: import through meshio and the gmsh API, export of fields to VTU/XDMF.

Import keeps the highest-dimensional cells (one cell type), drops trailing coordinates
that are identically zero (z of planar meshes, y and z of 1D ones) and unused points, turns gmsh physical groups (or meshio cell sets)
into regions and boundary tags, runs `check_cells` (which reorients a mesh whose
cells are all reversed) and renumbers gmsh meshes along a sweep (`Mesh.renumbered`).
Export writes what ParaView reads: points and vectors padded to 3 components, tensors
flattened to 9.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import shutil
import threading
from pathlib import Path

import numpy as np

from rom.errors import MeshError, ShapeError
from rom.h5io import atomic, partial_path, stale_partial
from solvers.cells import FACET_TYPE, N_VERTICES, TDIM
from solvers.mesh._mesh import Mesh
from solvers.mesh.quality import check_cells

log = logging.getLogger(__name__)

_GMSH_SUFFIXES = {".msh", ".geo"}
_WRITE_SUFFIXES = {".vtu", ".xdmf"}
_GMSH_FAMILY = {"Point": "vertex", "Line": "line", "Triangle": "triangle", "Quadrilateral": "quad",
                "Tetrahedron": "tetra", "Hexahedron": "hexahedron", "Prism": "wedge", "Pyramid": "pyramid"}
_gmsh_lock = threading.RLock()  # gmsh is one global state per process


# -- reading -------------------------------------------------------------------------
def read_mesh(path) -> Mesh:
    """Read a mesh file into a checked Mesh.

    path: a gmsh `.geo` (meshed here in its model dimension) or `.msh` file, read through
    the gmsh API, or any file meshio reads (`.vtu`, `.xdmf`, `.med`, `.inp`, ...).
    Physical groups (gmsh) or cell sets (meshio) of the top dimension become
    `mesh.regions`, those of one dimension less `mesh.boundaries` (facets inside the
    domain are left out, with a warning). Quadratic and higher-order cells keep only
    their vertices: the mesh is the straight-sided one. gmsh meshes are renumbered along a
    sweep (`Mesh.renumbered`, tags move with their cells): gmsh numbers points and cells in
    no useful order, and parallel assembly colours a sweep in two colours of long chunks.
    Other files keep their numbering (fields written with a mesh follow it). Raises
    MeshError for a missing or unreadable file, mixed or unknown top-dimensional cell types
    (wedges, pyramids, polygons), and bad cells.
    """
    path = Path(path)
    if not path.is_file():
        where = "is a directory" if path.is_dir() else f"does not exist (cwd {Path.cwd()})"
        raise MeshError(f"mesh file {str(path)!r} {where}; check the path or generate the mesh first")
    if path.suffix.lower() in _GMSH_SUFFIXES:
        return _assemble(path, *_read_gmsh(path)).renumbered()
    return _assemble(path, *_read_meshio(path))


def _read_meshio(path: Path):
    import meshio

    said = io.StringIO()
    try:  # meshio prints its complaints and may sys.exit(1) on a file it cannot parse
        with contextlib.redirect_stdout(said), contextlib.redirect_stderr(said):
            m = meshio.read(path)
    except (Exception, SystemExit) as exc:  # meshio raises many kinds (ReadError, KeyError, ...)
        reason = " ".join(said.getvalue().split()) if isinstance(exc, SystemExit) else f"{type(exc).__name__}: {exc}"
        raise MeshError(
            f"cannot read mesh file {str(path)!r}: {reason}; give a file meshio reads, "
            "named by its format's extension (.vtu, .xdmf, .med, .inp, ...), or a gmsh .msh/.geo file"
        ) from exc
    blocks = [(b.type, np.asarray(b.data)) for b in m.cells]
    tdims = [meshio._mesh.topological_dimension.get(t, -1) for t, _ in blocks]
    if not blocks or max(tdims) < 1:
        raise MeshError(f"mesh file {str(path)!r} holds no cells of dimension 1 to 3; it cannot be a domain mesh")
    top = max(tdims)
    top_blocks = [i for i, d in enumerate(tdims) if d == top]
    cell_type = _family(path, {blocks[i][0] for i in top_blocks})
    k = N_VERTICES[cell_type]
    cells = np.concatenate([blocks[i][1][:, :k] for i in top_blocks])
    offsets = np.cumsum([0] + [len(blocks[i][1]) for i in top_blocks])
    facet_type = FACET_TYPE[cell_type]
    kf = N_VERTICES[facet_type]
    facet_blocks = [i for i, (t, _) in enumerate(blocks) if _strip_order(t) == facet_type]
    regions, facet_groups = {}, {}
    for name, per_block in m.cell_sets.items():
        if name.startswith("gmsh:"):
            continue
        idx = [np.asarray(per_block[i], dtype=np.int64) + offsets[j] for j, i in enumerate(top_blocks)
               if per_block[i] is not None and len(per_block[i])]
        if idx:
            regions[name] = np.concatenate(idx)
        fv = [blocks[i][1][np.asarray(per_block[i], dtype=np.int64)][:, :kf] for i in facet_blocks
              if per_block[i] is not None and len(per_block[i])]
        if fv:
            facet_groups[name] = np.concatenate(fv)
    return np.asarray(m.points, dtype=np.float64), cells, cell_type, regions, facet_groups


def _strip_order(name: str) -> str:
    """meshio name of the straight-sided family: 'triangle6' -> 'triangle', 'line3' -> 'line'."""
    return re.sub(r"\d+$", "", name)


def _family(path: Path, types: set[str]) -> str:
    """The one straight-sided cell type of a set of meshio type names, or MeshError."""
    families = {_strip_order(t) for t in types}
    if len(families) > 1:
        raise MeshError(
            f"mesh file {str(path)!r} mixes cell types {sorted(types)} in its top dimension; romtk meshes "
            "hold one cell type: remesh with one type (e.g. all triangles) or split the mesh"
        )
    family = families.pop()
    if family not in N_VERTICES or family == "vertex":
        raise MeshError(
            f"mesh file {str(path)!r} has cells of unknown type {sorted(types)[0]!r}; romtk reads line, "
            "triangle, quad, tetra and hexahedron cells (and their quadratic variants, keeping the "
            "vertices): remesh without wedges, pyramids or polygons"
        )
    return family


@contextlib.contextmanager
def _gmsh_model():
    """A fresh, current gmsh model; initializes and finalizes gmsh unless the caller had
    already initialized it (then the caller's current model is restored)."""
    import gmsh

    with _gmsh_lock:
        owner = not gmsh.isInitialized()
        if owner:
            gmsh.initialize(interruptible=threading.current_thread() is threading.main_thread())
            gmsh.option.setNumber("General.Terminal", 0)
        previous = gmsh.model.getCurrent()
        gmsh.model.add("romtk_read_mesh")
        try:
            yield gmsh
        finally:
            gmsh.model.remove()
            if owner:
                gmsh.finalize()
            elif previous:
                gmsh.model.setCurrent(previous)


def _read_gmsh(path: Path):
    with _gmsh_model() as gmsh:
        try:
            gmsh.merge(str(path))
            if path.suffix.lower() == ".geo":
                gmsh.model.mesh.generate(gmsh.model.getDimension())
        except Exception as exc:
            raise MeshError(
                f"gmsh cannot read or mesh {str(path)!r}: {exc}; open it in the gmsh app to see the error "
                "and fix the file"
            ) from exc
        return _extract_gmsh(gmsh, path)


def _extract_gmsh(gmsh, path: Path):
    node_tags, coords, _ = gmsh.model.mesh.getNodes()
    if len(node_tags) == 0:
        raise MeshError(f"gmsh file {str(path)!r} holds no mesh; add a mesh (or geometry to mesh) to it")
    index = np.full(int(node_tags.max()) + 1, -1, dtype=np.int64)
    index[node_tags.astype(np.int64)] = np.arange(len(node_tags))
    points = coords.reshape(-1, 3)

    def elements(dim, entity=-1):
        """[(meshio family, element tags, (m, n_primary) point indices)] per element type in
        entity (dim, entity), or in all entities of dimension dim."""
        out = []
        for etype in gmsh.model.mesh.getElementTypes(dim, entity):
            name, _, _, n_nodes, _, n_primary = gmsh.model.mesh.getElementProperties(etype)
            tags, nodes = gmsh.model.mesh.getElementsByType(etype, entity)
            rows = index[nodes.astype(np.int64).reshape(-1, n_nodes)[:, :n_primary]]
            out.append((_GMSH_FAMILY.get(name.split()[0], name), tags.astype(np.int64), rows))
        return out

    top = next((d for d in (3, 2, 1) if len(gmsh.model.mesh.getElementTypes(d))), None)
    if top is None:
        raise MeshError(f"gmsh file {str(path)!r} holds no cells of dimension 1 to 3; mesh the model first")
    blocks = elements(top)
    cell_type = _family(path, {fam for fam, _, _ in blocks})
    cell_tags = np.concatenate([t for _, t, _ in blocks])
    cells = np.concatenate([r for _, _, r in blocks])
    sorter = np.argsort(cell_tags)

    regions, facet_groups = {}, {}
    facet_type = FACET_TYPE[cell_type]
    for dim, tag in gmsh.model.getPhysicalGroups():
        name = gmsh.model.getPhysicalName(dim, tag) or str(tag)
        ents = gmsh.model.getEntitiesForPhysicalGroup(dim, tag)
        if dim == top:
            tags = np.concatenate([t for e in ents for _, t, _ in elements(dim, e)] or [np.zeros(0, np.int64)])
            regions[name] = sorter[np.searchsorted(cell_tags, tags, sorter=sorter)]
        elif dim == top - 1:
            rows = [r for e in ents for fam, _, r in elements(dim, e) if fam == facet_type]
            facet_groups[name] = np.concatenate(rows) if rows else np.zeros((0, N_VERTICES[facet_type]), np.int64)
        else:
            log.debug("%s: physical group %r of dimension %d ignored", path, name, dim)
    return points, cells, cell_type, regions, facet_groups


def _assemble(path, points, cells, cell_type, regions, facet_groups) -> Mesh:
    """Drop zero trailing coordinates and unused points, check cells, tag facets."""
    tdim = TDIM[cell_type]
    while points.shape[1] > max(tdim, 1) and not points[:, -1].any():
        points = points[:, :-1]
    used = np.unique(cells)
    renumber = np.full(len(points), -1, dtype=np.int64)
    renumber[used] = np.arange(len(used))
    mesh = Mesh(points[used], renumber[cells], cell_type, regions=regions)
    try:
        checked = check_cells(mesh)
    except MeshError as exc:
        raise MeshError(f"mesh file {str(path)!r}: {exc}") from None
    if checked is not mesh:
        log.info("%s: every cell was negatively oriented; vertex order reversed", path)
    mesh = checked
    for name, fv in facet_groups.items():
        rows, n_missed = _match_boundary_facets(mesh, renumber[fv])
        if n_missed:
            log.warning("%s: %d of %d facets of group %r are not on the boundary and are not tagged",
                        path, n_missed, len(fv), name)
        mesh.boundaries[name] = rows
    return mesh


def _match_boundary_facets(mesh: Mesh, fv: np.ndarray) -> tuple[np.ndarray, int]:
    """Boundary rows (cell, local facet) whose vertex set is a row of fv (m, kf); and the
    number of fv rows that matched none (facets inside the domain or off the mesh)."""
    bf = mesh.boundary_facets
    bkey = np.sort(mesh.facet_vertices(bf), axis=1)
    fkey = np.sort(fv, axis=1)
    _, inverse = np.unique(np.concatenate([bkey, fkey]), axis=0, return_inverse=True)
    inverse = inverse.ravel()
    lookup = np.full(inverse.max() + 1 if len(inverse) else 0, -1, dtype=np.int64)
    lookup[inverse[: len(bkey)]] = np.arange(len(bkey))
    hit = lookup[inverse[len(bkey):]]
    hit[(fkey < 0).any(axis=1)] = -1
    return bf[np.unique(hit[hit >= 0])], int((hit < 0).sum())


# -- writing -------------------------------------------------------------------------
def _field(kind: str, name: str, a, n: int) -> np.ndarray:
    """ParaView layout of a field with n rows: (n,), (n, 3) or (n, 9)."""
    a = np.asarray(a)
    if a.dtype == bool:
        a = a.astype(np.uint8)
    if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise ShapeError(
            f"{kind} {name!r} has dtype {a.dtype}; write real fields (split complex ones into real and imag)"
        )
    if a.ndim >= 1 and a.shape[0] == n:
        if a.ndim == 1:
            return a
        if a.ndim == 2 and 1 <= a.shape[1] <= 3:
            return np.pad(a, ((0, 0), (0, 3 - a.shape[1])))
        if a.ndim == 3 and a.shape[1] == a.shape[2] and 1 <= a.shape[1] <= 3:
            d = a.shape[1]
            return np.pad(a, ((0, 0), (0, 3 - d), (0, 3 - d))).reshape(n, 9)
    raise ShapeError(
        f"{kind} {name!r} has shape {a.shape}; expected a scalar ({n},), a vector ({n}, d) or a tensor "
        f"({n}, d, d) with d <= 3, one row per {'point' if kind == 'point_data' else 'cell'}"
    )


def _meshio_mesh_parts(mesh: Mesh, point_data, cell_data):
    points = np.pad(mesh.points, ((0, 0), (0, 3 - mesh.dim)))
    pdata = {k: _field("point_data", k, v, mesh.n_points) for k, v in (point_data or {}).items()}
    cdata = {k: [_field("cell_data", k, v, mesh.n_cells)] for k, v in (cell_data or {}).items()}
    if mesh.regions and "region" not in cdata:
        cdata["region"] = [region_numbers(mesh)]
    return points, [(mesh.cell_type, mesh.cells)], pdata, cdata


def region_numbers(mesh: Mesh) -> np.ndarray:
    """(ne,) int32 cell region numbers: 0 untagged, i + 1 for the i-th region in sorted name
    order (a cell in several regions gets the last one)."""
    out = np.zeros(mesh.n_cells, dtype=np.int32)
    for i, name in enumerate(sorted(mesh.regions)):
        out[mesh.regions[name]] = i + 1
    return out


def _output_path(path, suffixes) -> Path:
    path = Path(path)
    if path.suffix.lower() not in suffixes:
        raise MeshError(
            f"cannot write {str(path)!r}: unknown extension {path.suffix!r}; use one of {sorted(suffixes)}"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def xdmf_companion(path) -> Path:
    """The .h5 file that holds the arrays of the XDMF file `path` (meshio's name: same stem)."""
    return Path(path).with_suffix(".h5")


@contextlib.contextmanager
def _xdmf_beside(path: Path):
    """Yield a folder in which to write `path` (.xdmf) and its companion .h5 under their final names.

    On success the .h5 is moved into place first, then the .xdmf, so the .xdmf never names a
    half-written .h5; on an exception (or a kill) the old files are left as they were. The
    folder is `<name>.xdmf.partial`; one left by a killed run is removed by the next write.
    """
    folder = partial_path(path)
    stale_partial(path)
    folder.mkdir()
    try:
        yield folder
        for final in (xdmf_companion(path), path):
            os.replace(folder / final.name, final)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def write_mesh(path, mesh: Mesh, point_data=None, cell_data=None) -> Path:
    """Write the mesh and fields to `path` (.vtu or .xdmf; XDMF puts its arrays in a .h5 beside).

    point_data / cell_data: name -> (n,) scalar, (n, d) vector (padded to 3 components) or
    (n, d, d) tensor (padded to 3x3, flattened row-major to 9), n = points / cells.
    Regions are added as integer cell data "region" (see `region_numbers`) unless
    cell_data has one. The files are written beside and renamed (see `_xdmf_beside`), so an
    interrupted write leaves the previous ones intact. Returns the path written.
    """
    import meshio

    path = _output_path(path, _WRITE_SUFFIXES)
    points, cells, pdata, cdata = _meshio_mesh_parts(mesh, point_data, cell_data)
    out = meshio.Mesh(points, cells, point_data=pdata, cell_data=cdata)
    if path.suffix.lower() == ".xdmf":
        with _xdmf_beside(path) as folder:
            meshio.write(folder / path.name, out, file_format="xdmf")
    else:
        with atomic(path) as tmp:
            meshio.write(tmp, out, file_format="vtu")
    return path


def write_time_series(path, mesh: Mesh, times, point_data_seq, cell_data_seq=None) -> Path:
    """Write fields at several times to one XDMF file (arrays in a .h5 beside it).

    times: (nt,) float64, seconds (or the problem's time unit).
    point_data_seq: nt dicts name -> point field, shaped as in `write_mesh`.
    cell_data_seq: None or nt dicts name -> cell field. Regions go into every step.
    """
    import meshio

    path = _output_path(path, {".xdmf"})
    times = np.asarray(times, dtype=np.float64).reshape(-1)
    point_data_seq = list(point_data_seq)
    cell_data_seq = list(cell_data_seq) if cell_data_seq is not None else [None] * len(times)
    for name, seq in (("point_data_seq", point_data_seq), ("cell_data_seq", cell_data_seq)):
        if len(seq) != len(times):
            raise ShapeError(f"{name} has {len(seq)} steps but times has {len(times)}; give one dict per time")
    steps = [_meshio_mesh_parts(mesh, p, c) for p, c in zip(point_data_seq, cell_data_seq)]
    points, cells = _meshio_mesh_parts(mesh, None, None)[:2]
    # meshio's TimeSeriesWriter puts the .h5 in the current directory; the reader looks
    # beside the .xdmf. Write from the (temporary) output folder so that both agree.
    with _xdmf_beside(path) as folder:
        with _in_directory(folder), meshio.xdmf.TimeSeriesWriter(path.name) as writer:
            writer.write_points_cells(points, cells)
            for t, (_, _, pdata, cdata) in zip(times, steps):
                writer.write_data(float(t), point_data=pdata, cell_data=cdata)
    return path


_cwd_lock = threading.Lock()


@contextlib.contextmanager
def _in_directory(folder: Path):
    with _cwd_lock:
        previous = Path.cwd()
        os.chdir(folder)
        try:
            yield
        finally:
            os.chdir(previous)
