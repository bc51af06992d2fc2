"""When a request may go: budgets, per-host pacing and concurrency, Retry-After and AIMD.

The API host is paced by the shared :class:`~inat_async.net.budget.Ledger` (its limits are
per IP). Photo hosts are paced in process by aiolimiter at --media-rpm, one request at a
time spread evenly, and their bytes are counted in the ledger per host and per hour/day.
After a 429 a host's rate halves and then recovers step by step (additive increase,
multiplicative decrease), so a server stricter than the settings is respected unaided.

The ledger is shared between processes, so its times are wall-clock times; everything kept
in this process (Retry-After horizons) is on the monotonic clock, and every wait is taken as
a delay from one reading of the wall clock, no longer than the window it waits on: a clock
that jumps holds nothing back for longer than that.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field

from aiolimiter import AsyncLimiter

from inat_async.config import Settings
from inat_async.net.budget import Ledger, Window, default_budget_file

log = logging.getLogger("inat_async")

_MIN_FACTOR = 1 / 64
_LOG_WAITS_LONGER_THAN = 2.0
_LATE = 0.002  # seconds after its slot that a request counts as late


@dataclass
class _Host:
    """One host's in-process state: its AIMD rate factor and Retry-After horizon."""

    factor: float = 1.0
    not_before: float = 0.0  # time.monotonic()
    limiter: AsyncLimiter | None = None
    slots: asyncio.Semaphore | None = None
    waited: float = field(default=0.0)


class WaitClock:
    """Wall time during which work was held, per budget and by any: the waits of parallel
    workers overlap, and a second of it counts once however many wait in it."""

    ANY = ""

    def __init__(self) -> None:
        self.seconds: defaultdict[str, float] = defaultdict(float)
        self._holding: Counter[str] = Counter()
        self._since: dict[str, float] = {}

    @contextmanager
    def held(self, budget: str) -> Iterator[None]:
        keys, start = (budget, self.ANY), time.monotonic()
        for key in keys:
            if not self._holding[key]:
                self._since[key] = start
            self._holding[key] += 1
        try:
            yield
        finally:
            end = time.monotonic()
            for key in keys:
                self._holding[key] -= 1
                if not self._holding[key]:
                    self.seconds[key] += end - self._since.pop(key)

    @property
    def total(self) -> float:
        return self.seconds[self.ANY]

    def by_budget(self) -> dict[str, float]:
        return {budget: s for budget, s in self.seconds.items() if budget != self.ANY and s > 0}

    def so_far(self) -> dict[str, float]:
        """Seconds each budget has held work until now, the holds still under way included."""
        held = self.snapshot()
        held.pop(self.ANY, None)
        return held

    def snapshot(self) -> dict[str, float]:
        """Seconds each budget, and any (key ANY), has held work until now, the holds still
        under way included: what a cluster task reports (see add)."""
        now = time.monotonic()
        held = dict(self.seconds)
        for budget, since in self._since.items():
            held[budget] = held.get(budget, 0.0) + now - since
        return held

    def add(self, held: Mapping[str, float]) -> None:
        """Seconds held elsewhere (a cluster's workers, see cluster/live.py), by budget and ANY."""
        for budget, seconds in held.items():
            self.seconds[budget] += seconds


class Politeness:
    """Gatekeeper for every request of one harvest; a no-op with ``limits=False``."""

    def __init__(self, settings: Settings, on_wait: Callable[[str | None], None] | None = None):
        self.settings = settings
        self._on_wait = on_wait or (lambda _: None)
        self.budgets = settings.budgets
        self.enabled = settings.limits
        self._ledger: Ledger | None = None
        self._hosts: dict[str, _Host] = {}
        self._in_flight = asyncio.Semaphore(settings.workers)
        self.clock = WaitClock()  # wall time held by each budget and Retry-After
        self._last_wait_log: dict[str, float] = {}

    def open(self) -> None:
        if self.enabled:
            self._ledger = Ledger(
                self.settings.budget_file or default_budget_file(),
                lead=self.budgets.minute,
                busy_wait=self.settings.budget_lock_wait,
            )

    def close(self) -> None:
        if self._ledger:
            self._ledger.close()

    def _host(self, host: str) -> _Host:
        state = self._hosts.get(host)
        if state is None:
            state = self._hosts[host] = _Host()
            if self.enabled:
                state.slots = asyncio.Semaphore(self.budgets.media_concurrency)
        return state

    # -- the API ----------------------------------------------------------------------------
    async def api_turn(self, host: str) -> float | None:
        """Wait for this host's Retry-After and a slot in the API budget; returns the time the
        request is booked at (None without limits), for :meth:`api_sent`."""
        if not self.enabled:
            return None
        state = self._host(host)
        # A 429 may arrive while we wait for our slot: then the slot is given up, not used.
        while state.not_before > time.monotonic() or (slot := await self._api_slot(host, state)) is None:
            await self._wait_retry_after(host, state)
        return slot

    async def api_sent(self, host: str, slot: float | None, sent: float | None) -> None:
        """The request booked at ``slot`` went at ``sent`` (its headers written): a late one
        (a busy machine, a new connection) is booked then, so the slots reserved after it keep
        their distance from when it really went, as the server counts."""
        if self._ledger is not None and slot is not None and sent is not None and sent > slot + _LATE:
            await asyncio.to_thread(self._ledger.postpone, f"api {host}", slot, sent)

    async def _api_slot(self, host: str, state: _Host) -> float | None:
        b = self.budgets
        rpm = max(1.0, b.api_rpm * state.factor)
        daily = f"{b.api_daily} API requests a {span_name(b.day)}"
        windows = (
            Window(int(rpm), b.minute, f"{int(rpm)} API requests a {span_name(b.minute)}"),
            Window(b.api_daily, b.day, daily),
        )
        assert self._ledger is not None
        key = f"api {host}"
        slot, reason, booked, wait = await asyncio.to_thread(
            self._ledger.reserve, key, windows, b.minute / rpm
        )
        # Spacing and the minute window are one budget, however far a 429 has slowed it.
        budget = daily if reason == daily else f"{b.api_rpm} API requests a {span_name(b.minute)}"
        longest = max(w.span for w in windows) * 1.02
        if not booked:  # too far ahead to book: wait until it is near, then ask again
            await self._sleep(wait - b.minute, longest, reason, "API", budget)
            return None
        await self._sleep(wait, longest, reason, "API", budget)
        return slot if state.not_before <= time.monotonic() else None

    # -- photo hosts ------------------------------------------------------------------------
    @asynccontextmanager
    async def media_turn(
        self, host: str, kind: str | None = None, cap: int | None = None
    ) -> AsyncIterator[object]:
        """Hold one of the host's concurrency slots, paced and within its byte budgets, and
        one of the --workers downloads in flight (all hosts together). That one is taken
        once the host's budget has room and its Retry-After has passed, so a host that waits
        holds none of them. ``kind``: the size of the file a GET asks for (None: a HEAD),
        ``cap`` the most bytes it may have; what it yields is given back to
        :meth:`spent_bytes` (here: nothing, the bytes are booked when the answer tells them)."""
        del kind, cap
        if not self.enabled:
            async with self._in_flight:
                yield None
            return
        state = self._host(host)
        assert state.slots is not None
        async with state.slots:
            await self._wait_for_bytes(host)
            await self._wait_retry_after(host, state)
            async with self._in_flight:
                while True:
                    await self._wait_retry_after(host, state)
                    if state.limiter is None:
                        rpm = max(1.0, self.budgets.media_rpm * state.factor)
                        state.limiter = AsyncLimiter(1, self.budgets.minute / rpm)
                    with self.clock.held(self._media_pace(host, state)):
                        await state.limiter.acquire()
                    if state.not_before <= time.monotonic():
                        break
                yield None

    def _media_pace(self, host: str, state: _Host) -> str:
        """The budget a photo host's pacing holds work for: its rate, or, once its 429s have
        slowed it, that (the rate then is a fraction of the budget: naming the budget would
        blame it for waits it does not cause)."""
        b = self.budgets
        if state.factor < 1:
            return f"photo requests to {host} slowed down after its 429s"
        return f"{b.media_rpm} photo requests a {span_name(b.minute)} to {host}"

    async def spent_bytes(self, host: str, nbytes: int, booked: object = None) -> None:
        """A GET's answer came with ``nbytes`` (its Content-Length; 0 for any other answer)."""
        del booked
        if self._ledger and nbytes:
            await asyncio.to_thread(self._ledger.record, f"bytes {host}", nbytes)

    def byte_windows(self, host: str) -> list[Window]:
        """The host's byte budgets (an hour and a day). Bytes are counted from their answer,
        after the request reached the server: no margin for jitter (see Window)."""
        b = self.budgets
        name = "{:g} GB of photos a {} from {}"
        return [
            Window(limit_gb * 1e9, span, name.format(limit_gb, span_name(span), host), jitter=False)
            for limit_gb, span in ((b.media_gb_per_hour, b.hour), (b.media_gb_per_day, b.day))
        ]

    async def _wait_for_bytes(self, host: str) -> None:
        assert self._ledger is not None
        for window in self.byte_windows(host):
            wait = await asyncio.to_thread(self._ledger.wait_for_room, f"bytes {host}", window)
            await self._sleep(wait, window.span * 1.02, window.name, "media", window.name)

    # -- feedback from responses ------------------------------------------------------------
    def throttled(self, host: str, retry_after: float | None) -> None:
        """A 429 or 503: halve the host's rate and honour Retry-After for every request."""
        state = self._host(host)
        if retry_after:
            wait = min(retry_after, self.settings.max_backoff)  # a server's word, within reason
            state.not_before = max(state.not_before, time.monotonic() + wait)
        if self.enabled:
            level = logging.INFO if state.factor == 1 else logging.DEBUG  # said once, then in -v
            state.factor = max(_MIN_FACTOR, state.factor / 2)
            state.limiter = None
            percent = state.factor * 100
            log.log(level, "%s asked us to slow down: rate now %.0f%% of the budget", host, percent)

    def succeeded(self, host: str) -> None:
        state = self._hosts.get(host)
        if state and state.factor < 1:
            state.factor = min(1.0, state.factor + 1 / 64)
            state.limiter = None

    async def _wait_retry_after(self, host: str, state: _Host) -> None:
        reason = f"Retry-After from {host}"
        await self._sleep(
            state.not_before - time.monotonic(), self.settings.max_backoff, reason, host, reason
        )

    async def _sleep(self, delay: float, longest: float, reason: str | None, topic: str, budget: str) -> None:
        """Wait ``delay`` seconds for ``budget``, never longer than ``longest`` (the window
        waited on: a clock that jumped cannot make it longer), telling the user why when it
        is long."""
        delay = min(delay, longest)
        if delay <= 0:
            return
        with self.clock.held(budget):
            await self._sleep_and_tell(time.time() + delay, delay, reason, topic)

    async def _sleep_and_tell(self, when: float, delay: float, reason: str | None, topic: str) -> None:
        if not reason or delay <= _LOG_WAITS_LONGER_THAN:  # a pacing gap: nothing to tell
            await asyncio.sleep(delay)
            return
        now = time.monotonic()
        if now - self._last_wait_log.get(reason, -1e9) > 30:
            self._last_wait_log[reason] = now
            until = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(when))
            log.warning("%s budget spent (%s): waiting until %s (%s)", topic, reason, until, _duration(delay))
        self._on_wait(f"{reason}, until {time.strftime('%H:%M:%S', time.localtime(when))}")
        try:
            await asyncio.sleep(delay)
        finally:
            self._on_wait(None)

    def api_requests_today(self, host: str) -> int | None:
        """API requests of every harvest of this user to ``host`` in the last day."""
        if self._ledger is None:
            return None
        return int(self._ledger.used(f"api {host}", self.budgets.day))


def span_name(seconds: float) -> str:
    """A window's span as a user reads it: "minute", "hour", "day", else seconds."""
    names = {60.0: "minute", 3600.0: "hour", 86400.0: "day"}
    return names.get(seconds, f"{seconds:g} s")


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
