"""inat_async: harvest iNaturalist observations and photos, politely, fast and resumably."""

__version__ = "0.1.0"

from .errors import HarvestError, UsageError  # noqa: E402
from .pipeline import Summary, harvest  # noqa: E402
from .settings import Budgets, Settings, make_settings  # noqa: E402

__all__ = ["Budgets", "HarvestError", "Settings", "Summary", "UsageError", "harvest", "make_settings"]
