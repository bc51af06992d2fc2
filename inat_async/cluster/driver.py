"""The driver of the cluster photo stage: the manifest built from the state, one Dask task per
shard (a few in flight per worker, so memory and progress stay bounded), each task's outcomes
merged into the state as it ends. Only the driver writes SQLite.

``--scheduler local:N`` starts a LocalCluster of N worker processes here; an address
(``tcp://host:8786``) uses a running scheduler (dask-jobqueue, dask-kubernetes, Coiled, or
``dask scheduler`` and ``dask worker`` by hand). A worker that dies mid-shard loses nothing:
Dask runs its task again elsewhere, and the files it stored are found and checked there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from asyncio import CancelledError
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import cast

import pyarrow as pa
from distributed import Client, Future, KilledWorker, LocalCluster
from distributed.client import ClosedClientError, FutureCancelledError

from inat_async.cluster.budgets import BudgetPlugin
from inat_async.cluster.live import LiveProgress, topic
from inat_async.cluster.manifest import outcomes, write_manifest
from inat_async.cluster.preload import quiet_dask
from inat_async.cluster.tasks import fetch_shard, package_version
from inat_async.config import Settings
from inat_async.errors import HarvestError
from inat_async.model import PhotoStatus
from inat_async.net.budget import default_budget_file
from inat_async.net.http import Http
from inat_async.net.waits import wait_set, within
from inat_async.pipeline.progress import Progress
from inat_async.store.objects import local_folder
from inat_async.store.state import State
from inat_async.version import __version__

log = logging.getLogger("inat_async")

#: Tasks in flight per worker thread: one running, one waiting to start.
_IN_FLIGHT_PER_THREAD = 2
#: The fewest files a shard is cut to when shards are made smaller to fill the cluster.
_FEWEST_FILES = 100
#: Seconds between the driver's looks at its tasks when none ends (at most: a look every
#: half --worker-wait, so a cluster without workers ends the run soon after that wait).
_LOOK_EVERY = 2.0
#: The fewest seconds between two looks, however short --worker-wait is.
_SOONEST_LOOK = 0.1
#: Seconds to connect to a scheduler given by address (Dask's own default).
_CONNECT = 30.0
#: The most seconds a finished task's outcome table may take to reach the driver.
_FETCH_RESULT = 60.0
#: Times a shard is submitted before the run ends with an error (each time its task was lost).
_TRIES = 3
#: What the scheduler says of a task whose future still waits when it is not on its way: its
#: result is there, it erred, or the scheduler no longer has it.
_NOT_ON_ITS_WAY = ("memory", "erred", "released", "forgotten", None)


class ClusterError(HarvestError):
    """The cluster cannot finish the photo stage: no worker left, a task lost again and again."""


async def cluster_stage(settings: Settings, state: State, http: Http, progress: Progress) -> None:
    """Fetch the state's pending files on the cluster ``settings.scheduler`` names; the
    workers' progress and waits shown in ``progress`` and counted in ``http``'s clock (the
    driver fetches nothing itself)."""
    if settings.limits and settings.budget_scope == "worker" and str(settings.scheduler).startswith("local"):
        log.warning(
            "--budget-scope worker on a local cluster: its worker processes share this machine's IP, "
            "yet each keeps the whole photo budget (more than iNaturalist allows an IP); "
            "--budget-scope cluster counts them together"
        )
    pending = sum(state.pending_by_host().values())
    if not pending:
        return
    settings = for_workers(settings)
    async with _client(settings) as client:
        await _some_worker(client, settings)
        await _workers_run_this_package(client, settings)
        workers = await client.nthreads()
        threads = sum(workers.values())
        shards = write_manifest(state, settings.out, shard_files(pending, threads, settings.shard_files))
        log.info(
            "%s files in %d shards on %d worker threads at %s",
            f"{pending:,}", len(shards), threads, settings.scheduler,
        )  # fmt: skip
        book = await _budget_book(client, settings)
        live = LiveProgress(progress, http.wait_clock, threads)
        window = max(1, threads) * _IN_FLIGHT_PER_THREAD
        await _run_shards(_Tasks(client, settings, book, live, set(workers)), shards, state, window)
    # Every shard's outcomes are in the state: the manifest is spent, removed with the run's
    # outputs (pipeline.harvest.write_outputs); a run that stops keeps it.


def for_workers(settings: Settings) -> Settings:
    """The settings as the tasks get them: OUT and a folder store as absolute paths (a
    relative one would be taken from each worker's working folder, not the driver's), and
    the budget file every worker counts in: the driver's (resolved here, where the user's
    environment is)."""
    folder = local_folder(settings.store, settings.out)
    store = str(folder.resolve()) if settings.store is not None and folder is not None else settings.store
    budget_file = settings.budget_file or default_budget_file()
    return replace(settings, out=settings.out.resolve(), store=store, budget_file=budget_file)


def shard_files(pending: int, threads: int, most: int) -> int:
    """Files a shard: at most ``most``, and few enough that every worker thread gets two
    shards (a small harvest in one shard ran on one thread), but not under a hundred (a task
    has its cost)."""
    return max(1, min(most, max(_FEWEST_FILES, -(-pending // (2 * max(1, threads))))))


async def _run_shards(tasks: _Tasks, shards: list[Path], state: State, window: int) -> None:
    """Every shard run by ``tasks``, at most ``window`` at once, each one's outcomes recorded
    in ``state`` as it ends."""
    live = tasks.live
    waiting = deque(shards)
    per_worker: Counter[str] = Counter()
    try:
        while waiting or tasks.running:
            while waiting and len(tasks.running) < window:
                tasks.submit(waiting.popleft())
            for key, table in await tasks.ended(tasks.look_every):
                live.ended(key)  # its reports taken back, its outcomes counted in their place
                for seq, status, nbytes, reason, host, worker in outcomes(table):
                    state.finish_photo(seq, PhotoStatus(status), nbytes, reason)  # ours, or refused
                    live.progress.finished(PhotoStatus(status), nbytes, host, reason)
                    per_worker[worker] += 1
                state.photo_counts()  # the batch of done files written: a shard's outcomes are kept
            await tasks.look_for_stalls()
    finally:
        # Before the client closes (also when the run stops): a scheduler still sending this
        # run's reports to a closed client logs each as CRITICAL, with a traceback.
        with contextlib.suppress(ClosedClientError):  # already closed: nothing more is sent
            tasks.client.unsubscribe_topic(tasks.topic)
    log.info("files per worker: %s", ", ".join(f"{w} {n:,}" for w, n in sorted(per_worker.items())))


class _Tasks:
    """The shards' tasks on the cluster, each one's outcome taken once. The driver never
    waits on the cluster for ever: a task whose result cannot be had (cancelled, lost with
    its worker, forgotten by the scheduler, or finished there while the driver never heard)
    is submitted again (its files already stored are found, not fetched), at most
    ``_TRIES`` times; a cluster left without any worker for ``--worker-wait`` ends the run."""

    def __init__(
        self, client: Client, settings: Settings, book: str | None, live: LiveProgress, workers: set[str]
    ) -> None:
        self.client = client
        self.settings = settings
        self.book = book
        self.live = live
        self.running: dict[Future[pa.Table], Path] = {}
        self._run = uuid.uuid4().hex[:12]  # keys of this run's tasks, apart from any other's
        self.topic = topic(self._run)
        client.subscribe_topic(self.topic, live.on_event)
        self._tries: Counter[Path] = Counter()
        self._woken = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        # key -> what the scheduler has said of it at every look since when (monotonic s)
        self._odd: dict[str, tuple[str, float]] = {}
        self._no_worker_since: float | None = None
        self._workers = workers  # at the last look
        self.look_every = max(_SOONEST_LOOK, min(_LOOK_EVERY, settings.worker_wait / 2))

    def submit(self, path: Path) -> None:
        self._tries[path] += 1
        # pure=False: a shard's task runs whenever asked (its outcome depends on the network).
        future = self.client.submit(
            fetch_shard, path.read_bytes(), self.settings, self.book, self.topic,
            key=f"inat-{self._run}-{path.stem}-{self._tries[path]}", pure=False,
        )  # fmt: skip
        future.add_done_callback(lambda _: self._loop.call_soon_threadsafe(self._woken.set))
        self.running[future] = path

    async def ended(self, patience: float) -> list[tuple[str, pa.Table]]:
        """The keys and outcome tables of the tasks ended by now, waiting up to ``patience``
        seconds for one; tasks that ended without a table are submitted again."""
        await wait_set(self._woken, patience)
        self._woken.clear()
        tables = []
        for future in [f for f in self.running if f.done()]:
            table = await self._outcome(future)
            if table is not None:
                tables.append((str(future.key), table))
        return tables

    async def _outcome(self, future: Future[pa.Table]) -> pa.Table | None:
        path = self.running.pop(future)
        self._odd.pop(str(future.key), None)
        if future.status == "error":
            error = await future.exception()
            if isinstance(error, HarvestError):
                raise error  # blocked, a setting the store refuses: the run's own end
            if not isinstance(error, KilledWorker):
                raise ClusterError(f"a photo task failed on the cluster: {type(error).__name__}: {error}")
            self._again(path, future, "its workers died")
        elif future.status == "cancelled":
            self._again(path, future, "the scheduler cancelled it")
        else:
            try:
                table: pa.Table = await within(future.result(), _FETCH_RESULT)
            # Lost on its way: its worker died, or its task was cancelled on the scheduler
            # after it finished (Dask's FutureCancelledError is not asyncio's CancelledError).
            except (TimeoutError, OSError, CancelledError, FutureCancelledError, KilledWorker) as exc:
                task = asyncio.current_task()
                if isinstance(exc, CancelledError) and task is not None and task.cancelling():
                    raise  # the run itself is stopping (Ctrl-C, SIGTERM): no result was lost
                self._again(path, future, f"its result did not come ({type(exc).__name__})")
            else:
                return table
        return None

    def _again(self, path: Path, future: Future[pa.Table], why: str) -> None:
        self.live.ended(str(future.key))  # what it reported is the next try's to say again
        future.release()
        if self._tries[path] >= _TRIES:
            raise ClusterError(
                f"the photo task of {path.name} was lost {_TRIES} times ({why}); run the same command again"
            )
        log.warning("the photo task of %s submitted again: %s", path.name, why)
        self.submit(path)

    def _say_who_left(self, workers: set[str]) -> None:
        """A worker gone since the last look is said (its tasks run again elsewhere)."""
        for worker in sorted(self._workers - workers):
            log.warning("the Dask worker %s left the cluster: its tasks run again on another", worker)
        self._workers = workers

    async def look_for_stalls(self) -> None:
        """What the driver cannot see from its futures alone: a cluster with no worker left,
        and tasks the scheduler finished or forgot while their futures still wait."""
        workers = set(await self.client.nthreads())
        self._say_who_left(workers)
        if not workers:
            now = time.monotonic()
            if self._no_worker_since is None:
                log.warning(
                    "no Dask worker left: waiting up to %s s for one (--worker-wait)",
                    f"{self.settings.worker_wait:g}",
                )
            self._no_worker_since = self._no_worker_since or now
            if now - self._no_worker_since > self.settings.worker_wait:
                raise ClusterError(_no_worker(self.settings))
            return
        self._no_worker_since = None
        waiting = {str(f.key): f for f in self.running if not f.done()}
        scheduler = self.client.scheduler
        assert scheduler is not None
        said = await scheduler.get_task_status(keys=list(waiting))
        now = time.monotonic()
        odd = {}
        for key in waiting:
            state = str(said.get(key))
            if said.get(key) in _NOT_ON_ITS_WAY:
                seen, since = self._odd.get(key, (state, now))
                odd[key] = (state, since if seen == state else now)
        self._odd = {}
        for key, (state, since) in odd.items():
            # Said so for a look's interval: not a message in transit (two looks can come
            # milliseconds apart, sooner than the scheduler hears of a task just submitted).
            if now - since >= _LOOK_EVERY:
                self._again(self.running.pop(waiting[key]), waiting[key], f"the scheduler has it {state}")
            else:
                self._odd[key] = (state, since)


async def _some_worker(client: Client, settings: Settings) -> None:
    """Until the cluster has a worker (a queued job's may take a while), at most
    ``--worker-wait`` seconds."""
    try:
        # An asynchronous client's call is awaitable, though typed as the blocking one.
        await cast(Awaitable[None], client.wait_for_workers(1, timeout=settings.worker_wait))
    except TimeoutError:
        raise ClusterError(_no_worker(settings)) from None


async def _workers_run_this_package(client: Client, settings: Settings) -> None:
    """Raise ClusterError when a worker cannot import inat_async (its first task would kill
    it, and the run would wait for workers that die again); warn when one runs another
    version than the driver."""
    with _quiet("distributed"):  # a local scheduler's own log of the failure: said below
        said = await cast(Awaitable[dict[str, object]], client.run(package_version, on_error="return"))
    broken = {worker: answer for worker, answer in said.items() if not isinstance(answer, str)}
    if broken:
        worker, error = next(iter(broken.items()))
        raise ClusterError(
            f"{len(broken)} of the {len(said)} Dask workers at {settings.scheduler} cannot run inat_async "
            f"({worker}: {error}): install 'inat_async[dask]' {__version__} where they run, then run "
            "the same command again"
        )
    others = sorted({str(answer) for answer in said.values()} - {__version__})
    if others:
        log.warning(
            "Dask workers at %s run inat_async %s, this command %s: install the same everywhere",
            settings.scheduler, ", ".join(others), __version__,
        )  # fmt: skip


@contextlib.contextmanager
def _quiet(logger: str) -> Iterator[None]:
    """``logger`` says nothing below CRITICAL while the body runs."""
    target = logging.getLogger(logger)
    level = target.level
    target.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        target.setLevel(level)


def _no_worker(settings: Settings) -> str:
    return (
        f"no Dask worker at {settings.scheduler} for {settings.worker_wait:g} s "
        "({worker_wait}): start workers and run the same command again"
    )


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
        # Said first: the processes take seconds to start, while the bars stand still.
        log.info("starting a local Dask cluster of %d worker processes", workers)
        async with (
            LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",
                asynchronous=True,
                # Ctrl-C is the driver's to handle (it closes the cluster), and the workers
                # say only errors: their warnings of tasks cancelled at a stop are no news.
                preload=["inat_async.cluster.preload"],
                silence_logs=logging.ERROR,
            ) as cluster,
            Client(cluster, asynchronous=True) as client,
        ):
            with _quiet_when_stopped():
                yield client
        return
    log.info("connecting to the Dask scheduler at %s (for at most %.0f s)", address, _CONNECT)
    client = Client(address, asynchronous=True, timeout=_CONNECT)
    try:
        await cast(Awaitable[Client], client)
    except Exception as exc:  # Dask's connect raises whatever the far end's bytes make of it
        await cast(Awaitable[None], client.close())
        raise ClusterError(
            f"no Dask scheduler answers at {address}: {_cause(exc)}; start one there (dask scheduler) "
            "or give its address, then run the same command again"
        ) from None
    async with client:
        with _quiet_when_stopped():
            yield client


@contextlib.contextmanager
def _quiet_when_stopped() -> Iterator[None]:
    """Dask's loggers quieted in this process before the cluster or client closes under a
    run that stops (interrupted, or ended by an error): the run's one line is the last said,
    not followed by what Dask logs of the comms closing under it."""
    try:
        yield
    except BaseException:
        quiet_dask()
        raise


def _cause(exc: BaseException) -> str:
    """The innermost cause of a failed connect, in its own words on one line (the network's,
    or a TLS setting's); anything else came of bytes that are not Dask's protocol."""
    inner = exc.__cause__ or exc.__context__
    while inner is not None:
        exc, inner = inner, inner.__cause__ or inner.__context__
    if not isinstance(exc, OSError | TypeError):
        return f"what answers there is not a Dask scheduler ({type(exc).__name__})"
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
