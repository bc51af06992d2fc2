"""Damaged or unusable files get one line and an exit status, and stay untouched (issue 12
point 4): a damaged state, a damaged or busy budget file, and a disk still full at a rerun."""

from __future__ import annotations

import random
import resource
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import (
    cli_env,
    error_line,
    expected_ids,
    local,
    metadata_args,
    read_observations,
    run_cli,
    start_cli,
)
from test_crash import small_disk  # noqa: F401 - a fixture

from inat_async.net.budget import Ledger
from inat_async.simulator import SimulatorThread, World

WORLD = World({9801: 400}, seed=81)
PAGE = 4096


def _damage(path: Path, how: str) -> None:
    data = bytearray(path.read_bytes())
    pages = len(data) // PAGE
    noise = random.Random(how).randbytes(PAGE)
    if how == "truncated":
        del data[len(data) // 2 :]
    else:
        page = pages // 2 if how == "middle" else pages - 2
        data[page * PAGE : (page + 1) * PAGE] = noise
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["middle", "near-the-end", "truncated"])
def test_a_damaged_state_is_refused_untouched_with_one_line(tmp_path, how, shared_sim):
    out = tmp_path / "o"
    args = ["--place", "9801", "--no-photos", "--per-page", "50", *local(shared_sim, out)]
    assert run_cli(tmp_path, *args).returncode == 0
    state = out / "harvest.sqlite"
    assert not (out / "harvest.sqlite-wal").exists()  # all in the one file
    _damage(state, how)
    before = state.read_bytes()
    shared_sim.clear_log()
    result = run_cli(tmp_path, *args, "--update")
    assert shared_sim.log == []
    assert result.returncode == 2, result.stderr
    line = error_line(result)
    assert "harvest.sqlite is damaged" in line and "move it away" in line
    assert state.read_bytes() == before


def _budget_harvest(tmp_path, sim, budget: Path, *extra: str):
    args = [*metadata_args(sim, "9801", tmp_path / "o"), "--api-rpm", "600", "--budget-file", str(budget)]
    return run_cli(tmp_path, *args, *extra, timeout=60)


def _filled_budget(path: Path) -> None:
    Ledger(path).close()
    with sqlite3.connect(path) as db:
        db.executemany("INSERT INTO spent VALUES ('bytes somewhere', ?, 1000)", [(time.time(),)] * 20_000)
    db.close()


@pytest.mark.parametrize("how", ["garbage", "truncated", "folder"])
def test_a_damaged_budget_file_is_named_with_its_remedy(tmp_path, how, shared_sim):
    budget = tmp_path / "budget.sqlite"
    if how == "garbage":
        budget.write_bytes(random.Random(1).randbytes(20_000))
    elif how == "truncated":
        _filled_budget(budget)
        budget.write_bytes(budget.read_bytes()[: budget.stat().st_size // 2])
    else:
        budget.mkdir()
    before = budget.read_bytes() if budget.is_file() else None
    result = _budget_harvest(tmp_path, shared_sim, budget)
    assert shared_sim.log == []
    assert result.returncode == 2, result.stderr
    line = error_line(result)
    assert f"budget file {budget}" in line
    assert ("is a folder" if how == "folder" else "may be removed") in line
    if before is not None:
        assert budget.read_bytes() == before


_HOLD = """
import os, signal, sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("PRAGMA journal_mode=WAL")
db.execute("CREATE TABLE IF NOT EXISTS spent (key TEXT NOT NULL, t REAL NOT NULL, amount REAL NOT NULL)")
db.execute("BEGIN IMMEDIATE")
db.execute("INSERT INTO spent VALUES ('x', 0, 0)")
print("holding", flush=True)
if sys.argv[2] == "stop":
    os.kill(os.getpid(), signal.SIGSTOP)  # as a harvest stopped with Ctrl-Z in a transaction
if sys.argv[2] == "until-told":
    sys.stdin.readline()
time.sleep(float(sys.argv[3]))
db.execute("COMMIT")
"""


def _holder(budget: Path, how: str, seconds: float) -> subprocess.Popen[str]:
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(budget), how, str(seconds)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline() == "holding\n"
    return holder


@pytest.mark.slow
@pytest.mark.parametrize("how", ["sleep", "stop"])
def test_a_budget_file_held_by_another_program_is_waited_on_saying_so_then_refused(tmp_path, how):
    """The issue's 90 s and SIGSTOP, with the wait limit scaled down from 30 s to 2 s."""
    budget = tmp_path / "budget.sqlite"
    holder = _holder(budget, how, 90)
    try:
        with SimulatorThread(WORLD) as sim:
            started = time.monotonic()
            result = _budget_harvest(tmp_path, sim, budget, "--budget-lock-wait", "2")
            took = time.monotonic() - started
            assert sim.log == []
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert result.returncode == 2, result.stderr
    assert f"waiting for the budget file {budget}, locked by another program" in result.stderr
    assert "stayed locked by another program" in error_line(result)
    assert took < 20


@pytest.mark.slow
def test_a_budget_file_released_within_the_limit_is_waited_for_and_the_harvest_goes_on(tmp_path, shared_sim):
    budget = tmp_path / "budget.sqlite"
    holder = _holder(budget, "until-told", 0)
    args = [
        *metadata_args(shared_sim, "9801", tmp_path / "o"),
        "--api-rpm",
        "600",
        "--budget-file",
        str(budget),
    ]
    harvest = start_cli(tmp_path, *args, "--budget-lock-wait", "60")
    assert harvest.stderr is not None and holder.stdin is not None
    said = ""  # released once the harvest says it waits, however slowly this machine starts it
    while "waiting for the budget file" not in said and harvest.poll() is None:
        said += harvest.stderr.readline()
    holder.stdin.write("release\n")
    holder.stdin.flush()
    _, rest = harvest.communicate(timeout=60)
    holder.wait()
    assert harvest.returncode == 0, said + rest
    assert "waiting for the budget file" in said


def test_a_rerun_while_the_disk_is_still_full_says_the_disk_is_full(tmp_path, small_disk, start_simulator):  # noqa: F811
    out = small_disk / "o"
    world = World({9802: 600}, seed=82, photo_scale=0.05)
    sim = start_simulator(world)
    args = ["--place", "9802", "--sizes", "square,medium", *local(sim, out)]
    first = run_cli(tmp_path, *args)
    assert first.returncode == 6, first.stderr
    again = run_cli(tmp_path, *args)
    assert again.returncode == 6, again.stderr
    assert "no space left" in error_line(again)
    assert (out / "harvest.sqlite").exists()  # the resume point is kept


def _file_size_limit(limit: int):
    """What `ulimit -f` does in a shell: files cannot grow past ``limit`` bytes, and the
    write that would is refused (EFBIG) rather than killing the process (SIGXFSZ ignored)."""

    def limit_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return limit_files


@pytest.mark.parametrize("limit", [300_000, 40_000], ids=["mid-paging", "at-its-creation"])
def test_a_file_size_limit_on_the_state_says_so_and_the_same_command_finishes(tmp_path, shared_sim, limit):
    """(ulimit -f 2000; inat-async ...) said 'harvest.sqlite cannot be used (disk I/O error); it is
    left as it is' (exit 2), as if it were damaged; the state was fine and the next run finished."""
    out = tmp_path / "o"
    args = ["--place", "9801", "--no-photos", "--per-page", "20", "--format", "csv", *local(shared_sim, out)]
    limited = subprocess.run(
        [sys.executable, "-m", "inat_async", *args], capture_output=True, text=True, timeout=120,
        env=cli_env(tmp_path), cwd=tmp_path, preexec_fn=_file_size_limit(limit),
    )  # fmt: skip
    assert limited.returncode == 6, limited.stderr
    line = error_line(limited)
    assert line.startswith(f"inat-async: error: could not write {out / 'harvest.sqlite'} (")
    assert "nothing is damaged" in line and line.endswith("run the same command again")
    again = run_cli(tmp_path, *args)
    assert again.returncode == 0, again.stderr
    assert sorted(read_observations(out)["id"]) == expected_ids(WORLD, [9801])
