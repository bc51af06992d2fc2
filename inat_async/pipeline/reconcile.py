"""Reconciliation: does the state hold every observation the API counts for a query?

Once a query is paged to its end, one ``per_page=0`` request gives the API's count of it
(``total_results``), compared with the observations the query's pages returned (the state's
``paged`` table). Where the API counts more, the gap is located by counting id spans, halving
them (``id_above``/``id_below`` with ``per_page=0``, one request a halving: the other half's
count is the parent's less this one), down to spans that are cheaper to page again than to
halve further. The counts are kept in the state while the search runs, so a resumed run does
not ask them again.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable

from inat_async.store.state import State

log = logging.getLogger("inat_async")

#: An id span (lo, hi): ids above lo and below hi (None: no end), as id_above/id_below.
Span = tuple[int, int | None]
Count = Callable[[int, int | None], Awaitable[int]]


class Reconciler:
    """Locates where one stream's stored observations fall short of the API's count."""

    def __init__(self, state: State, stream: str, count: Count, per_page: int, pause: float):
        self.state = state
        self.stream = stream
        self.count = count
        self.per_page = per_page
        self.pause = pause

    async def locate(self) -> tuple[int, list[Span]]:
        """(observations counted but not stored, the id spans to page again to find them)."""
        total = await self._counted(0, None)
        deficit = total - self.state.paged_count(self.stream, 0, None)
        gaps: list[Span] = []
        if deficit > 0:
            await self._search(0, None, total, gaps)
        return max(deficit, 0), gaps

    async def _search(self, lo: int, hi: int | None, counted: int, gaps: list[Span]) -> None:
        stored = self.state.paged_count(self.stream, lo, hi)
        deficit = counted - stored
        if deficit <= 0:  # complete, or more stored than counted: deleted or changed meanwhile
            return
        if stored == 0 or (hi is not None and hi - lo <= 2) or self._cheaper_to_page(counted, deficit):
            gaps.append((lo, hi))
            return
        mid = self._middle(lo, hi, stored)
        left = await self._counted(lo, mid)
        await self._search(lo, mid, left, gaps)
        await self._search(mid - 1, hi, counted - left, gaps)

    def _cheaper_to_page(self, counted: int, deficit: int) -> bool:
        """Paging a span costs counted / per_page requests; halving it at best (the missing
        ones side by side) one request a halving, down to them, and then their pages. Where
        they are scattered halving costs more, but never more than a few times paging it all:
        a halving is asked only of a span holding some missing, and spans of up to two pages
        are paged."""
        pages = counted / self.per_page
        return pages <= 2 or pages <= deficit / self.per_page + math.log2(pages) + 1

    def _middle(self, lo: int, hi: int | None, stored: int) -> int:
        """Where to halve (lo, hi): into (lo, mid) and (mid - 1, hi), both smaller. A span with
        no end is cut above the largest id stored, leaving above it a span with none stored;
        others at their median stored id, so that each halving halves what is stored (ids are
        far from even: a numeric middle could spend twenty halvings in a span holding none)."""
        if hi is None:
            top = self.state.paged_max(self.stream, lo)
            assert top is not None  # the span holds stored ids
            return top + 1
        if stored >= 2:  # the median is then above the smallest stored id, itself above lo
            return self.state.paged_id_at(self.stream, lo, hi, stored // 2)
        return (lo + hi + 1) // 2

    async def _counted(self, lo: int, hi: int | None) -> int:
        """The API's count of the span, from the state when this search already asked it. A
        count of 0 where observations are stored is the API's transient empty answer more
        often than a mass deletion: it is asked once more after a pause."""
        cached = self.state.cached_count(self.stream, lo, hi)
        if cached is not None:
            return cached
        total = await self.count(lo, hi)
        if total == 0 and self.state.paged_count(self.stream, lo, hi) > 0:
            log.info("the API counts nothing in ids (%d, %s) where some are stored: asking again", lo, hi)
            await asyncio.sleep(self.pause)
            total = await self.count(lo, hi)
        self.state.cache_count(self.stream, lo, hi, total)
        return total
