"""Waits bounded in time that a cancellation always ends.

Not :func:`asyncio.wait_for`: on Python 3.11 it returns normally when its caller is cancelled
just as what it awaits completes (CPython gh-86296, fixed in 3.12). A Ctrl-C landing as a
photo's PUT ended was lost so: its worker went on waiting for work that never came, and the
run hung. :func:`asyncio.timeout` has no such window.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


async def wait_set(event: asyncio.Event, seconds: float) -> bool:
    """Whether ``event`` is set within ``seconds``. Raises CancelledError when cancelled."""
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return event.is_set()
    return True


async def within(awaitable: Awaitable[T], seconds: float) -> T:
    """What ``awaitable`` gives. Raises TimeoutError after ``seconds`` (it is cancelled
    then), CancelledError when cancelled."""
    async with asyncio.timeout(seconds):
        return await awaitable
