"""Fitted GPs and their kernels as HDF5 data (arrays and attributes only, no serialized objects).

A kernel is a tree of groups, each with a `type` attribute from a fixed list of kernel classes
and its hyperparameters as datasets; a fitted `GaussianProcess` is its kernel, its noise and
normalization and its (normalized) training data. Reading rebuilds the objects through their
constructors and refactorizes K(X, X) + alpha I, so nothing in the file is executed and a
file cannot hand the model a factor that does not belong to its data.
"""

from __future__ import annotations

import h5py
import numpy as np

from rom.errors import StoreError
from rom.gp.exact import GaussianProcess
from rom.gp.kernels import (Kernel, Matern12, Matern32, Matern52, Product, Scaled, SpectralMixture,
                            SquaredExponential, StudentTMixture, Sum, White)
from rom.h5io import put, read_array, read_attr, read_group, text

_RADIAL = {c.__name__: c for c in (SquaredExponential, Matern12, Matern32, Matern52)}
_MIXTURE = {c.__name__: c for c in (SpectralMixture, StudentTMixture)}
_MAX_DEPTH = 32  # a crafted file could link a group into itself
_MAX_NODES = 256  # ... or link one group as both children at every level (2^depth reads)


def write_kernel(g: h5py.Group, k: Kernel) -> None:
    """Store kernel `k` in the (empty) group g."""
    name = type(k).__name__
    g.attrs["type"] = text(name)
    if type(k) in _RADIAL.values():
        put(g, "length_scale", k.length_scale)
        put(g, "log_bounds", k._bounds)
    elif type(k) in _MIXTURE.values():
        put(g, "weights", k.weights)
        put(g, "rho", k.rho)
        put(g, "mu", k.mu)
        g.attrs["dim"], g.attrs["mu_max"] = k.dim, k.mu_max
    elif type(k) is Scaled:
        put(g, "variance", k.variance)
        put(g, "log_bounds", k._bounds)
        write_kernel(g.create_group("kernel"), k.kernel)
    elif type(k) in (Sum, Product):
        write_kernel(g.create_group("k1"), k.k1)
        write_kernel(g.create_group("k2"), k.k2)
    elif type(k) is White:
        put(g, "noise", k.noise)
        put(g, "log_bounds", k._bounds)
    else:
        raise StoreError(f"kernel {name} cannot be stored; use the kernels of rom.gp.kernels "
                         "(radial, mixtures, Scaled, Sum, Product, White)")


def read_kernel(g: h5py.Group, depth: int = 0, _seen: list | None = None) -> Kernel:
    """The kernel stored in g by `write_kernel` (StoreError or ParameterError for bad data)."""
    _seen = [0] if _seen is None else _seen
    _seen[0] += 1
    if depth > _MAX_DEPTH or _seen[0] > _MAX_NODES:
        raise StoreError(f"{g.file.filename}:{g.name}: kernel tree deeper than {_MAX_DEPTH} or larger than "
                         f"{_MAX_NODES} terms; the file is damaged")
    name = read_attr(g, "type")
    if name in _RADIAL:
        k = _RADIAL[name](read_array(g, "length_scale", ndim=1, finite=True))
        k._bounds = read_array(g, "log_bounds", shape=(2,), finite=True)
    elif name in _MIXTURE:
        k = _MIXTURE[name](read_array(g, "weights", ndim=1, finite=True), read_array(g, "rho", ndim=1, finite=True),
                           read_array(g, "mu", ndim=1, finite=True), dim=read_attr(g, "dim", int),
                           mu_max=read_attr(g, "mu_max", float))
    elif name == "Scaled":
        k = Scaled(read_kernel(read_group(g, "kernel"), depth + 1, _seen),
                   read_array(g, "variance", shape=(), finite=True))
        k._bounds = read_array(g, "log_bounds", shape=(2,), finite=True)
    elif name in ("Sum", "Product"):
        cls = Sum if name == "Sum" else Product
        k = cls(read_kernel(read_group(g, "k1"), depth + 1, _seen), read_kernel(read_group(g, "k2"), depth + 1, _seen))
    elif name == "White":
        k = White(read_array(g, "noise", shape=(), finite=True))
        k._bounds = read_array(g, "log_bounds", shape=(2,), finite=True)
    else:
        raise StoreError(f"{g.file.filename}:{g.name}@type = {name!r} is not a romtk kernel; the file is damaged")
    return k


def write_gp(g: h5py.Group, gp: GaussianProcess) -> None:
    """Store a fitted shared-kernel GaussianProcess in the (empty) group g."""
    if gp.estimators_ is not None:
        raise StoreError("a GaussianProcess with independent_outputs=True cannot be stored; fit one kernel "
                         "shared by the outputs")
    g.attrs["alpha"] = gp.alpha
    g.attrs["single_output"] = int(gp._single)
    for name, value in (("X_train", gp.X_train_), ("y_train", gp.y_train_), ("x_mean", gp._x_mean),
                        ("x_std", gp._x_std), ("y_mean", gp._y_mean), ("y_std", gp._y_std)):
        put(g, name, value)
    write_kernel(g.create_group("kernel"), gp.kernel_)
    put(g, "theta", gp.kernel_.theta)  # the hyperparameters again: the kernel read back must give them


def read_gp(g: h5py.Group) -> GaussianProcess:
    """The fitted GaussianProcess stored by `write_gp` (predictions equal the stored model's)."""
    where = f"{g.file.filename}:{g.name}"
    X = read_array(g, "X_train", ndim=2, finite=True)
    n, dim = X.shape
    Y = read_array(g, "y_train", ndim=2, finite=True)
    t = Y.shape[1]
    if Y.shape[0] != n or n == 0 or t == 0:
        raise StoreError(f"{where}: y_train has shape {Y.shape}, X_train {X.shape}; the file is damaged")
    x_std = read_array(g, "x_std", shape=(dim,), finite=True)
    y_std = read_array(g, "y_std", shape=(t,), finite=True)
    alpha = read_attr(g, "alpha", float)
    single = read_attr(g, "single_output", int)
    if np.any(x_std <= 0) or np.any(y_std <= 0) or not (np.isfinite(alpha) and alpha >= 0) or single not in (0, 1) \
            or (single and t != 1):
        raise StoreError(f"{where}: the scales, noise or output count are invalid; the file is damaged")
    kernel = read_kernel(read_group(g, "kernel"))
    theta = read_array(g, "theta", ndim=1, finite=True)
    if kernel.theta.shape != theta.shape or not np.array_equal(kernel.theta, theta):
        raise StoreError(f"{where}/kernel does not give the stored hyperparameters {where}/theta; the file is damaged")
    gp = GaussianProcess(kernel, alpha=alpha, optimizer=None)
    gp.estimators_, gp._dim, gp._single = None, dim, bool(single)
    gp._x_mean, gp._x_std = read_array(g, "x_mean", shape=(dim,), finite=True), x_std
    gp._y_mean, gp._y_std = read_array(g, "y_mean", shape=(t,), finite=True), y_std
    gp.X_train_, gp.y_train_ = X, Y
    gp.kernel_ = gp.kernel
    gp._factorize()
    return gp
