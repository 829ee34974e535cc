"""romtk: reduced-order modelling of parametrized PDEs (the reduced side)."""

from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("romtk")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.1.0+src"

from rom import errors  # noqa: E402

__all__ = ["__version__", "errors"]
