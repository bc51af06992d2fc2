"""The package's version, from one place: the installed distribution's metadata
(pyproject.toml's ``version``)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("inat_async")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"
