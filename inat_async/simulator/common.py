"""The simulated world's constants, its columns and the small helpers its parts share:
deterministic hashing, compact JSON and the shapes of a page and a photo."""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import numpy.typing as npt

from .templates import HOST_TOKENS, REAL_HOSTS

IntArray = npt.NDArray[np.int64]

LICENSES: tuple[str | None, ...] = (
    None,
    "cc-by",
    "cc-by-nc",
    "cc0",
    "cc-by-sa",
    "cc-by-nc-sa",
    "cc-by-nd",
    "cc-by-nc-nd",
)
_LICENSE_JSON = tuple(json.dumps(code) for code in LICENSES)
_LICENSE_P = (0.15, 0.12, 0.55, 0.06, 0.04, 0.04, 0.02, 0.02)
QUALITY_GRADES: tuple[str, ...] = ("research", "needs_id", "casual")
EXTENSIONS: tuple[str, ...] = ("jpg", "jpeg", "png", "gif", "JPG", "JPEG")
_EXT_P = (0.55, 0.35, 0.045, 0.02, 0.025, 0.01)
#: Unrelated ancestor places (continents, countries…) listed in ``place_ids`` like real data.
#: Ids /v1/taxa/{ids} answers at most (the API's documented maximum).
TAXA_PER_REQUEST = 30
ANCESTOR_PLACES: tuple[int, ...] = (1, 6712, 97394, 59613, 66741, 82256, 97389, 7953)
_TIMEZONES: tuple[tuple[str, int], ...] = (
    ("America/Los_Angeles", -480),
    ("America/Chicago", -360),
    ("America/New_York", -300),
    ("America/Phoenix", -420),
    ("Europe/Zurich", 60),
    ("Etc/UTC", 0),
    ("Asia/Tokyo", 540),
    ("Asia/Kolkata", 330),
    ("Australia/Sydney", 600),
)
#: Places whose whereabouts are known: (latitude, longitude, radius in degrees, time zone,
#: its UTC offset in minutes). Others are put somewhere at random, in a zone that fits.
KNOWN_PLACES: dict[int, tuple[float, float, float, str, int]] = {
    128892: (38.455, -9.02, 0.05, "Europe/Lisbon", 0)  # Parque Marinho Luiz Saldanha, Portugal
}
_DIMENSIONS: tuple[tuple[int, int], ...] = (
    (2048, 1536),
    (1536, 2048),
    (2048, 1365),
    (2048, 2048),
    (1200, 1600),
    (1188, 1188),
    (640, 480),
    (300, 200),
)
_PLACEHOLDERS = ("/assets/copyright-infringement-{size}.png", "/attachment_defaults/local_photos/{size}.png")
_T0 = 1_451_606_400  # 2016-01-01
_T1 = 1_735_689_600  # 2025-01-01
_ZONES = {m: timezone(timedelta(minutes=m)) for _, m in _TIMEZONES}
_USER_POOL = 5_000
_FIRST_ID = 10_000_000
_FIRST_PHOTO_ID = 100_000_000
_ORDER_SHIFT = 24  # sort keys: time << 24 | position (unique, so pages are stable)
_MASK64 = (1 << 64) - 1
_UUID_CLEAR = ~((0xF000 << 64) | (0xC000 << 48)) & ((1 << 128) - 1)
_UUID_SET = (0x4000 << 64) | (0x8000 << 48)

# photo flag bits
_PH_PLACEHOLDER = 1
_PH_PLACEHOLDER_KIND = 2
_PH_OLD_URL = 4
_PH_MOVED = 8  # its files are on the other host than its listed URL (set by World.edit_photo)


def _mix(*parts: int) -> int:
    """A fast deterministic 64-bit hash of integers (splitmix64 steps)."""
    h = 0x9E3779B97F4A7C15
    for part in parts:
        h = (h ^ (part & _MASK64)) * 0xBF58476D1CE4E5B9 & _MASK64
        h ^= h >> 31
        h = (h * 0x94D049BB133111EB) & _MASK64
        h ^= h >> 29
    return h


def _unit(*parts: int) -> float:
    """A deterministic float in [0, 1) from integers."""
    return (_mix(*parts) >> 11) / float(1 << 53)


@dataclass(frozen=True)
class Page:
    """One answer of the search: the full count and the ids on the requested page."""

    total_results: int
    page: int
    per_page: int
    ids: list[int]


@dataclass(frozen=True)
class PhotoInfo:
    """What the hosts need to know about one photo."""

    id: int
    observation_id: int
    ext: str
    host: str  # "open" | "static" | "assets" (placeholder)
    license_code: str | None
    placeholder: bool
    width: int
    height: int


@dataclass
class _Columns:
    """Per-observation attributes the filters use, in id order."""

    ids: IntArray
    place: npt.NDArray[np.int32]
    in_next: npt.NDArray[np.bool_]
    geo: npt.NDArray[np.bool_]
    taxon: npt.NDArray[np.int16]
    quality: npt.NDArray[np.int8]
    license: npt.NDArray[np.int8]
    n_photos: npt.NDArray[np.int8]
    photo_start: IntArray
    created: IntArray
    updated: IntArray


@dataclass
class _Photos:
    """Per-photo attributes, in id order (photos of one observation are consecutive)."""

    ids: IntArray
    obs: IntArray
    license: npt.NDArray[np.int8]
    ext: npt.NDArray[np.int8]
    flags: npt.NDArray[np.uint8]


def _concat(a: npt.NDArray[Any], b: npt.NDArray[Any]) -> npt.NDArray[Any]:
    return np.concatenate([a, b.astype(a.dtype, copy=False)])


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def _id_list(ids: IntArray) -> list[int]:
    """The ids as Python ints, in order (numpy types ``tolist`` as Any: its nesting follows ndim)."""
    values: list[int] = ids.tolist()
    return values


def _dumps(value: Any) -> str:
    """Compact UTF-8 JSON, as the API sends it."""
    return _ENCODER.encode(value)


def _splice(obj_text: str, *members: str) -> str:
    """Add serialised ``"key":value`` members to the JSON text of an object."""
    inner = ",".join(part for part in (obj_text[1:-1], *members) if part)
    return "{" + inner + "}"


def _uuid(r: random.Random) -> str:
    """A version-4 UUID string from a seeded generator."""
    bits = (r.getrandbits(128) & _UUID_CLEAR) | _UUID_SET
    h = f"{bits:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _moment(ts: int, minutes: int) -> tuple[str, dict[str, Any]]:
    """ISO 8601 text with offset, and the API's ``*_details`` dict, of a time in a zone."""
    moment = datetime.fromtimestamp(ts, _ZONES.get(minutes) or timezone(timedelta(minutes=minutes)))
    details = {
        "date": moment.date().isoformat(),
        "day": moment.day,
        "month": moment.month,
        "year": moment.year,
        "hour": moment.hour,
        "week": moment.isocalendar().week,
    }
    return moment.isoformat(), details


def _photo_tails(template: dict[str, Any]) -> tuple[str, str]:
    """Serialised rest of a template photo (after the fields set per photo): shown, hidden."""
    set_here = {"id", "license_code", "url", "attribution", "original_dimensions"}
    rest = {k: v for k, v in template.items() if k not in set_here} or {"flags": []}
    tails = []
    for hidden in (False, True):
        if "hidden" in rest:
            rest["hidden"] = hidden
        tails.append("," + _dumps(rest)[1:-1])
    return tails[0], tails[1]


@dataclass(frozen=True)
class _User:
    """A simulated user: id, display name and pre-serialised JSON."""

    id: int
    name: str
    text: str


def _offset(minutes: int) -> str:
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _attribution(name: str, license_code: str | None) -> str:
    if license_code is None:
        return f"(c) {name}, all rights reserved"
    if license_code == "cc0":
        return "no rights reserved"
    label = license_code.upper().replace("CC-", "CC ")
    return f"(c) {name}, some rights reserved ({label})"


def render_hosts(data: bytes, hosts: Mapping[str, str] | None) -> bytes:
    """Replace the host tokens in UTF-8 JSON by base URLs (the real hosts by default)."""
    table = {**REAL_HOSTS, **(hosts or {})}
    for kind, token in HOST_TOKENS.items():
        data = data.replace(token.encode(), table[kind].rstrip("/").encode())
    return data
