"""inat_async: harvest iNaturalist observations and photos, politely, fast and resumably."""

__version__ = "0.1.0"

from .errors import HarvestError, SettingError, UsageError
from .library import export, harvest, harvest_blocking
from .settings import Budgets, HarvestOptions, Settings, make_settings
from .summary import Summary

__all__ = [
    "Budgets",
    "HarvestError",
    "HarvestOptions",
    "SettingError",
    "Settings",
    "Summary",
    "UsageError",
    "export",
    "harvest",
    "harvest_blocking",
    "make_settings",
]
