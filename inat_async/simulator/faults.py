"""Misbehaviour settings for the simulator: random transient faults and rate limits.

A harvester must survive what the real API and photo hosts do on a bad day: 5xx answers, 429s
with and without Retry-After, connections dropped mid-body, short bodies, very slow answers and
HTML error pages served with status 200. :class:`Faults` draws such faults at random per request
(seeded, so a run is reproducible for a given request order) or from a script of the next
faults to inject; :class:`RateLimit` describes the front proxy's sliding-window throttle.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

#: Every fault name :class:`Faults` accepts.
FAULT_KINDS: tuple[str, ...] = (
    "500",  # {"error": "Elasticsearch error…", "status": 500}
    "502",  # HTML bad gateway page from the proxy
    "503",  # maintenance, with Retry-After
    "504",  # gateway timeout
    "429",  # too many requests, with Retry-After
    "429-no-retry-after",  # too many requests without Retry-After
    "reset",  # headers and half the body, then a TCP reset
    "truncated",  # a body shorter than its Content-Length, then a clean close
    "slow",  # the normal answer after ``slow_delay`` seconds
    "stall",  # headers and half the body, then silence for ``slow_delay`` seconds, then a close
    "html",  # an HTML page with status 200 where JSON or an image was expected
    # Paging quirks of the API (a photo request drawing one is answered normally):
    "empty",  # a page request (per_page >= 1) answered {"total_results":0,"page":1,"per_page":N,"results":[]}
    "zero",  # the same answer to any API request, so a per_page=0 count says 0 too
    "unordered",  # a page with its last two results swapped: not in the order asked for
)
#: Faults :meth:`Faults.uniform` leaves out unless named: "slow" and "stall" (long by design)
#: and "unordered" (the harvester rightly stops at it, it cannot be survived).
NOT_UNIFORM: tuple[str, ...] = ("slow", "stall", "unordered")

GROUPS: tuple[str, ...] = ("api", "photo")


def _check(rates: Mapping[str, float], group: str) -> None:
    unknown = set(rates) - set(FAULT_KINDS)
    if unknown:
        raise ValueError(f"unknown {group} fault(s) {sorted(unknown)}; known: {FAULT_KINDS}")
    if any(p < 0 for p in rates.values()) or sum(rates.values()) > 1.0 + 1e-9:
        raise ValueError(f"{group} fault probabilities must be >= 0 and sum to <= 1")


@dataclass
class Faults:
    """Fault probabilities per request, separately for API and photo (and placeholder) requests.

    ``api``/``photo`` map a name of :data:`FAULT_KINDS` to its probability; at most one fault
    is applied per request. ``api_next``/``photo_next`` hold scripted faults, consumed one per
    request before any random draw (``None`` in the script means "no fault this time");
    :meth:`inject_when` scripts a fault for the first request whose query passes a test.
    Faults are transient: retrying the same request draws again.
    """

    api: dict[str, float] = field(default_factory=dict)
    photo: dict[str, float] = field(default_factory=dict)
    seed: int = 0
    slow_delay: float = 5.0
    retry_after: float = 1.0
    api_next: deque[str | None] = field(default_factory=deque)
    photo_next: deque[str | None] = field(default_factory=deque)

    def __post_init__(self) -> None:
        self._when: list[tuple[str, str, Callable[[Mapping[str, str]], bool]]] = []
        _check(self.api, "api")
        _check(self.photo, "photo")
        self._rng = {group: random.Random(f"{self.seed}:{group}") for group in GROUPS}
        self.api_next = deque(self.api_next)
        self.photo_next = deque(self.photo_next)

    @classmethod
    def uniform(cls, rate: float, kinds: Iterable[str] | None = None, **kwargs: Any) -> Faults:
        """Spread a total fault ``rate`` evenly over ``kinds`` (default: all but NOT_UNIFORM)."""
        chosen = list(kinds) if kinds is not None else [k for k in FAULT_KINDS if k not in NOT_UNIFORM]
        rates = {kind: rate / len(chosen) for kind in chosen} if chosen else {}
        return cls(api=dict(rates), photo=dict(rates), **kwargs)

    def inject(self, group: str, *names: str | None) -> None:
        """Script the next faults of a group ("api" or "photo"), in order."""
        for name in names:
            if name is not None and name not in FAULT_KINDS:
                raise ValueError(f"unknown fault {name!r}")
        (self.api_next if group == "api" else self.photo_next).extend(names)

    def inject_when(self, group: str, name: str, test: Callable[[Mapping[str, str]], bool]) -> None:
        """Script one fault for the first request of a group whose query ``test`` accepts
        (``test`` sees every query until then, so it may keep state of its own)."""
        if name not in FAULT_KINDS:
            raise ValueError(f"unknown fault {name!r}")
        self._when.append((group, name, test))

    def pick(self, group: str, query: Mapping[str, str] | None = None) -> str | None:
        """The fault for the next request of a group (with this query), or None."""
        for k, (when_group, name, test) in enumerate(self._when):
            if when_group == group and test(query or {}):
                del self._when[k]
                return name
        scripted = self.api_next if group == "api" else self.photo_next
        if scripted:
            return scripted.popleft()
        rates = self.api if group == "api" else self.photo
        if not rates:
            return None
        roll = self._rng[group].random()
        for name, probability in rates.items():
            if roll < probability:
                return name
            roll -= probability
        return None


@dataclass
class RateLimit:
    """A sliding-window throttle: at most ``max_requests`` arrivals in any ``window`` seconds.

    A request arriving when the trailing window already holds ``max_requests`` arrivals
    (refused ones count too, as at a front proxy) is a violation; with ``enforce`` it is
    answered 429. ``retry_after`` is the Retry-After sent: seconds (a number), the string
    "http-date" for an HTTP date, "auto" for the seconds until a slot frees, or None for none.
    """

    max_requests: int
    window: float
    retry_after: float | str | None = None
    enforce: bool = True

    def __post_init__(self) -> None:
        if self.max_requests < 1 or self.window <= 0:
            raise ValueError("RateLimit needs max_requests >= 1 and window > 0")
        if isinstance(self.retry_after, str) and self.retry_after not in ("http-date", "auto"):
            raise ValueError("retry_after must be seconds, 'http-date', 'auto' or None")


@dataclass(frozen=True)
class ByteLimit:
    """At most ``max_bytes`` of photo bodies from one host whose requests arrived in any
    ``window`` seconds (half-open, as :class:`RateLimit` counts): a photo answer that brings
    its trailing window over is a byte violation (counted, never refused)."""

    max_bytes: int
    window: float

    def __post_init__(self) -> None:
        if self.max_bytes < 1 or self.window <= 0:
            raise ValueError("ByteLimit needs max_bytes >= 1 and window > 0")


def byte_violations(served: Iterable[tuple[float, int]], limit: ByteLimit) -> int:
    """Answers (arrival, bytes) that brought their trailing window over the limit:
    :class:`ByteLimit`'s rule, over a finished request log of one host."""
    arrivals = sorted(served)
    over, first, total = 0, 0, 0
    for t, n in arrivals:
        total += n
        while arrivals[first][0] <= t - limit.window:
            total -= arrivals[first][1]
            first += 1
        over += total > limit.max_bytes
    return over


def max_in_window(times: Iterable[float], span: float) -> int:
    """The most arrivals in any sliding window of ``span`` seconds (half-open, as
    :class:`RateLimit` counts them), over a finished request log."""
    return max(_in_trailing_window(times, span), default=0)


def violations(times: Iterable[float], limit: int, span: float) -> int:
    """Arrivals that found ``limit`` arrivals already in the trailing ``span`` seconds:
    :class:`RateLimit`'s rule, over a finished request log."""
    return sum(n > limit for n in _in_trailing_window(times, span))


def _in_trailing_window(times: Iterable[float], span: float) -> Iterator[int]:
    """For each arrival in time order, the arrivals in the ``span`` seconds up to it, itself included."""
    ordered, first = sorted(times), 0
    for last, t in enumerate(ordered):
        while ordered[first] <= t - span:
            first += 1
        yield last - first + 1
