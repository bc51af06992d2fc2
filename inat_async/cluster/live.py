"""What a cluster's tasks tell the driver while they run: each task's files finished so far
(per host and outcome, with their bytes) and the seconds each budget held its requests, sent
every second as a Dask event (``Worker.log_event``; the driver ``Client.subscribe_topic``s
its run's topic). A shard of a few thousand files takes minutes: without these the driver's
bars would stand still until its outcome table came.

A report is a task's running total, not a difference, so a report lost or late changes
nothing: the driver shows the outcomes of the tasks ended (from their tables, the truth the
state gets) plus the latest report of each task still running, and forgets a task's report
when its table comes or it is submitted again. Events are small (a few counts a host): the
scheduler keeps the last ones of each topic (``distributed.scheduler.events-log-length``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from inat_async.model import PhotoStatus
from inat_async.net.politeness import WaitClock
from inat_async.net.waits import wait_set
from inat_async.pipeline.progress import FOUND_STORED, Progress

#: Seconds between a task's reports.
REPORT_EVERY = 1.0

#: (host, status, found already stored) -> [files, bytes]
Tally = dict[tuple[str, str, bool], list[int]]


def topic(run: str) -> str:
    """The Dask event topic of run ``run``'s reports."""
    return f"inat_async-progress-{run}"


class TaskReport:
    """A task's running totals, on its worker; ``send`` takes a message (Worker.log_event)."""

    def __init__(self, send: Callable[[dict[str, Any]], None], clock: WaitClock) -> None:
        self._send = send
        self._clock = clock
        self._tally: Tally = {}

    def count(self, host: str, status: str, nbytes: int | None, reason: str | None) -> None:
        # Plain strings: an event must be msgpack-able (a StrEnum is not).
        files_bytes = self._tally.setdefault((str(host), str(status), reason == FOUND_STORED), [0, 0])
        files_bytes[0] += 1
        files_bytes[1] += nbytes or 0

    def send(self) -> None:
        rows = [[*what, files, nbytes] for what, (files, nbytes) in self._tally.items()]
        self._send({"tally": rows, "held": self._clock.snapshot()})

    @contextlib.asynccontextmanager
    async def every(self, seconds: float = REPORT_EVERY) -> AsyncIterator[None]:
        """Report every ``seconds`` while the body runs, and once more at its end."""
        stop = asyncio.Event()
        async with asyncio.TaskGroup() as group:
            group.create_task(self._until(stop, seconds))
            try:
                yield
            finally:
                stop.set()
        self.send()

    async def _until(self, stop: asyncio.Event, seconds: float) -> None:
        while not stop.is_set():
            await wait_set(stop, seconds)
            self.send()


class LiveProgress:
    """The driver's side: each running task's latest report shown in ``progress`` on top of
    the outcomes of the tasks ended, and the seconds the budgets held the workers' requests
    (averaged over the cluster's ``threads``, as a share of the stage's time)."""

    def __init__(self, progress: Progress, clock: WaitClock, threads: int) -> None:
        self.progress = progress
        self.clock = clock
        self.threads = max(1, threads)
        self._shown: dict[str, Tally] = {}  # task key -> its report counted in progress
        self._ended: set[str] = set()  # tasks whose table came or that were given up
        self._held: dict[str, dict[str, float]] = {}  # task key -> its budgets' seconds, kept

    def on_event(self, event: tuple[float, Mapping[str, Any]]) -> None:
        """A report (``Client.subscribe_topic``'s handler): ``(time, {"key", "tally", "held"})``."""
        message = event[1]
        key = str(message.get("key"))
        self._hold(key, message.get("held") or {})
        if key in self._ended:
            return  # its table has come (or it was given up): the report is late
        tally: Tally = {
            (str(host), str(status), bool(found)): [int(files), int(nbytes)]
            for host, status, found, files, nbytes in message.get("tally") or []
        }
        self._count(self._shown.pop(key, {}), -1)
        self._count(tally, 1)
        self._shown[key] = tally

    def ended(self, key: str) -> None:
        """Task ``key`` ended (its table is about to be counted) or was given up: its report
        taken back."""
        self._ended.add(key)
        self._count(self._shown.pop(key, {}), -1)

    def _count(self, tally: Tally, sign: int) -> None:
        for (host, status, found), (files, nbytes) in tally.items():
            self.progress.counted(PhotoStatus(status), host, sign * files, sign * nbytes, found=found)

    def _hold(self, key: str, held: Mapping[str, float]) -> None:
        """The task's seconds held, added to the driver's clock as the workers' mean."""
        before = self._held.get(key, {})
        now = {str(budget): float(s) for budget, s in held.items()}
        self.clock.add({budget: (s - before.get(budget, 0.0)) / self.threads for budget, s in now.items()})
        self._held[key] = now
