"""Nothing lost: kill -9 at random moments, Ctrl-C, SIGTERM and a full disk, then the same command."""

from __future__ import annotations

import contextlib
import os
import random
import re
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
from helpers import api_requests, error_line, local, photo_requests, run_cli, start_cli

from inat_async.simulator import SimulatorThread, World

pytestmark = pytest.mark.slow

WORLD = World({9301: 600, 9302: 200}, seed=31, photo_scale=0.03)
WORKERS = 6
RANGES = 3


def _args(sim, out: Path) -> list[str]:
    return [
        "--place",
        "9301,9302",
        "--sizes",
        "square,medium",
        "--per-page",
        "50",
        "--api-url",
        sim.api_url,
        "--no-limits",
        "--workers",
        str(WORKERS),
        "--ranges",
        str(RANGES),
        "--out",
        str(out),
    ]


def _snapshot(out: Path) -> dict[str, bytes]:
    """What a user keeps: the CSVs and every photo file, by relative path."""
    files = {
        p.relative_to(out).as_posix(): p.read_bytes() for p in (out / "photos").rglob("*") if p.is_file()
    }
    files["observations.csv"] = (out / "observations.csv").read_bytes()
    files["photos.csv"] = (out / "photos.csv").read_bytes()
    return files


def _no_partial_file_under_a_final_name(world: World, out: Path) -> None:
    for path in (out / "photos").rglob("*") if (out / "photos").exists() else []:
        if path.is_file() and not path.name.startswith("."):
            photo_id, size = path.stem.split("_")
            assert path.read_bytes() == world.photo_bytes(int(photo_id), size), path


def _wait_for(condition, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.002)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted harvest, for comparison."""
    tmp = tmp_path_factory.mktemp("ref")
    with SimulatorThread(WORLD, photo_latency=0.005) as sim:
        result = run_cli(tmp, *_args(sim, tmp / "ref"))
        assert result.returncode == 0, result.stderr
        return _snapshot(tmp / "ref")


def test_kill_9_at_random_moments_then_the_same_command_gives_the_same_harvest(
    tmp_path, reference, start_simulator
):
    seed = int(os.environ.get("KILL_SEED", time.time()))
    rng = random.Random(seed)
    print(f"KILL_SEED={seed}")
    out = tmp_path / "o"
    kills = 0
    sim = start_simulator(WORLD, photo_latency=0.005, api_latency=0.02, port=0)
    for when in ("paging", "downloads", "downloads", "csv"):
        child = start_cli(tmp_path, *_args(sim, out))
        if when == "paging":
            target = rng.randint(1, 8)
            _wait_for(lambda t=target: len(api_requests(sim.log)) >= t)
        elif when == "downloads":
            target = len(photo_requests(sim.log)) + rng.randint(20, 400)
            _wait_for(lambda t=target: len(photo_requests(sim.log)) >= t)
        else:
            _wait_for(lambda c=child: any(out.glob(".photos.csv.*.part")) or c.poll() is not None)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        kills += child.returncode == -signal.SIGKILL
        _no_partial_file_under_a_final_name(WORLD, out)
    final = run_cli(tmp_path, *_args(sim, out))
    log = sim.log
    assert kills >= 3
    assert final.returncode == 0, final.stderr
    _assert_same_harvest(out, reference)
    photos_twice = sum(n - 1 for n in Counter(r.path for r in photo_requests(log)).values())
    assert photos_twice <= kills * WORKERS  # only files in flight at a kill
    pages = Counter(
        (r.query["place_id"], r.query["id_above"], r.query.get("id_below"))
        for r in api_requests(log)
        if r.query.get("per_page") == "50"
    )
    assert sum(n - 1 for n in pages.values()) <= kills * RANGES  # only pages in flight at a kill


def _assert_same_harvest(out: Path, reference: dict[str, bytes]) -> None:
    """Same CSVs and photo files, byte for byte, as the uninterrupted run."""
    snapshot = _snapshot(out)
    # Photo URLs name the simulator's ports, which differ from the reference run's.
    assert _strip_ports(snapshot.pop("photos.csv")) == _strip_ports(reference["photos.csv"])
    assert snapshot == {k: v for k, v in reference.items() if k != "photos.csv"}


def _strip_ports(csv: bytes) -> bytes:
    return re.sub(rb"http://127\.0\.0\.1:\d+", b"http://sim", csv)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_and_sigterm_stop_within_seconds_and_say_how_to_resume(
    tmp_path, reference, signum, start_simulator
):
    out = tmp_path / "o"
    sim = start_simulator(WORLD, photo_latency=0.02)
    child = start_cli(tmp_path, *_args(sim, out))
    _wait_for(lambda: len(photo_requests(sim.log)) >= 100)
    sent = time.monotonic()
    child.send_signal(signum)
    _, err = child.communicate(timeout=30)
    took = time.monotonic() - sent
    assert child.returncode == 130, err
    assert took < 5
    assert "run the same command again" in err.lower()
    _no_partial_file_under_a_final_name(WORLD, out)
    again = run_cli(tmp_path, *_args(sim, out))
    assert again.returncode == 0, again.stderr
    _assert_same_harvest(out, reference)


@pytest.fixture
def small_disk(tmp_path):
    """A 3 MB tmpfs: a disk that fills up in the middle of a harvest."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_stops_cleanly_and_the_same_command_finishes_after_space_is_freed(
    tmp_path, small_disk, reference, shared_sim
):
    out = small_disk / "o"
    full = run_cli(tmp_path, *_args(shared_sim, out))
    assert full.returncode == 6, full.stderr
    line = error_line(full)
    assert "no space left" in line and "run the same command again" in line
    _no_partial_file_under_a_final_name(WORLD, out)
    subprocess.run(["mount", "-o", "remount,size=200m", str(small_disk)], check=True)
    again = run_cli(tmp_path, *_args(shared_sim, out))
    assert again.returncode == 0, again.stderr
    _assert_same_harvest(out, reference)


def test_files_on_disk_whose_outcome_was_lost_are_not_fetched_again(tmp_path, shared_sim):
    """Outcomes of finished files are written in batches; after a crash the next run finds
    the files the state still calls pending on disk and records them without a request."""
    out = tmp_path / "o"
    assert run_cli(tmp_path, "--place", "9302", *local(shared_sim, out)).returncode == 0
    reference = (out / "photos.csv").read_bytes()
    with sqlite3.connect(out / "harvest.sqlite") as db:
        lost = db.execute("UPDATE photos SET status = 'pending', bytes = NULL WHERE status = 'done'").rowcount
    shared_sim.clear_log()
    result = run_cli(tmp_path, "--place", "9302", *local(shared_sim, out))
    requests = list(shared_sim.log)
    assert result.returncode == 0, result.stderr
    assert lost > 100 and requests == []
    assert (out / "photos.csv").read_bytes() == reference


def test_a_photo_given_up_on_a_full_disk_leaves_no_temporary_file(small_disk):
    """Its buffered bytes cannot be written when it is discarded: the temporary stayed (a
    following run removes only what a sole writer left), with a traceback."""
    from types import SimpleNamespace

    from inat_async.pipeline.downloader import _Part

    folder = small_disk / "photos"
    downloader = SimpleNamespace(prepare=lambda parent: parent.mkdir(parents=True, exist_ok=True))
    part = _Part(folder / "1_square.jpg", downloader)  # type: ignore[arg-type]
    part.write([b"\xff\xd8"])  # the file made, its first bytes buffered
    with contextlib.suppress(OSError), open(small_disk / "filler", "wb") as filler:
        while True:
            filler.write(b"\0" * 65536)
            filler.flush()
    part.write([b"x" * 4000])
    part.discard()
    assert list(folder.iterdir()) == []
