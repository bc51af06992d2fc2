"""The driver of the cluster photo stage: the manifest built from the state, one Dask task per
shard (a few in flight per worker, so memory and progress stay bounded), each task's outcomes
merged into the state as it ends. Only the driver writes SQLite.

``--scheduler local:N`` starts a LocalCluster of N worker processes here; an address
(``tcp://host:8786``) uses a running scheduler (dask-jobqueue, dask-kubernetes, Coiled, or
``dask scheduler`` and ``dask worker`` by hand). A worker that dies mid-shard loses nothing:
Dask runs its task again elsewhere, and the files it stored are found and checked there.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

from distributed import Client, LocalCluster, as_completed

from inat_async.cluster.budgets import BudgetPlugin
from inat_async.cluster.manifest import MANIFEST, outcomes, write_manifest
from inat_async.cluster.tasks import fetch_shard
from inat_async.config import Settings
from inat_async.model import PhotoStatus
from inat_async.net.budget import default_budget_file
from inat_async.net.http import Http
from inat_async.pipeline.progress import Progress
from inat_async.store.state import State

log = logging.getLogger("inat_async")

#: Tasks in flight per worker thread: one running, one waiting to start.
_IN_FLIGHT_PER_THREAD = 2
#: The fewest files a shard is cut to when shards are made smaller to fill the cluster.
_FEWEST_FILES = 100


async def cluster_stage(settings: Settings, state: State, http: Http, progress: Progress) -> None:
    """Fetch the state's pending files on the cluster ``settings.scheduler`` names."""
    del http  # the driver fetches nothing itself
    pending = sum(state.pending_by_host().values())
    if not pending:
        return
    # Every worker counts in the same budget file: the driver's (resolved here, where the
    # user's environment is).
    settings = replace(settings, budget_file=settings.budget_file or default_budget_file())
    async with _client(settings) as client:
        threads = sum((await client.nthreads()).values())
        shards = write_manifest(state, settings.out, shard_files(pending, threads, settings.shard_files))
        log.info(
            "%s files in %d shards on %d worker threads at %s",
            f"{pending:,}", len(shards), threads, settings.scheduler,
        )  # fmt: skip
        book = await _budget_book(client, settings)
        await _run_shards(
            client, settings, book, shards, state, progress, max(1, threads) * _IN_FLIGHT_PER_THREAD
        )
    # Every shard's outcomes are in the state: the manifest is spent (a run that stops keeps
    # it, and the next one writes it anew from the state anyway).
    shutil.rmtree(settings.out / MANIFEST, ignore_errors=True)


def shard_files(pending: int, threads: int, most: int) -> int:
    """Files a shard: at most ``most``, and few enough that every worker thread gets two
    shards (a small harvest in one shard ran on one thread), but not under a hundred (a task
    has its cost)."""
    return max(1, min(most, max(_FEWEST_FILES, -(-pending // (2 * max(1, threads))))))


async def _run_shards(
    client: Client,
    settings: Settings,
    book: str | None,
    shards: list[Any],
    state: State,
    progress: Progress,
    window: int,
) -> None:
    waiting = iter(shards)
    run = uuid.uuid4().hex[:12]  # keys of this run's tasks, apart from any other's on the cluster

    def submit(path: Any) -> Any:
        # pure=False: a shard's task runs whenever asked (its outcome depends on the network).
        return client.submit(
            fetch_shard, path.read_bytes(), settings, book, key=f"inat-{run}-{path.stem}", pure=False
        )

    per_worker: Counter[str] = Counter()
    running = as_completed([submit(path) for path in _take(waiting, window)], with_results=True)
    async for _, table in running:
        for seq, status, nbytes, reason, host, worker in outcomes(table):
            state.finish_photo(seq, PhotoStatus(status), nbytes, reason)  # a status of ours, or refused
            progress.finished(PhotoStatus(status), nbytes, host, reason)
            per_worker[worker] += 1
        state.photo_counts()  # the batch of done files written: a shard's outcomes are kept
        for path in _take(waiting, 1):
            running.add(submit(path))
    log.info("files per worker: %s", ", ".join(f"{w} {n:,}" for w, n in sorted(per_worker.items())))


def _take(items: Any, n: int) -> list[Any]:
    return [item for _, item in zip(range(n), items, strict=False)]


async def _budget_book(client: Client, settings: Settings) -> str | None:
    """The budget file the scheduler counts this run in (cluster scope, limits on; the
    scheduler's :class:`BudgetPlugin` registered if it has none yet), or None."""
    if not settings.limits or settings.budget_scope == "worker":
        return None
    await client.register_plugin(BudgetPlugin())
    return str(settings.budget_file)


@contextlib.asynccontextmanager
async def _client(settings: Settings) -> AsyncIterator[Client]:
    """A client of the scheduler the settings name: a LocalCluster of N processes for
    ``local[:N]``, closed with the stage; a running scheduler's address otherwise."""
    logging.getLogger("distributed").setLevel(logging.WARNING)  # its INFO lines are for its own debugging
    address = str(settings.scheduler)
    if address.startswith("local"):
        workers = int(address.partition(":")[2] or 2)
        async with (
            LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",
                asynchronous=True,
            ) as cluster,
            Client(cluster, asynchronous=True) as client,
        ):
            yield client
        return
    async with Client(address, asynchronous=True) as client:
        yield client
