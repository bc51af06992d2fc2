"""Budgets survive clock jumps (issue 12 point 6): bookings from the future are counted as
made now, with a warning, and a wall clock stepping back mid-run holds nothing back."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from helpers import api_requests, cli_env, metadata_args, read_photos, run_cli

from inat_async.net.budget import Ledger
from inat_async.simulator import World

WORLD = World({9911: 400, 9912: 30}, seed=92, photo_scale=0.02, placeholder_rate=0.0, missing_size_rate=0.0)
LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")
A_DAY = 86_400.0


def _book(budget: Path, rows: list[tuple[str, float, float]]) -> None:
    Ledger(budget).close()
    with sqlite3.connect(budget) as db:
        db.executemany("INSERT INTO spent VALUES (?, ?, ?)", rows)
    db.close()


@pytest.mark.slow
def test_bookings_left_by_a_harvest_a_day_ahead_do_not_stop_the_next_one(tmp_path, shared_sim):
    """API requests and 5 GB of photos booked a day ahead (a harvest run with its clock a
    day ahead): the next harvest warns, counts them as made now, and goes on."""
    budget = tmp_path / "budget.sqlite"  # the file run_cli's harvests count in
    out = tmp_path / "o"
    ahead = time.time() + A_DAY
    hosts = [urlsplit(shared_sim.hosts[kind]).netloc for kind in ("open", "static")]
    rows = [(f"api {urlsplit(shared_sim.api_url).netloc}", ahead + i, 1.0) for i in range(50)]
    _book(budget, rows + [(f"bytes {host}", ahead, 5e9) for host in hosts])
    started = time.monotonic()
    result = run_cli(
        tmp_path, "--place", "9912", "--sizes", "square", "--api-url", shared_sim.api_url, "--out", str(out),
        "--budget-window-scale", "0.0005", timeout=60,
    )  # fmt: skip
    took = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert "ahead of this clock" in result.stderr and "counted as made now" in result.stderr
    assert set(read_photos(out).status) == {"done"}
    assert took < 30  # the photo hosts' hour (1.8 s here) is full of the 5 GB, no more


@pytest.mark.slow
@pytest.mark.skipif(not LIBFAKETIME.exists(), reason="needs libfaketime: apt-get install faketime")
def test_the_wall_clock_stepping_back_an_hour_mid_run_holds_nothing_back(tmp_path, shared_sim):
    """With libfaketime: the wall clock steps back an hour after a few requests (the
    monotonic clock goes on); the harvest finishes at its pace and says what happened."""
    clock = tmp_path / "faketime"
    clock.write_text("+0\n")
    env = {
        **cli_env(tmp_path),
        "LD_PRELOAD": str(LIBFAKETIME),
        "FAKETIME_TIMESTAMP_FILE": str(clock),
        "FAKETIME_NO_CACHE": "1",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    }
    args = [*metadata_args(shared_sim, "9911", tmp_path / "o"), "--api-rpm", "300"]
    child = subprocess.Popen(
        [sys.executable, "-m", "inat_async", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while len(api_requests(shared_sim.log)) < 4 and time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.01)
    clock.write_text("-1h\n")
    stepped = len(api_requests(shared_sim.log))
    try:
        _, err = child.communicate(timeout=40)
    finally:
        child.kill()
    after = len(api_requests(shared_sim.log)) - stepped
    assert child.returncode == 0, err
    assert after >= 10  # paging went on after the step
    assert "ahead of this clock" in err
    assert os.path.exists(tmp_path / "o" / "observations.csv")
