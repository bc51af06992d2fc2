"""One harvest from start to end: pager -> state -> feeders -> bounded queues -> workers -> CSV.

The state database is the buffer between paging and downloading: the pager commits pages
without waiting on downloads (the API budget is the scarce resource), and a feeder for each
photo host moves its pending rows, in order, into a bounded queue that its workers drain. No
stage holds more than a page or a queue's worth of the harvest in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import shutil
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from inat_async.config import REAL_API_HOST, Settings
from inat_async.errors import DiskFullError, HarvestError, SettingError, StoreGone, UsageError
from inat_async.model import PhotoStatus
from inat_async.net.http import Http
from inat_async.net.pace import Pace
from inat_async.net.politeness import Politeness, WaitClock
from inat_async.photos import host_of
from inat_async.pipeline.feeder import Feeders
from inat_async.pipeline.pager import Pager, queries
from inat_async.pipeline.progress import Progress, report
from inat_async.pipeline.sink import MANIFEST, check_stores, exports_to_store, store_downloader, store_remover
from inat_async.pipeline.taxonomy import resolve_taxonomy
from inat_async.store.objects import recorded_store, store_name, tie_store
from inat_async.store.state import STATE_FILE, PhotoJob, State, state_error

if TYPE_CHECKING:
    from rich.console import Console

    from inat_async.exports.summary import Summary

log = logging.getLogger("inat_async")
#: A photo stage run in place of the feeders: fetch the state's pending files, recording each
#: outcome in the state and the progress (see cluster/driver.py).
PhotoStage = Callable[[Settings, State, Http, Progress], Awaitable[None]]
# Clocks differ and records are indexed late: an update looks back this much further.
UPDATE_MARGIN = timedelta(hours=1)


async def run_harvest(
    settings: Settings, console: Console | None = None, photo_stage: PhotoStage | None = None
) -> Summary:
    """Run (or continue) the harvest ``settings`` describe, write its exports and summary.

    ``console``: show live progress bars there (rich); without one, a log line every few
    seconds. ``photo_stage``: fetch the photo files with it once paging is done (a Dask
    cluster's) instead of in this process as pages come.
    """
    if not settings.limits and REAL_API_HOST in settings.api_url:
        log.warning("every limit lifted against %s: you risk having this IP blocked", REAL_API_HOST)
    with run_state(settings, settings.fingerprint()) as state:
        state.set_meta("api_url", settings.api_url)  # named as the source by later exports
        extra = _update_filter(settings, state)
        keys = [key for key, _ in queries(settings, extra)]
        if not state.paging_done(keys) and state.meta("started_at") is None:
            state.set_meta("started_at", _now())
        log.info(
            "harvesting %d place(s) into %s from %s", len(settings.places), settings.out, settings.api_url
        )
        progress = progress_from(state, settings)
        async with polite_http(settings, progress) as (politeness, http):
            unfound = await _run_stages(settings, state, http, progress, extra, console, photo_stage)
            today = politeness.api_requests_today(host_of(settings.api_url))
        log.info("paging and downloads finished: %s", progress.line())
        if _completes(settings, state, keys, unfound):
            # What changes from now on, a later --update fetches.
            state.set_meta("completed_at", state.meta("started_at"))
            state.set_meta("started_at", None)
            state.set_meta("update_since", None)
            if settings.update:
                state.forget_streams(keys)
        return write_outputs(settings, state, progress, politeness.clock, http, today, unfound=unfound)


@contextlib.contextmanager
def run_state(settings: Settings, fingerprint: dict[str, object] | None = None) -> Iterator[State]:
    """The state of ``settings.out``, locked for a run (see locked_state) and ready for it:
    checked against the ``fingerprint`` of what the run harvests (when it pages or selects),
    files it deletes removed from the run's store, files an earlier run failed pending again.
    Raises SettingError or HarvestError in one line."""
    with locked_state(settings.out) as state, store_remover(settings) as remove_files:
        state.remove_files = remove_files
        if fingerprint is not None:
            state.check_fingerprint(fingerprint)
        if not settings.no_photos:  # the store the photo files are in, recorded or checked
            tie_store(state, settings.store, settings.out)
        check_stores(settings)  # before the run's first request
        state.retry_failed()
        yield state


@contextlib.asynccontextmanager
async def polite_http(settings: Settings, progress: Progress) -> AsyncIterator[tuple[Politeness, Http]]:
    """The run's budgets (their waits shown by ``progress``) and its HTTP session; the
    budgets' shared file is released however the run ends."""
    politeness = Politeness(settings, on_wait=progress.wait_on)
    progress.watch_holds(politeness.clock.so_far)
    politeness.open()
    try:
        async with Http(settings, politeness, on_retry=progress.retried) as http:
            yield politeness, http
    finally:
        politeness.close()


def write_outputs(
    settings: Settings,
    state: State,
    progress: Progress,
    clock: WaitClock,
    http: Http,
    today: int | None,
    *,
    source: str | None = None,
    unfound: dict[str, int] | None = None,
) -> Summary:
    """The end of every run: its exports (``source``, named in them as where the data came
    from: the API by default), summary.json and report.html, all from the state; a full disk
    reported as the one error users read. Returns the summary."""
    # Imported here, not on the way to the first request (start-up).
    from inat_async.exports import write_exports
    from inat_async.exports.report import write_report
    from inat_async.exports.summary import write_summary

    # A cluster run's manifest, left by one that stopped, is spent once a run has ended its
    # photo stage, here or on a cluster (the state holds every outcome; a cluster run writes
    # its own anew): not left in OUT for ever.
    shutil.rmtree(settings.out / MANIFEST, ignore_errors=True)
    try:
        state.set_meta("formats", ",".join(settings.formats))  # the photos command's default
        with exports_to_store(settings):  # --export-store: the files written, copied there
            write_exports(
                state,
                settings.out,
                settings.formats,
                source or settings.api_url,
                shard_size=settings.shard_size,
                webdataset_size=settings.webdataset_size,
            )
            summary = make_summary(settings, state, progress, clock, http, today)
            summary.unfound = unfound or {}
            write_summary(summary)
            write_report(state, summary)
    except (OSError, sqlite3.OperationalError) as exc:
        raise _disk_full(exc, settings.out) from exc
    return summary


def _completes(settings: Settings, state: State, keys: list[str], unfound: dict[str, int]) -> bool:
    """Whether this run completed the harvest (or update) started at ``started_at``: every
    query paged and reconciled. Observations the API counts but paging did not find do not
    hold a full harvest back (the same command run again goes on looking for them, and
    --update can start from it), but they do an update: it keeps its ``updated_since``, so
    the same --update command asks the same query again and goes on looking."""
    if state.meta("started_at") is None or not state.paging_done(keys):
        return False
    if settings.update != (state.meta("update_since") is not None):
        return False  # started_at is another kind of run's, left unfinished
    return not (settings.update and unfound)


def progress_from(state: State, settings: Settings) -> Progress:
    """Progress that starts from what the folder holds, and says so when it holds some."""
    counts = state.photo_counts()
    rows, observations = sum(counts.values()), state.observation_count()
    finished = rows - counts.get(PhotoStatus.PENDING, 0)
    # An update's bar counts what it pages, of what changed.
    stored_before = 0 if settings.update else observations
    progress = Progress(
        pace=Pace.of(settings), stored_before=stored_before, rows_before=rows, finished_before=finished
    )
    if not settings.update and (observations or rows):
        log.info(
            "resuming: %s observations and %s files already done",
            f"{observations:,}",
            f"{counts.get(PhotoStatus.DONE, 0):,}",
        )
    return progress


def make_summary(
    settings: Settings, state: State, progress: Progress, clock: WaitClock, http: Http, today: int | None
) -> Summary:
    from inat_async.exports.summary import Summary, per_place

    return Summary(
        out=settings.out,
        observations=state.observation_count(),
        per_place=per_place(state, settings.places),
        photos=state.photo_counts(),
        bytes_on_disk=state.bytes_done(),
        api_requests=http.api_requests,
        api_requests_today=today,
        bytes_this_run=progress.bytes,
        elapsed=progress.elapsed(),
        seconds_waiting=clock.total,
        waiting=clock.by_budget(),
        retries=dict(http.retries.most_common()),
        failed_examples=state.failed_photos(),
        rejected=state.rejected_counts(),
        # Where the state says the files are: this run's store, or (a run that stores no
        # photo, --no-photos) the one an earlier run recorded.
        store=store_name(recorded_store(state), settings.out),
        files_fetched=progress.done,
        files_found=progress.found,
        bytes_found=progress.found_bytes,
    )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _update_filter(settings: Settings, state: State) -> dict[str, str] | None:
    """With --update: only what changed since the last complete run began (less a margin)."""
    if not settings.update:
        return None
    since = update_since(state.meta, settings.out)
    state.set_meta("update_since", since)  # a resumed update goes on from the same moment
    log.info("updating: observations created or changed since %s", since)
    return {"updated_since": since}


def update_since(meta: Callable[[str], str | None], out: Path) -> str:
    """The moment an update of the harvest in ``out`` pages from, from its state's ``meta``:
    the start of its last complete run, less a margin; an update under way keeps its own."""
    since = meta("update_since")
    if since is not None:
        return since
    completed = meta("completed_at")
    if completed is None:
        raise SettingError(
            "update",
            f"{out} holds no complete harvest to update: harvest it without {{update}} to finish it first",
        )
    return (datetime.fromisoformat(completed) - UPDATE_MARGIN).isoformat(timespec="seconds")


async def _run_stages(
    settings: Settings,
    state: State,
    http: Http,
    progress: Progress,
    extra: dict[str, str] | None,
    console: Console | None,
    photo_stage: PhotoStage | None = None,
) -> dict[str, int]:
    """Page, download and report until done; returns what paging could not find, by query."""
    new_page = asyncio.Event()
    paging_done = asyncio.Event()
    stop_report = asyncio.Event()

    def record(job: PhotoJob, status: PhotoStatus, nbytes: int | None, reason: str | None) -> None:
        state.finish_photo(job.seq, status, nbytes, reason)
        progress.finished(status, nbytes, job.host, reason)

    unfound: dict[str, int] = {}

    async def page() -> None:
        try:
            unfound.update(await Pager(settings, state, http, progress, new_page.set, extra).run())
            progress.paging_finished()
        finally:
            paging_done.set()
            new_page.set()
        if settings.taxonomy:  # while the photos download
            await resolve_taxonomy(state, http, settings.api_url)

    try:
        async with asyncio.TaskGroup() as group:
            reporter = group.create_task(
                report(progress, settings.progress_interval, stop_report, console,
                       photos=not settings.no_photos, pending=state.pending_by_host)
            )  # fmt: skip
            group.create_task(page())
            if photo_stage is not None:
                await paging_done.wait()
                await photo_stage(settings, state, http, progress)
            else:
                with store_downloader(http, settings) as downloader:
                    await Feeders(state, downloader, record, settings.workers, new_page, paging_done).run()
            stored = progress.paged if settings.update else state.observation_count()
            progress.settle(stored, state.photo_counts())
            stop_report.set()
            await reporter
    except* Exception as group_error:
        # A TaskGroup wraps what its tasks raised: pass the most telling cause on as it is.
        raise _main_cause(group_error.exceptions, settings.out, state) from None
    return unfound


def _main_cause(errors: tuple[BaseException, ...], out: Path, state: State | None = None) -> BaseException:
    """The error to report from a (possibly nested) group: a harvest error first. A store
    found gone takes the files the ``state`` called done there with it: they are pending
    again (so the next run stores them, and no export calls them there)."""
    leaves = [_disk_full(e, out) for e in _leaves(errors)]
    cause = next((e for e in leaves if isinstance(e, HarvestError)), leaves[0])
    if isinstance(cause, StoreGone) and state is not None:
        return StoreGone(cause.store, cause.said, cause.forgotten + state.forget_done())
    return cause


def _leaves(errors: tuple[BaseException, ...]) -> Iterator[BaseException]:
    for error in errors:
        if isinstance(error, BaseExceptionGroup):
            yield from _leaves(error.exceptions)
        else:
            yield error


def _disk_full(error: BaseException, out: Path) -> BaseException:
    """A full disk, however it shows (SQLite or a file write), as the one error users read."""
    full = (isinstance(error, sqlite3.OperationalError) and "full" in str(error)) or (
        isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT)
    )
    if full:
        return DiskFullError(f"no space left in {out}: free some and run the same command again")
    if isinstance(error, OSError) and error.errno == errno.EFBIG:  # a file-size limit (ulimit -f)
        return DiskFullError(
            f"could not write in {out} ({error.strerror}): a file-size limit (ulimit -f) or quota stopped "
            "it; nothing is damaged: lift it or free space and run the same command again"
        )
    return error


@contextlib.contextmanager
def locked_state(out: Path) -> Iterator[State]:
    """The output folder, locked for this harvest, and its state database. The lock is
    taken on the folder itself: no lock file, so none that a planted link could redirect.
    Any error of the state database is turned into its one line (see state_error).

    A run that fails before its state holds anything (an unknown place refused with 422, a
    --param the API rejects) leaves no state behind, nor the folder if it made it; a state an
    earlier run left is never removed."""
    in_the_way = next((p for p in (out, *out.parents) if p.exists() and not p.is_dir()), None)
    if in_the_way is not None:
        raise SettingError("out", f"{in_the_way} is a file, not a folder")
    if not out.parent.is_dir():
        raise SettingError("out", f"the folder {out.parent} does not exist")
    made_folder = not out.exists()
    try:
        out.mkdir(exist_ok=True)
        folder = os.open(out, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise SettingError("out", f"cannot write to {out} ({exc.strerror})") from None
    try:
        try:
            fcntl.flock(folder, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UsageError(f"another harvest is running in {out}; wait for it to end") from None
        if not os.access(out, os.W_OK):
            raise SettingError("out", f"cannot write to {out}")
        made_state = not (out / STATE_FILE).exists()
        state = State(out / STATE_FILE)
        empty = False
        try:
            yield state
        except BaseException as exc:
            with contextlib.suppress(sqlite3.Error):  # unreadable: keep it
                empty = made_state and state.holds_nothing()
            if isinstance(exc, sqlite3.Error):  # the state's: the budget file's are told by the ledger
                raise state_error(exc, state.path) from None
            raise
        finally:
            state.close()
            if empty:  # removed while the folder is locked, so no other run sees it half gone
                _remove_empty_harvest(out, made_folder)
    finally:
        os.close(folder)


def _remove_empty_harvest(out: Path, made_folder: bool) -> None:
    for name in (STATE_FILE, f"{STATE_FILE}-wal", f"{STATE_FILE}-shm"):
        (out / name).unlink(missing_ok=True)
    if made_folder:
        with contextlib.suppress(OSError):  # something else was written there meanwhile
            out.rmdir()
