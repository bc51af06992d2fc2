"""The API's filters and orders over the world's columns: which observations a query
matches, counted or in pages."""

from __future__ import annotations

import json
from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from .common import _ORDER_SHIFT, LICENSES, QUALITY_GRADES, IntArray, Page, _id_list
from .query import Filters, Paging, QueryError, parse_filters, parse_paging
from .rendering import Rendering


class Matching(Rendering):
    """Queries over the columns: the same code answers the server and the tests' ground truth."""

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
        paging = parse_paging(params, self.result_window)
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
