"""The package's version, in one place: pyproject.toml reads it from here (setuptools'
dynamic ``version``). A literal, not the installed metadata: importlib.metadata cost every
command about 80 ms before its first request."""

__version__ = "0.1.0"
