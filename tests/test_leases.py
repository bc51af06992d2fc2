"""The cluster's per-host leases (a Dask Semaphore) when the wait for one is abandoned."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time

import pytest

from inat_async.cluster.budgets import ClusterPoliteness
from inat_async.config import Budgets, Settings

distributed = pytest.importorskip("distributed")


def test_a_lease_that_comes_after_its_wait_was_cancelled_is_given_back(tmp_path):
    """A run stopped (an IP block, Ctrl-C) while a photo waited for its host's lease: the
    lease that came later stayed held for as long as the worker lived (its release was handed
    to threads already shut), and the next runs on that cluster fetched nothing."""
    settings = Settings((1,), budgets=Budgets(media_concurrency=1))
    with (
        distributed.LocalCluster(n_workers=0, processes=False, dashboard_address=":0") as cluster,
        distributed.Client(cluster),
    ):
        holder = distributed.Semaphore(max_leases=1, name="inat_async media h")  # another run's
        assert holder.acquire(timeout=10)
        politeness = ClusterPoliteness(settings, str(tmp_path / "budget.sqlite"))

        async def stopped_while_waiting() -> None:
            async def fetch() -> None:
                async with politeness._lease("h"):
                    raise AssertionError("the lease is held by another run")

            task = asyncio.create_task(fetch())
            await asyncio.sleep(0.3)  # waiting for the lease, in a thread
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        asyncio.run(stopped_while_waiting())
        closing = threading.Thread(target=politeness.close)  # waits for its threads
        closing.start()
        time.sleep(0.2)
        holder.release()  # the abandoned wait takes the lease now
        closing.join(30)
        assert not closing.is_alive()
        deadline = time.monotonic() + 10
        while holder.get_value() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert holder.get_value() == 0  # given back: the next run's photos may go
        assert holder.acquire(timeout=5)
