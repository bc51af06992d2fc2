"""Peak memory of a harvest does not grow with the number of observations."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from helpers import ROOT, cli_env, read_observations

from inat_async.simulator import SimulatorThread, World

pytestmark = pytest.mark.slow


def _peak_rss_mb(tmp_path, *args: str) -> float:
    """Run the CLI as a child and return its peak resident memory (ru_maxrss) in MB."""
    child = subprocess.Popen(
        [sys.executable, "-m", "inat_async", *args, "-q"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=cli_env(tmp_path),
        cwd=ROOT,
    )
    _, status, usage = os.wait4(child.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, child.stderr.read() if child.stderr else ""
    return usage.ru_maxrss / 1024


def _harvest_peak(tmp_path, places: dict[int, int], *extra: str) -> tuple[float, int]:
    with SimulatorThread(World(places, seed=11, photo_scale=0.01)) as sim:
        out = tmp_path / f"out{sum(places.values())}"
        peak = _peak_rss_mb(
            tmp_path,
            "--place",
            ",".join(map(str, places)),
            "--api-url",
            sim.api_url,
            "--no-limits",
            "--out",
            str(out),
            *extra,
        )
    return peak, len(read_observations(out))


# Six times the observations: a harvest that kept each one's JSON (about 5 KB) or record in
# memory would grow by far more than the margin (15% and 10 MB), at a third of the time that
# 2,000 and 20,000 took. benchmarks/ measures flatness to a million.
def test_metadata_harvest_memory_is_flat_from_1500_to_9000_observations(tmp_path):
    small, n_small = _harvest_peak(tmp_path, {501: 1_500}, "--no-photos")
    large, n_large = _harvest_peak(tmp_path, {502: 9_000}, "--no-photos")
    print(f"peak RSS {small:.0f} MB at {n_small} observations, {large:.0f} MB at {n_large}")
    assert n_large >= 5 * n_small
    assert large <= small * 1.15 + 10


def test_photo_harvest_memory_is_flat_from_400_to_2400_observations(tmp_path):
    small, n_small = _harvest_peak(tmp_path, {601: 400}, "--sizes", "square")
    large, n_large = _harvest_peak(tmp_path, {602: 2_400}, "--sizes", "square")
    print(f"peak RSS {small:.0f} MB at {n_small} observations, {large:.0f} MB at {n_large}")
    assert n_large >= 5 * n_small
    assert large <= small * 1.15 + 10
