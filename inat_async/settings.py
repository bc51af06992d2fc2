"""What one harvest is asked to do: the validated settings shared by the CLI and the library."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from urllib.parse import urlsplit

from .errors import UsageError
from .photos import ALL_RIGHTS_RESERVED

DEFAULT_API_URL = "https://api.inaturalist.org/v1"
REAL_API_HOST = "api.inaturalist.org"
SIZES = ("square", "thumb", "small", "medium", "large", "original")
DEFAULT_SIZES = ("square", "medium", "original")
# The seed's filters: observations with public coordinates, identified to species.
DEFAULT_FILTERS = {"geo": "true", "identified": "true", "rank": "species"}
# Paging is ours to control: a user's --param may not break the keyset cursor.
RESERVED_PARAMS = frozenset({"order", "order_by", "per_page", "page", "id_above", "id_below"})
# The photo hosts iNaturalist serves from; the API's own host is added at run time.
PHOTO_HOSTS = ("inaturalist-open-data.s3.amazonaws.com", "static.inaturalist.org")
# iNaturalist's licence codes (its API gives them lowercase), and ours for none.
LICENSE_CODES = (
    "cc0",
    "cc-by",
    "cc-by-nc",
    "cc-by-sa",
    "cc-by-nd",
    "cc-by-nc-sa",
    "cc-by-nc-nd",
    "pd",
    "gfdl",
)
PHOTO_LICENSES = (*LICENSE_CODES, ALL_RIGHTS_RESERVED)


@dataclass(frozen=True)
class Budgets:
    """Politeness limits, each counted over a sliding window (see budget.py)."""

    api_rpm: int = 60
    api_daily: int = 10_000
    media_rpm: int = 600
    media_gb_per_hour: float = 4.0
    media_gb_per_day: float = 20.0
    media_concurrency: int = 8
    # Window lengths in seconds; tests shrink them to run in seconds.
    minute: float = 60.0
    hour: float = 3600.0
    day: float = 86400.0


@dataclass(frozen=True)
class Settings:
    """Everything a harvest needs; build it with :func:`make_settings` to get validation."""

    places: tuple[int, ...]
    out: Path = Path("inat_harvest")
    api_url: str = DEFAULT_API_URL
    filters: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_FILTERS))
    sizes: tuple[str, ...] = DEFAULT_SIZES
    all_photos: bool = False
    no_photos: bool = False
    update: bool = False
    photo_licenses: tuple[str, ...] | None = None  # None: every licence
    formats: tuple[str, ...] = ("csv",)
    workers: int = 16
    limits: bool = True
    budgets: Budgets = Budgets()
    budget_file: Path | None = None
    per_page: int = 200
    ranges: int = 4
    max_photo_bytes: int = 64_000_000
    request_timeout: float = 60.0
    connect_timeout: float = 15.0
    api_attempts: int = 8
    photo_attempts: int = 5
    backoff_initial: float = 1.0
    max_backoff: float = 300.0
    progress_interval: float = 5.0

    def fingerprint(self) -> dict[str, object]:
        """What makes two runs the same harvest: stored in the state, compared on resume."""
        return {
            "places": sorted(self.places),
            "filters": dict(sorted(self.filters.items())),
            "sizes": sorted(self.sizes),
            "all_photos": self.all_photos,
            "no_photos": self.no_photos,
            "photo_licenses": sorted(self.photo_licenses) if self.photo_licenses else None,
            # The photo rows and cursors hold what this API answered: another one is another harvest.
            "api_url": self.api_url.rstrip("/"),
        }

    @cached_property  # asked once per observation paged
    def photo_hosts(self) -> frozenset[str]:
        return frozenset((*PHOTO_HOSTS, urlsplit(self.api_url).hostname or ""))


_ID = re.compile(r"[0-9]+")
# An iNaturalist place page (any of its network's sites, with or without the scheme), the id
# ending its path or followed by more of it, a query or a fragment.
_PLACE_URL = re.compile(r"(?:https?://)?[^/\s]+/places/([0-9]+)(?:[/?#]\S*)?", re.IGNORECASE)


def place_id(text: str) -> int | None:
    """The place id in '128892' or a place URL (https://www.inaturalist.org/places/128892),
    or None when ``text`` is neither."""
    text = text.strip()
    match = _ID.fullmatch(text) or _PLACE_URL.fullmatch(text)
    if match is None:
        return None
    number = int(match.group(match.lastindex or 0))
    return number if number > 0 else None


def parse_places(values: Iterable[str | int]) -> tuple[int, ...]:
    """Place ids from repeatable values, each a comma list of ids or one place URL; order
    kept, duplicates dropped."""
    places: dict[int, None] = {}
    for value in values:
        text = str(value)
        for part in [text] if "/places/" in text else text.split(","):
            if not part.strip():
                continue
            number = place_id(part)
            if number is None:
                raise UsageError(
                    f"--place: {part.strip()[:80]!r} is not a place id (a positive integer) or URL"
                )
            places[number] = None
    return tuple(places)


_COMMENT = re.compile(r"(?:^|\s)#")


def read_places_file(path: Path) -> list[str]:
    """Place ids from a file: one id or iNaturalist place URL a line, blank lines and
    # comments (a whole line, or after the value) allowed, a UTF-8 byte-order mark ignored."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--places-file: cannot read {path} ({exc})") from None
    places = []
    for number, line in enumerate(text.splitlines(), 1):
        value = _COMMENT.split(line, maxsplit=1)[0].strip()
        if not value:
            continue
        place = place_id(value)
        if place is None:
            raise UsageError(
                f"--places-file: line {number} of {path} is not a place id or URL: {value[:60]!r}"
            )
        places.append(str(place))
    return places


def parse_licenses(value: str | Iterable[str]) -> tuple[str, ...]:
    """Photo licence codes from 'cc0,CC-BY' or a list, lowercased; an unknown code is refused
    with the list of known ones (a typo would otherwise skip every photo)."""
    parts = value.split(",") if isinstance(value, str) else list(value)
    codes = tuple(dict.fromkeys(str(p).strip().lower() for p in parts if str(p).strip()))
    unknown = [c for c in codes if c not in PHOTO_LICENSES]
    if unknown or not codes:
        what = f"{unknown[0]!r} is not a licence code" if unknown else "give at least one licence code"
        raise UsageError(f"--photo-license: {what}; known codes: {', '.join(PHOTO_LICENSES)}")
    return codes


def parse_sizes(value: str | Iterable[str]) -> tuple[str, ...]:
    """Photo sizes from 'square,medium' or a list; each must be one iNaturalist serves."""
    parts = value.split(",") if isinstance(value, str) else list(value)
    sizes = tuple(dict.fromkeys(p.strip().lower() for p in parts if p.strip()))
    unknown = [s for s in sizes if s not in SIZES]
    if unknown:
        raise UsageError(f"--sizes: unknown size {unknown[0]!r} (choose from {', '.join(SIZES)})")
    if not sizes:
        raise UsageError("--sizes: give at least one size")
    return sizes


def parse_params(values: Iterable[str]) -> dict[str, str]:
    """The default filters with each KEY=VALUE applied; an empty VALUE drops the filter."""
    filters = dict(DEFAULT_FILTERS)
    for item in values:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"--param: {item!r} is not KEY=VALUE")
        if key in RESERVED_PARAMS:
            raise UsageError(f"--param: {key} is set by the harvester's paging and cannot be changed")
        if key == "place_id":
            raise UsageError("--param: give places with --place")
        if value.strip():
            filters[key] = value.strip()
        else:
            filters.pop(key, None)
    return filters


def api_url_default() -> str:
    return os.environ.get("INAT_API_URL", DEFAULT_API_URL)


def make_settings(places: Iterable[str | int], **options: object) -> Settings:
    """Validated :class:`Settings`; raises :class:`UsageError` with a one-line message."""
    parsed = parse_places(places)
    if not parsed:
        raise UsageError("give at least one --place")
    if "sizes" in options:
        options["sizes"] = parse_sizes(options["sizes"])  # type: ignore[arg-type]
    if options.get("photo_licenses") is not None:
        options["photo_licenses"] = parse_licenses(options["photo_licenses"])  # type: ignore[arg-type]
    if "out" in options:
        options["out"] = Path(options["out"])  # type: ignore[arg-type]
    settings = Settings(places=parsed, **options)  # type: ignore[arg-type]
    if settings.workers < 1:
        raise UsageError("--workers must be at least 1")
    if not settings.api_url.startswith(("http://", "https://")):
        raise UsageError(f"--api-url: {settings.api_url!r} is not an http(s) URL")
    return settings
