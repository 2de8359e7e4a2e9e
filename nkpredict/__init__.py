"""nkpredict: predict and explain NK-cell resistance of blood-cancer samples from expression."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("nkpredict")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

__all__ = ["__version__"]
