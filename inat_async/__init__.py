"""inat_async: harvest iNaturalist observations and photos, politely, fast and resumably."""

__version__ = "0.1.0"

from .errors import HarvestError, UsageError
from .pipeline import Summary, harvest
from .settings import Budgets, Settings, make_settings

__all__ = ["Budgets", "HarvestError", "Settings", "Summary", "UsageError", "harvest", "make_settings"]
