"""Budgets that hold across the whole cluster (its workers share one egress IP).

The sliding windows (requests a minute and bytes an hour and a day, per photo host) are
counted on the scheduler, by :class:`BudgetPlugin` (a Dask scheduler plugin with handlers
the workers call): the same :class:`~inat_async.net.budget.Ledger` a harvest keeps on one
machine, so a worker that dies loses nothing of it. A request reserves its slot there (evenly
spaced, never over a window), so N workers together send no more than one machine would.

Bytes are booked before a request, not when its answer comes (files in flight would
otherwise overshoot a window): at the size expected of a file of its size (the largest seen
so far; its cap, the most it can be, for the first), then set to its Content-Length when it
answers and counted from then, over the window alone: the server saw the request between its
booking and its answer, so no margin for network jitter is needed (requests' slots have one).
A request waits on the scheduler until its window has room, woken by every answer settled.

Each host's downloads at once are leases of a Dask ``Semaphore`` of its own. Nothing here
trusts a worker's clock: a slot comes back as a wait. With ``--budget-scope worker``
(workers with an IP each) a worker keeps its own books by the same rules, in a budget file
of its own (kept across its tasks), and leases of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
import time
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distributed.diagnostics.plugin import SchedulerPlugin

from inat_async.config import Settings
from inat_async.net.budget import GUARD_SECONDS, Ledger, Slot, Window
from inat_async.net.politeness import Politeness, span_name
from inat_async.net.waits import wait_set

#: A slot is the scheduler's time; its request goes when the answer has come back and the
#: wait has passed, so later by the answer's way back, which varies from worker to worker:
#: each window of requests is counted this much longer, so none holds more than its limit
#: however the answers were delayed (a small share of a real minute).
_REPLY_MARGIN = 0.3
#: Longest a worker's call waits on the scheduler for room before asking again.
_PATIENCE = 5.0
PLUGIN_NAME = "inat_async-budgets"

WindowSpec = tuple[float, float, str, bool]  # (limit, span, name, jitter): a Window in a message


@dataclass
class Booking:
    """Bytes booked before a request: the ledger's row and the kind of file it fetches."""

    key: str
    row: int
    kind: str
    amount: float
    settled: bool = False


class ByteBook:
    """Bytes booked before their requests in one ledger, at the size expected of each kind
    of file (the largest seen, so a window is not overrun by files still in flight), then
    settled; waiters for room wake whenever a booking is settled. Bookings are spread
    evenly at the shortest window's rate (as requests are), never a burst at a window's top:
    every sliding window then holds nearly its limit. Runs in one event loop."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.expected: dict[str, float] = {}
        self._next: dict[str, float] = {}  # key -> the wall time its next booking may start
        self._pace: dict[str, float] = {}  # key -> seconds a byte of its shortest window
        self._settled = asyncio.Event()
        self._turn = asyncio.Lock()

    async def take(
        self, key: str, kind: str, windows: Sequence[Window], patience: float, first: float | None = None
    ) -> tuple[int | None, float]:
        """Book the bytes of one file of ``kind`` as soon as its turn has come and every
        window has room, waiting at most ``patience``: (its row, or None, and the bytes).
        Before any file of the kind has answered, ``first`` (its cap: the most it can be)."""
        limit = min(w.limit for w in windows)
        shortest = min(windows, key=lambda w: w.span)
        self._pace[key] = shortest.counted / shortest.limit
        give_up = time.monotonic() + patience
        while True:
            async with self._turn:  # one booking at a time: each sees the turn the last set
                amount = min(self.expected.get(kind, first or limit), limit)
                turn = self._next.get(key, 0.0)
                wait = turn - time.time()
                if wait <= 0:
                    row, wait, _ = await asyncio.to_thread(self.ledger.take, key, windows, amount)
                    if row is not None:
                        # The next turn from this one's (a late wake-up loses no pace), not
                        # from long ago (an idle host earns no burst): the windows still hold.
                        start = max(turn, time.time() - GUARD_SECONDS)
                        self._next[key] = start + amount * self._pace[key]
                        return row, amount
            left = give_up - time.monotonic()
            if left <= 0:
                return None, amount
            settled = self._settled  # a settled booking may make room, or bring the turn nearer
            await wait_set(settled, min(wait, left))

    async def settle(self, key: str, row: int, kind: str, nbytes: float, booked: float) -> None:
        """The booking ``row`` (of ``booked`` bytes) set to the bytes its answer had, and
        counted from now: its request reached the server between its booking and now, so
        every window it fell in counts it. The kind's size learned; the pace given back."""
        await asyncio.to_thread(self.ledger.settle, row, nbytes)
        self.expected[kind] = max(self.expected.get(kind, 0.0), nbytes)
        if key in self._next:
            self._next[key] += (nbytes - booked) * self._pace.get(key, 0.0)
        self._settled.set()
        self._settled = asyncio.Event()


class BudgetPlugin(SchedulerPlugin):
    """The cluster's ledgers on the scheduler (one per budget file a driver names), reached
    by the workers through handlers of the scheduler (``inat_budget_*``). Registered once
    (idempotent): a later run on a long-lived scheduler finds what earlier ones spent."""

    idempotent = True
    name = PLUGIN_NAME

    def __init__(self) -> None:
        self._books: dict[str, ByteBook] = {}

    async def start(self, scheduler: Any) -> None:
        scheduler.handlers.update(
            inat_budget_reserve=self.reserve, inat_budget_take=self.take, inat_budget_settle=self.settle
        )

    async def close(self) -> None:
        self.close_books()

    def close_books(self) -> None:
        for book in self._books.values():
            book.ledger.close()
        self._books.clear()

    def _book(self, path: str, lead: float) -> ByteBook:
        """The ledger of budget file ``path`` (opened at first use); ``lead``: how far
        ahead a request may be booked (a minute of its window)."""
        if path not in self._books:
            self._books[path] = ByteBook(Ledger(Path(path), lead=lead))
        return self._books[path]

    async def reserve(
        self, book: str, lead: float, key: str, windows: list[WindowSpec], interval: float
    ) -> tuple[float, str | None, bool, float]:
        ledger = self._book(book, lead).ledger
        slot = await asyncio.to_thread(ledger.reserve, key, _windows(windows), interval)
        return slot.time, slot.reason, slot.booked, slot.wait

    async def take(
        self,
        book: str,
        lead: float,
        key: str,
        kind: str,
        windows: list[WindowSpec],
        patience: float,
        first: float | None = None,
    ) -> tuple[int | None, float]:
        book_ = self._book(book, lead)
        return await book_.take(key, kind, _windows(windows), min(patience, _PATIENCE), first)

    async def settle(
        self, book: str, lead: float, key: str, row: int, kind: str, nbytes: float, booked: float
    ) -> None:
        await self._book(book, lead).settle(key, row, kind, nbytes, booked)


def _windows(specs: Sequence[WindowSpec]) -> list[Window]:
    return [Window(float(limit), float(span), str(name), bool(jitter)) for limit, span, name, jitter in specs]


def _specs(windows: Sequence[Window]) -> list[WindowSpec]:
    return [(w.limit, w.span, w.name, w.jitter) for w in windows]


class _OnScheduler:
    """The :class:`BudgetPlugin`'s handlers as a worker calls them, from threads of its own
    (each call waits for the scheduler's answer), for the budget file ``book``."""

    def __init__(self, book: str, lead: float) -> None:
        from distributed import get_worker

        self._worker = get_worker()
        self.worker = str(self._worker.address)
        self.book = book
        self.lead = lead

    def call(self, op: str, **arguments: Any) -> Any:
        from distributed.utils import sync

        handler = getattr(self._worker.scheduler, op)
        return sync(self._worker.loop, handler, book=self.book, lead=self.lead, **arguments)


class ClusterPoliteness(Politeness):
    """Politeness whose photo budgets are the cluster's: bytes and requests booked on the
    scheduler (:class:`BudgetPlugin`), each host's downloads at once leased from a Dask
    Semaphore. ``book``: the budget file the scheduler counts this run in."""

    def __init__(self, settings: Settings, book: str, *, own: bool = False) -> None:
        super().__init__(settings)
        self._book_path = book
        self._scheduler: _OnScheduler | None = None
        # --budget-scope worker: the books kept here, in the worker's own budget file (its
        # leases its own too), with the same rules as the scheduler's.
        self._own = BudgetPlugin() if own else None
        self._lease_scope = ""
        self._leases: dict[str, tuple[Any, asyncio.Semaphore]] = {}
        # Waiters for leases (at most media_concurrency a host) and their releases.
        self._lease_threads = ThreadPoolExecutor(
            max_workers=4 * settings.budgets.media_concurrency + 2, thread_name_prefix="inat_async-lease"
        )
        # Calls to the scheduler's books, each waiting there for its answer (a booking up to
        # _PATIENCE s): in threads of their own, as many as leases can wait at once. In the
        # loop's default threads (a handful) the waiting bookings held every settle queued
        # behind them, so no turn came back before they gave up (seconds at each task's start).
        self._book_threads = ThreadPoolExecutor(
            max_workers=4 * settings.budgets.media_concurrency + 2, thread_name_prefix="inat_async-book"
        )

    def open(self) -> None:
        if self.enabled:
            self._scheduler = _OnScheduler(self._book_path, self.budgets.minute)
            if self._own is not None:
                self._lease_scope = f" of {self._scheduler.worker}"

    def close(self) -> None:
        self._scheduler = None
        self._lease_threads.shutdown()
        self._book_threads.shutdown()
        if self._own is not None:
            self._own.close_books()

    async def _ask(self, op: str, **arguments: Any) -> Any:
        assert self._scheduler is not None
        if self._own is not None:
            handler = getattr(self._own, op.removeprefix("inat_budget_"))
            return await handler(book=self._book_path, lead=self.budgets.minute, **arguments)
        call = functools.partial(self._scheduler.call, op, **arguments)
        return await asyncio.get_running_loop().run_in_executor(self._book_threads, call)

    @contextlib.asynccontextmanager
    async def media_turn(
        self, host: str, kind: str | None = None, cap: int | None = None
    ) -> AsyncIterator[object]:
        """A lease of the host's cluster-wide slots, the expected bytes of a file of ``kind``
        booked in its byte budgets, then a slot in its request budget (evenly spaced across
        the cluster); the booking is yielded, for :meth:`spent_bytes` to settle."""
        if not self.enabled:
            async with self._in_flight:
                yield None
            return
        state = self._host(host)
        async with self._lease(host):
            booked = await self._book_bytes(host, kind, cap) if kind is not None else None
            try:
                async with self._in_flight:
                    while True:
                        await self._wait_retry_after(host, state)
                        if await self._media_slot(host, state):
                            break
                    yield booked
            finally:
                if booked is not None and not booked.settled:  # no answer came: nothing served
                    await self.spent_bytes(host, 0, booked)

    async def spent_bytes(self, host: str, nbytes: int, booked: object = None) -> None:
        """The booking made before the request set to what its answer has."""
        if isinstance(booked, Booking):
            booked.settled = True
            await self._ask(
                "inat_budget_settle",
                key=booked.key, row=booked.row, kind=booked.kind, nbytes=nbytes, booked=booked.amount,
            )  # fmt: skip

    async def _book_bytes(self, host: str, kind: str, cap: int | None) -> Booking:
        """Bytes of one file booked in the host's byte budgets (an hour and a day) before its
        request, waiting on the scheduler until both have room: only that wait is counted as
        held by them (not the round trip of every booking)."""
        windows = self.byte_windows(host)
        key = f"bytes {host}"
        take = {"key": key, "kind": kind, "windows": _specs(windows), "first": cap}
        row, amount = await self._ask("inat_budget_take", patience=0.0, **take)
        while row is None:
            with self.clock.held(windows[0].name):
                row, amount = await self._ask("inat_budget_take", patience=_PATIENCE, **take)
        return Booking(key, int(row), kind, float(amount))

    async def _media_slot(self, host: str, state: Any) -> bool:
        """Book this request in the host's request budget and wait for its slot; False when
        a Retry-After came meanwhile (the slot is given up, as for the API)."""
        b = self.budgets
        rpm = max(1.0, b.media_rpm * state.factor)
        name = f"{b.media_rpm} photo requests a {span_name(b.minute)} to {host}"
        window = Window(int(rpm), b.minute + _REPLY_MARGIN, name)
        answer = await self._ask(
            "inat_budget_reserve", key=f"media {host}", windows=_specs([window]), interval=b.minute / rpm
        )
        slot = Slot(*answer)
        if not slot.booked:  # too far ahead to book: wait until it is near, then ask again
            await self._sleep(slot.wait - b.minute, b.minute * 1.02, name, "media", name)
            return False
        await self._sleep(slot.wait, b.minute * 1.02, slot.reason, "media", name)
        return bool(state.not_before <= time.monotonic())

    @contextlib.asynccontextmanager
    async def _lease(self, host: str) -> AsyncIterator[None]:
        """One of the host's cluster-wide leases. Dask's Semaphore blocks its caller: it is
        asked in threads of this Politeness' own (never the loop's default ones, which the
        ledger's calls and the releases need), by at most as many here as it has leases."""
        lease, local = self._semaphore(host)
        loop = asyncio.get_running_loop()
        async with local:
            claim = _Claim(lease)
            waiting = asyncio.wrap_future(self._lease_threads.submit(claim.take))
            try:
                await asyncio.shield(waiting)
            except asyncio.CancelledError:
                waiting.add_done_callback(_seen)  # its error, if any, is no one's now
                if claim.abandon():  # taken already: given back while the threads still run
                    self._lease_threads.submit(lease.release)
                raise
            try:
                yield
            finally:
                await loop.run_in_executor(self._lease_threads, lease.release)

    def _semaphore(self, host: str) -> tuple[Any, asyncio.Semaphore]:
        from distributed import Semaphore

        if host not in self._leases:
            slots = self.budgets.media_concurrency
            lease = Semaphore(max_leases=slots, name=f"inat_async media {host}{self._lease_scope}")
            self._leases[host] = (lease, asyncio.Semaphore(slots))
        return self._leases[host]


class _Claim:
    """One wait for a cluster-wide lease, in a thread, that its task may abandon (cancelled:
    the run stops, an IP block). A lease taken after that is given back by the thread; one
    taken before, by the task (:meth:`abandon` says so). Once a lease taken after its task
    was cancelled was given back by a callback on a thread pool already shut: it stayed held
    for as long as the worker lived, and the next runs on that cluster fetched nothing."""

    def __init__(self, lease: Any):
        self._lease = lease
        self._lock = threading.Lock()
        self._abandoned = False
        self._held = False

    def take(self) -> bool:
        try:
            got = bool(self._lease.acquire())
        except Exception:
            with self._lock:
                if self._abandoned:  # nobody waits for it: the run is stopping
                    return False
            raise
        with self._lock:
            if not self._abandoned:
                self._held = got
                return got
        if got:
            self._lease.release()
        return False

    def abandon(self) -> bool:
        """The task gives up waiting: whether it holds the lease (then it gives it back)."""
        with self._lock:
            self._abandoned = True
            return self._held


def _seen(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
