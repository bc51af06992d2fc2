"""OUT/observations.geoparquet and OUT/observations.geojson: the observations as points.

GeoParquet (1.1) holds the main columns and a ``geometry`` column of WKB points with the ``geo``
file metadata; no ``crs`` is given, which the specification defines as OGC:CRS84 (WGS 84,
longitude then latitude), the CRS of the API's public coordinates. GeoJSON (RFC 7946, WGS 84
as well) is one FeatureCollection with the same columns as each feature's properties.

A private observation has no geometry (a null one), whatever the API sent; an obscured one
carries its public, randomised point and ``obscured`` true, with its public accuracy. Both files
are streamed from the state, observations in id order, and renamed into place when whole.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inat_async.errors import UsageError
from inat_async.records import _lat_lng
from inat_async.store.files import replacing
from inat_async.store.state import State

if TYPE_CHECKING:
    import pyarrow as pa

GEOPARQUET_FILE = "observations.geoparquet"
GEOJSON_FILE = "observations.geojson"
CHUNK_ROWS = 5_000
MISSING_PYARROW = "GeoParquet needs pyarrow: pip install 'inat_async[geo]'"

# The columns of both files (GeoJSON properties), each with its kind; in this order.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("id", "int"),
    ("uuid", "text"),
    ("observed_on", "date"),
    ("time_observed_at", "timestamp"),
    ("taxon_id", "int"),
    ("scientific_name", "text"),
    ("common_name", "text"),
    ("taxon_rank", "text"),
    ("quality_grade", "text"),
    ("license_code", "text"),
    ("user_login", "text"),
    ("place_guess", "text"),
    ("positional_accuracy", "int"),
    ("public_positional_accuracy", "int"),
    ("geoprivacy", "text"),
    ("obscured", "bool"),
    ("url", "text"),
)


def write_geoparquet(state: State, out: Path) -> Path:
    """Write OUT/observations.geoparquet; UsageError when pyarrow is not installed."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise UsageError(MISSING_PYARROW) from None
    schema = _schema(pa)
    target = out / GEOPARQUET_FILE
    with replacing(target) as part, pq.ParquetWriter(part, schema, compression="zstd") as writer:
        for chunk in _chunks(state):
            columns = {name: [row[name] for row, _ in chunk] for name, _ in COLUMNS}
            columns["geometry"] = [_wkb_point(point) for _, point in chunk]
            writer.write_table(pa.Table.from_pydict(columns, schema=schema))
    return target


def write_geojson(state: State, out: Path) -> Path:
    """Write OUT/observations.geojson, one Feature a line inside its FeatureCollection."""
    target = out / GEOJSON_FILE
    with replacing(target) as part, open(part, "w", encoding="utf-8") as file:
        file.write('{"type": "FeatureCollection", "features": [\n')
        first = True
        for chunk in _chunks(state):
            for row, point in chunk:
                file.write(("" if first else ",\n") + json.dumps(_feature(row, point), ensure_ascii=False))
                first = False
        file.write("\n]}\n")
    return target


Point = tuple[float, float] | None  # (longitude, latitude)


def _chunks(state: State) -> Iterator[list[tuple[dict[str, Any], Point]]]:
    """The observations' (columns, public point), by id, in lists of CHUNK_ROWS."""
    chunk: list[tuple[dict[str, Any], Point]] = []
    for obs in state.raw_observations():
        chunk.append((observation_columns(obs), public_point(obs)))
        if len(chunk) >= CHUNK_ROWS:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def public_point(obs: Mapping[str, Any]) -> Point:
    """The public point as (longitude, latitude); none for a private observation, or when the
    API's location is missing, malformed or off the globe."""
    if obs.get("geoprivacy") == "private":
        return None
    lat, lng = _lat_lng(obs.get("location"))
    if lat is None or lng is None or not (-90 <= lat <= 90 and -180 <= lng <= 180):
        return None
    return lng, lat


def observation_columns(obs: Mapping[str, Any]) -> dict[str, Any]:
    """COLUMNS' values of an API observation, as Python values of their kinds."""
    taxon = _mapping(obs.get("taxon"))
    user = _mapping(obs.get("user"))
    obscured = obs.get("obscured")
    values = {
        "id": obs.get("id"),
        "uuid": obs.get("uuid"),
        "observed_on": _date(obs.get("observed_on")),
        "time_observed_at": _timestamp(obs.get("time_observed_at")),
        "taxon_id": taxon.get("id"),
        "scientific_name": taxon.get("name"),
        "common_name": taxon.get("preferred_common_name"),
        "taxon_rank": taxon.get("rank"),
        "quality_grade": obs.get("quality_grade"),
        "license_code": obs.get("license_code"),
        "user_login": user.get("login"),
        "place_guess": obs.get("place_guess"),
        "positional_accuracy": obs.get("positional_accuracy"),
        "public_positional_accuracy": obs.get("public_positional_accuracy"),
        "geoprivacy": obs.get("geoprivacy"),
        "obscured": obscured if isinstance(obscured, bool) else None,
        "url": obs.get("uri"),
    }
    checks = {"int": _int, "text": _text, "bool": _same, "date": _same, "timestamp": _same}
    return {name: checks[kind](values[name]) for name, kind in COLUMNS}


def _feature(row: Mapping[str, Any], point: Point) -> dict[str, Any]:
    geometry = {"type": "Point", "coordinates": list(point)} if point else None
    properties = {
        name: value.isoformat() if isinstance(value, date | datetime) else value
        for name, value in row.items()
    }
    return {"type": "Feature", "id": row["id"], "geometry": geometry, "properties": properties}


def _wkb_point(point: Point) -> bytes | None:
    """ISO WKB of a 2D point: little-endian byte order (1), geometry type Point (1), x, y."""
    return None if point is None else struct.pack("<BIdd", 1, 1, *point)


def _schema(pa: Any) -> pa.Schema:
    types = {
        "int": pa.int64(),
        "text": pa.string(),
        "bool": pa.bool_(),
        "date": pa.date32(),
        "timestamp": pa.timestamp("us", tz="UTC"),
    }
    fields = [pa.field(name, types[kind], nullable=name != "id") for name, kind in COLUMNS]
    geo = {
        "version": "1.1.0",
        "primary_column": "geometry",
        # No "crs": GeoParquet's default, OGC:CRS84 (WGS 84, longitude first).
        "columns": {"geometry": {"encoding": "WKB", "geometry_types": ["Point"]}},
    }
    return pa.schema([*fields, pa.field("geometry", pa.binary())], metadata={"geo": json.dumps(geo)})


# -- values: what does not have its kind is None ---------------------------------------------
def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        return None
    return round(value) if abs(value) < 2**63 else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _same(value: Any) -> Any:
    return value


def _date(value: Any) -> date | None:
    try:
        return date.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _timestamp(value: Any) -> datetime | None:
    """An ISO 8601 time with an offset, as UTC; one without an offset cannot be placed."""
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
    return moment.astimezone(UTC) if moment is not None and moment.tzinfo is not None else None
