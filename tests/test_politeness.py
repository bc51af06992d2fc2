"""Staying inside iNaturalist's limits while using all of them, against the simulator.

Budget windows are scaled down (--budget-window-scale) so that a "minute" or a "day" passes
in seconds; the simulator counts arrivals over the same sliding windows.
"""

from __future__ import annotations

import asyncio
import email.utils
import itertools
import signal
import sqlite3
import time
from urllib.parse import urlsplit

import pytest
from helpers import api_requests, error_line, metadata_args, read_observations, run_cli, start_cli

from inat_async.cluster.budgets import BudgetPlugin
from inat_async.net.budget import Ledger, Window
from inat_async.simulator import RateLimit, World, max_in_window

# A request sent just before a 429 reached us can arrive just after it (later still when the
# simulator's thread waits for a busy CPU).
IN_FLIGHT = 0.25
WORLD = World({3001: 900, 3002: 900}, seed=5, photo_scale=0.01)


@pytest.mark.slow
def test_api_budget_is_spread_evenly_and_never_exceeded_in_any_sliding_window(tmp_path, start_simulator):
    # How much of the budget a harvest uses is a speed figure, measured in benchmarks/.
    # 30 requests a "minute" of 3 s: 10 a second, evenly spread; answers from 20 to 200 ms
    # (jitter), which the simulator's arrivals over the same window must not show over it.
    limit = RateLimit(30, 3.0, enforce=False)
    sim = start_simulator(WORLD, api_limit=limit, api_latency=0.02, api_latency_max=0.2)
    budget = ["--api-rpm", "30", "--budget-window-scale", "0.05"]
    result = run_cli(tmp_path, *metadata_args(sim, "3001", tmp_path / "o", *budget))
    times = [r.time for r in sim.log if r.host == "api"]  # paging's and the taxonomy's
    violations = sim.violations
    assert result.returncode == 0, result.stderr
    assert len(times) >= 40
    assert violations == 0 and max_in_window(times, 3.0) <= 30
    # Sent evenly, one every 0.1 s at the earliest, not in a burst at the top of a window: read
    # from the times the requests went (the shared ledger), since arrivals at a simulator on a
    # busy machine bunch by its own delays.
    with sqlite3.connect(tmp_path / "budget.sqlite") as db:
        sent = [t for (t,) in db.execute("SELECT t FROM spent WHERE key LIKE 'api %' ORDER BY t")]
    assert len(sent) == len(times)
    gaps = sorted(b - a for a, b in itertools.pairwise(sent))
    assert gaps[len(gaps) // 2] >= 0.1 - 1e-6
    # Half a second holds five, and one more for each late request (a busy machine) that went
    # just before the next was due: a burst at the top of a window would put 30 there.
    assert max_in_window(sent, 0.5) <= 8, sent


def _published_minute(slots: list[float]) -> None:
    """60 requests a minute, each counted over 61 s: the 61st goes a second after the first's
    minute, so arrivals up to a second late (network jitter) still make no 61 in a minute."""
    assert max_in_window(slots, 61.0) <= 60
    assert slots[60] >= slots[0] + 61.0 - 1e-6
    assert slots[120] >= slots[60] + 61.0 - 1e-6


def test_each_api_request_is_counted_over_the_published_minute_and_a_second(tmp_path):
    # The default budget at the published scale; bookings ahead of time, so nothing waits.
    ledger = Ledger(tmp_path / "budget.sqlite")
    minute = [Window(60, 60.0, "60 API requests a minute"), Window(10_000, 86400.0, "a day")]
    try:
        _published_minute([ledger.reserve("api h", minute, 1.0).time for _ in range(121)])
    finally:
        ledger.close()


def test_the_cluster_ledger_keeps_the_same_margin(tmp_path):
    """The scheduler's ledger (the Dask plugin's handler the workers call) books as one
    process does: a second more than the minute for every 60 requests."""
    plugin = BudgetPlugin()

    async def book() -> list[float]:
        window = [(60.0, 60.0, "60 photo requests a minute", True)]
        book_file = str(tmp_path / "budget.sqlite")
        return [(await plugin.reserve(book_file, 1e9, "media h", window, 1.0))[0] for _ in range(121)]

    try:
        _published_minute(asyncio.run(book()))
    finally:
        plugin.close_books()


@pytest.mark.slow
@pytest.mark.parametrize("retry_after", [0.7, "http-date", None])
def test_a_stricter_server_is_respected_and_retry_after_honoured(tmp_path, retry_after, start_simulator):
    # We allow 40 a "minute" of 1 s, the server only 10: it answers 429 past that (the first
    # ten of the harvest's 20 requests go in a quarter of a second).
    limit = RateLimit(10, 1.0, retry_after=retry_after)
    sim = start_simulator(WORLD, api_limit=limit)
    budget = ["--api-rpm", "40", "--budget-window-scale", f"{1 / 60}"]
    args = [*budget, "--retry-wait", "0.2", "--per-page", "100"]
    result = run_cli(tmp_path, *metadata_args(sim, "3001", tmp_path / "o", *args))
    log = api_requests(sim.log)
    assert result.returncode == 0, result.stderr
    assert sorted(read_observations(tmp_path / "o")["id"]) == sorted(
        WORLD.matching_ids({"geo": "true", "identified": "true", "rank": "species", "place_id": "3001"})
    )
    throttled = [r for r in log if r.status == 429]
    assert throttled, "the server never had to say 429"
    for r in throttled:
        if r.retry_after is None:
            continue
        if retry_after == "http-date":
            wait = email.utils.parsedate_to_datetime(r.retry_after).timestamp() - time.time()
            wait += time.monotonic() - r.time  # the header's date, relative to its arrival
            wait = max(wait, 0) - 1  # an HTTP date is rounded to whole seconds
        else:
            wait = float(r.retry_after)
        later = [x for x in log if x.time > r.time]
        retry = next(x for x in later if x.query == r.query)
        assert retry.time >= r.time + wait, f"retried {retry.time - r.time:.2f}s after a 429"
        # Other id ranges wait too; only a request already on its way may arrive meanwhile.
        early = [x for x in later if IN_FLIGHT < x.time - r.time < wait]
        assert not early, f"{len(early)} requests within Retry-After"
    # It slowed down: fewer 429s than requests that went through.
    assert len(throttled) < len([r for r in log if r.status == 200])


@pytest.mark.slow
def test_daily_budget_survives_a_restart(tmp_path, shared_sim):
    # A "day" of 5 s holding 8 requests; "minutes" are so short they never bind. The harvest
    # takes 11 requests: 8 the first day, the rest (with the restart's own) the next.
    daily = 8
    scale = ["--api-daily", str(daily), "--api-rpm", "1000", "--budget-window-scale", f"{5 / 86400}"]
    # One range: a burst of new connections at the start is not what this is about, and
    # on a busy machine the simulator may log one a tenth of a second late.
    args = metadata_args(shared_sim, "3001", tmp_path / "o", *scale, "--per-page", "100", "--ranges", "1")
    first = start_cli(tmp_path, *args)
    deadline = time.monotonic() + 30
    while len(api_requests(shared_sim.log)) < daily and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    first.send_signal(signal.SIGTERM)  # stopped while it waits for the day to slide
    _, err = first.communicate(timeout=30)
    assert first.returncode == 130 and "run the same command again" in err.lower()
    assert "waiting until" in err  # it told the user what it waits for
    second = run_cli(tmp_path, *args)
    times = [r.time for r in api_requests(shared_sim.log)]
    assert second.returncode == 0, second.stderr
    assert len(times) > daily
    assert max_in_window(times, 5.0) <= daily
    assert times[daily] >= times[0] + 5.0


@pytest.mark.slow
def test_two_harvests_at_once_share_one_budget(tmp_path, start_simulator):
    sim = start_simulator(WORLD, api_limit=RateLimit(20, 2.0, enforce=False))
    budget = ["--api-rpm", "20", "--budget-window-scale", f"{2 / 60}", "--ranges", "1"]
    budget += ["--per-page", "100"]  # 11 requests each, 22 at 10 a second
    a = start_cli(tmp_path, *metadata_args(sim, "3001", tmp_path / "a", *budget))
    b_args = metadata_args(sim, "3002", tmp_path / "b", *budget)
    b = start_cli(tmp_path, *b_args)
    for child in (a, b):
        _, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
    log = api_requests(sim.log)
    violations = sim.violations
    places = {r.query["place_id"] for r in log}
    assert places == {"3001", "3002"}
    assert violations == 0 and max_in_window([r.time for r in log], 2.0) <= 20


def test_an_ip_block_stops_the_harvest_at_once(tmp_path, start_simulator):
    sim = start_simulator(WORLD, blocked=True)
    result = run_cli(tmp_path, "--place", "3001", "--api-url", sim.api_url, "--out", str(tmp_path / "o"))
    log = sim.log
    assert result.returncode == 4
    assert "blocked" in error_line(result)
    assert len(log) == 1  # never kept knocking


@pytest.mark.slow
def test_a_block_met_by_a_photo_worker_stops_everything(tmp_path, start_simulator):
    sim = start_simulator(WORLD, photo_latency=0.01)
    args = ["--place", "3002", "--api-url", sim.api_url, "--out", str(tmp_path / "o"), "--no-limits"]
    child = start_cli(tmp_path, *args)
    deadline = time.monotonic() + 30
    while len(sim.log) < 40 and time.monotonic() < deadline:
        time.sleep(0.01)
    sim.blocked = True
    blocked_at = len(sim.log)
    _, err = child.communicate(timeout=60)
    after = sim.log[blocked_at:]
    assert child.returncode == 4, err
    assert "blocked" in err.strip().splitlines()[-1]
    assert len(after) <= 16 + 2  # the requests already in flight, then silence


@pytest.mark.slow
def test_photo_bytes_budget_per_host_over_a_sliding_hour_waits_and_says_so(tmp_path, start_simulator):
    world = World({3101: 40}, seed=41, photo_scale=1.0)
    hour = 4.0  # a scaled "hour"
    limit = 600_000  # bytes per host in any sliding "hour"
    sim = start_simulator(world)
    result = run_cli(
        tmp_path, "--place", "3101", "--sizes", "medium", "--api-url", sim.api_url, "--out",
        str(tmp_path / "o"), "--budget-window-scale", str(hour / 3600), "--api-rpm", "100000",
        "--media-gb-per-hour", str(limit / 1e9), "--media-rpm", "100000", "--media-concurrency", "2",
    )  # fmt: skip
    log = [r for r in sim.log if r.host in ("open", "static") and r.status == 200]
    assert result.returncode == 0, result.stderr
    assert "GB of photos a" in result.stderr and "waiting until" in result.stderr
    for host in ("open", "static"):
        served = [
            (r.time, len(world.photo_bytes(int(r.path.split("/")[2]), "medium")))
            for r in log
            if r.host == host
        ]
        if host == "open":  # most photos are openly licensed: enough to need the budget
            assert sum(n for _, n in served) > 1.5 * limit
        biggest = max(n for _, n in served)
        for start, _ in served:
            in_window = sum(n for t, n in served if start <= t < start + hour)
            # What was already on its way when the budget filled may finish: 2 at once per host.
            assert in_window <= limit + 2 * biggest


@pytest.mark.slow
def test_a_host_that_must_wait_holds_up_no_other_host(tmp_path, start_simulator):
    """The open-data bucket's byte budget is spent (by an earlier harvest, say): every file on
    the static host is fetched while the bucket waits, not behind its files."""
    world = World({3201: 80}, seed=43, photo_scale=0.01)
    hour = 6.0  # a scaled "hour": the static host's files take well under one, even when a busy
    # machine takes seconds to start the harvest (the bytes booked below must still count then)
    sim = start_simulator(world)
    ledger = Ledger(tmp_path / "budget.sqlite")  # the file run_cli's harvests count in
    ledger.record(f"bytes {urlsplit(sim.hosts['open']).netloc}", 1_000_000)
    ledger.close()
    result = run_cli(
        tmp_path, "--place", "3201", "--sizes", "square,medium", "--api-url", sim.api_url, "--out",
        str(tmp_path / "o"), "--budget-window-scale", str(hour / 3600), "--api-rpm", "100000",
        "--media-gb-per-hour", "0.001", "--media-rpm", "100000", "--media-concurrency", "2",
        "--workers", "4",
    )  # fmt: skip
    log = [r for r in sim.log if r.host in ("open", "static") and r.status == 200]
    assert result.returncode == 0, result.stderr
    assert "GB of photos a" in result.stderr and "waiting until" in result.stderr
    static = [r.time for r in log if r.host == "static"]
    bucket = [r.time for r in log if r.host == "open"]
    assert len(static) >= 10 and len(bucket) >= 10
    assert max(static) < min(bucket)
