"""Function spaces: dof maps, quadrature tabulations and the shared sparsity pattern."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING

import numba
import numpy as np

from rom.errors import MeshError, ShapeError
from solvers.fem import _dofmap_kernels, _kernels
from solvers.fem.elements import FACETS, FACET_TYPE, SIMPLEX, TDIM, Element, entities, lagrange
from rom.parallel import world
from solvers.fem.quadrature import QuadratureRule, gauss
from solvers.mesh.partition import partition_cells

log = logging.getLogger(__name__)

if TYPE_CHECKING:  # the mesh module imports reference-cell tables from this package
    from solvers.mesh import Mesh


@dataclass(frozen=True, eq=False)
class Tabulation:
    """A quadrature rule with the element and geometry bases tabulated at its points.

    phi (nq, nb), dphi (nq, nb, tdim), phig (nq, ng), dphig (nq, ng, tdim), all float64.
    """

    rule: QuadratureRule
    phi: np.ndarray
    dphi: np.ndarray
    phig: np.ndarray
    dphig: np.ndarray

    @property
    def nq(self) -> int:
        return len(self.rule.weights)


@lru_cache(maxsize=None)
def _tabulate(element: Element, geometry: Element, order: int) -> Tabulation:
    rule = gauss(element.cell_type, order)
    return Tabulation(
        rule,
        element.tabulate(rule.points),
        np.ascontiguousarray(element.tabulate_grad(rule.points)),
        geometry.tabulate(rule.points),
        np.ascontiguousarray(geometry.tabulate_grad(rule.points)),
    )


def _face_ids(cells: np.ndarray, local: tuple) -> tuple[np.ndarray, int]:
    """Global numbering (ne, n_local) of cell faces given by local vertex tuples (hexahedron
    Q2 only): sort each face's vertices, then rank the distinct rows."""
    loc = np.array(local, dtype=np.int64)
    ne, nl, k = len(cells), loc.shape[0], loc.shape[1]
    flat = np.sort(cells[:, loc], axis=2).reshape(-1, k)
    order = np.lexsort(flat.T[::-1])
    fs = flat[order]
    new = np.ones(len(fs), dtype=bool)
    new[1:] = (fs[1:] != fs[:-1]).any(axis=1)
    inv = np.empty(len(fs), dtype=np.int64)
    inv[order] = np.cumsum(new) - 1
    inv = inv.reshape(ne, nl)
    return inv, int(inv.max()) + 1 if inv.size else 0


class Space:
    """A Lagrange finite-element space on a mesh.

    degree: 1 or 2 (P1/P2 on simplices, Q1/Q2 on quads/hexes).
    shape: () for scalar fields, (ncomp,) for vector fields (e.g. (dim,) for displacements).
    Scalar dofs are "nodes"; vector dof of (node, component c) is node * ncomp + c.
    Vertex nodes keep the mesh's vertex numbering; edge, face and interior nodes follow.
    """

    def __init__(self, mesh: Mesh, degree: int = 1, shape: tuple = (), comm=None):
        if mesh.n_cells == 0:
            raise MeshError("the mesh has no cells; a space needs at least one")
        self.mesh = mesh
        self.degree = int(degree)
        self.fast_fills = 0  # mass/diffusion matrices filled on the affine-simplex fast path (assembly.py)
        self._csr = None  # (indptr, indices) of a first matrix assembled row by row (assembly.py)
        self.shape = tuple(int(s) for s in shape)
        if len(self.shape) > 1:
            raise ShapeError(f"shape={shape}: only scalar () and vector (ncomp,) spaces exist")
        self.ncomp = self.shape[0] if self.shape else 1
        self.element = lagrange(mesh.cell_type, self.degree)
        self.geometry = lagrange(mesh.cell_type, 1)
        self.affine = SIMPLEX[mesh.cell_type]
        self._serial_cell_nodes, self.n_nodes = self._number_nodes()
        self.comm = world() if comm is None else comm
        self._distribute()

    def _number_nodes(self):
        mesh, el = self.mesh, self.element
        nv = mesh.n_points
        vert = el.node_entities[:, 0] == 0
        if vert.all() and (el.node_entities[:, 1] == np.arange(el.n_basis)).all():
            return mesh.cells, nv  # P1/Q1: the nodes are the vertices, in the mesh's order
        out = np.empty((mesh.n_cells, el.n_basis), dtype=np.int64)
        iv = np.flatnonzero(vert)
        out[:, iv] = mesh.cells[:, el.node_entities[iv, 1]]
        offset = nv
        for dim in range(1, mesh.tdim + 1):
            idx = np.flatnonzero(el.node_entities[:, 0] == dim)
            if idx.size == 0:
                continue
            if dim == mesh.tdim:  # one interior node per cell
                out[:, idx] = np.arange(mesh.n_cells, dtype=np.int64)[:, None] + offset
                count = mesh.n_cells
            elif dim == 1:  # one node per edge, written in place
                ends = np.array(entities(mesh.cell_type, 1), dtype=np.int64)
                cols = np.full(len(ends), -1, dtype=np.int64)  # -1: an edge without a node
                cols[el.node_entities[idx, 1]] = idx
                m = mesh.n_cells * len(ends)
                lst = np.empty(m, dtype=np.int32 if m < 2**31 else np.int64)
                count = _dofmap_kernels.number_edges(mesh.cells, ends, nv, lst, out, cols, offset)
            else:
                ids, count = _face_ids(mesh.cells, entities(mesh.cell_type, dim))
                out[:, idx] = ids[:, el.node_entities[idx, 1]] + offset
            offset += count
        return out, offset

    def _distribute(self) -> None:
        """Split cells over the ranks of self.comm (RCB), give each node to the lowest rank of
        the cells around it, and renumber nodes so that each rank owns a contiguous range.

        Every rank keeps the whole mesh and the serial numbering; it assembles the cells touching
        its nodes (its own cells plus one layer of ghosts), so its rows are complete without
        communication. The work over all cells is three linear passes (partition, owners, cells
        touching owned nodes); everything else (numbering of the assembled cells, sparsity,
        colouring) is done on this rank's cells only.

        Sets local_cells (None serially), _assembly_geo (m, ng) of the cells this rank assembles,
        and _local_nodes: (nodes (m, nb) local ids, colmap (n_local,)
        global node of each local id, increasing, [lo, hi) the owned local ids)."""
        ne, P, r = self.mesh.n_cells, self.comm.size, self.comm.rank
        if P == 1:
            self.cell_part = np.zeros(ne, dtype=np.int32)
            self.node_ranges = np.array([0, self.n_nodes], dtype=np.int64)
            self._renumber = None
            self.local_cells = None
            self._assembly_geo = self.mesh.cells
            self._local_nodes = (self._serial_cell_nodes, np.arange(self.n_nodes, dtype=np.int64), 0, self.n_nodes)
            return
        if P > ne:
            raise MeshError(f"{P} ranks but only {ne} cells; run on at most {ne} ranks or refine the mesh")
        self.cell_part = partition_cells(self.mesh, P)
        owner = _dofmap_kernels.node_owner(self._serial_cell_nodes, self.cell_part, self.n_nodes, P)
        self._renumber, self.node_ranges = _dofmap_kernels.owner_numbering(owner, P)
        cells, geo, lnodes, colmap, lo, hi = _dofmap_kernels.rank_cells(
            self._serial_cell_nodes, self.mesh.cells, owner, self._renumber,
            self.node_ranges[r], self.node_ranges[r + 1], r)
        self.local_cells, self._assembly_geo = cells, geo
        self._local_nodes = (lnodes, colmap, int(lo), int(hi))

    @cached_property
    def _simplex_geo(self) -> np.ndarray:
        """_assembly_geo as uint32 where the point numbers fit, for the re-assembly kernels of
        `_kernels.simplex_kernel`: unsigned indices need no negative-index wraparound code
        (three instructions per vertex read; 3D P1 re-assembly of 1M cells 14.3 -> 13.1 ms)."""
        geo = self._assembly_geo
        if self.mesh.n_points < 2**32:
            return geo.astype(np.uint32)
        return geo

    # -- distribution -------------------------------------------------------------------
    @cached_property
    def cell_nodes(self) -> np.ndarray:
        """(ne, nb) int64 nodes of every cell in this space's numbering (distributed: the owned
        ranges'). Under MPI built on first use (O(ne)); assembly needs only _local_nodes."""
        if self._renumber is None:
            return self._serial_cell_nodes
        return self._renumber[self._serial_cell_nodes]

    @cached_property
    def serial_nodes(self) -> np.ndarray | None:
        """(n_nodes,) node k here is node serial_nodes[k] of the serial numbering (None serially)."""
        if self._renumber is None:
            return None
        order = np.empty(self.n_nodes, dtype=np.int64)
        order[self._renumber] = np.arange(self.n_nodes)
        return order

    @property
    def owned_range(self) -> tuple[int, int]:
        """[start, stop) of the dofs this rank owns (all dofs on one rank)."""
        r = self.comm.rank
        return int(self.node_ranges[r]) * self.ncomp, int(self.node_ranges[r + 1]) * self.ncomp

    @property
    def n_owned(self) -> int:
        a, b = self.owned_range
        return b - a

    @property
    def distributed(self) -> bool:
        return self.comm.size > 1

    @cached_property
    def assembly_cells(self) -> np.ndarray | slice:
        """Cells this rank integrates over: every cell touching an owned node (all cells serially)."""
        return slice(None) if self.local_cells is None else self.local_cells

    @cached_property
    def local_index(self) -> np.ndarray:
        """(ne,) position of each cell among assembly_cells, -1 where this rank does not assemble it."""
        idx = np.full(self.mesh.n_cells, -1, dtype=np.int64)
        cells = np.arange(self.mesh.n_cells)[self.assembly_cells]
        idx[cells] = np.arange(len(cells))
        return idx

    def owned(self, u_full: np.ndarray) -> np.ndarray:
        """This rank's rows of a full vector (n_dofs, ...) -> (n_owned, ...)."""
        a, b = self.owned_range
        return u_full[a:b]

    def local_rows(self, dofs: np.ndarray) -> np.ndarray:
        """Positions in this rank's owned vector of those global `dofs` that it owns."""
        a, b = self.owned_range
        dofs = np.asarray(dofs)
        return dofs[(dofs >= a) & (dofs < b)] - a

    def norm(self, u_owned: np.ndarray) -> float:
        """Euclidean norm of a distributed vector (this rank's rows in, global norm out)."""
        return float(np.sqrt(self.comm.allreduce(float(np.dot(u_owned, u_owned)))))

    def dot(self, u_owned: np.ndarray, v_owned: np.ndarray) -> float:
        """Global dot product of two distributed vectors."""
        return float(self.comm.allreduce(float(np.dot(u_owned, v_owned))))

    def gather(self, u_owned: np.ndarray) -> np.ndarray:
        """The full vector (n_dofs,) on every rank from each rank's owned rows."""
        u_owned = np.asarray(u_owned)
        if self.comm.size == 1:
            return u_owned
        return np.concatenate(self.comm.allgather(u_owned))

    def to_serial(self, u_full: np.ndarray) -> np.ndarray:
        """A full vector in the serial (one-rank) numbering of the same space."""
        if self._renumber is None:
            return u_full
        return u_full.reshape(self.n_nodes, -1)[self._renumber].reshape(u_full.shape)

    # -- sizes and numbering --------------------------------------------------------
    @property
    def n_dofs(self) -> int:
        return self.n_nodes * self.ncomp

    def __repr__(self) -> str:
        kind = "scalar" if not self.shape else f"vector{self.shape}"
        return f"Space({self.element.name} {kind} on {self.mesh.n_cells} {self.mesh.cell_type}, {self.n_dofs} dofs)"

    @property
    def n_cell_dofs(self) -> int:
        """Dofs per cell, nb * ncomp (without building cell_dofs, which is mesh-sized)."""
        return self.element.n_basis * self.ncomp

    @cached_property
    def cell_dofs(self) -> np.ndarray:
        """(ne, nb * ncomp) int64 global dofs per cell, local dof a * ncomp + c."""
        if self.ncomp == 1:
            return self.cell_nodes
        c = np.arange(self.ncomp, dtype=np.int64)
        return (self.cell_nodes[:, :, None] * self.ncomp + c).reshape(self.mesh.n_cells, -1)

    @cached_property
    def node_coords(self) -> np.ndarray:
        """(n_nodes, dim) float64 coordinates of the scalar nodes (straight-sided cells)."""
        X = np.empty((self.n_nodes, self.mesh.dim))
        phig = self.geometry.tabulate(self.element.nodes)  # (nb, ng)
        xc = np.einsum("bg,egd->ebd", phig, self.mesh.points[self.mesh.cells])
        X[self._serial_cell_nodes.ravel()] = xc.reshape(-1, self.mesh.dim)
        if self._renumber is not None:
            X[self._renumber] = X.copy()
        return X

    # -- quadrature --------------------------------------------------------------------
    def tabulation(self, order: int | None = None) -> Tabulation:
        """Basis tabulation for a rule of the given order (default: the space's rule, 2*degree)."""
        return _tabulate(self.element, self.geometry, 2 * self.degree if order is None else int(order))

    @property
    def quadrature(self) -> QuadratureRule:
        """The space's rule: quadrature-point data (materials, residuals) lives on it."""
        return self.tabulation().rule

    @property
    def nq(self) -> int:
        return self.tabulation().nq

    def quadrature_points(self, order: int | None = None) -> np.ndarray:
        """(ne, nq, dim) float64 physical coordinates of the quadrature points."""
        tab = self.tabulation(order)
        out = np.empty((self.mesh.n_cells, tab.nq, self.mesh.dim))
        _kernels.map_points(self.mesh.points, self.mesh.cells, tab.phig, out)
        return out

    # -- sparsity --------------------------------------------------------------------------
    @cached_property
    def pattern(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(indptr, indices, dmap): the CSR pattern of every matrix on this space, built once:
        this rank's rows (all rows serially) with global column indices, sorted. dmap
        (n_assembly_cells, nbd*nbd) holds the CSR position of each element-matrix entry, -1 for
        rows of other ranks. Built at node level on this rank's cells only: each node-node
        coupling is a full ncomp x ncomp block (see `block_pattern`). Where a first matrix was
        assembled row by row (`csr`), only dmap is built here, from its (indptr, indices)."""
        nodes, colmap, lo, hi = self._local_nodes
        if self._csr is not None:
            indptr, indices = self._csr
            return indptr, indices, _dofmap_kernels.scatter_map(nodes, lo, hi, indptr, indices, colmap, self.ncomp,
                                                                numba.get_num_threads())
        return _dofmap_kernels.owned_pattern(nodes, len(colmap), lo, hi, colmap, self.ncomp,
                                             numba.get_num_threads())

    @property
    def has_csr(self) -> bool:
        """Whether the columns of this space's matrices exist yet (`pattern`, or `csr` from a
        first matrix summed row by row)."""
        return self._csr is not None or "pattern" in self.__dict__

    @property
    def csr(self) -> tuple[np.ndarray, np.ndarray]:
        """(indptr, indices) of `pattern`, without the scatter map where a first mass or
        diffusion matrix built them row by row (`_row_assembly`, which sets `_csr`)."""
        if self._csr is not None:
            return self._csr
        return self.pattern[:2]

    @cached_property
    def symmetric_pattern(self) -> tuple:
        """(smap, mlo, diag, mptr, src) of `_dofmap_kernels.symmetric_scatter` on `pattern`: the
        P1 scatter of mass and diffusion, which adds each coupling once (10 additions per
        tetrahedron instead of 16) and mirrors it below the diagonal. Built on first use."""
        indptr, indices, dmap = self.pattern
        return _dofmap_kernels.symmetric_scatter(indptr, indices, dmap, self._local_nodes[0], self.ncomp,
                                                 self.owned_range[0])

    @cached_property
    def block_pattern(self) -> tuple[np.ndarray, np.ndarray]:
        """(indptr, indices) of the node-level (block) CSR of `pattern`, global node columns: the
        block structure PETSc's BAIJ matrices take (block size ncomp, values as `pattern` stores them)."""
        indptr, indices = self.csr
        nc = self.ncomp
        bptr = (indptr[::nc] // (nc * nc)).astype(indptr.dtype)
        if nc == 1:
            return bptr, indices
        # block j of node row i starts at nc * j + (nc*nc - nc) * bptr[i] in the dof-level CSR
        lengths = np.diff(bptr)
        first = nc * np.arange(int(bptr[-1]), dtype=np.int64) + (nc * nc - nc) * np.repeat(
            bptr[:-1].astype(np.int64), lengths)
        return bptr, (indices[first] // nc).astype(indices.dtype)

    @cached_property
    def block_colors(self) -> tuple[np.ndarray, np.ndarray]:
        """(block_order, color_ptr): cell blocks grouped in colours that share no dof, so that
        threads scatter into the CSR data without races (cells sharing a dof share its node)."""
        nodes, colmap, _, _ = self._local_nodes
        order, ptr = _kernels.block_coloring(nodes, len(colmap), _kernels._BLOCK)
        self._note_colours(len(ptr) - 1, len(order))
        return order, ptr

    @cached_property
    def chunk_colors(self) -> tuple[np.ndarray, np.ndarray, int]:
        """(chunk_order, color_ptr, size): as block_colors with chunks of `size` consecutive cells,
        as long as the numbering allows (`_kernels.chunk_coloring`)."""
        nodes, colmap, _, _ = self._local_nodes
        order, ptr, size = _kernels.chunk_coloring(nodes, len(colmap), numba.get_num_threads())
        self._note_colours(len(ptr) - 1, len(order))
        return order, ptr, size

    def _note_colours(self, ncolors: int, nblocks: int) -> None:
        # a numbering with hardly two blocks per colour is assembled nearly serially
        if ncolors > 16 and 2 * ncolors > nblocks:
            log.info("%s: the cell numbering needs %d colours for %d blocks, so assembly runs almost "
                     "serially; mesh.renumbered() numbers the cells along a sweep (read_mesh does for gmsh)",
                     self, ncolors, nblocks)

    # -- boundaries ---------------------------------------------------------------------------
    def facet_nodes(self, facets: np.ndarray) -> np.ndarray:
        """(m, nb_facet) scalar nodes of facets given as (cell, local facet) rows, in the
        facet element's node order."""
        fd = self.element.facet_dofs
        nodes = self._serial_cell_nodes[facets[:, 0][:, None], fd[facets[:, 1]]]
        return nodes if self._renumber is None else self._renumber[nodes]

    def boundary_nodes(self, tag: str) -> np.ndarray:
        """Sorted scalar nodes on boundary tag `tag` (vertices and P2/Q2 edge/face nodes)."""
        return np.unique(self.facet_nodes(self.mesh.boundary(tag)))

    def boundary_dofs(self, tag: str, component: int | None = None) -> np.ndarray:
        """Sorted dofs on boundary `tag`; for vector spaces all components or one."""
        nodes = self.boundary_nodes(tag)
        if self.ncomp == 1:
            return nodes
        comps = range(self.ncomp) if component is None else [self._check_component(component)]
        return np.sort(np.concatenate([nodes * self.ncomp + c for c in comps]))

    def _check_component(self, c: int) -> int:
        if not 0 <= c < self.ncomp:
            raise ShapeError(f"component={c} but the space has {self.ncomp} components")
        return int(c)

    @cached_property
    def facet_element(self) -> Element:
        ft = FACET_TYPE[self.mesh.cell_type]
        return lagrange(ft, self.degree) if ft != "vertex" else lagrange("vertex", 0)

    def facet_tabulation(self, order: int | None = None) -> Tabulation:
        fgeo = lagrange(self.facet_element.cell_type, 1) if self.mesh.tdim > 1 else self.facet_element
        return _tabulate(self.facet_element, fgeo, 2 * self.degree if order is None else int(order))

    def facet_geometry(self, facets: np.ndarray) -> np.ndarray:
        """(m, kf) vertex indices of facets in the facet element's vertex order."""
        lf = np.array(FACETS[self.mesh.cell_type], dtype=np.int64)
        return np.ascontiguousarray(self.mesh.cells[facets[:, 0][:, None], lf[facets[:, 1]]])


__all__ = ["Space", "Tabulation", "TDIM"]
