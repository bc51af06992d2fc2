"""The producer: pages /v1/observations by id (keyset), committing each page to the state.

Never ``page=``: the API refuses results past 10,000. Pages are asked for in id order with
``id_above`` set to the largest id committed. One cursor waits on every page in turn, and
with a real page taking one to three seconds it cannot even use 60 requests a minute, so the
id space of a query is split into ranges (``id_above`` and ``id_below``) paged at once; a
cursor that finishes takes half of the largest range left (work stealing). Every range's
cursor is in the state, so a resumed harvest continues each of them.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from .errors import ServerError
from .http import Http
from .model import check_observations, usable_id
from .photos import PhotoFile, photo_files
from .progress import Progress
from .records import observation_row
from .settings import Settings
from .state import Cursor, State

log = logging.getLogger("inat_async")

# Many places go into one query (the API ORs a comma list), in chunks that keep URLs short.
PLACES_PER_QUERY = 100


def queries(settings: Settings, extra: dict[str, str] | None = None) -> Iterator[tuple[str, dict[str, str]]]:
    """(stream key, filters) for each query the harvest pages; the key names its cursors."""
    places = settings.places
    for start in range(0, len(places), PLACES_PER_QUERY):
        chunk = ",".join(map(str, places[start : start + PLACES_PER_QUERY]))
        params = {**settings.filters, **(extra or {}), "place_id": chunk}
        yield urlencode(sorted(params.items())), params


@dataclass
class _Range:
    """A cursor being paged: ids in (last_id, hi); ``span`` is the id span of its last page."""

    cursor: Cursor
    last_id: int
    hi: int | None
    done: bool
    busy: bool = False
    span: int | None = None

    def remaining(self) -> int:
        return 0 if self.hi is None or self.done else self.hi - self.last_id


class Pager:
    """Pages every query of the harvest into the state; ``on_page`` is told of new photos."""

    def __init__(
        self,
        settings: Settings,
        state: State,
        http: Http,
        progress: Progress,
        on_page: Callable[[], None],
        extra: dict[str, str] | None = None,
    ):
        self.settings = settings
        self.state = state
        self.http = http
        self.progress = progress
        self.on_page = on_page
        self.extra = extra
        self.url = settings.api_url.rstrip("/") + "/observations"

    async def run(self) -> None:
        for key, params in queries(self.settings, self.extra):
            cursors = self.state.cursors(key) or await self._plan(key, params)
            self.progress.expected += sum(c.total or 0 for c in cursors)
            ranges = [_Range(c, c.last_id, c.hi, c.done) for c in cursors]
            async with asyncio.TaskGroup() as group:
                for _ in range(self.settings.ranges):
                    group.create_task(self._take_ranges(ranges, params))

    async def _plan(self, key: str, params: dict[str, str]) -> list[Cursor]:
        """Split the query's id span into ranges, from its smallest and largest ids."""
        n = self.settings.ranges
        if n == 1:
            return [self.state.add_cursor(key, 0, None)]
        # Both at once; a TaskGroup, so that if one fails (a block, say) the other is cancelled.
        async with asyncio.TaskGroup() as group:
            ends = [
                group.create_task(self._get({**params, "order_by": "id", "order": order, "per_page": "1"}))
                for order in ("desc", "asc")
            ]
        newest, oldest = (task.result() for task in ends)
        total = newest.get("total_results")
        if not newest["results"]:
            return [self.state.add_cursor(key, 0, None, total)]
        low, high = _first_id(oldest["results"]), _first_id(newest["results"])
        if low is None or high is None or high < low:
            raise ServerError("the API's first and last ids of a query make no sense")
        # Range i holds the ids in (bounds[i], bounds[i + 1]]; id_below is strict, hence + 1.
        bounds = [low - 1 + (high - low + 1) * i // n for i in range(n + 1)]
        spans = {lo: top + 1 for lo, top in itertools.pairwise(bounds) if top > lo}
        # Observations created during the harvest get ids above ``high``: one open tail.
        spans[high] = None
        for lo, hi in spans.items():
            self.state.add_cursor(key, lo, hi, total if lo == low - 1 else None)
        return self.state.cursors(key)

    async def _take_ranges(self, ranges: list[_Range], params: dict[str, str]) -> None:
        while (r := self._claim(ranges)) is not None:
            try:
                await self._page_range(r, params)
            finally:
                r.busy = False

    def _claim(self, ranges: list[_Range]) -> _Range | None:
        """A range nobody pages, or else half of the largest one being paged."""
        for r in ranges:
            if not r.busy and not r.done:
                r.busy = True
                return r
        victims = [r for r in ranges if r.busy and r.span and r.remaining() > 3 * r.span]
        if not victims:
            return None
        victim = max(victims, key=_Range.remaining)
        assert victim.hi is not None
        mid = (victim.last_id + victim.hi) // 2
        cursor = self.state.split_cursor(victim.cursor, mid)
        victim.hi = mid
        stolen = _Range(cursor, cursor.last_id, cursor.hi, False, busy=True)
        ranges.append(stolen)
        return stolen

    async def _page_range(self, r: _Range, params: dict[str, str]) -> None:
        while not r.done:
            query = {
                **params,
                "order_by": "id",
                "order": "asc",
                "per_page": str(self.settings.per_page),
                "id_above": str(r.last_id),
            }
            if r.hi is not None:
                query["id_below"] = str(r.hi)
            page = await self._get(query)
            if r.cursor.total is None and r.last_id == 0 and r.hi is None:
                # A lone cursor learns the query's size from its first page.
                total = page.get("total_results")
                if isinstance(total, int):
                    self.state.set_total(r.cursor, total)
                    self.progress.expected += total
            self._save(r, page["results"])

    async def _get(self, query: dict[str, str]) -> dict[str, Any]:
        return await self.http.get_json(self.url, query)

    def _save(self, r: _Range, results: list[Any]) -> None:
        """Commit one page of range ``r``. Its ``hi`` may have shrunk while the page was on
        its way (a steal): what lies above it is the thief's, and reaching it ends ``r``."""
        checked = check_observations(results)
        ids = checked.ids  # of every observation, skipped ones too: paging moves past them
        self.state.record_rejected(checked.rejected, [fit.id for fit in checked.fits])
        if checked.rejected:
            first = checked.rejected[0]
            log.warning(
                "skipped %d malformed on this page (e.g. %s %s: %s)",
                len(checked.rejected), first.kind, first.key, first.reason,
            )  # fmt: skip
        if results and not ids:
            raise ServerError("the API answered a page without one valid observation id")
        in_range = [i for i in ids if r.last_id < i and (r.hi is None or i < r.hi)]
        fresh = [fit for fit in checked.fits if r.last_id < fit.id and (r.hi is None or fit.id < r.hi)]
        if ids and not in_range and max(ids) <= r.last_id:
            raise ServerError(
                f"the API answered ids that are not above id_above={r.last_id}: "
                "it does not page like iNaturalist's"
            )
        done = not results or (r.hi is not None and max(ids) >= r.hi - 1)
        last_id = max(in_range, default=r.last_id)
        s = self.settings
        files = [f for fit in fresh for f in files_of(fit.data, s)]
        added = self.state.save_page(
            r.cursor,
            [observation_row(fit.data, s.places) for fit in fresh],
            [fit.raw for fit in fresh],
            files,
            last_id,
            done,
        )
        pending = added["pending"]
        log.debug("page above id %d: %d observations, %d files to fetch", r.last_id, len(fresh), pending)
        if fresh:
            r.span = max(1, last_id - r.last_id)
        r.last_id, r.done = last_id, done
        self.progress.page_saved(len(fresh), added)
        self.on_page()


def files_of(observation: dict[str, Any], settings: Settings) -> list[PhotoFile]:
    """The photo files the settings ask of one observation, judged fetchable or skipped."""
    if settings.no_photos:
        return []
    s = settings
    return list(
        photo_files(
            observation,
            s.sizes,
            all_photos=s.all_photos,
            allowed_hosts=s.photo_hosts,
            licenses=s.photo_licenses,
        )
    )


def _first_id(results: list[Any]) -> int | None:
    return usable_id(results[0]) if results else None
