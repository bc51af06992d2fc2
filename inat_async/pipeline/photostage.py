"""`inat-async photos OUT`: the photo stage alone, on a harvest folder whose observations are
paged (by a harvest with or without --no-photos). The photo rows are made from the stored
observations by the size and licence options given (rows a harvest made already keep their
outcomes), then the pending files are fetched: in this process (the feeders and workers of a
harvest) or, given a ``stage``, elsewhere (a Dask cluster: see cluster/).

The state stays in OUT, written only here; exports and summary.json are rewritten at the end.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Unpack
from urllib.parse import urlsplit

from rich.console import Console

from inat_async.config import SIZES, HarvestOptions, Settings, make_settings, setting_default
from inat_async.errors import UsageError
from inat_async.exports.summary import Summary
from inat_async.model import PhotoStatus
from inat_async.net.http import Http
from inat_async.pipeline.feeder import Feeders
from inat_async.pipeline.harvest import (
    PhotoStage,
    _main_cause,
    polite_http,
    progress_from,
    run_state,
    write_outputs,
)
from inat_async.pipeline.pager import files_of
from inat_async.pipeline.progress import Progress, report
from inat_async.pipeline.sink import store_downloader
from inat_async.store.objects import store_name
from inat_async.store.state import STATE_FILE, PhotoJob, State, read_meta

log = logging.getLogger("inat_async")

#: Observations whose photo rows are made in one transaction.
_ROWS_BATCH = 500


def folder_settings(out: Path, /, **options: Unpack[HarvestOptions]) -> Settings:
    """Settings for the photo stage of the harvest in ``out``: its places, API and filters
    (from the state), with ``options`` (sizes, licences, budgets, store, scheduler, ...)."""
    state_file = out / STATE_FILE
    if not state_file.is_file():
        raise UsageError(f"{out} holds no harvest (no {STATE_FILE}): harvest it first")
    stored = read_meta(state_file, "fingerprint")
    if stored is None:
        raise UsageError(f"{out} holds no paged harvest yet: harvest it first")
    harvest = json.loads(stored)
    options["out"] = out
    if options.get("formats") is None:  # the exports the folder has, written again
        options["formats"] = read_meta(state_file, "formats") or setting_default("formats")
    if harvest.get("source") == "opendata":  # a selection from a dump: no API query of its own
        return selection_settings(harvest["places"], **options)
    options.setdefault("api_url", read_meta(state_file, "api_url") or harvest["api_url"])
    options.setdefault("filters", harvest["filters"])
    return make_settings(harvest["places"], **options)


def selection_settings(places: Sequence[int], /, **options: Unpack[HarvestOptions]) -> Settings:
    """Settings for a harvest that pages no place (a selection from the open-data dumps):
    its places are only those it names (none, or the --place whose boundary it used)."""
    settings = make_settings(list(places) or [1], **options)  # a Settings checks a place
    object.__setattr__(settings, "places", tuple(places))
    return settings


async def run_photos(
    settings: Settings, console: Console | None = None, stage: PhotoStage | None = None
) -> Summary:
    """Fetch the pending photo files of the harvest in ``settings.out``; its summary."""
    with run_state(settings) as state:
        settings = with_sizes_held(settings, state)
        added = make_photo_rows(state, settings)
        log.info("%s photo files to fetch into %s", f"{added:,}", store_name(settings.store, settings.out))
        progress = progress_from(state, settings)
        progress.paging_finished()
        async with polite_http(settings, progress) as (politeness, http):
            await run_stage(settings, state, http, progress, console, stage)
        return write_outputs(
            settings, state, progress, politeness.clock, http, None, source=state.meta("api_url")
        )


def with_sizes_held(settings: Settings, state: State) -> Settings:
    """The sizes asked for and those the folder has rows of: another size is added to a
    harvest, the sizes it has are kept (with their files), in iNaturalist's order."""
    held = set(state.photo_sizes())
    if held <= set(settings.sizes):
        return settings
    return replace(settings, sizes=tuple(size for size in SIZES if size in held | set(settings.sizes)))


def make_photo_rows(state: State, settings: Settings) -> int:
    """The photo rows the settings ask of every stored observation; returns the files pending."""
    hosts = chosen_photo_hosts(state.meta("fingerprint"))
    for batch in state.raw_observation_batches(_ROWS_BATCH):
        ids = [int(observation["id"]) for observation in batch]
        files = [f for observation in batch for f in files_of(observation, settings, hosts)]
        state.put_photo_rows(ids, files)
    return sum(state.pending_by_host().values())


def chosen_photo_hosts(fingerprint: str | None) -> frozenset[str]:
    """The photo host a user chose for a harvest (an open-data harvest's --photo-base), from
    its stored fingerprint: its files are allowed there as that harvest allowed them."""
    return host_of_base(json.loads(fingerprint).get("photo_base") if fingerprint else None)


def host_of_base(base: object) -> frozenset[str]:
    """The host of a photo base URL, as a set to add to the allowed photo hosts."""
    host = urlsplit(base).hostname if isinstance(base, str) else None
    return frozenset({host} if host else ())


async def run_stage(
    settings: Settings,
    state: State,
    http: Http,
    progress: Progress,
    console: Console | None,
    stage: PhotoStage | None = None,
) -> None:
    """Fetch the state's pending files with ``stage`` (default: in this process, into the
    settings' store) while the progress is reported; every page is in the state already.
    An error is raised as the most telling cause, not as a group."""
    work = (stage or local_stage)(settings, state, http, progress)
    try:
        await _with_report(settings, state, progress, console, work)
    except* Exception as group_error:
        raise _main_cause(group_error.exceptions, settings.out, state) from None


async def _with_report(
    settings: Settings, state: State, progress: Progress, console: Console | None, work: Awaitable[None]
) -> None:
    stop = asyncio.Event()
    async with asyncio.TaskGroup() as group:
        reporter = group.create_task(
            report(
                progress,
                settings.progress_interval,
                stop,
                console,
                photos=not settings.no_photos,
                pending=state.pending_by_host,
            )
        )
        try:
            await work
            progress.settle(state.observation_count(), state.photo_counts())
        finally:
            stop.set()
        await reporter


async def local_stage(settings: Settings, state: State, http: Http, progress: Progress) -> None:
    """The harvest's own feeders and workers, in this process."""

    def record(job: PhotoJob, status: PhotoStatus, nbytes: int | None, reason: str | None) -> None:
        state.finish_photo(job.seq, status, nbytes, reason)
        progress.finished(status, nbytes, job.host, reason)

    paged = asyncio.Event()
    paged.set()
    with store_downloader(http, settings) as downloader:
        await Feeders(state, downloader, record, settings.workers, paged, paged).run()
