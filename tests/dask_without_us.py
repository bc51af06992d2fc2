"""A Dask worker preload: the worker process cannot import inat_async, as a worker of a
cluster whose machines lack the package (the scheduler and the driver have it)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib.abc import MetaPathFinder
from importlib.machinery import ModuleSpec
from types import ModuleType


class _Hidden(MetaPathFinder):
    def find_spec(
        self, name: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if name.partition(".")[0] == "inat_async":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


for _name in [m for m in sys.modules if m.partition(".")[0] == "inat_async"]:
    del sys.modules[_name]
sys.meta_path.insert(0, _Hidden())
