"""inat_async: harvest iNaturalist observations and photos, politely, fast and resumably."""

__version__ = "0.1.0"
