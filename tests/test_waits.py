"""Bounded waits that a cancellation always ends (inat_async.net.waits).

Python 3.11's asyncio.wait_for returned normally when its caller was cancelled just as what
it awaited completed: a Ctrl-C landing as a photo's PUT to an object store ended hung the run
(6 of 45 runs)."""

from __future__ import annotations

import asyncio

import pytest

from inat_async.net.waits import wait_set, within


async def _cancelled_as_it_completes(start) -> list[str]:
    """For each moment after what a task awaits completes until the task is back (0, 1, 2
    turns of the loop): cancel the task there, as a Ctrl-C lands, and say what it did.
    ``start()`` gives the task's coroutine and what completes its wait."""
    said = []
    for turns in range(3):
        waiting, complete = start()
        task = asyncio.create_task(waiting)
        await asyncio.sleep(0)  # the task waits
        complete()
        for _ in range(turns):
            await asyncio.sleep(0)
        if task.done():  # back and ended before the Ctrl-C: nothing to cancel
            await task
            continue
        task.cancel()
        try:
            said.append(await task)
        except asyncio.CancelledError:
            said.append("cancelled")
    return said


def test_a_wait_for_an_event_cancelled_as_the_event_is_set_is_cancelled():
    def start():
        event = asyncio.Event()

        async def waiting() -> str:
            return f"went on ({await wait_set(event, 10)})"

        return waiting(), event.set

    said = asyncio.run(_cancelled_as_it_completes(start))
    assert said and set(said) == {"cancelled"}


def test_a_bounded_await_cancelled_as_its_answer_comes_is_cancelled():
    def start():
        answer: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        return within(answer, 10), lambda: answer.set_result("went on")

    said = asyncio.run(_cancelled_as_it_completes(start))
    assert said and set(said) == {"cancelled"}


def test_the_waits_say_what_happened_in_time():
    async def run() -> tuple[bool, bool, str]:
        event = asyncio.Event()
        late = await wait_set(event, 0.01)
        event.set()
        return late, await wait_set(event, 0.01), await within(asyncio.sleep(0, "answer"), 1)

    assert asyncio.run(run()) == (False, True, "answer")
    with pytest.raises(TimeoutError):
        asyncio.run(within(asyncio.sleep(1), 0.01))
