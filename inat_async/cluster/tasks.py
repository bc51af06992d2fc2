"""One task of the cluster photo stage, run on a worker: a shard's files fetched by the
project's own downloader (aiohttp, many files in flight, every check of a harvest), written to
the store, their outcomes returned as a small table. Files already stored whole (a task run
again after its worker died) are found and checked, not fetched again.

A task runs its own event loop in the worker's task thread; the files of each photo host have
workers of their own, so a host that waits holds up no other.
"""

from __future__ import annotations

import asyncio
import itertools
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa

from inat_async.cluster.budgets import ClusterPoliteness
from inat_async.cluster.live import TaskReport
from inat_async.cluster.manifest import outcome_table, read_jobs
from inat_async.config import Settings
from inat_async.errors import HarvestError
from inat_async.model import PhotoStatus
from inat_async.net.http import Http
from inat_async.net.politeness import Politeness
from inat_async.pipeline.downloader import Downloader, run_workers
from inat_async.pipeline.progress import FOUND_STORED
from inat_async.pipeline.sink import store_downloader
from inat_async.store.state import PhotoJob
from inat_async.version import __version__

Outcome = tuple[int, str, int | None, str | None, str]


def package_version() -> str:
    """The inat_async a worker runs (the driver asks each before its first task): a worker
    that cannot import it fails this call, not a task (a task it cannot load kills it)."""
    return __version__


def fetch_shard(shard: bytes, settings: Settings, book: str | None, topic: str | None = None) -> pa.Table:
    """The Dask task: fetch a shard's files; their outcomes (seq, status, bytes, reason, host,
    and the worker's address).
    ``book``: the budget file the scheduler counts the cluster's budgets in, or None for a
    worker's own budgets. ``topic``: the Dask event topic this task reports its progress on
    every second (see cluster/live.py), or None."""
    from distributed import get_worker

    worker = get_worker()
    key = str(worker.get_current_task())

    def send(message: dict[str, Any]) -> None:
        if topic is not None:
            worker.log_event(topic, {"key": key, **message})

    try:
        rows = asyncio.run(_fetch(read_jobs(shard), settings, book, send))
    except BaseExceptionGroup as group:
        error = _harvest_error(group)
        if error is None:
            raise
    else:
        return outcome_table([(*row, str(worker.address)) for row in rows])
    # Sent to the driver without what it was raised amid: Dask pickles an error's whole chain,
    # and the store's own errors hold its connections (the driver then got a bare Exception).
    error.__context__ = error.__cause__ = None
    raise error


def _harvest_error(group: BaseExceptionGroup[BaseException]) -> HarvestError | None:
    """The HarvestError the task's TaskGroups raised (blocked, a store that refuses writes),
    out of its group: the driver ends the run with it in one line (a group it took for a
    task that failed)."""
    matched, _ = group.split(HarvestError)
    leaf: BaseException | None = matched
    while isinstance(leaf, BaseExceptionGroup):
        leaf = leaf.exceptions[0]
    return leaf if isinstance(leaf, HarvestError) else None


async def _fetch(
    jobs: list[PhotoJob], settings: Settings, book: str | None, send: Callable[[dict[str, Any]], None]
) -> list[Outcome]:
    if book is not None:
        politeness: Politeness = ClusterPoliteness(settings, book)
    elif settings.limits:
        politeness = ClusterPoliteness(settings, str(_worker_budget_file()), own=True)
    else:
        politeness = Politeness(settings)
    outcomes: list[Outcome] = []
    report = TaskReport(send, politeness.clock)

    def record(job: PhotoJob, status: str, nbytes: int | None, reason: str | None) -> None:
        outcomes.append((job.seq, status, nbytes, reason, job.host))
        report.count(job.host, status, nbytes, reason)

    politeness.open()
    try:
        async with Http(settings, politeness) as http, report.every():
            with store_downloader(http, settings, sole_writer=False) as downloader:
                stored = await asyncio.to_thread(downloader.on_disk, jobs)
                for job in jobs:
                    if job.seq in stored:
                        record(job, PhotoStatus.DONE, stored[job.seq], FOUND_STORED)
                left = sorted((job for job in jobs if job.seq not in stored), key=lambda job: job.host)
                async with asyncio.TaskGroup() as group:
                    for _, of_host in itertools.groupby(left, key=lambda job: job.host):
                        group.create_task(_fetch_host(downloader, list(of_host), settings.workers, record))
    finally:
        politeness.close()
    return outcomes


async def _fetch_host(downloader: Downloader, jobs: list[PhotoJob], workers: int, record: Any) -> None:
    queue: asyncio.Queue[PhotoJob | None] = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)
    for _ in range(workers):
        queue.put_nowait(None)
    async with asyncio.TaskGroup() as group:
        for _ in range(min(workers, len(jobs))):
            group.create_task(run_workers(downloader, queue, record))


def _worker_budget_file() -> Path:
    """A worker's own budget file (--budget-scope worker: its own IP), kept across its tasks."""
    from distributed import get_worker

    name = "".join(c if c.isalnum() else "-" for c in str(get_worker().name))
    return Path(tempfile.gettempdir()) / f"inat_async-budget-worker-{name}.sqlite"
