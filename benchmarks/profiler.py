"""Where inat_async's time goes: a py-spy recording of one run, summed into a few kinds of work.

Optional: used when ``py-spy`` is on PATH (``pip install py-spy``). Samples include idle ones,
so the event loop's share spent waiting in epoll (for the network, a timer or a thread's
result) shows how far a run is bound by latency rather than CPU.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections import Counter
from pathlib import Path

RATE = 200  # samples a second
IDLE = "waiting in epoll (for the network, a timer or a thread)"
MAIN = "main thread (the event loop), in all"
THREADS = "other threads, busy (thread-seconds)"
ONCE = ("start-up (imports)", "writing the CSV files")  # not per file

#: (kind of work, any of these in a main-thread stack), the first match winning.
KINDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (IDLE, ("EpollSelector.select (",)),
    (ONCE[0], ("<frozen importlib",)),
    (ONCE[1], ("inat_async/exports/",)),
    ("SQLite state (pages, photo statuses)", ("inat_async/store/state.py",)),
    ("API pages (JSON, records)", ("inat_async/pipeline/pager.py", "inat_async/records.py", "_api_json (")),
    ("socket reads and HTTP parsing", ("_read_ready",)),
    ("file writes handed to threads (aiofiles)", ("aiofiles/", "concurrent/futures/")),
    ("filesystem calls in the loop (stat, mkdir, unlink)", ("(pathlib.py:",)),
    ("aiohttp requests (building, sending, connection pool)", ("aiohttp/",)),
)
#: Every stack runs under asyncio: its own work is what is left with an asyncio leaf frame.
SCHEDULING = "asyncio scheduling"
OTHER = "other (downloader, retries, progress)"
#: Leaf frames of a thread-pool thread that has nothing to do.
IDLE_LEAVES = ("_worker (concurrent/futures/thread.py:81)", "wait (threading.py")


def available() -> bool:
    return shutil.which("py-spy") is not None


def profile(argv: list[str], env: dict[str, str], raw: Path) -> dict[str, float] | None:
    """Run ``argv`` under py-spy; seconds of main-thread time per kind, and busy thread time."""
    cmd = ["py-spy", "record", "--idle", "--rate", str(RATE), "--format", "raw", "--output", str(raw), "--"]
    done = subprocess.run([*cmd, *argv], env={**os.environ, **env}, capture_output=True)
    if done.returncode != 0 or not raw.exists():
        return None
    return summarise(raw)


def summarise(raw: Path) -> dict[str, float]:
    seconds: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        n = int(count) / RATE
        if "runpy" not in frames[0]:  # another thread
            if not frames[-1].startswith(IDLE_LEAVES):
                seconds[THREADS] += n
            continue
        seconds[MAIN] += n
        kind = next((k for k, marks in KINDS if any(m in stack for m in marks)), None)
        seconds[kind or (SCHEDULING if "asyncio/" in frames[-1] else OTHER)] += n
    return dict(seconds)
