"""The final stage: each export format written from the state alone, with no request.

A new format is a writer ``(state, out, api_url) -> None`` added to :data:`WRITERS` (and its
name to ``config.FORMATS``, where a requested format is checked).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from inat_async.exports.csvs import write_csvs
from inat_async.exports.dwca import write_dwca
from inat_async.exports.geo import write_geojson, write_geoparquet
from inat_async.exports.inat_csv import write_inat_csv
from inat_async.exports.parquet import write_parquet
from inat_async.store.state import State

Writer = Callable[[State, Path, "str | None"], object]

WRITERS: dict[str, Writer] = {
    "csv": lambda state, out, _api_url: write_csvs(state, out),
    "parquet": lambda state, out, _api_url: write_parquet(state, out),
    "dwca": lambda state, out, api_url: write_dwca(state, out, api_url=api_url),
    "geoparquet": lambda state, out, _api_url: write_geoparquet(state, out),
    "geojson": lambda state, out, _api_url: write_geojson(state, out),
    "inat-csv": lambda state, out, _api_url: write_inat_csv(state, out),
}


def write_exports(state: State, out: Path, formats: tuple[str, ...], api_url: str | None = None) -> None:
    """Write each of ``formats`` (checked by settings against FORMATS) from the state alone."""
    for kind in formats:
        WRITERS[kind](state, out, api_url)
