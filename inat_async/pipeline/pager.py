"""The producer: pages /v1/observations by id (keyset), committing each page to the state.

Never ``page=``: the API refuses results past 10,000. Pages are asked for in id order with
``id_above`` set to the largest id committed. One cursor waits on every page in turn, and
with a real page taking one to three seconds it cannot even use 60 requests a minute, so the
id space of a query is split into ranges (``id_above`` and ``id_below``) paged at once; a
cursor that finishes takes half of the largest range left (work stealing). Every range's
cursor is in the state, so a resumed harvest continues each of them.

An empty page alone does not end a range: the API has been seen to answer a page, once, with
``{"total_results":0,"results":[]}``. A range ends when a ``per_page=0`` count of what is left
above its last id says 0 (asked after a short or empty page, in place of the empty page that
used to end it, so it costs no extra request). Each page must be in ascending id order inside
its range, or the harvest stops: a server that does not page like iNaturalist's would
otherwise be harvested in part and called complete. Once a query is paged, it is reconciled
with the API's count of it (see reconcile.py), and the gaps found are paged again.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlencode

from inat_async.config import Settings
from inat_async.errors import ServerError
from inat_async.model import Checked, PhotoStatus, check_observations, usable_id
from inat_async.net.http import Http
from inat_async.net.pace import parallel_ranges
from inat_async.photos import PhotoFile, photo_files
from inat_async.pipeline.progress import Progress
from inat_async.pipeline.reconcile import Reconciler
from inat_async.records import observation_row
from inat_async.store.state import Cursor, State

log = logging.getLogger("inat_async")

# Many places go into one query (the API ORs a comma list), in chunks that keep URLs short.
PLACES_PER_QUERY = 100
#: An empty page above a range's last id while a count says ids are left: asked again this
#: many times, after growing pauses, before the range is left to reconciliation.
EMPTY_RETRIES = 3
#: Page, reconcile, page the gaps, reconcile afresh: what is still missing then is reported.
PASSES = 2
T = TypeVar("T")
_NOT_LIKE_INAT = "does not page like iNaturalist's (order_by=id&order=asc with id_above)"


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
    ending: bool = False  # asking what is left above last_id, or a page likely its last

    def remaining(self) -> int:
        return 0 if self.hi is None or self.done else self.hi - self.last_id

    def last_page_likely(self) -> bool:
        """The next page likely reaches ``hi``: the last one spanned as many ids."""
        return self.hi is not None and self.span is not None and self.remaining() <= self.span

    def winding_up(self) -> bool:
        return self.done or self.ending


@dataclass
class _EarlyCount:
    """The query's count that reconciliation starts with, asked with the last requests of
    its ranges (when each is done, or asks a count or a page that likely ends it) rather
    than one latency after them, and kept if no page was asked after it (``pages``: pages
    asked then). Paging, not latency, then sets the pace to the end."""

    pages: int
    total: int


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
        # A short page is taken for a range's last until a count shows this server's are not.
        self.trust_short_pages = True
        self.pages_asked = 0
        self.early: _EarlyCount | None = None

    async def run(self) -> dict[str, int]:
        """Page and reconcile every query; returns, by query, the observations the API counts
        that could not be found (none when the harvest is complete)."""
        unfound: dict[str, int] = {}
        for key, params in queries(self.settings, self.extra):
            missing = await self._harvest_query(key, params)
            if missing:
                unfound[describe(params)] = missing
        return unfound

    async def _harvest_query(self, key: str, params: dict[str, str]) -> int:
        cursors = self.state.cursors(key) or await self._plan(key, params)
        self.progress.expect(sum(c.total or 0 for c in cursors))
        if self.state.unfound(key) == 0:  # paged and reconciled complete by an earlier run
            return 0

        def count(lo: int, hi: int | None) -> Awaitable[int]:
            return self._count(params, lo, hi)

        reconciler = Reconciler(self.state, key, count, self.settings.per_page, self._pause(0))
        for attempt in range(1, PASSES + 1):
            await self._page_ranges(key, params)
            missing, gaps = await reconciler.locate()
            if not missing or attempt == PASSES:
                break
            what = describe(params)
            log.info("%s: %d counted but not stored; paging %d id span(s) again", what, missing, len(gaps))
            self.state.reopen(key, gaps)
        if missing:
            log.warning("%s: %d observations the API counts could not be found", describe(params), missing)
        self.state.set_unfound(key, missing)
        return missing

    async def _page_ranges(self, key: str, params: dict[str, str]) -> None:
        ranges = [_Range(c, c.last_id, c.hi, c.done) for c in self.state.cursors(key)]
        if all(r.done for r in ranges):
            return
        self.early = None
        total = max((c.total or 0 for c in self.state.cursors(key)), default=0)
        async with asyncio.TaskGroup() as group:
            for _ in range(self._parallel(total)):
                group.create_task(self._take_ranges(ranges, params))
        early = self.early
        # Kept if no page was asked after it; a 0 is asked again (the API's transient empty
        # answer says 0 too, and a query's end is not taken on one answer).
        if early is not None and early.pages == self.pages_asked and early.total > 0:
            self.state.cache_count(key, 0, None, early.total)

    async def _plan(self, key: str, params: dict[str, str]) -> list[Cursor]:
        """Split the query's id span into ranges, from its smallest and largest ids."""
        if self.settings.ranges == 1:
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
        if low == high and _int(total) > 1 and _int(oldest.get("total_results")) > 1:
            # Two or more match, yet the first id in ascending order is the first in descending.
            raise ServerError(f"the server at {self.url} {_NOT_LIKE_INAT}: it ignores order=asc")
        n = self._parallel(_int(total))
        # Range i holds the ids in (bounds[i], bounds[i + 1]]; id_below is strict, hence + 1.
        bounds = [low - 1 + (high - low + 1) * i // n for i in range(n + 1)]
        spans: dict[int, int | None] = {lo: top + 1 for lo, top in itertools.pairwise(bounds) if top > lo}
        # Observations created during the harvest get ids above ``high``: one open tail.
        spans[high] = None
        for lo, hi in spans.items():
            self.state.add_cursor(key, lo, hi, total if lo == low - 1 else None)
        return self.state.cursors(key)

    def _parallel(self, total: int) -> int:
        """Ranges paged at once for a query of ``total`` observations (net.pace.parallel_ranges)."""
        s = self.settings
        return parallel_ranges(s.ranges, s.limits, total / s.per_page)

    async def _take_ranges(self, ranges: list[_Range], params: dict[str, str]) -> None:
        while (r := self._claim(ranges)) is not None:
            try:
                await self._page_range(r, ranges, params)
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

    async def _page_range(self, r: _Range, ranges: list[_Range], params: dict[str, str]) -> None:
        if r.hi is None and 0 < r.cursor.lo == r.last_id:
            # The open range above the largest id the plan saw holds only what was created
            # since: usually nothing, which a count says in one request, as an empty page did.
            await self._after_count(r, await self._count_left(r, ranges, params), empty=0)
        empty = 0  # empty pages in a row
        while not r.done:
            asked_hi = r.hi
            self.pages_asked += 1
            asking = self._get(self._page_query(params, r))
            r.ending = r.last_page_likely()
            try:
                page = await self._with_count(asking, params, r.ending and self._winding_up(ranges, r))
            finally:
                r.ending = False
            results = page["results"]
            checked = self._checked(results, r.last_id, asked_hi)
            self._learn_total(r, page, results)
            self._save(r, checked)
            empty = 0 if results else empty + 1
            if not r.done and self._may_be_the_end(len(results)):
                await self._after_count(r, await self._count_left(r, ranges, params), empty)

    async def _count_left(self, r: _Range, ranges: list[_Range], params: dict[str, str]) -> int:
        """The API's count of what is left to page in ``r``."""
        whole = r.last_id == 0 and r.hi is None  # the query's count itself, which 0 does not end
        r.ending = True
        try:
            counting = self._count(params, r.last_id, r.hi)
            return await self._with_count(counting, params, not whole and self._winding_up(ranges, r))
        finally:
            r.ending = False

    async def _after_count(self, r: _Range, left: int, empty: int) -> None:
        """After a short or an empty page (or before the open range's first), the range ends
        if the count of what is left above its last id says 0; after an empty page that the
        count belies, it is asked again after a pause."""
        if left == 0:
            self._end(r)
        elif not empty:  # page on
            if r.last_id != r.cursor.lo:  # after a short page that was not the end
                self.trust_short_pages = False
        elif empty > EMPTY_RETRIES:
            log.warning("ids above %d are counted but never paged: left to reconciliation", r.last_id)
            self._end(r)
        else:
            log.info("an empty page above id %d while some are counted: asking again", r.last_id)
            await asyncio.sleep(self._pause(empty))

    def _winding_up(self, ranges: list[_Range], r: _Range) -> bool:
        """Every range but ``r`` done or at its likely last request, and no early count asked
        since the last page was."""
        asked = self.early is not None and self.early.pages == self.pages_asked
        return not asked and all(o.winding_up() for o in ranges if o is not r)

    async def _with_count(self, work: Coroutine[Any, Any, T], params: dict[str, str], also: bool) -> T:
        """``work``; and at the same time, when ``also``, the query's count (see _EarlyCount)."""
        if not also:
            return await work
        early = self.early = _EarlyCount(self.pages_asked, total=0)  # asked: no other meanwhile
        async with asyncio.TaskGroup() as group:
            done = group.create_task(work)
            total = group.create_task(self._count(params, 0, None))
        early.total = total.result()
        return done.result()

    def _learn_total(self, r: _Range, page: dict[str, Any], results: list[Any]) -> None:
        """A lone cursor learns the query's size from its first page."""
        if results and r.cursor.total is None and r.last_id == 0 and r.hi is None:
            total = page.get("total_results")
            if isinstance(total, int):
                self.state.set_total(r.cursor, total)
                self.progress.expect(total)

    def _page_query(self, params: dict[str, str], r: _Range) -> dict[str, str]:
        query = {
            **params,
            "order_by": "id",
            "order": "asc",
            "per_page": str(self.settings.per_page),
            "id_above": str(r.last_id),
        }
        if r.hi is not None:
            query["id_below"] = str(r.hi)
        return query

    def _may_be_the_end(self, n: int) -> bool:
        """An empty page, or a short one (where short pages only come last): time to count."""
        return n == 0 or (n < self.settings.per_page and self.trust_short_pages)

    def _pause(self, attempt: int) -> float:
        return min(self.settings.backoff_initial * 2.0 ** max(attempt - 1, 0), self.settings.max_backoff)

    async def _count(self, params: dict[str, str], above: int, below: int | None) -> int:
        """The API's count of the query's ids in (above, below), one per_page=0 request."""
        query = {**params, "order_by": "id", "order": "asc", "per_page": "0", "id_above": str(above)}
        if below is not None:
            query["id_below"] = str(below)
        total = (await self._get(query)).get("total_results")
        if not isinstance(total, int) or isinstance(total, bool) or total < 0:
            raise ServerError(f"the API answered a count that is not a count: {str(total)[:50]}")
        return total

    async def _get(self, query: dict[str, str]) -> dict[str, Any]:
        return await self.http.get_json(self.url, query, raw_results=True)

    def _checked(self, results: list[Any], above: int, below: int | None) -> Checked:
        """The page checked (model.check_observations): its ids, malformed observations'
        too, must be in ascending order inside the range asked for (id_above, id_below),
        else this is not a server to page by id."""
        checked = check_observations(results)
        ids = checked.ids  # of every observation, skipped ones too: paging moves past them
        if results and not ids:
            raise ServerError("the API answered a page without one valid observation id")
        ascending = all(a < b for a, b in itertools.pairwise(ids))
        if not ascending or (ids and (ids[0] <= above or (below is not None and ids[-1] >= below))):
            span = f"id_above={above}" + (f"&id_below={below}" if below is not None else "")
            raise ServerError(
                f"the server at {self.url} {_NOT_LIKE_INAT}: asked for {span}, it answered ids "
                f"{_sample(ids)}; stopping, as a harvest paged this way would miss observations"
            )
        self.state.record_rejected(checked.rejected, [fit.id for fit in checked.fits])
        if checked.rejected:
            first = checked.rejected[0]
            log.warning(
                "skipped %d malformed on this page (e.g. %s %s: %s)",
                len(checked.rejected), first.kind, first.key, first.reason,
            )  # fmt: skip
        return checked

    def _save(self, r: _Range, checked: Checked) -> None:
        """Commit one page of range ``r``. Its ``hi`` may have shrunk while the page was on
        its way (a steal): what lies above it is the thief's, and reaching it ends ``r``."""
        ids = checked.ids
        fresh = [fit for fit in checked.fits if r.hi is None or fit.id < r.hi]
        in_range = [i for i in ids if r.hi is None or i < r.hi]
        done = r.hi is not None and bool(ids) and ids[-1] >= r.hi - 1
        last_id = in_range[-1] if in_range else r.last_id
        s = self.settings
        files = [f for fit in fresh for f in files_of(fit.shape, s)]
        added = self.state.save_page(
            r.cursor,
            [observation_row(fit.shape, s.places) for fit in fresh],
            [fit.raw for fit in fresh],
            files,
            last_id,
            done,
            paged=set(in_range) - {fit.id for fit in fresh},
        )
        pending = added[PhotoStatus.PENDING]
        log.debug("page above id %d: %d observations, %d files to fetch", r.last_id, len(fresh), pending)
        if in_range:
            r.span = max(1, last_id - r.last_id)
        r.last_id, r.done = last_id, done
        self.progress.page_saved(len(fresh), added)
        self.on_page()

    def _end(self, r: _Range) -> None:
        self.state.end_range(r.cursor)
        r.done = True


def files_of(
    observation: object, settings: Settings, more_hosts: frozenset[str] = frozenset()
) -> list[PhotoFile]:
    """The photo files the settings ask of one observation (a dict or model.Observation),
    judged fetchable or skipped; ``more_hosts``: photo hosts the user chose beside iNaturalist's."""
    if settings.no_photos:
        return []
    s = settings
    return list(
        photo_files(
            observation,
            s.sizes,
            all_photos=s.all_photos,
            allowed_hosts=s.photo_hosts | more_hosts if more_hosts else s.photo_hosts,
            licenses=s.photo_licenses,
        )
    )


def _first_id(results: list[Any]) -> int | None:
    return usable_id(results[0]) if results else None


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _sample(ids: list[int]) -> str:
    return ", ".join(map(str, ids[:3])) + (f", ... ({len(ids)} ids)" if len(ids) > 3 else "")


def describe(params: dict[str, str]) -> str:
    """A query in a few words, for messages: its places (the first few) and other filters."""
    places = params["place_id"].split(",")
    shown = ",".join(places[:5]) + (f",... ({len(places)} places)" if len(places) > 5 else "")
    since = f" updated since {params['updated_since']}" if "updated_since" in params else ""
    return f"place_id={shown}{since}"
