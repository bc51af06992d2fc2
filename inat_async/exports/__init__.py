"""The final stage: each export format written from the state alone, with no request.

A new format is a writer ``(state, out, options) -> None`` added to :data:`WRITERS` (and its
name to ``config.FORMATS``, where a requested format is checked).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from inat_async.exports.csvs import write_csvs
from inat_async.exports.dwca import write_dwca
from inat_async.exports.geo import write_geojson, write_geoparquet
from inat_async.exports.inat_csv import write_inat_csv
from inat_async.exports.parquet import write_parquet
from inat_async.exports.webdataset import write_webdataset
from inat_async.store.state import State


@dataclass(frozen=True)
class ExportOptions:
    """What some writers need beyond the state (the Settings fields of the same names)."""

    api_url: str | None = None  # the source named in the Darwin Core metadata
    shard_size: int = 1000
    webdataset_size: str = "medium"


Writer = Callable[[State, Path, ExportOptions], object]

WRITERS: dict[str, Writer] = {
    "csv": lambda state, out, _: write_csvs(state, out),
    "parquet": lambda state, out, _: write_parquet(state, out),
    "dwca": lambda state, out, options: write_dwca(state, out, api_url=options.api_url),
    "geoparquet": lambda state, out, _: write_geoparquet(state, out),
    "geojson": lambda state, out, _: write_geojson(state, out),
    "inat-csv": lambda state, out, _: write_inat_csv(state, out),
    "webdataset": lambda state, out, options: write_webdataset(
        state, out, options.webdataset_size, options.shard_size
    ),
}


def write_exports(
    state: State, out: Path, formats: tuple[str, ...], api_url: str | None = None, **options: int | str
) -> None:
    """Write each of ``formats`` (checked by settings against FORMATS) from the state alone;
    ``options`` are ExportOptions' other fields."""
    chosen = ExportOptions(api_url, **options)  # type: ignore[arg-type]
    for kind in formats:
        WRITERS[kind](state, out, chosen)
