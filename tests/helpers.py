"""Test helpers: the harvester run as a user runs it (CLI, terminal, library), and what a test
expects and reads back. Imported as ``from helpers import ...``; the fixtures are in conftest.py."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import pty
import select
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pandas as pd

from inat_async import Summary, harvest_blocking
from inat_async.simulator import World

DEFAULTS = {"geo": "true", "identified": "true", "rank": "species"}
ROOT = Path(__file__).resolve().parents[1]


def cli_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INAT_")}
    env["INAT_ASYNC_BUDGET_FILE"] = str(tmp_path / "budget.sqlite")
    env["PYTHONPATH"] = str(ROOT)
    return env


def run_here(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``inat-async ARGS`` as the CLI runs it (its exit status, what it prints and logs), but
    in this process: starting an interpreter was most of each short run's time. From ``cwd``,
    with a budget file there and no INAT_ variable of the caller's."""
    from inat_async.cli import main

    out, err = io.StringIO(), io.StringIO()
    env = {k: v for k, v in os.environ.items() if not k.startswith("INAT_")}
    env["INAT_ASYNC_BUDGET_FILE"] = str(cwd / "budget.sqlite")
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level  # the CLI's logging set up, undone after
    try:
        with (
            mock.patch.dict(os.environ, env, clear=True),
            contextlib.chdir(cwd),
            contextlib.redirect_stdout(out),
            contextlib.redirect_stderr(err),
        ):
            code = main(list(args))
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    return subprocess.CompletedProcess(["inat-async", *args], code, out.getvalue(), err.getvalue())


def run_cli(tmp_path: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``python -m inat_async ARGS`` in a subprocess, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "inat_async", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=cli_env(tmp_path),
        cwd=tmp_path,
    )


def start_cli(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "inat_async", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(tmp_path),
        cwd=tmp_path,
    )


def run_in_terminal(tmp_path: Path, *args: str, columns: int = 120) -> tuple[int, str]:
    """Run the CLI on a pseudo-terminal ``columns`` wide, as a person at a terminal sees it:
    its exit status and everything it drew (escape sequences and all)."""
    leader, follower = pty.openpty()
    child = subprocess.Popen(
        [sys.executable, "-m", "inat_async", *args],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env={**cli_env(tmp_path), "COLUMNS": str(columns), "LINES": "40", "TERM": "xterm"},
        cwd=tmp_path,
        close_fds=True,
    )
    os.close(follower)
    output = bytearray()
    while True:
        ready, _, _ = select.select([leader], [], [], 60)
        if not ready:
            child.kill()
            break
        try:
            data = os.read(leader, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        output += data
    os.close(leader)
    return child.wait(timeout=60), output.decode("utf-8", "replace")


def terminal_screen(output: str, columns: int = 80) -> list[str]:
    """The last screen of what ``run_in_terminal`` drew, as a terminal ``columns`` wide shows
    it: its lines that are not blank."""
    import pyte

    screen = pyte.Screen(columns, 60)
    pyte.Stream(screen).feed(output)
    return [line.rstrip() for line in screen.display if line.strip()]


def bar_line(lines: list[str], name: str) -> str:
    """The last line of a screen that starts with ``name``: that live bar as it ended."""
    return next(line for line in reversed(lines) if line.startswith(name))


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one error line a failed run ends with (progress log lines may come before it)."""
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("inat-async: error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    return errors[0]


def metadata_args(sim, places: str, out: Path, *extra: str) -> list[str]:
    """A metadata-only harvest of small pages (many requests), with the limits on."""
    return [
        "--place",
        places,
        "--no-photos",
        "--per-page",
        "20",
        "--api-url",
        sim.api_url,
        "--out",
        str(out),
        *extra,
    ]


def local(sim, out: Path, *extra: str) -> list[str]:
    """The options that point a harvest at the simulator, limits lifted, into ``out``."""
    return ["--api-url", sim.api_url, "--no-limits", "--out", str(out), *extra]


def run_harvest(places, **options) -> Summary:
    """The library entry point, in this process."""
    options.setdefault("limits", False)
    return harvest_blocking(places, **options)


def expected_ids(world: World, places, **filters: str) -> list[int]:
    params = {**DEFAULTS, **filters, "place_id": ",".join(map(str, places))}
    return world.matching_ids({k: v for k, v in params.items() if v})


def read_observations(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "observations.csv")


def read_photos(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "photos.csv", dtype={"reason": str, "license_code": str, "path": str})


def api_requests(log):
    """The paging requests (/v1/observations): the taxonomy stage's are taxa_requests'."""
    return [r for r in log if r.host == "api" and not r.path.startswith("/v1/taxa/")]


def taxa_requests(log):
    """The taxonomy stage's requests (/v1/taxa/{ids})."""
    return [r for r in log if r.host == "api" and r.path.startswith("/v1/taxa/")]


def photo_requests(log):
    return [r for r in log if r.host in ("open", "static", "assets")]


# -- a folder paged with --no-photos, and the photo files a run of it should leave -------------
def copy_paged(paged: Path, tmp_path: Path) -> Path:
    """A copy of ``paged/paged`` (a fixture's folder paged with --no-photos) as ``tmp_path/o``."""
    out = tmp_path / "o"
    shutil.copytree(paged / "paged", out)
    return out


def photo_statuses(photos: pd.DataFrame) -> list[tuple[object, ...]]:
    """photos.csv's rows as (photo id, size, status, path), sorted: what two runs must share."""
    return sorted(zip(photos.photo_id, photos["size"], photos.status, photos.path.fillna(""), strict=True))


def pending_again(out: Path) -> int:
    """The done files' rows of ``out``'s state set pending again, as a run stopped before it
    recorded them leaves them (the files stored): how many."""
    with sqlite3.connect(out / "harvest.sqlite") as db:
        rows = db.execute("UPDATE photos SET status = 'pending', bytes = NULL WHERE status = 'done'").rowcount
    db.close()
    assert rows > 0
    return rows


def done_files(photos: pd.DataFrame, world: World) -> dict[str, bytes]:
    """The bytes each done row's file must hold, by its path."""
    done = photos[photos.status == "done"]
    rows = zip(done.path, done.photo_id, done["size"], strict=True)
    return {path: world.photo_bytes(pid, size) for path, pid, size in rows}


def rendered_dom(page: Path, tmp_path: Path) -> str | None:
    """``page``'s DOM as headless Chromium renders it, after checking the page logged not one
    console message; None where there is no Chromium (.ci/run installs Debian's chromium).
    Nothing outside the page is reachable: every host name resolves to nothing."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        return None
    result = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0",
         f"--user-data-dir={tmp_path / 'profile'}", "--host-resolver-rules=MAP * ~NOTFOUND",
         "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=90,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "CONSOLE" not in result.stderr, result.stderr
    return result.stdout
