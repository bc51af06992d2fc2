"""Budgets that hold across the whole cluster (its workers share one egress IP).

The sliding windows (requests a minute and bytes an hour and a day, per photo host) are
counted by one :class:`BudgetBook`, a Dask actor: the same :class:`~inat_async.net.budget.Ledger`
a harvest keeps on one machine, living on one worker, which every worker books through. A
request reserves its slot there (evenly spaced, never over a window), so N workers together
send no more than one machine would. Each host's downloads at once are leases of a Dask
``Semaphore`` of its own. Nothing here trusts a worker's clock: a slot comes back as a wait.

With ``--budget-scope worker`` (workers with an IP each) a worker keeps its own ledger.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from inat_async.config import Settings
from inat_async.net.budget import Ledger, Slot, Window
from inat_async.net.politeness import Politeness

#: A slot is the actor's time; its request goes when the answer has come back and the wait
#: has passed, so later by the answer's way back, which varies from worker to worker: each
#: window of requests is counted this much longer, so none holds more than its limit however
#: the answers were delayed (a small share of a real minute).
_REPLY_MARGIN = 0.3


class BudgetBook:
    """The cluster's ledger, run as a Dask actor (one worker holds it; calls come in turn)."""

    def __init__(self, path: str, lead: float) -> None:
        self._ledger = Ledger(Path(path), lead=lead)

    def reserve(self, key: str, windows: Sequence[Window], interval: float, amount: float = 1.0) -> Slot:
        return self._ledger.reserve(key, windows, interval, amount)

    def record(self, key: str, amount: float) -> None:
        self._ledger.record(key, amount)

    def postpone(self, key: str, slot: float, actual: float) -> None:
        self._ledger.postpone(key, slot, actual)

    def wait_for_room(self, key: str, window: Window) -> float:
        return self._ledger.wait_for_room(key, window)

    def used(self, key: str, span: float) -> float:
        return self._ledger.used(key, span)

    def wait_for_rooms(self, key: str, windows: Sequence[Window]) -> tuple[float, Window | None]:
        """The longest wait for room in any of ``windows`` and its window: one call for all."""
        waits = [(self._ledger.wait_for_room(key, window), window) for window in windows]
        return max(waits, key=lambda item: item[0], default=(0.0, None))


class _BookedLedger:
    """A worker's view of the :class:`BudgetBook` actor, with the Ledger's methods (called
    from threads, as Politeness calls a ledger): each call waits for the actor's answer. A
    slot's time is the actor's clock: only its ``wait`` is used here."""

    def __init__(self, book: Any) -> None:
        self._book = book

    def reserve(self, key: str, windows: Sequence[Window], interval: float, amount: float = 1.0) -> Slot:
        return Slot(*self._book.reserve(key, windows, interval, amount).result())

    def record(self, key: str, amount: float) -> None:
        self._book.record(key, amount).result()

    def postpone(self, key: str, slot: float, actual: float) -> None:
        del key, slot, actual  # another clock's slot: the wait already spaced it

    def wait_for_room(self, key: str, window: Window) -> float:
        return float(self._book.wait_for_room(key, window).result())

    def used(self, key: str, span: float) -> float:
        return float(self._book.used(key, span).result())

    def wait_for_rooms(self, key: str, windows: Sequence[Window]) -> tuple[float, Window | None]:
        wait, window = self._book.wait_for_rooms(key, windows).result()
        return float(wait), window

    def close(self) -> None:
        pass


class ClusterPoliteness(Politeness):
    """Politeness whose photo budgets are the cluster's: bytes and requests booked in the
    :class:`BudgetBook`, each host's downloads at once leased from a Dask Semaphore."""

    def __init__(self, settings: Settings, book: Any) -> None:
        super().__init__(settings)
        self._book = book
        self._leases: dict[str, tuple[Any, asyncio.Semaphore]] = {}
        # Waiters for leases (at most media_concurrency a host) and their releases.
        self._lease_threads = ThreadPoolExecutor(
            max_workers=4 * settings.budgets.media_concurrency + 2, thread_name_prefix="inat_async-lease"
        )

    def open(self) -> None:
        if self.enabled:
            self._ledger = _BookedLedger(self._book)  # type: ignore[assignment]

    def close(self) -> None:
        self._ledger = None
        self._lease_threads.shutdown()

    @contextlib.asynccontextmanager
    async def media_turn(self, host: str) -> AsyncIterator[None]:
        """A lease of the host's cluster-wide slots, room in its byte budgets, then a slot in
        its request budget booked in the BudgetBook (evenly spaced across the cluster)."""
        if not self.enabled:
            async with self._in_flight:
                yield
            return
        state = self._host(host)
        async with self._lease(host):
            await self._wait_for_bytes(host)
            async with self._in_flight:
                while True:
                    await self._wait_retry_after(host, state)
                    if await self._media_slot(host, state):
                        break
                yield

    async def _wait_for_bytes(self, host: str) -> None:
        """Room in the host's byte budgets (an hour and a day), asked of the BudgetBook in one
        call (one round trip a request, not one a window)."""
        b = self.budgets
        windows = [
            Window(limit_gb * 1e9, span, f"{limit_gb:g} GB of photos a {_span(span)} from {host}")
            for limit_gb, span in ((b.media_gb_per_hour, b.hour), (b.media_gb_per_day, b.day))
        ]
        assert isinstance(self._ledger, _BookedLedger)
        wait, window = await asyncio.to_thread(self._ledger.wait_for_rooms, f"bytes {host}", windows)
        if window is not None and wait > 0:
            await self._sleep(wait, window.span * 1.02, window.name, "media", window.name)

    async def _media_slot(self, host: str, state: Any) -> bool:
        """Book this request in the host's request budget and wait for its slot; False when
        a Retry-After came meanwhile (the slot is given up, as for the API)."""
        b = self.budgets
        rpm = max(1.0, b.media_rpm * state.factor)
        name = f"{b.media_rpm} photo requests a {_span(b.minute)} to {host}"
        window = Window(int(rpm), b.minute + _REPLY_MARGIN, name)
        assert self._ledger is not None
        slot = await asyncio.to_thread(self._ledger.reserve, f"media {host}", [window], b.minute / rpm)
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
            acquired = loop.run_in_executor(self._lease_threads, lease.acquire)
            try:
                await asyncio.shield(acquired)
            except asyncio.CancelledError:  # the lease may still come: give it back then
                acquired.add_done_callback(lambda _: self._lease_threads.submit(lease.release))
                raise
            try:
                yield
            finally:
                await loop.run_in_executor(self._lease_threads, lease.release)

    def _semaphore(self, host: str) -> tuple[Any, asyncio.Semaphore]:
        from distributed import Semaphore

        if host not in self._leases:
            slots = self.budgets.media_concurrency
            lease = Semaphore(max_leases=slots, name=f"inat_async media {host}")
            self._leases[host] = (lease, asyncio.Semaphore(slots))
        return self._leases[host]


def _span(seconds: float) -> str:
    names = {60.0: "minute", 3600.0: "hour", 86400.0: "day"}
    return names.get(seconds, f"{seconds:g} s")
