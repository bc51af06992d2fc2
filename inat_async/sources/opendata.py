"""iNaturalist's open-data dumps as a source: a streaming selection from the four tables.

The bucket ``inaturalist-open-data`` (or any fsspec URL or local folder holding a copy) has
``observations``, ``photos``, ``taxa`` and ``observers`` as ``<name>.csv.gz``: tab-separated,
a header line, and no quoting at all (names hold quote characters). Each table is read once,
in blocks of rows (pyarrow's streaming CSV reader over the gzip stream), every value as text,
checked and converted by column with vectorised kernels; point-in-polygon is shapely 2's
vectorised ``contains_xy``. Memory holds a block and what is selected, never a whole table.

The selection is made into observations shaped as the API gives them (an ``id``, ``uuid``,
``location``, ``taxon``, ``user``, ``photos`` with licence and attribution, ...), so the
harvest's own checks, photo rules, state and exports take them as they take an API page.
"""

from __future__ import annotations

import gzip
import itertools
import logging
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from inat_async.errors import UsageError

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger("inat_async")

DEFAULT_DUMP = "s3://inaturalist-open-data"
#: Where the dump's photos are: ``{PHOTO_BASE}/photos/{photo_id}/{size}.{extension}``.
PHOTO_BASE = "https://inaturalist-open-data.s3.amazonaws.com"
SITE = "https://www.inaturalist.org"
#: The columns of each table in the dumps' layout, in their order.
LAYOUT: dict[str, tuple[str, ...]] = {
    "observations": (
        "observation_uuid",
        "observer_id",
        "latitude",
        "longitude",
        "positional_accuracy",
        "taxon_id",
        "quality_grade",
        "observed_on",
        "anomaly_score",
    ),
    "photos": (
        "photo_uuid",
        "photo_id",
        "observation_uuid",
        "observer_id",
        "extension",
        "license",
        "width",
        "height",
        "position",
    ),
    "taxa": ("taxon_id", "ancestry", "rank_level", "rank", "name", "active"),
    "observers": ("observer_id", "login", "name"),
}
#: The columns read of each table (a column a dump lacks reads as empty): a photo's own uuid
#: and its observer (the observation's) are not needed.
TABLES: dict[str, tuple[str, ...]] = {
    **LAYOUT,
    "photos": tuple(c for c in LAYOUT["photos"] if c not in ("photo_uuid", "observer_id")),
}
#: The columns a table must have (the others read as empty when a dump lacks them).
REQUIRED: dict[str, tuple[str, ...]] = {
    "observations": ("observation_uuid", "latitude", "longitude", "taxon_id", "quality_grade", "observed_on"),
    "photos": ("photo_id", "observation_uuid", "extension", "license"),
    "taxa": ("taxon_id", "ancestry"),
    "observers": ("observer_id", "login", "name"),
}
#: Bytes of text parsed at a time: a block's rows are the unit of memory.
BLOCK_BYTES = 16 << 20
QUALITY_GRADES = ("research", "needs_id", "casual")
_UUID = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
_INT = r"^-?[0-9]{1,18}$"
_FLOAT = r"^-?[0-9]{1,15}(\.[0-9]{0,15})?([eE][-+]?[0-9]{1,3})?$"
_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_EXTENSIONS = frozenset({"jpg", "jpeg", "png", "gif"})
_TEXT_CAP = 1000  # characters kept of a name or login
_NAME_CAP = 300  # characters kept of a taxon's name in the taxa table (model.Name's most)


@dataclass(frozen=True)
class DumpQuery:
    """What to select. ``boundary``: a shapely (Multi)Polygon, lon/lat, from --place or
    --polygon; ``bbox``: (west, south, east, north); ``licenses``: lowercase codes."""

    boundary: Any = None
    bbox: tuple[float, float, float, float] | None = None
    taxon: int | None = None
    grades: tuple[str, ...] | None = None
    licenses: tuple[str, ...] | None = None
    observed_from: str | None = None
    observed_to: str | None = None


@dataclass
class Selection:
    """The observations selected and what they need, each as Python rows."""

    observations: list[dict[str, Any]] = field(default_factory=list)
    photos: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # by observation uuid
    taxa: dict[int, dict[str, Any]] = field(default_factory=dict)
    observers: dict[int, dict[str, Any]] = field(default_factory=dict)
    rows_read: dict[str, int] = field(default_factory=dict)
    rows_skipped: dict[str, int] = field(default_factory=dict)


# -- reading ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Dump:
    """A dump's folder on some file system (fsspec)."""

    fs: Any
    root: str
    url: str

    def path(self, table: str) -> str:
        return f"{self.root.rstrip('/')}/{table}.csv.gz"


def open_dump(url: str, storage_options: Mapping[str, Any] | None = None) -> Dump:
    """The dump at ``url`` (``s3://bucket[/prefix]``, any fsspec URL, or a local folder); the
    public bucket is read anonymously unless options say otherwise."""
    import fsspec

    options = dict(storage_options or {})
    if url.startswith("s3://"):
        options.setdefault("anon", True)
    try:
        fs, root = fsspec.core.url_to_fs(url, **options)
    except (ImportError, ValueError) as exc:
        raise UsageError(f"cannot open the dump at {url}: {exc}") from None
    return Dump(fs, root, url)


def check_header(dump: Dump, table: str) -> None:
    """The table is there and its header names the columns it must have: a dump of another
    layout would otherwise read as all empty, and select nothing without a word."""
    try:
        with dump.fs.open(dump.path(table), "rb") as raw, gzip.open(raw, "rb") as text:
            header = text.readline(64 * 1024).decode("utf-8", "replace").rstrip("\r\n").split("\t")
    except (OSError, ValueError, EOFError) as exc:  # FileNotFoundError, a bad gzip; s3fs's too
        raise UsageError(
            f"the dump at {dump.url} has no readable {table}.csv.gz ({str(exc)[:200]})"
        ) from None
    missing = [column for column in REQUIRED[table] if column not in header]
    if missing:
        raise UsageError(
            f"{table}.csv.gz of the dump at {dump.url} has no column {missing[0]} "
            f"(its header: {' '.join(header)[:200]})"
        )


def batches(dump: Dump, table: str, block_bytes: int = BLOCK_BYTES) -> Iterator[pa.Table]:
    """The rows of ``table`` in blocks (a table each), each column as text (empty: null); a
    row with the wrong number of fields is skipped and counted.

    The gzip stream is read a block of whole lines at a time and each block parsed on its
    own (in parallel, by pyarrow's CSV parser), so memory holds one block: pyarrow's
    streaming reader reads up to 32 blocks ahead in a thread, which grew with the dump when
    the selection was slower than the reading (2.7 GB at 10 million observations)."""
    import pyarrow as pa

    skipped = _Counter()
    try:
        with dump.fs.open(dump.path(table), "rb") as raw:
            stream = pa.CompressedInputStream(pa.PythonFile(raw, mode="r"), "gzip")
            names: list[str] | None = None
            for block in _line_blocks(stream, block_bytes):
                if names is None:
                    head, _, block = block.partition(b"\n")
                    names = head.decode("utf-8", "replace").rstrip("\r").split("\t")
                if block:
                    yield _parse(block, names, TABLES[table], skipped)
    except (pa.ArrowInvalid, OSError, EOFError, gzip.BadGzipFile) as exc:
        raise UsageError(f"cannot read {table}.csv.gz of the dump at {dump.url}: {str(exc)[:200]}") from None
    finally:
        if skipped.count:
            log.warning("%s.csv.gz: %d malformed row(s) skipped", table, skipped.count)


def _line_blocks(stream: Any, block_bytes: int) -> Iterator[bytes]:
    """The stream's bytes in blocks of about ``block_bytes`` that end at a line's end."""
    carry = b""
    while chunk := stream.read(block_bytes):
        data = carry + chunk
        cut = data.rfind(b"\n") + 1
        data, carry = data[:cut], data[cut:]
        if data:
            yield data
    if carry:
        yield carry


def _parse(block: bytes, names: list[str], wanted: tuple[str, ...], skipped: _Counter) -> pa.Table:
    """One block of lines (no header) as a table of the wanted columns, as text."""
    import pyarrow as pa
    from pyarrow import csv

    return csv.read_csv(
        pa.py_buffer(block),
        read_options=csv.ReadOptions(
            column_names=names, use_threads=True, block_size=max(1 << 20, len(block) // 4)
        ),
        parse_options=csv.ParseOptions(
            delimiter="\t",
            quote_char=False,
            double_quote=False,
            escape_char=False,
            newlines_in_values=False,
            invalid_row_handler=skipped,
        ),
        convert_options=csv.ConvertOptions(
            column_types={c: pa.string() for c in wanted},
            include_columns=list(wanted),
            include_missing_columns=True,
            strings_can_be_null=True,
            quoted_strings_can_be_null=True,
        ),
    )


class _Counter:
    """pyarrow's invalid_row_handler: skip a malformed row, and count it."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, _row: object) -> str:
        self.count += 1
        return "skip"


# -- typed columns, checked --------------------------------------------------------------------
def _valid(column: pa.Array, pattern: str) -> pa.Array:
    import pyarrow.compute as pc

    return pc.fill_null(pc.match_substring_regex(column, pattern), False)


def ints(column: pa.Array) -> pa.Array:
    """Whole numbers; anything else (or out of range) null."""
    import pyarrow as pa
    import pyarrow.compute as pc

    ok = _valid(column, _INT)
    return pc.if_else(ok, pc.cast(pc.if_else(ok, column, "0"), pa.int64()), pa.scalar(None, pa.int64()))


def floats(column: pa.Array, low: float, high: float) -> pa.Array:
    """Finite numbers from ``low`` to ``high``; anything else null."""
    import pyarrow as pa
    import pyarrow.compute as pc

    ok = _valid(column, _FLOAT)
    values = pc.cast(pc.if_else(ok, column, "0"), pa.float64())
    ok = pc.and_(ok, pc.and_(pc.greater_equal(values, low), pc.less_equal(values, high)))
    return pc.if_else(ok, values, pa.scalar(None, pa.float64()))


# -- selecting ---------------------------------------------------------------------------------
def descendants(dump: Dump, taxon: int) -> set[int]:
    """``taxon`` and every taxon whose ancestry holds it (ancestry: ids from the root,
    separated by ``/`` (or ``\\``), the taxon itself not included)."""
    import pyarrow.compute as pc

    pattern = rf"(^|[/\\]){taxon}($|[/\\])"
    found = {taxon}
    for batch in batches(dump, "taxa"):
        ids = ints(batch.column("taxon_id"))
        hit = pc.or_(_valid(batch.column("ancestry"), pattern), pc.fill_null(pc.equal(ids, taxon), False))
        found.update(i for i in pc.filter(ids, hit).to_pylist() if i is not None)
    return found


def select(dump: Dump, query: DumpQuery, on_rows: Callable[[str, int], None] | None = None) -> Selection:
    """The observations ``query`` selects, with their photos (those under an asked licence,
    once each), taxa and observers: an observation is selected with at least one such photo."""
    import pyarrow as pa

    for table in TABLES:  # all four there, in the layout known, before the long read
        check_header(dump, table)
    selection = Selection()
    allowed = descendants(dump, query.taxon) if query.taxon is not None else None
    chosen: list[pa.Table] = []
    for table in _observations(dump, query, allowed, selection, on_rows):
        chosen.append(table)
    if not chosen:
        return selection
    observations = pa.concat_tables(chosen)
    uuids = observations.column("observation_uuid").combine_chunks()
    selection.photos = _photos(dump, query, uuids, selection, on_rows)
    kept = [row for row in observations.to_pylist() if row["observation_uuid"] in selection.photos]
    kept.sort(key=lambda row: observation_id(row["observation_uuid"]))
    selection.observations = kept
    clashes = len(kept) - len({observation_id(row["observation_uuid"]) for row in kept})
    if clashes:  # 58 random bits of a v4 uuid kept: odds about 2e-6 at a million selected
        log.warning("%d selected observation(s) share their id (made from the uuid) with another: "
                    "the state keeps one of each", clashes)  # fmt: skip
    selection.taxa = _taxa(dump, {row["taxon_id"] for row in kept if row["taxon_id"] is not None})
    # Their ancestors too, read in a second pass of the (small) taxa table: their names and
    # ranks give each observation its classification (kingdom .. genus) in the exports.
    above = {a for row in selection.taxa.values() for a in ancestor_ids(row.get("ancestry"))}
    selection.taxa.update(_taxa(dump, above - selection.taxa.keys()))
    selection.observers = _observers(
        dump, {row["observer_id"] for row in kept if row["observer_id"] is not None}
    )
    return selection


def _observations(
    dump: Dump,
    query: DumpQuery,
    allowed: set[int] | None,
    selection: Selection,
    on_rows: Callable[[str, int], None] | None,
) -> Iterator[pa.Table]:
    import pyarrow as pa
    import pyarrow.compute as pc

    allowed_ids = pa.array(sorted(allowed), pa.int64()) if allowed is not None else None
    for batch in batches(dump, "observations"):
        _count(selection, "observations", batch.num_rows, on_rows)
        table = pa.table(
            {
                "observation_uuid": pc.utf8_lower(batch.column("observation_uuid")),
                "observer_id": ints(batch.column("observer_id")),
                "latitude": floats(batch.column("latitude"), -90, 90),
                "longitude": floats(batch.column("longitude"), -180, 180),
                "positional_accuracy": ints(batch.column("positional_accuracy")),
                "taxon_id": ints(batch.column("taxon_id")),
                "quality_grade": batch.column("quality_grade"),
                "observed_on": batch.column("observed_on"),
                "anomaly_score": floats(batch.column("anomaly_score"), -1e15, 1e15),
            }
        )
        mask = _valid(table.column("observation_uuid"), _UUID)
        if query.grades is not None:
            mask = pc.and_(mask, pc.is_in(table.column("quality_grade"), pa.array(query.grades)))
        if allowed_ids is not None:
            mask = pc.and_(mask, pc.fill_null(pc.is_in(table.column("taxon_id"), allowed_ids), False))
        if query.observed_from is not None or query.observed_to is not None:
            mask = pc.and_(mask, _dates(table.column("observed_on"), query))
        table = table.filter(mask)
        if query.boundary is not None or query.bbox is not None:
            table = _inside(table, query)
        if table.num_rows:
            yield table


def _dates(observed: pa.Array, query: DumpQuery) -> pa.Array:
    import pyarrow.compute as pc

    mask = _valid(observed, _DATE)  # ISO dates compare as text
    if query.observed_from is not None:
        mask = pc.and_(mask, pc.fill_null(pc.greater_equal(observed, query.observed_from), False))
    if query.observed_to is not None:
        mask = pc.and_(mask, pc.fill_null(pc.less_equal(observed, query.observed_to), False))
    return mask


def _inside(table: pa.Table, query: DumpQuery) -> pa.Table:
    """The rows whose point is in the box and the boundary (on its edge counts as in)."""
    import numpy as np
    import pyarrow.compute as pc
    import shapely

    lat, lng = table.column("latitude"), table.column("longitude")
    box = query.bbox if query.bbox is not None else None
    if query.boundary is not None:
        west, south, east, north = query.boundary.bounds
        if box is not None:
            west, south = max(west, box[0]), max(south, box[1])
            east, north = min(east, box[2]), min(north, box[3])
        box = (west, south, east, north)
    assert box is not None
    mask = pc.and_(
        pc.and_(pc.greater_equal(lng, box[0]), pc.less_equal(lng, box[2])),
        pc.and_(pc.greater_equal(lat, box[1]), pc.less_equal(lat, box[3])),
    )
    table = table.filter(pc.fill_null(mask, False))
    if query.boundary is None or not table.num_rows:
        return table
    x = table.column("longitude").to_numpy()
    y = table.column("latitude").to_numpy()
    inside = shapely.intersects_xy(query.boundary, x, y)
    return table.filter(np.asarray(inside, dtype=bool))


def _photos(
    dump: Dump,
    query: DumpQuery,
    uuids: pa.Array,
    selection: Selection,
    on_rows: Callable[[str, int], None] | None,
) -> dict[str, list[dict[str, Any]]]:
    """The selected observations' photos under an asked licence, each photo once (a dump
    may list one twice), by observation uuid."""
    import pyarrow as pa
    import pyarrow.compute as pc

    found: dict[str, list[dict[str, Any]]] = {}
    seen: set[int] = set()
    for batch in batches(dump, "photos"):
        _count(selection, "photos", batch.num_rows, on_rows)
        owner = pc.utf8_lower(batch.column("observation_uuid"))
        mask = pc.fill_null(pc.is_in(owner, uuids), False)
        license_code = pc.utf8_lower(batch.column("license"))
        if query.licenses is not None:
            mask = pc.and_(mask, pc.fill_null(pc.is_in(license_code, pa.array(query.licenses)), False))
        extension = batch.column("extension")
        mask = pc.and_(
            mask, pc.fill_null(pc.is_in(pc.utf8_lower(extension), pa.array(sorted(_EXTENSIONS))), False)
        )
        photo_id = ints(batch.column("photo_id"))
        mask = pc.and_(mask, pc.fill_null(pc.greater(photo_id, 0), False))
        table = pa.table(
            {
                "photo_id": photo_id,
                "observation_uuid": owner,
                "extension": extension,
                "license": license_code,
                "width": ints(batch.column("width")),
                "height": ints(batch.column("height")),
                "position": ints(batch.column("position")),
            }
        ).filter(mask)
        for row in table.to_pylist():
            if row["photo_id"] in seen:
                continue
            seen.add(row["photo_id"])
            found.setdefault(row["observation_uuid"], []).append(row)
    return found


def _taxa(dump: Dump, wanted: set[int]) -> dict[int, dict[str, Any]]:
    import pyarrow as pa
    import pyarrow.compute as pc

    if not wanted:
        return {}
    value_set = pa.array(sorted(wanted), pa.int64())
    found: dict[int, dict[str, Any]] = {}
    for batch in batches(dump, "taxa"):
        ids = ints(batch.column("taxon_id"))
        rows = pa.table(
            {"taxon_id": ids, "name": batch.column("name"), "rank": batch.column("rank"),
             "rank_level": floats(batch.column("rank_level"), 0, 1000), "ancestry": batch.column("ancestry")}
        ).filter(pc.fill_null(pc.is_in(ids, value_set), False))  # fmt: skip
        for row in rows.to_pylist():
            found.setdefault(row["taxon_id"], row)
    return found


def _observers(dump: Dump, wanted: set[int]) -> dict[int, dict[str, Any]]:
    import pyarrow as pa
    import pyarrow.compute as pc

    if not wanted:
        return {}
    value_set = pa.array(sorted(wanted), pa.int64())
    found: dict[int, dict[str, Any]] = {}
    for batch in batches(dump, "observers"):
        ids = ints(batch.column("observer_id"))
        rows = pa.table({"observer_id": ids, "login": batch.column("login"), "name": batch.column("name")})
        for row in rows.filter(pc.fill_null(pc.is_in(ids, value_set), False)).to_pylist():
            found.setdefault(row["observer_id"], row)
    return found


def _count(selection: Selection, table: str, rows: int, on_rows: Callable[[str, int], None] | None) -> None:
    selection.rows_read[table] = selection.rows_read.get(table, 0) + rows
    if on_rows is not None:
        on_rows(table, rows)


# -- as the API gives them ---------------------------------------------------------------------
def observation_id(uuid: str) -> int:
    """A positive 62-bit number made from the uuid: the dumps give observations no integer
    id, and the state keys them by one (uri links the observation by its uuid)."""
    digits = uuid.replace("-", "")
    return (int(digits[:16], 16) & ((1 << 62) - 1)) or 1


def api_observations(
    selection: Selection, *, photo_base: str = PHOTO_BASE, places: Iterable[int] = (), start: int = 0
) -> Iterator[dict[str, Any]]:
    """Each selected observation from the ``start``-th on as the API would give it (only the
    fields the dump has), in the order of their ids; made one at a time, as they are asked."""
    place_ids = list(places)
    for row in itertools.islice(selection.observations, start, None):
        uuid = row["observation_uuid"]
        user = _user(selection.observers.get(row["observer_id"]), row["observer_id"])
        photos = sorted(
            selection.photos.get(uuid, []),
            key=lambda p: (p["position"] is None, p["position"] or 0, p["photo_id"]),
        )
        lat, lng = row["latitude"], row["longitude"]
        located = lat is not None and lng is not None
        yield {
            "id": observation_id(uuid),
            "uuid": uuid,
            "uri": f"{SITE}/observations/{uuid}",
            "quality_grade": row["quality_grade"] if row["quality_grade"] in QUALITY_GRADES else None,
            "observed_on": row["observed_on"]
            if row["observed_on"] and re.fullmatch(_DATE[1:-1], row["observed_on"])
            else None,
            "location": f"{lat},{lng}" if located else None,
            "geojson": {"type": "Point", "coordinates": [lng, lat]} if located else None,
            "positional_accuracy": row["positional_accuracy"],
            "public_positional_accuracy": row["positional_accuracy"],
            "anomaly_score": row["anomaly_score"] if _finite(row["anomaly_score"]) else None,
            "place_ids": place_ids,
            "taxon": _taxon(selection.taxa.get(row["taxon_id"]), row["taxon_id"]),
            "user": user,
            "photos": [_photo(p, user, photo_base) for p in photos],
            "observation_photos": [
                {"photo": {"id": p["photo_id"]}, "position": p["position"]} for p in photos
            ],
        }


def _finite(value: Any) -> bool:
    return isinstance(value, float) and math.isfinite(value)


def _user(row: Mapping[str, Any] | None, observer_id: int | None) -> dict[str, Any] | None:
    if observer_id is None:
        return None
    login = (row or {}).get("login")
    name = (row or {}).get("name")
    return {
        "id": observer_id,
        "login": login[:_TEXT_CAP] if isinstance(login, str) else None,
        "name": name[:_TEXT_CAP] if isinstance(name, str) else None,
    }


def ancestor_ids(ancestry: object) -> list[int]:
    """A taxa row's ``ancestry`` (ids from the root, ``/``- or ``\\``-separated) as ids."""
    if not isinstance(ancestry, str):
        return []
    return [int(part) for part in re.split(r"[/\\]", ancestry) if part.isdigit() and len(part) <= 18]


def taxon_records(selection: Selection) -> list[dict[str, Any]]:
    """The selection's taxa and their ancestors as /v1/taxa gives them (``id``, ``rank``,
    ``name``, ``ancestor_ids`` from the root to the taxon itself), for the state's taxa table."""
    return [
        {
            "id": taxon_id,
            "rank": row.get("rank"),
            "name": row["name"][:_NAME_CAP] if isinstance(row.get("name"), str) else None,
            "ancestor_ids": [*ancestor_ids(row.get("ancestry")), taxon_id],
        }
        for taxon_id, row in selection.taxa.items()
    ]


def _taxon(row: Mapping[str, Any] | None, taxon_id: int | None) -> dict[str, Any] | None:
    if taxon_id is None:
        return None
    row = row or {}
    ancestors = ancestor_ids(row.get("ancestry"))
    level = row.get("rank_level")
    return {
        "id": taxon_id,
        "name": row.get("name"),
        "rank": row.get("rank"),
        "rank_level": level if _finite(level) else None,
        "ancestor_ids": [*ancestors, taxon_id],
    }


def _photo(row: Mapping[str, Any], user: Mapping[str, Any] | None, photo_base: str) -> dict[str, Any]:
    code = row["license"]
    width, height = row["width"], row["height"]
    dimensions = {"width": width, "height": height} if _pixels(width) and _pixels(height) else None
    return {
        "id": row["photo_id"],
        "url": f"{photo_base.rstrip('/')}/photos/{row['photo_id']}/square.{row['extension']}",
        "license_code": code,
        "attribution": attribution(user, code),
        "original_dimensions": dimensions,
    }


def _pixels(value: Any) -> bool:
    return isinstance(value, int) and 1 <= value <= 1_000_000


def attribution(user: Mapping[str, Any] | None, code: str | None) -> str:
    """iNaturalist's attribution of a photo: '(c) Name, some rights reserved (CC BY)', the
    observer's name, else their login; 'no rights reserved' for CC0."""
    who = ((user or {}).get("name") or "").strip() or (user or {}).get("login") or "unknown"
    if code is None:
        return f"(c) {who}, all rights reserved"
    if code == "cc0":
        return f"(c) {who}, no rights reserved (CC0)"
    label = code.upper().replace("CC-", "CC ")
    return f"(c) {who}, some rights reserved ({label})"
