"""The feeders: pending photo files move from the state into one bounded queue per photo host,
each drained by workers of its own, so a host that must wait (its byte budget spent, a
Retry-After) never holds up the files of another.

The pager commits pages to the state and sets ``new_page``; a host's feeder starts with the
first page that queues a file on it and ends once paging is done and nothing is left for it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from inat_async.model import PhotoStatus
from inat_async.pipeline.downloader import Downloader, Record, run_workers
from inat_async.pipeline.progress import FOUND_STORED
from inat_async.store.state import PhotoJob, State


@dataclass
class Feeders:
    """The feeders of one harvest's photo hosts; ``workers`` is each host's pool size (the
    downloads in flight, all hosts together, are capped by the politeness gate)."""

    state: State
    downloader: Downloader
    record: Record
    workers: int
    new_page: asyncio.Event
    paging_done: asyncio.Event

    async def run(self) -> None:
        """Feed every photo host until paging is done and each has fetched all it has."""
        fed: set[str] = set()
        async with asyncio.TaskGroup() as group:
            while True:
                last_look = self.paging_done.is_set()
                for host in sorted(self.state.photo_hosts() - fed):
                    fed.add(host)
                    group.create_task(self._feed(host))
                if last_look:
                    return
                await self._next_page()

    async def _feed(self, host: str) -> None:
        """One host: its queue, its workers, and its rows moved into the queue in order."""
        queue: asyncio.Queue[PhotoJob | None] = asyncio.Queue(maxsize=self.workers * 4)
        async with asyncio.TaskGroup() as group:
            for _ in range(self.workers):
                group.create_task(run_workers(self.downloader, queue, self.record))
            await self._fill(host, queue)
            for _ in range(self.workers):
                await queue.put(None)

    async def _fill(self, host: str, queue: asyncio.Queue[PhotoJob | None]) -> None:
        last_seq, batch = 0, self.workers * 4
        while True:
            jobs = self.state.pending_photos(host, last_seq, batch)
            on_disk = await asyncio.to_thread(self.downloader.on_disk, jobs) if jobs else {}
            for job in jobs:
                if job.seq in on_disk:
                    self.record(job, PhotoStatus.DONE, on_disk[job.seq], FOUND_STORED)
                else:
                    await queue.put(job)
                last_seq = job.seq
            if jobs:
                continue
            if self.paging_done.is_set():
                # Rows committed after the last look would be pending still: one more look.
                if not self.state.pending_photos(host, last_seq, 1):
                    return
                continue
            await self._next_page()

    async def _next_page(self) -> None:
        # Waiters are woken by set(), so clearing here never hides a page from another task;
        # and nothing awaits between a task's last look at the state and this clear().
        self.new_page.clear()
        await self.new_page.wait()
