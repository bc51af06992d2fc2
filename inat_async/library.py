"""The library API: ``await inat_async.harvest(...)`` and its blocking twin, for notebooks and
scripts. The CLI is a thin layer over these."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rich.console import Console

from . import pipeline
from .errors import UsageError
from .export import FORMATS, write_exports
from .pipeline import locked_state
from .settings import Settings, make_settings
from .state import STATE_FILE
from .summary import Summary


async def harvest(
    places: Iterable[int | str] | Settings, *, console: Console | None = None, **options: Any
) -> Summary:
    """Harvest ``places`` (or run ready-made :class:`Settings`) into ``options['out']``.

    ``options`` are :class:`Settings` fields, with the CLI's defaults: ``out``, ``sizes``
    ("square,medium" or a list), ``filters``, ``all_photos``, ``no_photos``, ``workers``,
    ``budgets``, ``limits``, ``photo_licenses``, ``formats``, ``update``, ``api_url``, ...
    Running it again on the same ``out`` continues where it stopped.
    """
    settings = places if isinstance(places, Settings) else make_settings(places, **options)
    return await pipeline.run_harvest(settings, console)


def harvest_blocking(places: Iterable[int | str] | Settings, **options: Any) -> Summary:
    """:func:`harvest` for plain code; inside a running event loop (Jupyter) it runs the
    harvest on a worker thread with a loop of its own, and still blocks until done."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(harvest(places, **options))
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, harvest(places, **options)).result()


def export(out: str | Path, formats: Iterable[str] = FORMATS, api_url: str | None = None) -> None:
    """Write exports of the harvest in ``out`` from its state alone, with no request."""
    if not (Path(out) / STATE_FILE).is_file():
        raise UsageError(f"{out} holds no harvest (no {STATE_FILE})")
    with locked_state(Path(out)) as state:
        write_exports(state, Path(out), tuple(formats), api_url)
