"""The library API: ``await inat_async.harvest(...)`` and its blocking twin, for notebooks and
scripts. The CLI is a thin layer over these; both take the same checked :class:`Settings`."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Unpack

from inat_async.config import (
    FORMATS,
    HarvestOptions,
    Places,
    Settings,
    make_settings,
    parse_api_url,
    parse_formats,
    parse_one_size,
    parse_shard_size,
    with_options,
)
from inat_async.errors import UsageError
from inat_async.pipeline.harvest import PhotoStage, locked_state, run_harvest
from inat_async.store.state import STATE_FILE

if TYPE_CHECKING:
    from rich.console import Console

    from inat_async.exports.summary import Summary


async def harvest(
    places: Places | Settings, *, console: Console | None = None, **options: Unpack[HarvestOptions]
) -> Summary:
    """Harvest ``places`` (ids, place URLs, or a comma list in one str) into ``out``, or run
    ready-made :class:`Settings` (with ``options`` changed, if any).

    ``options`` are the :class:`Settings` fields, with the CLI's defaults: ``out``, ``sizes``
    ("square,medium" or a list), ``formats`` (likewise), ``filters``, ``all_photos``,
    ``no_photos``, ``workers``, ``budgets``, ``limits``, ``photo_licenses``, ``update``,
    ``api_url``, ``per_page``, ``ranges``, ... Every value is checked as the CLI checks it,
    before any request: a bad one raises :class:`inat_async.SettingError` (a
    :class:`UsageError`) naming the keyword, an unknown keyword a :class:`TypeError`.
    Running it again on the same ``out`` continues where it stopped.
    """
    if isinstance(places, Settings):
        settings = with_options(places, **options) if options else places
    else:
        settings = make_settings(places, **options)
    return await run_harvest(settings, console, photo_stage_for(settings))


def photo_stage_for(settings: Settings) -> PhotoStage | None:
    """The cluster's photo stage when a scheduler is named (Dask imported only then)."""
    if settings.scheduler is None:
        return None
    from inat_async.cluster.driver import cluster_stage

    return cluster_stage


def harvest_blocking(
    places: Places | Settings, *, console: Console | None = None, **options: Unpack[HarvestOptions]
) -> Summary:
    """:func:`harvest` for plain code; inside a running event loop (Jupyter) it runs the
    harvest on a worker thread with a loop of its own, and still blocks until done."""
    work = harvest(places, console=console, **options)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(work)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, work).result()


async def photos(
    out: str | Path, /, *, console: Console | None = None, **options: Unpack[HarvestOptions]
) -> Summary:
    """Fetch the photo files of the harvest in ``out`` (paged, with or without photos) as
    ``options`` ask (``sizes``, ``photo_licenses``, ``all_photos``, budgets, ``store``,
    ``storage_options``, ``scheduler``, ...): in this process, or on a Dask cluster with
    ``scheduler`` ("local:N" or an address). Running it again continues."""
    from inat_async.pipeline.photostage import folder_settings, run_photos

    settings = folder_settings(Path(out), **options)
    return await run_photos(settings, console, photo_stage_for(settings))


def export(
    out: str | Path,
    formats: str | Iterable[str] = FORMATS,
    api_url: str | None = None,
    *,
    shard_size: int = 1000,
    webdataset_size: str = "medium",
) -> None:
    """Write exports of the harvest in ``out`` from its state alone, with no request.
    ``formats`` as for :func:`harvest`; ``api_url`` is named in the Darwin Core metadata as
    the source (default: the one the folder was harvested from); ``shard_size`` and
    ``webdataset_size`` shape the WebDataset as for :func:`harvest`."""
    kinds = parse_formats(formats)
    if api_url is not None:
        parse_api_url(api_url)
    shard_size, webdataset_size = parse_shard_size(shard_size), parse_one_size(webdataset_size)
    if not (Path(out) / STATE_FILE).is_file():
        raise UsageError(f"{out} holds no harvest (no {STATE_FILE})")
    from inat_async.exports import write_exports

    with locked_state(Path(out)) as state:
        write_exports(
            state, Path(out), kinds, api_url, shard_size=shard_size, webdataset_size=webdataset_size
        )
