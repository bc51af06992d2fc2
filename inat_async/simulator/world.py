"""The simulated data: a seeded, deterministic population of observations and photos.

A :class:`World` keeps only compact per-observation and per-photo columns (numpy arrays) for the
attributes the API filters on, and derives every other field on demand from ``(seed, id)`` and the
recorded templates. That keeps a million observations cheap to build and to hold, while a page of
200 is rendered in milliseconds. The same filter code answers the server and the ground-truth
helpers (:meth:`World.matching_ids`), so tests compare a harvest against exactly what was served.
"""

from __future__ import annotations

from . import images
from .common import (
    _PH_MOVED,
    _PH_PLACEHOLDER,
    EXTENSIONS,
    LICENSES,
    QUALITY_GRADES,
    TAXA_PER_REQUEST,
    Page,
    PhotoInfo,
    _mix,
    _unit,
    render_hosts,
)
from .matching import Matching

__all__ = ["LICENSES", "QUALITY_GRADES", "TAXA_PER_REQUEST", "Page", "PhotoInfo", "World", "render_hosts"]


class World(Matching):
    """A seeded population of observations over some places, and their photos.

    ``places`` maps place id -> number of observations whose main place it is; a fraction
    ``overlap`` of each place's observations also lie in the next place of the dict (the last
    place has no next one). A fraction ``nonmatching`` fails the default harvest filters
    (geo, identified, rank=species): a third private, a third without taxon, a third genus-rank.

    The parts by job: generation.py (the columns), rendering.py (JSON), matching.py (queries);
    serving a photo file is here.
    """

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

    def photo_length(self, photo_id: int, size: str) -> int:
        """The length in bytes of a photo's file of ``size`` (as served when it is served)."""
        return images.byte_length(size, _unit(self.seed, photo_id, 6), self.photo_scale)

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
        length = self.photo_length(photo_id, size)
        data = images.image_bytes(
            _mix(self.seed, photo_id, images.SIZES.index(size), 7), info.ext, width, height, length
        )
        with self._lock:
            self._bytes_cache[key] = data
            while len(self._bytes_cache) > 32:
                self._bytes_cache.popitem(last=False)
        return data
