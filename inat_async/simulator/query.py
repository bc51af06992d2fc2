"""Parsing ``/v1/observations`` query parameters the way the real API reads them.

Kept apart from the data so the server and the ground-truth helpers (``World.matching_ids``)
share one reading of every parameter: comma lists mean OR, booleans accept any case
(``geo=TRUE``), unknown parameters are ignored, per_page is clamped to 200, and the
10,000-result wall and the 422 for a single unknown place or taxon are raised as
:class:`QueryError` carrying the real status and body.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from .templates import result_window_body

MAX_PER_PAGE = 200
DEFAULT_PER_PAGE = 30
RESULT_WINDOW = 10_000
ORDER_BYS = frozenset({"id", "created_at", "updated_at"})


class QueryError(Exception):
    """A query the API refuses: ``status`` and the exact JSON ``body`` to answer."""

    def __init__(self, status: int, message: str, body: bytes | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.body = body if body is not None else error_body(status, message)


def error_body(status: int, message: str) -> bytes:
    """A v1 error body: ``{"error": message, "status": status}``."""
    return json.dumps({"error": message, "status": status}, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Filters:
    """The filter part of a query; ``None`` means "not filtered on"."""

    id_above: int | None = None
    id_below: int | None = None
    place_ids: tuple[int, ...] | None = None
    taxon_ids: tuple[int, ...] | None = None
    quality_grades: frozenset[str] | None = None
    licenses: frozenset[str] | None = None
    photo_licenses: frozenset[str] | None = None
    geo: bool | None = None
    identified: bool | None = None
    photos: bool | None = None
    ranks: frozenset[str] | None = None
    updated_since: int | None = None
    uuids: frozenset[str] | None = None


@dataclass(frozen=True)
class Paging:
    """The paging part of a query, after clamping."""

    page: int = 1
    per_page: int = DEFAULT_PER_PAGE
    order: str = "desc"
    order_by: str = "created_at"
    only_id: bool = False


def _values(params: Mapping[str, str], name: str) -> list[str] | None:
    raw = params.get(name)
    if raw is None:
        return None
    items = [item.strip() for item in str(raw).split(",") if item.strip()]
    return items or None


def _int(raw: str | None) -> int | None:
    if raw is None:
        return None
    try:
        return int(str(raw).strip())
    except ValueError:
        return None


def parse_bool(raw: str | None) -> bool | None:
    """``true``/``false`` in any case (also 1/0, yes/no); anything else means "either"."""
    if raw is None:
        return None
    text = str(raw).strip().lower()
    if text in ("true", "1", "yes", "t"):
        return True
    if text in ("false", "0", "no", "f"):
        return False
    return None


def parse_time(raw: str) -> int:
    """Epoch seconds of an ISO 8601 date or date-time; naive values are read as UTC."""
    moment = datetime.fromisoformat(raw.strip())
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def _ids(params: Mapping[str, str], name: str) -> tuple[int, ...] | None:
    items = _values(params, name)
    if items is None:
        return None
    ids: list[int] = []
    for item in items:
        value = _int(item)
        if value is None:
            raise QueryError(422, f"Unknown {name} {item}")
        ids.append(value)
    return tuple(ids)


def _lower_set(params: Mapping[str, str], name: str) -> frozenset[str] | None:
    items = _values(params, name)
    return frozenset(item.lower() for item in items) if items is not None else None


def parse_filters(params: Mapping[str, str]) -> Filters:
    """Read the filters of a query (raises :class:`QueryError` 422 for a non-integer id)."""
    updated_since = None
    raw_since = params.get("updated_since")
    if raw_since:
        try:
            updated_since = parse_time(str(raw_since))
        except ValueError as exc:
            raise QueryError(422, f"Invalid updated_since {raw_since}") from exc
    return Filters(
        id_above=_int(params.get("id_above")),
        id_below=_int(params.get("id_below")),
        place_ids=_ids(params, "place_id"),
        taxon_ids=_ids(params, "taxon_id"),
        quality_grades=_lower_set(params, "quality_grade"),
        licenses=_lower_set(params, "license"),
        photo_licenses=_lower_set(params, "photo_license"),
        geo=parse_bool(params.get("geo")),
        identified=parse_bool(params.get("identified")),
        photos=parse_bool(params.get("photos")),
        ranks=_lower_set(params, "rank"),
        updated_since=updated_since,
        uuids=_lower_set(params, "uuid"),
    )


def parse_paging(params: Mapping[str, str], result_window: int = RESULT_WINDOW) -> Paging:
    """Read paging and order; raises the recorded 403 when page * per_page passes the result
    window (10,000 on the real API)."""
    per_page = _int(params.get("per_page"))
    if per_page is None or per_page < 0:
        per_page = DEFAULT_PER_PAGE
    per_page = min(per_page, MAX_PER_PAGE)
    page = _int(params.get("page"))
    if page is None or page < 1:
        page = 1
    if page * per_page > result_window:
        raise QueryError(403, "Result window is too large", result_window_body())
    order = str(params.get("order", "desc")).strip().lower()
    order_by = str(params.get("order_by", "created_at")).strip().lower()
    return Paging(
        page=page,
        per_page=per_page,
        order="asc" if order == "asc" else "desc",
        order_by=order_by if order_by in ORDER_BYS else "created_at",
        only_id=parse_bool(params.get("only_id")) is True,
    )
