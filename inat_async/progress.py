"""Where a harvest stands: counters the stages update, shown live in a terminal (rich) or as a
log line every few seconds elsewhere (a file, a pipe, a scheduler's log)."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
from rich.progress import Progress as Bars

log = logging.getLogger("inat_async")


@dataclass
class Progress:
    """Counters of one run; the stages add to them, the display reads them."""

    expected: int = 0  # total_results of the queries, as the API counted them
    paged: int = 0
    queued: int = 0  # photo files added to the queue this run
    backlog: int = 0  # photo files left pending by an earlier run
    done: int = 0
    missing: int = 0
    skipped: int = 0
    failed: int = 0
    bytes: int = 0
    waiting: str | None = None  # what the harvest waits for, while it waits
    started: float = field(default_factory=time.monotonic)

    def finished(self, status: str, nbytes: int | None) -> None:
        setattr(self, status, getattr(self, status) + 1)
        self.bytes += nbytes or 0

    @property
    def files(self) -> int:
        return self.done + self.missing + self.skipped + self.failed

    def elapsed(self) -> float:
        return max(time.monotonic() - self.started, 1e-9)

    def line(self) -> str:
        total = f"/{self.expected:,}" if self.expected else ""
        waiting = f" | waiting: {self.waiting}" if self.waiting else ""
        return (
            f"observations {self.paged:,}{total} | photos {self.files:,}/{self.queued + self.backlog:,}"
            f" ({self.failed:,} failed) | {self.bytes / 1e6:,.1f} MB"
            f" | {self.done / self.elapsed():,.1f} files/s | {self.elapsed():,.0f} s{waiting}"
        )


async def report(progress: Progress, interval: float, stop: asyncio.Event, console: Console | None) -> None:
    """Show ``progress`` until ``stop`` is set: live bars on ``console``, else log lines."""
    if console is None:
        while not await _stopped(stop, interval):
            log.info("%s", progress.line())
        return
    with Bars(
        TextColumn("{task.description:<12}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    ) as bars:
        observations = bars.add_task("observations", total=None, rate="")
        photos = bars.add_task("photos", total=None, rate="")
        status = bars.add_task("", total=None, rate="", start=False)
        while True:
            stopping = await _stopped(stop, 0.25)
            p = progress
            bars.update(
                observations,
                completed=p.paged,
                total=p.expected or None,
                rate=f"{p.paged / p.elapsed():,.0f}/s",
            )
            bars.update(
                photos,
                completed=p.files,
                total=(p.queued + p.backlog) or None,
                rate=f"{p.done / p.elapsed():,.0f}/s {p.bytes / 1e6:,.0f} MB",
            )
            bars.update(status, description=f"waiting: {p.waiting}" if p.waiting else "")
            if stopping:
                return


async def _stopped(stop: asyncio.Event, interval: float) -> bool:
    try:
        await asyncio.wait_for(stop.wait(), interval)
    except TimeoutError:
        return False
    return True
