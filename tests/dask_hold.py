"""The cluster tests' way to catch the driver awaiting a finished task's result, for certain.

The Dask scheduler holds back the first photo task's result the driver asks of it (its
``gather`` handler waits), so a test can act while the driver is known to await it: stop
the driver, lose the result (kill the worker holding it, cancel its task), then let it go.
Over the real processes and sockets of a cluster; nothing of the driver's is patched.

Two ways in: :func:`holding_a_result` on a scheduler running in the test's own process (the
module's LocalCluster), and this file as a Dask scheduler preload
(``DASK_DISTRIBUTED__SCHEDULER__PRELOAD``) for the LocalCluster a ``--scheduler local:N``
driver starts: there the hold is said by a file ``result-held`` in the driver's working
folder, and it lasts as long as the scheduler runs (at most :data:`LONGEST` seconds).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

#: The most seconds a result is held: a test that never lets it go still ends.
LONGEST = 30.0
#: The file a preloaded hold makes in the driver's working folder once it holds a result.
HELD = "result-held"


def hold_first_result(scheduler: Any, held: Callable[[list[str]], None], let_go: Callable[[], bool]) -> Any:
    """Hold back the first gather of a photo task's result (``held(keys)`` then said) until
    ``let_go()``, the scheduler stops, or :data:`LONGEST` seconds; the original handler."""
    original = scheduler.handlers["gather"]
    holding: list[bool] = []

    async def gather(keys: list[Any], serializers: list[str] | None = None) -> Any:
        if not holding and any(str(key).startswith("inat-") for key in keys):
            holding.append(True)
            held([str(key) for key in keys])
            end = time.monotonic() + LONGEST
            while not let_go() and scheduler.status.name == "running" and time.monotonic() < end:
                await asyncio.sleep(0.02)
        return await original(keys=keys, serializers=serializers)

    scheduler.handlers["gather"] = gather
    return original


@contextlib.contextmanager
def holding_a_result(scheduler: Any) -> Iterator[tuple[list[str], threading.Event, threading.Event]]:
    """On a scheduler of this process: (the held keys, set once held, set to let it go)."""
    keys: list[str] = []
    held, let_go = threading.Event(), threading.Event()

    def hold(these: list[str]) -> None:
        keys.extend(these)
        held.set()

    original = hold_first_result(scheduler, hold, let_go.is_set)
    try:
        yield keys, held, let_go
    finally:
        let_go.set()
        scheduler.handlers["gather"] = original


def dask_setup(scheduler: Any) -> None:
    """As a scheduler preload: the hold said by the file :data:`HELD` in the working folder."""
    folder = Path.cwd()
    hold_first_result(scheduler, lambda keys: (folder / HELD).write_text("\n".join(keys)), lambda: False)
