"""inat_async: harvest iNaturalist observations and photos, politely, fast and resumably."""

import importlib
from typing import TYPE_CHECKING, Any

from inat_async.config import Budgets, HarvestOptions, Settings, make_settings
from inat_async.errors import HarvestError, SettingError, UsageError
from inat_async.version import __version__

if TYPE_CHECKING:
    from inat_async.api import export, harvest, harvest_blocking, photos
    from inat_async.exports.summary import Summary

# Imported when first used: the command line answers --help and bad input without loading
# aiohttp and the rest of the harvester (half a second).
_LAZY = {
    "export": "api",
    "harvest": "api",
    "harvest_blocking": "api",
    "photos": "api",
    "Summary": "exports.summary",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Budgets",
    "HarvestError",
    "HarvestOptions",
    "SettingError",
    "Settings",
    "Summary",
    "UsageError",
    "__version__",
    "export",
    "harvest",
    "harvest_blocking",
    "make_settings",
    "photos",
]
