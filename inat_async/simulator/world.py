"""The simulated data: a seeded, deterministic population of observations and photos.

A :class:`World` keeps only compact per-observation and per-photo columns (numpy arrays) for the
attributes the API filters on, and derives every other field on demand from ``(seed, id)`` and the
recorded templates. That keeps a million observations cheap to build and to hold, while a page of
200 is rendered in milliseconds. The same filter code answers the server and the ground-truth
helpers (:meth:`World.matching_ids`), so tests compare a harvest against exactly what was served.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import numpy.typing as npt

from . import images
from .query import Filters, Paging, QueryError, parse_filters, parse_paging
from .templates import HOST_TOKENS, REAL_HOSTS, Taxon, json_object, observation_templates, taxa, taxa_by_id
from .text import HARD_TEXT, LOGIN_PARTS, NAMES, TRICKY_NA

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


class World:
    """A seeded population of observations over some places, and their photos.

    ``places`` maps place id -> number of observations whose main place it is; a fraction
    ``overlap`` of each place's observations also lie in the next place of the dict (the last
    place has no next one). A fraction ``nonmatching`` fails the default harvest filters
    (geo, identified, rank=species): a third private, a third without taxon, a third genus-rank.
    """

    def __init__(
        self,
        places: Mapping[int, int],
        *,
        seed: int = 0,
        overlap: float = 0.2,
        nonmatching: float = 0.1,
        photos: tuple[int, int] = (0, 4),
        placeholder_rate: float = 0.01,
        missing_size_rate: float = 0.01,
        photo_scale: float = 1.0,
        tricky_na: bool = False,
    ) -> None:
        if not places:
            raise ValueError("places must name at least one place")
        if photos[0] < 0 or photos[1] < photos[0] or photos[1] > 100:
            raise ValueError(f"bad photos range {photos!r}")
        self.seed = seed
        self.overlap = overlap
        self.nonmatching = nonmatching
        self.photos_range = photos
        self.placeholder_rate = placeholder_rate
        self.missing_size_rate = missing_size_rate
        self.photo_scale = photo_scale
        self.tricky_na = tricky_na
        self.place_ids: tuple[int, ...] = tuple(int(p) for p in places)
        self.place_counts: dict[int, int] = {int(p): int(n) for p, n in places.items()}
        self._place_index = {p: k for k, p in enumerate(self.place_ids)}
        self.taxa: tuple[Taxon, ...] = taxa()
        self._taxon_index = {t.id: k for k, t in enumerate(self.taxa)}
        self._species = np.array([k for k, t in enumerate(self.taxa) if t.rank == "species"])
        self._coarse = np.array([k for k, t in enumerate(self.taxa) if t.rank != "species"])
        self._templates = observation_templates()
        self._texts = HARD_TEXT + (TRICKY_NA if tricky_na else ())
        self._lock = threading.RLock()
        self._overrides: dict[int, dict[str, Any]] = {}
        self._removed_photos: set[int] = set()  # photo ids edited out of their observation
        self._photo_positions: dict[int, int | None] = {}  # observation_photos positions edited
        self._photo_attributions: dict[int, str] = {}  # attributions edited
        self._users: dict[int, _User] = {}
        self._taxon_texts = [(_dumps(t.json), _dumps(t.compact)) for t in self.taxa]
        self._shells = [_dumps(t.shell)[1:-1] for t in self._templates]
        self._ident_shells = [_dumps(t.identification)[1:-1] for t in self._templates]
        self._photo_tails = [_photo_tails(t.photo) for t in self._templates]
        self._attributions: dict[tuple[str, int], str] = {}
        self._bytes_cache: OrderedDict[tuple[int, str], bytes] = OrderedDict()
        self._generation = 0
        self._place_meta = [self._make_place(p) for p in self.place_ids]
        self._build()

    # ------------------------------------------------------------------ building

    def _make_place(self, place_id: int) -> tuple[float, float, float, str, int, tuple[int, ...]]:
        """(latitude, longitude, radius in degrees, time zone, its offset, ancestor places)."""
        r = random.Random(_mix(self.seed, place_id, 1))
        ancestors = [a for a in ANCESTOR_PLACES if a not in self._place_index]
        chosen = tuple(sorted(r.sample(ancestors, min(len(ancestors), r.randint(2, 4)))))
        if place_id in KNOWN_PLACES:
            return (*KNOWN_PLACES[place_id], chosen)
        lat, lng, radius = r.uniform(-45.0, 60.0), r.uniform(-150.0, 150.0), r.uniform(0.02, 0.5)
        # The zone whose offset is nearest the sun's: 15 degrees of longitude an hour.
        tz_name, minutes = min(_TIMEZONES, key=lambda zone: abs(zone[1] - lng * 4))
        return lat, lng, radius, tz_name, minutes, chosen

    def place_area(self, place_id: int) -> tuple[float, float, float]:
        """(latitude, longitude, radius in degrees) of the square a place's observations lie in."""
        lat, lng, radius, *_ = self._place_meta[self._place_index[place_id]]
        return lat, lng, radius

    def _draw(self, rng: np.random.Generator, place: npt.NDArray[np.int32]) -> dict[str, npt.NDArray[Any]]:
        n = len(place)
        last = len(self.place_ids) - 1
        in_next = (rng.random(n) < self.overlap) & (place < last)
        kind = rng.random(n)
        third = self.nonmatching / 3.0
        private = kind < third
        no_taxon = (kind >= third) & (kind < 2 * third)
        coarse = (kind >= 2 * third) & (kind < 3 * third)
        taxon = self._species[rng.integers(0, len(self._species), n)].astype(np.int16)
        taxon[coarse] = self._coarse[rng.integers(0, len(self._coarse), int(coarse.sum()))]
        taxon[no_taxon] = -1
        n_photos = rng.integers(self.photos_range[0], self.photos_range[1] + 1, n).astype(np.int8)
        quality = rng.choice(3, size=n, p=(0.65, 0.3, 0.05)).astype(np.int8)
        quality[coarse | no_taxon] = 1
        quality[n_photos == 0] = 2
        license_ = rng.choice(len(LICENSES), size=n, p=_LICENSE_P).astype(np.int8)
        return {
            "place": place,
            "in_next": in_next,
            "geo": ~private,
            "taxon": taxon,
            "quality": quality,
            "license": license_,
            "n_photos": n_photos,
        }

    def _draw_photos(
        self,
        rng: np.random.Generator,
        n_photos: npt.NDArray[np.int8],
        obs_license: npt.NDArray[np.int8],
        first_obs: int,
        first_id: int,
    ) -> _Photos:
        obs = np.repeat(np.arange(len(n_photos), dtype=np.int64), n_photos.astype(np.int64))
        count = len(obs)
        ids = first_id + np.cumsum(rng.integers(1, 4, count), dtype=np.int64)
        same = rng.random(count) < 0.8
        own = rng.choice(len(LICENSES), size=count, p=_LICENSE_P).astype(np.int8)
        license_ = np.where(same, obs_license[obs], own).astype(np.int8)
        ext = rng.choice(len(EXTENSIONS), size=count, p=_EXT_P).astype(np.int8)
        flags = np.zeros(count, dtype=np.uint8)
        flags[rng.random(count) < self.placeholder_rate] |= _PH_PLACEHOLDER
        flags[rng.random(count) < 0.5] |= _PH_PLACEHOLDER_KIND
        flags[rng.random(count) < 0.1] |= _PH_OLD_URL
        return _Photos(ids=ids, obs=obs + first_obs, license=license_, ext=ext, flags=flags)

    def _build(self) -> None:
        rng = np.random.default_rng([self.seed, 0x5EED])
        counts = [self.place_counts[p] for p in self.place_ids]
        n = int(sum(counts))
        place = np.repeat(np.arange(len(counts), dtype=np.int32), counts)
        rng.shuffle(place)
        ids = _FIRST_ID + int(rng.integers(0, 1000)) + np.cumsum(rng.integers(1, 6, n))
        drawn = self._draw(rng, place)
        step = (_T1 - _T0) / max(n, 1)
        created = (_T0 + np.arange(n) * step).astype(np.int64)
        created += rng.integers(0, max(2, int(step * 3)), n)
        bump = rng.integers(1, 86_400 * 200, n)
        updated = created + np.where(rng.random(n) < 0.5, 0, bump)
        photos = self._draw_photos(rng, drawn["n_photos"], drawn["license"], 0, _FIRST_PHOTO_ID)
        start = np.cumsum(drawn["n_photos"], dtype=np.int64) - drawn["n_photos"]
        self._cols = _Columns(
            ids=ids.astype(np.int64),
            photo_start=start,
            created=created,
            updated=updated.astype(np.int64),
            **drawn,
        )
        self._photos = photos
        # Fixed at build time: observations added later must not change how others render.
        self._user_pool = max(20, min(n // 10, _USER_POOL))
        self._index_places()

    def _index_places(self) -> None:
        cols = self._cols
        order = np.argsort(cols.place, kind="stable")
        bounds = np.searchsorted(cols.place[order], np.arange(len(self.place_ids) + 1))
        overlapping = np.flatnonzero(cols.in_next)
        self._place_pos: list[IntArray] = []
        for k in range(len(self.place_ids)):
            own = order[bounds[k] : bounds[k + 1]]
            if k > 0:
                extra = overlapping[cols.place[overlapping] == k - 1]
                own = np.sort(np.concatenate([own, extra]))
            self._place_pos.append(np.asarray(own, dtype=np.int64))

    # ------------------------------------------------------------------ facts

    def __len__(self) -> int:
        return len(self._cols.ids)

    @property
    def ids(self) -> list[int]:
        """All observation ids, ascending."""
        with self._lock:
            return _id_list(self._cols.ids)

    @property
    def photo_count(self) -> int:
        """Number of photos over the world (placeholders included)."""
        return len(self._photos.ids)

    def place_members(self, place_id: int) -> list[int]:
        """Ids of the observations lying in a place, ascending."""
        with self._lock:
            return _id_list(self._cols.ids[self._place_pos[self._place_index[place_id]]])

    def _position(self, obs_id: int) -> int:
        pos = int(np.searchsorted(self._cols.ids, obs_id))
        if pos >= len(self._cols.ids) or int(self._cols.ids[pos]) != obs_id:
            raise KeyError(f"no observation {obs_id}")
        return pos

    # ------------------------------------------------------------------ searching

    def _match(self, filters: Filters) -> IntArray:
        """Positions (ascending) of the observations passing ``filters``."""
        cols = self._cols
        lo, hi = 0, len(cols.ids)
        if filters.id_above is not None:
            lo = int(np.searchsorted(cols.ids, filters.id_above, side="right"))
        if filters.id_below is not None:
            hi = int(np.searchsorted(cols.ids, filters.id_below, side="left"))
        if hi <= lo:
            return np.empty(0, dtype=np.int64)
        sel: slice | IntArray = slice(lo, hi)
        if filters.place_ids is not None:
            known = sorted({self._place_index[p] for p in filters.place_ids if p in self._place_index})
            if len(filters.place_ids) == 1 and not known:
                raise QueryError(422, f"Unknown place_id {filters.place_ids[0]}")
            if not known:
                return np.empty(0, dtype=np.int64)
            if len(known) == 1:
                cand = self._place_pos[known[0]]
                sel = cand[np.searchsorted(cand, lo) : np.searchsorted(cand, hi)]
        mask: npt.NDArray[np.bool_] | None = None

        def both(m: npt.NDArray[np.bool_]) -> None:
            nonlocal mask
            mask = m if mask is None else (mask & m)

        if filters.place_ids is not None and isinstance(sel, slice):
            # several places: a lookup on each observation's main place and its overlap
            main = np.zeros(len(self.place_ids), dtype=bool)
            main[known] = True
            previous = np.zeros(len(self.place_ids), dtype=bool)
            previous[[k - 1 for k in known if k > 0]] = True
            place = cols.place[sel]
            both(main[place] | (cols.in_next[sel] & previous[place]))

        taxon_lut = self._taxon_lut(filters)
        if taxon_lut is not None:
            both(taxon_lut[cols.taxon[sel].astype(np.int64) + 1])
        if filters.geo is not None:
            both(cols.geo[sel] == filters.geo)
        if filters.photos is not None:
            both((cols.n_photos[sel] > 0) == filters.photos)
        if filters.quality_grades is not None:
            lut = np.array([q in filters.quality_grades for q in QUALITY_GRADES])
            both(lut[cols.quality[sel]])
        if filters.licenses is not None:
            lut = np.array([(lc or "") in filters.licenses for lc in LICENSES])
            both(lut[cols.license[sel]])
        if filters.updated_since is not None:
            both(cols.updated[sel] >= filters.updated_since)
        if filters.photo_licenses is not None:
            lut = np.array([(lc or "") in filters.photo_licenses for lc in LICENSES])
            hits = np.zeros(len(cols.ids), dtype=bool)
            hits[self._photos.obs[lut[self._photos.license]]] = True
            both(hits[sel])
        if filters.uuids is not None:
            hits = np.zeros(len(cols.ids), dtype=bool)
            hits[[pos for uuid, pos in self._uuid_positions().items() if uuid in filters.uuids]] = True
            both(hits[sel])
        if isinstance(sel, slice):
            if mask is None:
                return np.arange(lo, hi, dtype=np.int64)
            return np.flatnonzero(mask) + lo
        return sel if mask is None else sel[mask]

    def _uuid_positions(self) -> dict[str, int]:
        """Each observation's uuid -> its position (rendered once: a uuid is drawn with the
        rest of its observation; observations added later are rendered then)."""
        cached = getattr(self, "_uuids", None)
        if cached is None or len(cached) != len(self._cols.ids):
            cached = {
                json.loads(self._observation_text(pos))["uuid"]: pos for pos in range(len(self._cols.ids))
            }
            self._uuids: dict[str, int] = cached
        return cached

    def _taxon_lut(self, filters: Filters) -> npt.NDArray[np.bool_] | None:
        """Allowed taxa as a table indexed by taxon index + 1 (0 = no taxon), or None."""
        if filters.taxon_ids is None and filters.ranks is None and filters.identified is None:
            return None
        lut = np.ones(len(self.taxa) + 1, dtype=bool)
        if filters.identified is not None:
            lut[0] = not filters.identified
            lut[1:] = filters.identified
        if filters.ranks is not None:
            lut[0] = False
            lut[1:] &= np.array([t.rank in filters.ranks for t in self.taxa])
        if filters.taxon_ids is not None:
            wanted = set(filters.taxon_ids)
            if len(wanted) == 1 and not any(t.id in wanted for t in self.taxa):
                raise QueryError(422, f"Unknown taxon_id {filters.taxon_ids[0]}")
            lut[0] = False
            lut[1:] &= np.array([not wanted.isdisjoint(t.ancestor_ids) for t in self.taxa])
        return lut

    def _order(self, positions: IntArray, paging: Paging) -> IntArray:
        """Positions of the requested page, in the requested order."""
        offset = (paging.page - 1) * paging.per_page
        end = offset + paging.per_page
        if paging.per_page == 0 or offset >= len(positions):
            return np.empty(0, dtype=np.int64)
        if paging.order_by == "id":
            if paging.order == "asc":
                return positions[offset:end]
            return positions[::-1][offset:end]
        column = self._cols.created if paging.order_by == "created_at" else self._cols.updated
        key = (column[positions] << _ORDER_SHIFT) | positions
        if paging.order == "desc":
            key = -key
        if end < len(key):
            part = np.argpartition(key, end - 1)[:end]
            part = part[np.argsort(key[part])]
        else:
            part = np.argsort(key)
        return positions[part[offset:end]]

    def search(self, params: Mapping[str, str]) -> Page:
        """Answer a ``/v1/observations`` query (raises :class:`QueryError` like the API)."""
        paging = parse_paging(params)
        filters = parse_filters(params)
        with self._lock:
            positions = self._match(filters)
            page = self._order(positions, paging)
            return Page(len(positions), paging.page, paging.per_page, _id_list(self._cols.ids[page]))

    def matching_ids(self, params: Mapping[str, str]) -> list[int]:
        """Ground truth: every id matching the query's filters, ascending (paging ignored)."""
        filters = parse_filters(params)
        with self._lock:
            return _id_list(self._cols.ids[self._match(filters)])

    def count(self, params: Mapping[str, str]) -> int:
        """Number of observations matching the query's filters."""
        filters = parse_filters(params)
        with self._lock:
            return len(self._match(filters))

    # ------------------------------------------------------------------ rendering

    def _user(self, index: int) -> _User:
        user = self._users.get(index)
        if user is not None:
            return user
        r = random.Random(_mix(self.seed, index, 2))
        parts = r.sample(LOGIN_PARTS, r.randint(1, 3))
        login = "_".join(parts) + (str(r.randint(1, 999)) if r.random() < 0.5 else "")
        name = r.choice(NAMES)
        user_id = 1_000 + index * 7 + r.randint(0, 6)
        icon = f"{HOST_TOKENS['static']}/attachments/users/icons/{user_id}/thumb.jpg"
        fields = {
            **self._templates[0].user,
            "id": user_id,
            "login": login,
            "login_autocomplete": login,
            "login_exact": login,
            "name": name,
            "name_autocomplete": name,
            "icon": icon,
            "icon_url": icon.replace("thumb.jpg", "medium.jpg"),
            "observations_count": r.randint(1, 20_000),
            "identifications_count": r.randint(0, 50_000),
            "species_count": r.randint(1, 3_000),
            "created_at": _moment(_T0 - r.randint(0, 300_000_000), 0)[0],
        }
        user = _User(user_id, name or login, _dumps(fields))
        self._users[index] = user
        return user

    def photo_dimensions(self, photo_id: int) -> tuple[int, int]:
        """``original_dimensions`` (width, height) of a photo."""
        return _DIMENSIONS[_mix(self.seed, photo_id, 3) % len(_DIMENSIONS)]

    def _photo_text(self, j: int, t_index: int, name: str, created: int) -> tuple[int, str]:
        """Id and JSON text of one photo object (as in ``photos[]``)."""
        ph = self._photos
        photo_id = int(ph.ids[j])
        flags = int(ph.flags[j])
        lic = int(ph.license[j])
        if flags & _PH_PLACEHOLDER:
            path = _PLACEHOLDERS[1 if flags & _PH_PLACEHOLDER_KIND else 0].format(size="square")
            url = HOST_TOKENS["assets"] + path
        else:
            host = "static" if lic == 0 else "open"
            url = f"{HOST_TOKENS[host]}/photos/{photo_id}/square.{EXTENSIONS[int(ph.ext[j])]}"
            if flags & _PH_OLD_URL:
                url += f"?{created}"
        width, height = self.photo_dimensions(photo_id)
        attribution = self._attributions.get((name, lic))
        if self._photo_attributions and photo_id in self._photo_attributions:
            attribution = _dumps(self._photo_attributions[photo_id])
        elif attribution is None:
            attribution = _dumps(_attribution(name, LICENSES[lic]))
            self._attributions[(name, lic)] = attribution
        tail = self._photo_tails[t_index][1 if flags & _PH_PLACEHOLDER else 0]
        text = (
            f'{{"id":{photo_id},"license_code":{_LICENSE_JSON[lic]},"url":"{url}",'
            f'"attribution":{attribution},'
            f'"original_dimensions":{{"width":{width},"height":{height}}}{tail}}}'
        )
        return photo_id, text

    def _observation_text(self, pos: int) -> str:
        """The JSON text of one observation, with host tokens in its URLs.

        Shared parts (taxon, user, template remainder) are serialised once and spliced in, so
        a page of 200 renders in a few milliseconds even in a world of a million observations.
        """
        cols = self._cols
        obs_id = int(cols.ids[pos])
        r = random.Random(_mix(self.seed, obs_id, 4))
        t_index = r.randrange(len(self._templates))
        template = self._templates[t_index]
        user = self._user(r.randrange(self._user_pool))
        place_k = int(cols.place[pos])
        lat0, lng0, radius, tz_name, minutes, ancestors = self._place_meta[place_k]
        places = [*ancestors, self.place_ids[place_k]]
        if cols.in_next[pos]:
            places.append(self.place_ids[place_k + 1])
        taxon_k = int(cols.taxon[pos])
        taxon = self.taxa[taxon_k] if taxon_k >= 0 else None
        created = int(cols.created[pos])
        created_iso, created_details = _moment(created, minutes)
        observed_iso, observed_details = _moment(created - r.randint(0, 400 * 86_400), minutes)

        geo = bool(cols.geo[pos])
        obscured = geo and r.random() < 0.08
        accuracy = r.choice((None, 5, 8, 12, 20, 65, 500))
        lat, lng = lat0 + r.uniform(-1, 1) * radius, lng0 + r.uniform(-1, 1) * radius
        if geo:
            location: str | None = f"{lat:.10f},{lng:.10f}"
            geojson: dict[str, Any] | None = {"type": "Point", "coordinates": [lng, lat]}
            public_accuracy = r.randint(20_000, 30_000) if obscured else accuracy
            geoprivacy = "obscured" if obscured and r.random() < 0.7 else None
        else:
            location = geojson = public_accuracy = None
            geoprivacy = "private"

        roll = r.random()
        if taxon is not None and roll < 0.55:
            guess: str | None = taxon.json.get("preferred_common_name") or taxon.name
        elif roll < 0.9:
            guess = r.choice(self._texts)
        else:
            guess = None
        description = r.choice(self._texts) if r.random() < 0.3 else None
        time_observed = None if r.random() < 0.15 else observed_iso

        head = _dumps(
            {
                "id": obs_id,
                "uuid": _uuid(r),
                "quality_grade": QUALITY_GRADES[int(cols.quality[pos])],
                "species_guess": guess,
                "description": description,
                "community_taxon_id": (taxon.id if taxon is not None and r.random() < 0.8 else None),
                "ident_taxon_ids": list(taxon.ancestor_ids) if taxon is not None else [],
                "identifications_count": 0,
                "license_code": LICENSES[int(cols.license[pos])],
                "location": location,
                "geojson": geojson,
                "geoprivacy": geoprivacy,
                "obscured": obscured,
                "mappable": geo,
                "positional_accuracy": accuracy,
                "public_positional_accuracy": public_accuracy,
                "place_ids": sorted(places),
                "observed_on": observed_details["date"],
                "observed_on_string": (
                    observed_details["date"] if time_observed is None else time_observed.replace("T", " ")
                ),
                "observed_on_details": observed_details,
                "time_observed_at": time_observed,
                "created_at": created_iso,
                "created_at_details": created_details,
                "updated_at": _moment(int(cols.updated[pos]), minutes)[0],
                "time_zone_offset": _offset(minutes),
                "observed_time_zone": tz_name,
                "created_time_zone": tz_name,
                "uri": f"https://www.inaturalist.org/observations/{obs_id}",
                "reviewed_by": [user.id],
            }
        )
        if taxon is not None:
            ident_head = _dumps(
                {
                    "id": 400_000_000 + obs_id,
                    "uuid": _uuid(r),
                    "created_at": created_iso,
                    "created_at_details": created_details,
                    "taxon_id": taxon.id,
                    "current": True,
                }
            )
            identifications = (
                "["
                + _splice(
                    ident_head,
                    self._ident_shells[t_index],
                    f'"user":{user.text}',
                    f'"taxon":{self._taxon_texts[taxon_k][1]}',
                )
                + "]"
            )
            taxon_text = self._taxon_texts[taxon_k][0]
        else:
            identifications = "[]"
            taxon_text = "null"
        photos = [self._photo_text(j, t_index, user.name, created) for j in self._photo_rows(pos)]
        with_photo_id = "photo_id" in template.observation_photo
        edited = self._photo_positions
        links = [
            f'{{"id":{photo_id - 30_000_000},'
            f'"position":{_dumps(edited.get(photo_id, position)) if edited else position},'
            f'"uuid":"{_uuid(r)}",'
            + (f'"photo_id":{photo_id},' if with_photo_id else "")
            + f'"photo":{text}}}'
            for position, (photo_id, text) in enumerate(photos)
        ]
        text = _splice(
            head,
            f'"taxon":{taxon_text}',
            f'"user":{user.text}',
            f'"identifications":{identifications}',
            f'"photos":[{",".join(text for _, text in photos)}]',
            f'"observation_photos":[{",".join(links)}]',
            self._shells[t_index],
        )
        overrides = self._overrides.get(obs_id)
        if overrides:
            merged = json.loads(text)
            merged.update(overrides)
            text = _dumps(merged)
        return text

    def render_results_bytes(
        self, ids: Iterable[int], hosts: Mapping[str, str] | None = None, *, only_id: bool = False
    ) -> bytes:
        """The UTF-8 JSON of a ``results`` list for these ids (compact, like the API)."""
        if only_id:
            return _dumps([{"id": int(i)} for i in ids]).encode()
        with self._lock:
            items = [self._observation_text(self._position(int(i))).encode() for i in ids]
        return render_hosts(b"[" + b",".join(items) + b"]", hosts)

    def render_results(
        self, ids: Iterable[int], hosts: Mapping[str, str] | None = None, *, only_id: bool = False
    ) -> str:
        """The JSON text of a ``results`` list for these ids (compact, like the API)."""
        return self.render_results_bytes(ids, hosts, only_id=only_id).decode()

    def render_page(self, page: Page, hosts: Mapping[str, str] | None, *, only_id: bool) -> bytes:
        """The full response body for a :class:`Page`."""
        results = self.render_results_bytes(page.ids, hosts, only_id=only_id)
        head = (
            f'{{"total_results":{page.total_results},"page":{page.page},"per_page":{page.per_page},"results":'
        )
        return head.encode() + results + b"}"

    def render_taxa(self, ids: Iterable[int], hosts: Mapping[str, str] | None = None) -> bytes:
        """The body of /v1/taxa/{ids}: the taxa known among ``ids`` (at most TAXA_PER_REQUEST,
        the first ones, as the API says), in the order asked; unknown ids are left out."""
        known = taxa_by_id()
        found = [known[i] for i in list(dict.fromkeys(ids))[:TAXA_PER_REQUEST] if i in known]
        body = _dumps({"total_results": len(found), "page": 1, "per_page": len(found), "results": found})
        return render_hosts(body.encode(), hosts)

    def observation_json(self, obs_id: int, hosts: Mapping[str, str] | None = None) -> dict[str, Any]:
        """One observation exactly as the server would send it (hosts default to the real ones)."""
        return json_object(json.loads(self.render_results([obs_id], hosts))[0])

    def observations(self, hosts: Mapping[str, str] | None = None) -> Iterator[dict[str, Any]]:
        """Every observation as served, in id order (ground truth for small worlds)."""
        ids = self.ids
        for start in range(0, len(ids), 200):
            yield from json.loads(self.render_results(ids[start : start + 200], hosts))

    # ------------------------------------------------------------------ photos

    def _photo_pos(self, photo_id: int) -> int | None:
        j = int(np.searchsorted(self._photos.ids, photo_id))
        if j < len(self._photos.ids) and int(self._photos.ids[j]) == photo_id:
            return j
        return None

    def _photo_rows(self, pos: int) -> range | list[int]:
        """Rows of ``_photos`` that are the photos of the observation at ``pos``, in order."""
        start = int(self._cols.photo_start[pos])
        rows = range(start, start + int(self._cols.n_photos[pos]))
        if not self._removed_photos:
            return rows
        return [j for j in rows if int(self._photos.ids[j]) not in self._removed_photos]

    def photo_ids(self, obs_id: int) -> list[int]:
        """The photo ids of an observation, in the order the API lists them."""
        with self._lock:
            return [int(self._photos.ids[j]) for j in self._photo_rows(self._position(obs_id))]

    def photo_info(self, photo_id: int) -> PhotoInfo | None:
        """Facts about a photo, or None for an unknown id."""
        with self._lock:
            j = self._photo_pos(photo_id)
            if j is None or photo_id in self._removed_photos:
                return None
            flags = int(self._photos.flags[j])
            license_code = LICENSES[int(self._photos.license[j])]
            placeholder = bool(flags & _PH_PLACEHOLDER)
            # Files sit where the licence puts them; a photo "moved" is listed at the other host.
            on_static = (license_code is None) != bool(flags & _PH_MOVED)
            host = "assets" if placeholder else ("static" if on_static else "open")
            width, height = self.photo_dimensions(photo_id)
            return PhotoInfo(
                id=photo_id,
                observation_id=int(self._cols.ids[int(self._photos.obs[j])]),
                ext=EXTENSIONS[int(self._photos.ext[j])],
                host=host,
                license_code=license_code,
                placeholder=placeholder,
                width=width,
                height=height,
            )

    def photo_status(self, photo_id: int, size: str, host: str | None = None) -> int:
        """HTTP status of a photo file: 200, 404 (unknown or missing size) or 403.

        403 answers a hidden (placeholder) photo, a photo asked on the other photo host (as
        after a licence change), and some missing sizes (the other variant the real hosts use).
        """
        info = self.photo_info(photo_id)
        if info is None or size not in images.SIZES:
            return 404
        if info.placeholder or (host is not None and host != info.host):
            return 403
        roll = _unit(self.seed, photo_id, images.SIZES.index(size), 5)
        if roll < self.missing_size_rate:
            return 403 if roll < self.missing_size_rate * 0.3 else 404
        return 200

    def photo_bytes(self, photo_id: int, size: str) -> bytes | None:
        """The file of one photo size, or None when that size is missing (see photo_status)."""
        if self.photo_status(photo_id, size) != 200:
            return None
        key = (photo_id, size)
        with self._lock:
            cached = self._bytes_cache.get(key)
            if cached is not None:
                self._bytes_cache.move_to_end(key)
                return cached
        info = self.photo_info(photo_id)
        assert info is not None
        width, height = images.rendition_dimensions(size, info.width, info.height)
        fraction = _unit(self.seed, photo_id, 6)
        length = images.byte_length(size, fraction, self.photo_scale)
        data = images.image_bytes(
            _mix(self.seed, photo_id, images.SIZES.index(size), 7), info.ext, width, height, length
        )
        with self._lock:
            self._bytes_cache[key] = data
            while len(self._bytes_cache) > 32:
                self._bytes_cache.popitem(last=False)
        return data

    # ------------------------------------------------------------------ mutations

    def add_observations(self, place_id: int, n: int) -> list[int]:
        """Add ``n`` new observations to a place (larger ids, created/updated now)."""
        if place_id not in self._place_index:
            raise KeyError(f"unknown place {place_id}")
        with self._lock:
            self._generation += 1
            rng = np.random.default_rng([self.seed, 0xADD, self._generation])
            cols, old = self._cols, len(self._cols.ids)
            place = np.full(n, self._place_index[place_id], dtype=np.int32)
            drawn = self._draw(rng, place)
            last_id = int(cols.ids[-1]) if old else _FIRST_ID
            ids = last_id + np.cumsum(rng.integers(1, 6, n), dtype=np.int64)
            latest = int(cols.updated.max()) + 1 if old else 0
            now = np.full(n, max(int(time.time()), latest), dtype=np.int64)
            first_photo = int(self._photos.ids[-1]) if len(self._photos.ids) else _FIRST_PHOTO_ID
            photos = self._draw_photos(rng, drawn["n_photos"], drawn["license"], old, first_photo)
            start = len(self._photos.ids) + np.cumsum(drawn["n_photos"], dtype=np.int64) - drawn["n_photos"]
            self._cols = _Columns(
                ids=_concat(cols.ids, ids),
                place=_concat(cols.place, drawn["place"]),
                in_next=_concat(cols.in_next, drawn["in_next"]),
                geo=_concat(cols.geo, drawn["geo"]),
                taxon=_concat(cols.taxon, drawn["taxon"]),
                quality=_concat(cols.quality, drawn["quality"]),
                license=_concat(cols.license, drawn["license"]),
                n_photos=_concat(cols.n_photos, drawn["n_photos"]),
                photo_start=_concat(cols.photo_start, start),
                created=_concat(cols.created, now),
                updated=_concat(cols.updated, now),
            )
            ph = self._photos
            self._photos = _Photos(
                ids=_concat(ph.ids, photos.ids),
                obs=_concat(ph.obs, photos.obs),
                license=_concat(ph.license, photos.license),
                ext=_concat(ph.ext, photos.ext),
                flags=_concat(ph.flags, photos.flags),
            )
            self.place_counts[place_id] += n
            self._index_places()
            return _id_list(ids)

    def edit(self, obs_id: int, **changes: Any) -> None:
        """Change fields of an observation and bump its ``updated_at`` to now.

        ``quality_grade``, ``license_code``, ``taxon_id`` (a world taxon id or None) and
        ``location`` (None makes it private; "lat,lng" makes it public) change what the
        filters see; any other key replaces that top-level field in the JSON as given.
        """
        with self._lock:
            pos = self._position(obs_id)
            cols = self._cols
            overrides = self._overrides.setdefault(obs_id, {})
            for key, value in changes.items():
                if key == "quality_grade":
                    cols.quality[pos] = QUALITY_GRADES.index(value)
                elif key == "license_code":
                    cols.license[pos] = LICENSES.index(value)
                elif key in ("taxon_id", "taxon") and (key == "taxon_id" or value is None):
                    cols.taxon[pos] = -1 if value is None else self._taxon_index[value]
                elif key == "location":
                    cols.geo[pos] = value is not None
                    overrides.pop("location", None)
                    overrides.pop("geojson", None)
                    if value is not None:
                        lat, lng = (float(v) for v in str(value).split(","))
                        overrides["location"] = value
                        overrides["geojson"] = {"type": "Point", "coordinates": [lng, lat]}
                else:
                    overrides[key] = value
            cols.updated[pos] = max(int(time.time()), int(cols.created[pos]))

    def edit_photo(self, photo_id: int, **changes: Any) -> None:
        """Change a photo as iNaturalist does, and bump its observation's ``updated_at`` to now.

        ``license_code`` (a code, or None for all rights reserved): its licence, attribution
        and URL follow, to the open-data bucket for a licence and the static host for none,
        and its files move with it. ``moved=True``: its files are already on the other host
        than the URL the API lists, which answers 403 (the API lagging behind a licence
        change; a ``license_code`` edit ends it). ``placeholder=True``: hidden (copyright
        flagged), listed at a placeholder URL. ``removed=True``: no longer one of its
        observation's photos. ``position`` (an int, or None for null): its observation_photos
        position as the API lists it; the API's order of the photos does not change.
        ``attribution``: the text the API gives instead of the one made from the licence.
        """
        bits = {"moved": _PH_MOVED, "placeholder": _PH_PLACEHOLDER}
        with self._lock:
            j = self._photo_pos(photo_id)
            if j is None:
                raise KeyError(f"no photo {photo_id}")
            ph = self._photos
            for key, value in changes.items():
                if key == "license_code":
                    ph.license[j] = LICENSES.index(value)
                    ph.flags[j] = int(ph.flags[j]) & ~_PH_MOVED
                elif key in bits:
                    ph.flags[j] = int(ph.flags[j]) | bits[key] if value else int(ph.flags[j]) & ~bits[key]
                elif key == "removed":
                    (self._removed_photos.add if value else self._removed_photos.discard)(photo_id)
                elif key == "position":
                    self._photo_positions[photo_id] = value
                elif key == "attribution":
                    self._photo_attributions[photo_id] = value
                else:
                    raise TypeError(f"a photo has no editable {key!r}")
            pos = int(ph.obs[j])
            self._cols.updated[pos] = max(int(time.time()), int(self._cols.created[pos]))
