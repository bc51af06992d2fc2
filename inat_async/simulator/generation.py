"""The world's generation: its places, the columns of its observations and photos drawn
from the seed, the index of each place, and the changes a test makes (added, edited)."""

from __future__ import annotations

import random
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from .common import (
    _EXT_P,
    _FIRST_ID,
    _FIRST_PHOTO_ID,
    _LICENSE_P,
    _PH_MOVED,
    _PH_OLD_URL,
    _PH_PLACEHOLDER,
    _PH_PLACEHOLDER_KIND,
    _T0,
    _T1,
    _TIMEZONES,
    _USER_POOL,
    ANCESTOR_PLACES,
    EXTENSIONS,
    KNOWN_PLACES,
    LICENSES,
    QUALITY_GRADES,
    IntArray,
    _Columns,
    _concat,
    _dumps,
    _id_list,
    _mix,
    _photo_tails,
    _Photos,
    _User,
)
from .query import RESULT_WINDOW
from .templates import Taxon, observation_templates, taxa
from .text import HARD_TEXT, TRICKY_NA


class Generation:
    """The columns of a world: drawn from its seed, indexed by place, changed by edits."""

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
        result_window: int = RESULT_WINDOW,
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
        # page * per_page may not pass it (10,000, the real API's); smaller to test past it fast.
        self.result_window = result_window
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
