"""--dry-run: what a harvest would take, from a few cheap requests; nothing is downloaded or written.

One ``per_page=0`` count per place and per query, one sample page, and a HEAD request for a
few photo files of each size give the observations, API requests, photo files and bytes, and
the time each budget implies.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from dataclasses import dataclass, field
from statistics import fmean

from .http import Http, host_of
from .pager import files_of, queries
from .politeness import Politeness
from .settings import Settings

HEADS_PER_SIZE = 3


@dataclass
class Estimate:
    """The numbers a dry run prints."""

    per_place: dict[int, int]
    observations: int  # after overlap
    api_requests: int
    sampled: int
    files: dict[str, int] = field(default_factory=dict)
    bytes: dict[str, float] = field(default_factory=dict)


async def estimate(settings: Settings) -> Estimate:
    politeness = Politeness(settings)
    politeness.open()
    try:
        async with Http(settings, politeness) as http:
            return await _estimate(settings, http)
    finally:
        politeness.close()


async def _count(http: Http, url: str, params: dict[str, str]) -> int:
    page = await http.get_json(url, {**params, "per_page": "0"})
    total = page.get("total_results")
    return total if isinstance(total, int) else 0


async def _estimate(settings: Settings, http: Http) -> Estimate:
    url = settings.api_url.rstrip("/") + "/observations"
    per_place = {}
    for place in settings.places:
        per_place[place] = await _count(http, url, {**settings.filters, "place_id": str(place)})
    chunks = [params for _, params in queries(settings)]
    totals = [await _count(http, url, params) for params in chunks]
    # Paging: full pages, a last empty page per range, and two requests to plan the ranges.
    api_requests = sum(math.ceil(t / settings.per_page) + settings.ranges + 3 for t in totals)
    sample = await http.get_json(url, {**chunks[0], "order_by": "id", "order": "asc", "per_page": "200"})
    observations = [o for o in sample["results"] if isinstance(o, dict)]
    result = Estimate(per_place, sum(totals), api_requests, len(observations))
    if settings.no_photos or not observations:
        return result
    files = [f for o in observations for f in files_of(o, settings) if f.status == "pending"]
    per_size = Counter(f.size for f in files)
    for size in settings.sizes:
        result.files[size] = round(per_size[size] / len(observations) * result.observations)
        urls = [f.url for f in files if f.size == size][:HEADS_PER_SIZE]
        lengths = [n for n in await asyncio.gather(*(_length(http, u) for u in urls)) if n]
        result.bytes[size] = fmean(lengths) * result.files[size] if lengths else 0.0
    return result


async def _length(http: Http, url: str) -> int | None:
    """A photo file's Content-Length from a HEAD request; None when the server won't say."""

    async def head() -> int | None:
        async with (
            http.politeness.media_turn(host_of(url)),
            http.session.head(url, allow_redirects=False) as response,
        ):
            return response.content_length if response.status == 200 else None

    try:
        return await http.retrying(host_of(url), 2, head)
    except Exception:  # an estimate goes on without one sample
        return None


def report(settings: Settings, e: Estimate) -> str:
    """The dry run's table, as the CLI prints it."""
    b = settings.budgets
    lines = ["place            observations"]
    lines += [f"{place:<16} {count:>12,}" for place, count in e.per_place.items()]
    lines.append(f"{'all (once each)':<16} {e.observations:>12,}")
    lines.append("")
    api_minutes = e.api_requests / b.api_rpm
    api_days = e.api_requests / b.api_daily
    lines.append(
        f"API requests: {e.api_requests:,}: {_duration(api_minutes * 60)} at {b.api_rpm}/minute"
        + (f", {api_days:.1f} days at {b.api_daily:,}/day" if api_days >= 1 else "")
    )
    if e.files:
        lines.append(f"photo files (estimated from {e.sampled} observations):")
        for size, count in e.files.items():
            lines.append(f"  {size:<9} {count:>12,} files  {e.bytes.get(size, 0) / 1e9:>9.2f} GB")
        files, gigabytes = sum(e.files.values()), sum(e.bytes.values()) / 1e9
        by_rate = files / b.media_rpm * 60
        by_bytes = max(gigabytes / b.media_gb_per_hour * 3600, gigabytes // b.media_gb_per_day * 86400)
        least = _duration(max(by_rate, by_bytes))
        lines.append(f"  all       {files:>12,} files  {gigabytes:>9.2f} GB: at least {least}")
        lines.append(
            f"  (at {b.media_rpm}/minute, {b.media_gb_per_hour:g} GB/hour"
            f" and {b.media_gb_per_day:g} GB/day per host)"
        )
    lines.append("nothing was downloaded or written")
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
