"""Running one tool as a child process and measuring it: wall time, CPU and peak memory.

CPU and ``ru_maxrss`` come from ``os.wait4``: the child's own usage plus that of every
descendant it waited for (img2dataset's pool and logger processes), and the largest single
process's peak resident memory. Processes alive at the same time add up, which ru_maxrss
cannot see, so a sampler also records the peak of the summed RSS of the whole tree.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil


@dataclass
class Run:
    """What one child process took."""

    wall: float  # seconds
    cpu: float  # user + sys seconds of the process tree
    maxrss_mb: float  # ru_maxrss: peak RSS of the largest process of the tree
    tree_rss_mb: float  # sampled peak of the tree's summed RSS
    status: int
    output: str  # the tail of its stdout and stderr
    start: float = 0.0  # time.monotonic() when it was started (comparable across processes)


def run(
    argv: list[str], *, env: dict[str, str] | None = None, log: Path | None = None, cwd: Path | None = None
) -> Run:
    """Run ``argv`` to its end; its stdout and stderr go to ``log`` (the tail is kept)."""
    out = open(log, "w") if log is not None else subprocess.DEVNULL  # noqa: SIM115
    try:
        start = time.monotonic()
        child = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}, cwd=cwd
        )
        peak = _TreeSampler(child.pid)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.monotonic() - start
        peak.stop()
        child.returncode = os.waitstatus_to_exitcode(status)
    finally:
        if log is not None:
            out.close()  # type: ignore[union-attr]
    tail = log.read_text(errors="replace")[-1000:] if log is not None else ""
    return Run(
        wall=wall,
        cpu=usage.ru_utime + usage.ru_stime,
        maxrss_mb=usage.ru_maxrss / 1024,
        tree_rss_mb=max(peak.peak_mb, usage.ru_maxrss / 1024),
        status=child.returncode,
        output=tail,
        start=start,
    )


class _TreeSampler:
    """Samples the summed RSS of a process and its descendants every ``period`` seconds."""

    def __init__(self, pid: int, period: float = 0.1) -> None:
        self.peak_mb = 0.0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, args=(pid, period), daemon=True)
        self._thread.start()

    def _loop(self, pid: int, period: float) -> None:
        try:
            root = psutil.Process(pid)
        except psutil.Error:
            return
        while not self._done.wait(period):
            total = 0
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.Error:
                return
            for proc in procs:
                with contextlib.suppress(psutil.Error):  # it may have ended meanwhile
                    total += proc.memory_info().rss
            self.peak_mb = max(self.peak_mb, total / 2**20)

    def stop(self) -> None:
        self._done.set()
        self._thread.join()


def files_under(folder: Path, suffixes: tuple[str, ...]) -> tuple[int, int]:
    """(count, total bytes) of the files below ``folder`` whose name ends with a suffix."""
    count = size = 0
    for root, _, names in os.walk(folder):
        for name in names:
            if name.lower().endswith(suffixes):
                count += 1
                size += os.path.getsize(os.path.join(root, name))
    return count, size
