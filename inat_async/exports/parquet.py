"""OUT/observations.parquet and OUT/photos.parquet: the CSV columns with proper types.

The columns and their order are the CSVs' (so a reader can switch files without renaming
anything); only the types differ: ids and counts int64, times timestamp[us, tz=UTC] (the API's
offsets applied), ``observed_on`` date32, coordinates float64, ``obscured`` bool and
``place_ids`` a list of int64. Rows come from the state in chunks and go out in row groups
through one ParquetWriter, so memory stays flat at any harvest size; each file is written
under a temporary name and renamed into place. pyarrow is an optional extra, imported only here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inat_async.errors import UsageError
from inat_async.exports.taxonomy import TAXONOMY_COLUMNS, TAXONOMY_KINDS, Lineages, with_taxonomy
from inat_async.records import COLUMNS, PHOTO_COLUMNS
from inat_async.store.files import replacing
from inat_async.store.state import State

if TYPE_CHECKING:
    import pyarrow as pa

FETCH_ROWS = 5_000  # rows taken from SQLite (and turned into Arrow) at a time
ROW_GROUP_ROWS = 50_000  # rows per Parquet row group: about 20 MB of Arrow data at most
MISSING_PYARROW = "Parquet needs pyarrow: pip install 'inat_async[parquet]'"

# The kind of each column; a column not listed here (a CSV column added later) is text.
OBSERVATION_KINDS = {
    "id": "id",
    "taxon.name": "text",
    "quality_grade": "text",
    "time_observed_at": "timestamp",
    "species_guess": "text",
    "license_code": "text",
    "observed_on": "date",
    "community_taxon_id": "int",
    "Longitude": "float",
    "Latitude": "float",
    "place_ids": "int_list",
    "taxon.id": "int",
    "taxon.rank": "text",
    "user.login": "text",
    "uri": "text",
    "obscured": "bool",
    "positional_accuracy": "int",
    "public_positional_accuracy": "int",
    "geoprivacy": "text",
    "created_at": "timestamp",
    "updated_at": "timestamp",
    "photo_count": "int",
}
TAXON_AT = COLUMNS.index("taxon.id")  # the classification columns follow from it
PHOTO_KINDS = {"observation_id": "id", "photo_id": "id", "position": "int", "bytes": "int"}
Converter = Callable[[Any], Any]


def write_parquet(state: State, out: Path) -> list[Path]:
    """Write OUT/observations.parquet and OUT/photos.parquet; return their paths.

    Raises UsageError when pyarrow is not installed.
    """
    _require_pyarrow()
    fingerprint = state.meta("fingerprint")
    provenance = {"inat_async.fingerprint": fingerprint} if fingerprint else {}
    targets = [
        (
            with_taxonomy(state.observation_rows(FETCH_ROWS), Lineages.of_state(state), TAXON_AT),
            (*COLUMNS, *TAXONOMY_COLUMNS),
            {**OBSERVATION_KINDS, **TAXONOMY_KINDS},
            out / "observations.parquet",
        ),
        (state.photo_rows(FETCH_ROWS), PHOTO_COLUMNS, PHOTO_KINDS, out / "photos.parquet"),
    ]
    for chunks, columns, kinds, target in targets:
        converters = [_CONVERTERS[_kind(kinds, c)] for c in columns]
        _write_table(chunks, _schema(columns, kinds, provenance), converters, target)
    return [target for *_, target in targets]


def _require_pyarrow() -> None:
    """pyarrow is imported only by this module's functions: the harvester never needs it."""
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise UsageError(MISSING_PYARROW) from None


def _schema(columns: Sequence[str], kinds: dict[str, str], metadata: dict[str, str]) -> pa.Schema:
    """Column names as in the CSV; an "id" kind is never null, and declared so."""
    import pyarrow as pa

    types = {
        "id": pa.int64(),
        "int": pa.int64(),
        "float": pa.float64(),
        "bool": pa.bool_(),
        "timestamp": pa.timestamp("us", tz="UTC"),
        "date": pa.date32(),
        "int_list": pa.list_(pa.int64()),
        "text": pa.string(),
    }
    fields = [
        pa.field(name, types[_kind(kinds, name)], nullable=_kind(kinds, name) != "id") for name in columns
    ]
    return pa.schema(fields, metadata=metadata)


def _kind(kinds: dict[str, str], column: str) -> str:
    return kinds.get(column, "text")


def _write_table(
    chunks: Iterable[list[tuple[Any, ...]]], schema: pa.Schema, converters: list[Converter], target: Path
) -> None:
    """Stream chunks of rows (in schema order) into ``target`` in row groups, through a
    temporary file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    with replacing(target) as part, pq.ParquetWriter(part, schema, compression="zstd") as writer:
        pending: list[pa.RecordBatch] = []
        buffered = 0
        for rows in chunks:
            pending.append(_batch(schema, converters, rows))
            buffered += len(rows)
            if buffered >= ROW_GROUP_ROWS:
                writer.write_table(pa.Table.from_batches(pending, schema), row_group_size=buffered)
                pending, buffered = [], 0
        if pending:
            writer.write_table(pa.Table.from_batches(pending, schema), row_group_size=buffered)


def _batch(schema: pa.Schema, converters: list[Converter], rows: list[tuple[Any, ...]]) -> pa.RecordBatch:
    """One chunk of SQLite rows (in schema order) as an Arrow record batch."""
    import pyarrow as pa

    arrays = [
        pa.array([convert(row[i]) for row in rows], type=field.type)
        for i, (field, convert) in enumerate(zip(schema, converters, strict=True))
    ]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


# -- value conversions: SQLite value -> Python value of the Arrow type, None when unusable ---------
def _int(value: Any) -> int | None:
    """An integer; a float (an accuracy sent as 12.0 or 12.5) is rounded to whole metres."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return round(value) if value == value and abs(value) < 2**63 else None
    try:
        return int(str(value))
    except ValueError:
        return None


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _bool(value: Any) -> bool | None:
    """The state keeps ``obscured`` as the CSV's text "true"/"false"."""
    return {"true": True, "false": False, 1: True, 0: False}.get(value)


def _timestamp(value: Any) -> datetime | None:
    """An ISO 8601 time with an offset, as UTC; a time without an offset cannot be placed: None."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment.astimezone(UTC) if moment.tzinfo is not None else None


def _date(value: Any) -> date | None:
    if not isinstance(value, str):
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def _int_list(value: Any) -> list[int] | None:
    """The CSV's "1;2" place list as [1, 2]."""
    if not isinstance(value, str):
        return None
    return [int(part) for part in value.split(";") if part.strip().isdigit()]


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


_CONVERTERS: dict[str, Converter] = {
    "id": _int,
    "int": _int,
    "float": _float,
    "bool": _bool,
    "timestamp": _timestamp,
    "date": _date,
    "int_list": _int_list,
    "text": _text,
}
