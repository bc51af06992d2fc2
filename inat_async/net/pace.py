"""How fast a harvest may go: the time its budgets allow for what is left, for the live ETA
and the dry run alike.

A sliding window lets a budget's worth through at once and then only as fast as the window
slides: B bytes under G an hour take ceil(B / G) - 1 whole hours, however fast the network.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from inat_async.config import Settings

#: With the limits on, a query of at least this many pages is paged by at least DEEP_RANGES
#: ranges. At 1 to 3 s a page and 60 requests a minute, 4 ranges leave a slot unused whenever
#: all 4 wait on answers as it comes due (87-93% of the budget used, benchmarks section 8); 8
#: keep one ready for nearly every slot. A small query keeps --ranges: each range costs a
#: last page or a count, and the budget's pace is not what a few pages wait on.
LARGE_QUERY_PAGES = 50
DEEP_RANGES = 8


def parallel_ranges(ranges: int, limits: bool, pages: float) -> int:
    """The ranges a query of ``pages`` is paged by at once, given --ranges (1: one cursor,
    kept; without limits, --ranges is what the server sees at once, kept too); never more
    than the query's pages fill (a range a page: each range costs a count or a last page, and
    --ranges 10000 on 2 pages cost 4,939 requests), when its count is known (``pages`` > 0)."""
    wanted = ranges if ranges == 1 or not limits or pages < LARGE_QUERY_PAGES else max(ranges, DEEP_RANGES)
    return min(wanted, math.ceil(pages)) if pages > 0 else wanted


@dataclass(frozen=True)
class Pace:
    """The rates a harvest's settings allow (``limits`` False: none but the network's)."""

    limits: bool
    api_rpm: float
    api_daily: float
    media_rpm: float  # per photo host
    bytes_per_hour: float  # per photo host
    bytes_per_day: float  # per photo host
    minute: float
    hour: float
    day: float
    per_page: int
    ranges: int

    @classmethod
    def of(cls, settings: Settings) -> Pace:
        b = settings.budgets
        return cls(
            limits=settings.limits,
            api_rpm=b.api_rpm,
            api_daily=b.api_daily,
            media_rpm=b.media_rpm,
            bytes_per_hour=b.media_gb_per_hour * 1e9,
            bytes_per_day=b.media_gb_per_day * 1e9,
            minute=b.minute,
            hour=b.hour,
            day=b.day,
            per_page=settings.per_page,
            ranges=settings.ranges,
        )

    def paging_requests(self, observations: float) -> int:
        """API requests to page a query of ``observations``: its full pages, a last page or a
        count ending each range, with several ranges the two that plan them and the count of
        the open range above the largest id, and the count that reconciles the query."""
        if self.ranges == 1:
            return math.ceil(observations / self.per_page) + 2
        if observations <= 0:
            return 5  # the plan finds nothing: one range, an empty page, its count, the query's
        pages = math.ceil(observations / self.per_page)
        return pages + parallel_ranges(self.ranges, self.limits, pages) + 4

    def api_seconds(self, requests: float, observed: float | None = None) -> float | None:
        """Time for ``requests`` more API requests: at the budget's rate, or at ``observed``
        requests a second when that is slower; and a day for each daily budget past the first.
        None when nothing says how fast (no limits, no observed rate yet)."""
        if requests <= 0:
            return 0.0
        if not self.limits:
            return requests / observed if observed else None
        allowed = self.api_rpm / self.minute
        seconds = requests / min(allowed, observed or allowed)
        return max(seconds, _windows_past_the_first(requests, self.api_daily) * self.day)

    def photo_seconds(self, files: float, nbytes: float, observed: float | None = None) -> float | None:
        """Time for one photo host's ``files`` more files of ``nbytes`` in all: its request
        rate and byte budgets, or ``observed`` files a second when that is slower."""
        if files <= 0:
            return 0.0
        if not self.limits:
            return files / observed if observed else None
        allowed = self.media_rpm / self.minute
        return max(
            files / min(allowed, observed or allowed),
            _windows_past_the_first(nbytes, self.bytes_per_hour) * self.hour,
            _windows_past_the_first(nbytes, self.bytes_per_day) * self.day,
        )


def _windows_past_the_first(amount: float, limit: float) -> int:
    """Whole windows to wait for ``amount`` under ``limit`` a window (the first is free)."""
    return max(0, math.ceil(amount / limit) - 1) if limit > 0 else 0


def duration(seconds: float) -> str:
    """A time span as a person reads it: 45 s, 12 min, 3.5 h, 2.1 days."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
