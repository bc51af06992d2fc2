"""The final stage: each export format written from the state alone, with no request.

A new format is a writer ``(state, out, options) -> None`` added to :data:`WRITERS` (and its
name to ``config.FORMATS``, where a requested format is checked).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inat_async.store.state import State


@dataclass(frozen=True)
class ExportOptions:
    """What some writers need beyond the state (the Settings fields of the same names)."""

    api_url: str | None = None  # the source named in the Darwin Core metadata
    shard_size: int = 1000
    webdataset_size: str = "medium"


Writer = Callable[[State, Path, ExportOptions], object]


def _writer(module: str, name: str) -> Callable[..., Any]:
    """The function ``name`` of the writer module ``module``, imported when first called:
    importing this package (or a module in it) loads no writer; they are needed only at a
    harvest's end (start-up)."""

    def call(*args: Any, **kwargs: Any) -> Any:
        return getattr(importlib.import_module(f"{__name__}.{module}"), name)(*args, **kwargs)

    return call


WRITERS: dict[str, Writer] = {
    "csv": lambda state, out, _: _writer("csvs", "write_csvs")(state, out),
    "parquet": lambda state, out, _: _writer("parquet", "write_parquet")(state, out),
    "dwca": lambda state, out, options: _writer("dwca", "write_dwca")(state, out, api_url=options.api_url),
    "geoparquet": lambda state, out, _: _writer("geo", "write_geoparquet")(state, out),
    "geojson": lambda state, out, _: _writer("geo", "write_geojson")(state, out),
    "inat-csv": lambda state, out, _: _writer("inat_csv", "write_inat_csv")(state, out),
    "webdataset": lambda state, out, options: _writer("webdataset", "write_webdataset")(
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
