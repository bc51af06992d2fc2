"""Where a harvest stands: counters the stages update, and a line logged every few seconds."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

log = logging.getLogger("inat_async")


@dataclass
class Progress:
    """Counters of one run; the stages add to them, the reporter reads them."""

    expected: int = 0  # total_results of the queries, as the API counted them
    paged: int = 0
    queued: int = 0  # photo files added to the queue this run
    backlog: int = 0  # photo files left pending by an earlier run
    done: int = 0
    missing: int = 0
    skipped: int = 0
    failed: int = 0
    bytes: int = 0
    started: float = field(default_factory=time.monotonic)

    def finished(self, status: str, nbytes: int | None) -> None:
        setattr(self, status, getattr(self, status) + 1)
        self.bytes += nbytes or 0

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        files = self.done + self.missing + self.skipped + self.failed
        total = f"/{self.expected:,}" if self.expected else ""
        return (
            f"observations {self.paged:,}{total} | photos {files:,}/{self.queued + self.backlog:,}"
            f" ({self.failed:,} failed) | {self.bytes / 1e6:,.1f} MB"
            f" | {self.done / elapsed:,.1f} files/s | {elapsed:,.0f} s"
        )


async def report(progress: Progress, interval: float, stop: asyncio.Event) -> None:
    """Log the progress line every ``interval`` seconds until ``stop`` is set."""
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), interval)
        except TimeoutError:
            log.info("%s", progress.line())
