"""Parallel id ranges: the API budget, not the latency, sets the pace; every range resumes."""

from __future__ import annotations

import itertools
import signal
import sqlite3
import time
from collections import Counter

import pytest
from helpers import api_requests, expected_ids, metadata_args, read_observations, run_cli, start_cli

from inat_async.simulator import RateLimit, World

pytestmark = pytest.mark.slow

WORLD = World({4001: 1000, 4002: 1000}, seed=9, photo_scale=0.01)
PLACES = "4001,4002"


def _overlapping(times: list[float], latency: float) -> float:
    """The share of requests sent before the previous one could have been answered."""
    gaps = [b - a for a, b in itertools.pairwise(times)]
    return sum(gap < latency for gap in gaps) / len(gaps)


def test_parallel_ranges_keep_requests_in_flight_within_the_budget(tmp_path, start_simulator):
    # 60 per 3 s: one each 0.05 s, with answers taking 0.125 s: one cursor can use at most 40%
    # of the budget, so ranges must keep several requests in flight, and never exceed it.
    # (How much of the budget they use is a speed figure: benchmarks/, not an assertion here.)
    latency = 0.125
    budget = ["--api-rpm", "60", "--budget-window-scale", "0.05"]
    sim = start_simulator(WORLD, api_latency=latency, api_limit=RateLimit(60, 3.0, enforce=False))
    # 100 pages of 20: a query large enough to be paged by 8 ranges by default.
    result = run_cli(tmp_path, *metadata_args(sim, PLACES, tmp_path / "many", *budget))
    many_times = [r.time for r in api_requests(sim.log)]
    pages = [r.query for r in api_requests(sim.log) if r.query.get("per_page") == "20"]
    sim.clear_log()
    single = start_cli(tmp_path, *metadata_args(sim, PLACES, tmp_path / "one", *budget, "--ranges", "1"))
    deadline = time.monotonic() + 30  # a loaded machine may take seconds to start it
    while len(api_requests(sim.log)) < 8 and time.monotonic() < deadline:
        time.sleep(0.05)
    single.send_signal(signal.SIGTERM)
    single.communicate(timeout=30)
    single_times = [r.time for r in api_requests(sim.log)]
    violations = sim.violations
    assert result.returncode == 0, result.stderr
    assert sorted(read_observations(tmp_path / "many")["id"]) == expected_ids(WORLD, [4001, 4002])
    assert violations == 0
    assert _overlapping(single_times, latency) == 0  # one cursor waits for each answer
    assert _overlapping(many_times, latency) >= 0.5  # eight keep the budget's pace instead
    assert len({q.get("id_below") for q in pages[:8]}) == 8  # the first page of each of 8 ranges


def test_every_range_resumes_after_a_kill(tmp_path, start_simulator):
    out = tmp_path / "o"
    sim = start_simulator(WORLD, api_latency=0.02)
    args = metadata_args(sim, PLACES, out, "--ranges", "4", "--no-limits")
    child = start_cli(tmp_path, *args)
    deadline = time.monotonic() + 30
    while len(api_requests(sim.log)) < 45 and time.monotonic() < deadline:
        time.sleep(0.005)
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=30)
    with sqlite3.connect(out / "harvest.sqlite") as db:
        cursors = db.execute("SELECT lo, hi, last_id, done FROM cursors").fetchall()
    started = [c for c in cursors if c[2] > c[0] and not c[3]]
    assert len(started) >= 2, cursors  # several ranges were under way at the kill
    result = run_cli(tmp_path, *args)
    log = api_requests(sim.log)
    assert result.returncode == 0, result.stderr
    assert sorted(read_observations(out)["id"]) == expected_ids(WORLD, [4001, 4002])
    pages = Counter(
        (r.query["id_above"], r.query.get("id_below")) for r in log if r.query["per_page"] == "20"
    )
    again = sum(n - 1 for n in pages.values())
    assert again <= 4  # only the pages in flight at the kill were asked for twice
    with sqlite3.connect(out / "harvest.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM cursors WHERE done = 0").fetchone()[0] == 0
