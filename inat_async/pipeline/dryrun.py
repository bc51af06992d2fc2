"""--dry-run: what the same command would do, from a few cheap requests; nothing is downloaded
or written.

One ``per_page=0`` count per place and per query, one sample page, and a HEAD request for a
few photo files of each size give the observations, API requests, photo files and bytes. An
output folder that already holds the harvest is read (never written): a resumed harvest is
estimated for what it has left, and ``--update`` for what changed since its last complete
run. The time is what the limits the command would run under allow (see net/pace.py), or with
``--no-limits`` what the latency measured allows.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import Counter
from collections.abc import Awaitable
from dataclasses import dataclass, field
from statistics import fmean
from typing import Any, TypeVar

from inat_async.config import Settings
from inat_async.errors import UsageError
from inat_async.model import PhotoStatus, check_observations
from inat_async.net.http import Http
from inat_async.net.pace import Pace, duration, parallel_ranges
from inat_async.net.politeness import Politeness
from inat_async.photos import host_of
from inat_async.pipeline.harvest import update_since
from inat_async.pipeline.pager import files_of, queries
from inat_async.pipeline.taxonomy import missing_ancestors, observed_taxa, requests_for
from inat_async.store.objects import STORE_KEY, check_store
from inat_async.store.state import STATE_FILE
from inat_async.store.state import read_stored as read_stored_state

# Files of each size whose length a HEAD asks, spread over the sample: lengths within a size
# vary by a factor of two or more, and three HEADs missed a harvest's bytes by 40%.
HEADS_PER_SIZE = 10
T = TypeVar("T")


@dataclass
class Stored:
    """What the output folder holds already (nothing, for a new folder)."""

    observations: int = 0
    files_left: int = 0  # pending, or failed and to be tried again
    paged: bool = False  # every range paged to its end
    since: str | None = None  # what --update would page from
    fetched: set[tuple[int, str]] = field(default_factory=set)  # (photo id, size) finished
    taxa: set[int] = field(default_factory=set)  # taxa named (or asked) already


@dataclass
class Estimate:
    """The numbers a dry run prints."""

    per_place: dict[int, int]
    matching: int  # observations the queries match, after overlap
    observations: int  # of those, to page
    api_requests: int  # paging's and the taxonomy's
    sampled: int
    stored: Stored = field(default_factory=Stored)
    taxa_requests: int = 0  # of api_requests, /v1/taxa's
    files: dict[str, int] = field(default_factory=dict)  # to fetch, by size
    bytes: dict[str, float] = field(default_factory=dict)
    host_share: dict[str, float] = field(default_factory=dict)  # of the files, by photo host
    latency: dict[str, float] = field(default_factory=dict)  # seconds a request: api, photos


async def estimate(settings: Settings) -> Estimate:
    stored = read_stored(settings)
    politeness = Politeness(settings)
    politeness.open()
    try:
        async with Http(settings, politeness) as http:
            return await _Sampler(settings, http, stored).run()
    finally:
        politeness.close()


def read_stored(settings: Settings) -> Stored:
    """What ``settings.out`` holds, read without a write; the errors the harvest would stop with."""
    path = settings.out / STATE_FILE
    if not path.is_file():
        if settings.update:
            raise UsageError(f"{settings.out} holds no complete harvest to update")
        return Stored()
    held = read_stored_state(path)
    _check_settings(settings, json.loads(held.meta.get("fingerprint", "{}")))
    if not settings.no_photos:  # a run with another store than the files' is refused
        check_store(held.meta.get(STORE_KEY), settings.store, settings.out, held.done > 0)
    stored = Stored(held.observations, held.files_left, held.paged, fetched=held.fetched, taxa=held.taxa)
    if settings.update:
        stored.since = update_since(held.meta.get, settings.out)
    return stored


def _check_settings(settings: Settings, before: dict[str, object]) -> None:
    now = settings.fingerprint()
    differs = [k for k in now if k in before and before[k] != now[k]]
    if differs:
        what = "; ".join(f"{k} was {before[k]} and is now {now[k]}" for k in differs)
        raise UsageError(f"{settings.out} holds a harvest made with other settings ({what})")


class _Sampler:
    """The few requests a dry run makes, timed."""

    def __init__(self, settings: Settings, http: Http, stored: Stored):
        self.settings = settings
        self.http = http
        self.stored = stored
        self.url = settings.api_url.rstrip("/") + "/observations"
        self.extra = {"updated_since": stored.since} if stored.since else {}
        self.times: dict[str, list[float]] = {"api": [], "photos": []}

    async def _timed(self, kind: str, request: Awaitable[T]) -> T:
        start = time.monotonic()
        result = await request
        self.times[kind].append(time.monotonic() - start)
        return result

    async def _count(self, params: dict[str, str]) -> int:
        page = await self._timed("api", self.http.get_json(self.url, {**params, "per_page": "0"}))
        total = page.get("total_results")
        return total if isinstance(total, int) else 0

    async def run(self) -> Estimate:
        s, stored = self.settings, self.stored
        per_place = {}
        for place in s.places:
            per_place[place] = await self._count({**s.filters, **self.extra, "place_id": str(place)})
        chunks = [params for _, params in queries(s, self.extra)]
        totals = [await self._count(params) for params in chunks]
        pace = Pace.of(s)
        matching = sum(totals)
        if stored.since or not stored.observations:
            to_page, requests = matching, sum(pace.paging_requests(t) for t in totals)
        elif stored.paged:
            to_page, requests = 0, 0
        else:  # a resumed harvest goes on with the ranges it planned
            to_page = max(0, matching - stored.observations)
            requests = math.ceil(to_page / s.per_page) + parallel_ranges(
                s.ranges, s.limits, matching / s.per_page
            )
        result = Estimate(per_place, matching, to_page, requests, 0, stored)
        if not s.no_photos or (s.taxonomy and to_page):
            observations = await self._sample(chunks[0])
            result.sampled = len(observations)
            if not s.no_photos:
                await self._sample_files(observations, result)
            if s.taxonomy:
                result.taxa_requests = self._taxa_requests(observations, to_page)
                result.api_requests += result.taxa_requests
        result.latency = {kind: fmean(times) for kind, times in self.times.items() if times}
        return result

    async def _sample(self, params: dict[str, str]) -> list[dict[str, Any]]:
        """The observations the estimates are made from: the first query's first page by id
        and, when it holds more, its last page and two from between. Photos change along a
        harvest's ids (older observations, other places): its first page alone misleads."""
        total, first = await self._sample_page(params, "asc")
        if total <= len(first) or not first:
            return first
        _, last = await self._sample_page(params, "desc")
        lo, hi = first[-1]["id"], min((o["id"] for o in last), default=first[-1]["id"])
        between = [await self._sample_page(params, "asc", lo + (hi - lo) * k // 3) for k in (1, 2) if hi > lo]
        kept = {o["id"]: o for page in (first, *(page for _, page in between), last) for o in page}
        return [kept[i] for i in sorted(kept)]

    async def _sample_page(
        self, params: dict[str, str], order: str, id_above: int | None = None
    ) -> tuple[int, list[dict[str, Any]]]:
        """(total_results, the page's observations that fit) of a page by id, of --per-page
        observations as the harvest asks (a smaller page helps a heavy query here too)."""
        query = {**params, "order_by": "id", "order": order, "per_page": str(self.settings.per_page)}
        if id_above is not None:
            query["id_above"] = str(id_above)
        page = await self._timed("api", self.http.get_json(self.url, query, raw_results=True))
        total = page.get("total_results")
        fits = [fit.data for fit in check_observations(page["results"]).fits]
        return (total if isinstance(total, int) else len(fits)), fits

    def _taxa_requests(self, observations: list[dict[str, Any]], to_page: int) -> int:
        """The /v1/taxa requests that name the higher taxa not named yet: exact when the sample
        holds every observation to page; else grown from the sample's by the square root of
        the ratio (a larger harvest repeats more of its taxa: a rough figure)."""
        leaves = observed_taxa(observations)  # named by the observations themselves
        missing = len(missing_ancestors(leaves.values(), self.stored.taxa | set(leaves)))
        if observations and to_page > len(observations):
            missing = round(missing * math.sqrt(to_page / len(observations)))
        return requests_for(missing) if to_page else 0

    async def _sample_files(self, observations: list[dict[str, Any]], result: Estimate) -> None:
        files = [f for o in observations for f in files_of(o, self.settings)]
        files = [f for f in files if f.status is PhotoStatus.PENDING]
        if self.stored.since:  # an update fetches only what the folder does not hold
            files = [f for f in files if (f.photo_id, f.size) not in self.stored.fetched]
        per_size = Counter(f.size for f in files)
        per_observation = len(observations) or 1
        hosts = Counter(host_of(f.url) for f in files)
        result.host_share = {host: n / len(files) for host, n in hosts.items()}
        left_files = self.stored.files_left
        for size in self.settings.sizes:
            share = per_size[size] / len(files) if files else 1 / len(self.settings.sizes)
            count = round(per_size[size] / per_observation * result.observations + share * left_files)
            result.files[size] = count
            urls = _spread([f.url for f in files if f.size == size], HEADS_PER_SIZE)
            lengths = [n for n in await asyncio.gather(*(self._length(u) for u in urls)) if n]
            result.bytes[size] = fmean(lengths) * count if lengths else 0.0

    async def _length(self, url: str) -> int | None:
        """A photo file's Content-Length from a HEAD request; None when the server won't say."""
        http = self.http

        async def head() -> int | None:
            async with http.photo(url, head=True) as (response, _):
                return response.content_length if response.status == 200 else None

        try:
            return await self._timed("photos", http.retrying(host_of(url), 2, head))
        except Exception:  # an estimate goes on without one sample
            return None


def report(settings: Settings, e: Estimate) -> str:
    """The dry run's table, as the CLI prints it."""
    since = e.stored.since
    lines = [f"--update: observations created or changed since {since}"] if since else []
    lines.append("place            observations")
    lines += [f"{place:<16} {count:>12,}" for place, count in e.per_place.items()]
    lines.append(f"{'all (once each)':<16} {e.matching:>12,}")
    if e.stored.observations:
        lines.append(
            f"{settings.out} holds {e.stored.observations:,} observations already, "
            f"and {e.stored.files_left:,} photo files left to fetch; to page: {e.observations:,}"
        )
    lines.append("")
    pace = Pace.of(settings)
    api = _api_seconds(pace, e)
    lines.append(f"API requests: {e.api_requests:,}: {_time(api)} {_api_terms(settings, e)}")
    if e.taxa_requests:
        lines.append(f"  of which {e.taxa_requests:,} name the observations' higher taxa (/v1/taxa)")
    photos = 0.0 if not e.files else _photo_seconds(settings, pace, e)
    if e.files:
        lines += _photo_lines(settings, e, photos)
    total = None if api is None or photos is None else max(api, photos)
    lines.append(f"the whole harvest: {_time(total)}")
    lines.append("nothing was downloaded or written")
    return "\n".join(lines)


def _spread(items: list[T], n: int) -> list[T]:
    """``n`` of ``items`` evenly spaced from first to last (all when there are no more)."""
    if len(items) <= n:
        return items
    return [items[round(k * (len(items) - 1) / (n - 1))] for k in range(n)]


def _api_seconds(pace: Pace, e: Estimate) -> float | None:
    if pace.limits:
        return pace.api_seconds(e.api_requests)
    latency = e.latency.get("api")  # each range pages one request after another
    return pace.api_seconds(e.api_requests, pace.ranges / latency if latency else None)


def _photo_seconds(settings: Settings, pace: Pace, e: Estimate) -> float | None:
    """The photo host with most to fetch sets the time: each host has budgets of its own."""
    files, nbytes = sum(e.files.values()), sum(e.bytes.values())
    latency = e.latency.get("photos")
    observed = None if pace.limits or not latency else settings.workers / latency
    times = [pace.photo_seconds(files * share, nbytes * share, observed) for share in e.host_share.values()]
    if any(t is None for t in times):
        return None
    return max((t for t in times if t is not None), default=0.0)


def _api_terms(settings: Settings, e: Estimate) -> str:
    b = settings.budgets
    if not settings.limits:
        latency = e.latency.get("api")
        measured = f" at the {latency * 1000:.0f} ms a request measured" if latency else ""
        return f"with no limits, {settings.ranges} ranges{measured}"
    return f"at {b.api_rpm}/minute and {b.api_daily:,}/day"


def _photo_lines(settings: Settings, e: Estimate, seconds: float | None) -> list[str]:
    b = settings.budgets
    source = f"estimated from {e.sampled:,} observations" if e.sampled else "left by earlier runs"
    lines = [f"photo files to fetch ({source}):"]
    for size, count in e.files.items():
        lines.append(f"  {size:<9} {count:>12,} files  {_gigabytes(e.bytes.get(size), count)}")
    files = sum(e.files.values())
    total = None if any(not e.bytes.get(size) for size, n in e.files.items() if n) else sum(e.bytes.values())
    lines.append(f"  all       {files:>12,} files  {_gigabytes(total, files)}: {_time(seconds)}")
    terms = [", ".join(f"{share:.0%} from {host}" for host, share in e.host_share.items())]
    if settings.limits:
        hourly, daily = f"{b.media_gb_per_hour:g} GB/hour", f"{b.media_gb_per_day:g} GB/day"
        terms.append(f"each host at {b.media_rpm}/minute, {hourly} and {daily}")
    else:
        latency = e.latency.get("photos")
        measured = f" at the {latency * 1000:.0f} ms a request measured" if latency else ""
        terms.append(f"with no limits, {settings.workers} at once{measured}")
    lines.append(f"  ({'; '.join(term for term in terms if term)})")
    return lines


def _gigabytes(nbytes: float | None, files: int) -> str:
    """Bytes as GB; unknown (no file of the size could be sampled) said so, not as 0; no
    files are 0.00 GB."""
    if not files:
        nbytes = 0.0
    return f"{nbytes / 1e9:>9.2f} GB" if nbytes is not None and (nbytes or not files) else f"{'? GB':>12}"


def _time(seconds: float | None) -> str:
    return "about " + duration(seconds) if seconds is not None else "unknown"
