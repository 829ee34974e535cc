"""Dirichlet conditions by lifting, in place on the shared CSR pattern.

u = u_0 + g with g the Dirichlet values on the constrained dofs and zero elsewhere:
A u_0 = b - A g on the free rows, and the constrained rows and columns replaced by
the identity. A symmetric matrix stays symmetric. The positions of the constrained
entries are computed once, so re-applying after re-assembly costs O(nnz) masks.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import scipy.sparse as sp

from rom.errors import ShapeError
from solvers.fem.space import Space


class DirichletBC:
    """Constrain dofs of a space to given values.

    where: a boundary tag name, a list of tag names, or an int array of dofs.
    value: a number, an array (n_constrained,), or a callable f(x) of the node coordinates
    x (m, dim) returning (m,) (scalar space or one component) or (m, ncomp).
    component: for vector spaces, constrain only this component.
    """

    def __init__(self, space: Space, where, value=0.0, component: int | None = None):
        self.space = space
        if isinstance(where, str):
            where = [where]
        if len(where) and isinstance(where[0], str):
            nodes = np.unique(np.concatenate([space.boundary_nodes(t) for t in where]))
            comps = (
                np.arange(space.ncomp) if component is None else np.array([space._check_component(component)])
            )
            dofs = (nodes[:, None] * space.ncomp + comps[None, :]).ravel()
        else:
            dofs = np.unique(np.asarray(where, dtype=np.int64))
            if dofs.size and (dofs[0] < 0 or dofs[-1] >= space.n_dofs):
                raise ShapeError(f"Dirichlet dofs must lie in [0, {space.n_dofs}); got {dofs[0]}..{dofs[-1]}")
        self.dofs = dofs
        self.values = self._values(value)

    def _values(self, value) -> np.ndarray:
        sp_, dofs = self.space, self.dofs
        nodes, comps = dofs // sp_.ncomp, dofs % sp_.ncomp
        if callable(value):
            v = np.asarray(value(sp_.node_coords[nodes]), dtype=np.float64)
            if v.ndim == 2:
                if v.shape != (len(dofs), sp_.ncomp):
                    raise ShapeError(f"Dirichlet value(x) returned {v.shape}, expected ({len(dofs)}, {sp_.ncomp})")
                v = v[np.arange(len(dofs)), comps]
            return np.broadcast_to(v, (len(dofs),)).astype(np.float64)
        v = np.asarray(value, dtype=np.float64)
        if v.ndim == 0:
            return np.full(len(dofs), float(v))
        if v.shape == (sp_.ncomp,) and sp_.ncomp > 1:
            return v[comps]
        if v.shape != (len(dofs),):
            raise ShapeError(f"Dirichlet values have shape {v.shape}, expected ({len(dofs)},) or a number")
        return v

    @cached_property
    def _mask(self):
        """Boolean masks over CSR data of the space's pattern: constrained rows/columns, diagonal."""
        indptr, indices = self.space.csr
        n = self.space.n_dofs
        start, stop = self.space.owned_range
        fixed = np.zeros(n, dtype=bool)
        fixed[self.dofs] = True
        rows = np.repeat(np.arange(start, stop), np.diff(indptr))
        hit = fixed[rows] | fixed[indices]
        diag = np.flatnonzero(fixed[rows] & (rows == indices))
        return hit, diag

    def lift(self) -> np.ndarray:
        """The lifting vector g (n_dofs,): Dirichlet values on constrained dofs, zero elsewhere."""
        g = np.zeros(self.space.n_dofs)
        g[self.dofs] = self.values
        return g


def apply_dirichlet(A: sp.csr_matrix, b: np.ndarray | None, bcs, *, diagonal: float = 1.0):
    """Apply Dirichlet conditions by lifting, in place: b <- b - A g on free rows, b = g on
    constrained rows; constrained rows/columns of A zeroed with `diagonal` on the diagonal.
    A must be in its space's CSR pattern (this rank's rows when distributed, b likewise).
    Returns (A, b)."""
    if isinstance(bcs, DirichletBC):
        bcs = [bcs]
    if not bcs:
        return A, b
    space = bcs[0].space
    if A.shape != (space.n_owned, space.n_dofs) or A.nnz != len(space.csr[1]):
        raise ShapeError("apply_dirichlet needs a matrix assembled on the same space as the conditions")
    g = np.zeros(space.n_dofs)
    for bc in bcs:
        g[bc.dofs] = bc.values
    if b is not None:
        b -= A @ g
    for bc in bcs:
        hit, diag = bc._mask
        A.data[hit] = 0.0
    start, stop = space.owned_range
    for bc in bcs:
        A.data[bc._mask[1]] = diagonal
        if b is not None:
            mine = (bc.dofs >= start) & (bc.dofs < stop)
            b[bc.dofs[mine] - start] = diagonal * bc.values[mine]
    return A, b
