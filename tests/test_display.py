"""What the user reads while a harvest runs and after: the live display at a terminal (through a
pseudo-terminal, or rich's captured output), the log lines, the summary and summary.json."""

from __future__ import annotations

import io
import json
import re
import signal
import socket
import time

import pytest
from helpers import (
    bar_line,
    local,
    pending_again,
    photo_requests,
    read_photos,
    run_cli,
    run_in_terminal,
    start_cli,
    terminal_screen,
)
from rich.console import Console

from inat_async.config import Budgets, make_settings
from inat_async.model import PhotoStatus
from inat_async.net.pace import Pace
from inat_async.pipeline.progress import Display, Progress
from inat_async.simulator import Faults, SimulatorThread, World

WORLD = World({9601: 400, 9602: 200}, seed=61, photo_scale=0.02)


@pytest.fixture(scope="module")
def sim():
    with SimulatorThread(WORLD, photo_latency=0.002) as running:
        yield running


def _text(output: str) -> str:
    """What a terminal shows, as one line: escape sequences out, line breaks as spaces."""
    return " ".join(re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", output).split())


@pytest.mark.slow
# -- 1. retries --------------------------------------------------------------------------------
def test_every_retry_is_logged_with_its_reason_and_wait_and_counted_in_the_summary(tmp_path, start_simulator):
    faults = Faults()
    faults.inject("api", "503", None, "500", "reset", "html", "500", "504")
    faults.inject("photo", "truncated", "502", "html", "502")
    out = tmp_path / "o"
    server = start_simulator(WORLD, faults=faults)
    result = run_cli(
        tmp_path, "--place", "9602", *local(server, out), "--retry-wait", "0.01", "--per-page", "50",
        "--sizes", "square", "--log-file", str(tmp_path / "log.txt"),
    )  # fmt: skip
    served = [r.fault for r in server.log if r.fault]
    assert result.returncode == 0, result.stderr
    assert len(served) == 10
    want = {
        "HTTP 503": 1,
        "HTTP 500": 2,
        "HTTP 504": 1,
        "HTTP 502": 2,
        "connection dropped mid-body": 2,  # the reset API page and the truncated photo
        "the answer is not JSON": 1,
        "answer is an HTML page, not an image": 1,
    }
    assert json.loads((out / "summary.json").read_text())["retries"] == want
    # Each kind said once at the default level; every retry, with its wait, in the log file.
    told = re.findall(r"INFO retrying \S+: (.+), next try in [\d.]+ s", result.stderr)
    assert sorted(said.split(" (")[0] for said in told) == sorted(want)  # details in parentheses
    logged = re.findall(
        r"retrying \S+: .+, next try in [\d.]+ s \(\d of \d tries\)", (tmp_path / "log.txt").read_text()
    )
    assert len(logged) == sum(want.values())
    # Each names what it asked, and a body that is not JSON what it starts with.
    urls = [re.match(r"retrying (\S+): ", line)[1] for line in logged]
    assert any(u.endswith("/v1/observations") for u in urls) and any("/photos/" in u for u in urls), urls
    assert re.search(r"the answer is not JSON \(it starts '<", "\n".join(logged)), logged
    assert "10 retries:" in result.stdout and "HTTP 500" in result.stdout


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_a_refused_api_fails_in_three_tries_and_the_display_says_it_is_retrying(tmp_path):
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    args = ["--place", "9601", "--api-url", url, "--out", str(tmp_path / "o"), "--retry-wait", "0.6"]
    args += ["--no-limits"]  # each try is not paced at a second by the API's budget
    code, output = run_in_terminal(tmp_path, *args, "--log-file", str(tmp_path / "log.txt"), columns=80)
    assert code == 5, output
    # A wait under ten seconds is said in tenths (0.6 s, 1.2 s), not rounded up to whole seconds.
    said = re.search(r"retrying: connection refused, next try in (\d+(?:\.\d)?) s", _text(output))
    assert said and "." in said[1] and 0 < float(said[1]) <= 1.2, output
    assert f"inat-async: error: cannot reach the API at {url}: connection refused; check" in _text(output)
    # Both requests that plan the ranges tried three times, and no more.
    tries = re.findall(r"retrying \S+: connection refused, next try in [\d.]+ s \((\d) of 3 tries\)",
                       (tmp_path / "log.txt").read_text())  # fmt: skip
    assert sorted(tries) == ["1", "1", "2", "2"]


@pytest.mark.slow
def test_a_name_that_does_not_resolve_fails_in_three_tries_with_that_reason(tmp_path):
    url = "http://no-such-host.invalid/v1"
    result = run_cli(tmp_path, "--place", "9601", "--api-url", url, "--out", str(tmp_path / "o"),
                     "--retry-wait", "0.01", "--no-limits", "-v")  # fmt: skip
    assert result.returncode == 5, result.stderr
    said = r"retrying http://no-such-host.invalid/\S*: name does not resolve, .* \((\d) of 3 tries\)"
    tries = re.findall(said, result.stderr)
    assert sorted(tries) == ["1", "1", "2", "2"]
    assert "name does not resolve; check --api-url" in result.stderr.strip().splitlines()[-1]


# -- 2, 3, 6. the live display -----------------------------------------------------------------
def test_a_terminal_shows_two_labelled_bars_that_reach_what_is_stored_in_80_columns(sim, tmp_path):
    out = tmp_path / "o"
    args = ["--place", "9601", *local(sim, out), "--sizes", "square,small"]
    code, output = run_in_terminal(tmp_path, *args, columns=80)
    assert code == 0, output
    summary = json.loads((out / "summary.json").read_text())
    files = sum(summary["photos"].values())
    assert summary["photos"]["skipped"] > 0  # placeholders: finished, though never fetched
    lines = terminal_screen(output)
    observations = f"{summary['observations']:,}"
    assert re.search(
        rf"^observations .*━ +{observations}/{observations} .*done$", bar_line(lines, "observations")
    )
    assert re.search(rf"^photos .*━ +{files:,}/{files:,} .*done$", bar_line(lines, "photos"))
    assert "0/?" not in output and "INFO INFO" not in output and "INFO:inat_async" not in output
    assert re.search(r"\d\d:\d\d:\d\d INFO +harvesting", _text(output))


@pytest.mark.slow
def test_a_resumed_run_says_what_is_stored_and_its_bars_count_it(sim, tmp_path):
    out = tmp_path / "o"
    args = ["--place", "9601", *local(sim, out), "--sizes", "square,small,medium", "--workers", "2"]
    sim.clear_log()
    first = start_cli(tmp_path, *args)
    deadline = time.monotonic() + 30
    while len(photo_requests(sim.log)) < 100 and time.monotonic() < deadline:
        time.sleep(0.01)
    first.send_signal(signal.SIGTERM)
    first.communicate(timeout=30)
    assert first.returncode == 130
    code, output = run_in_terminal(tmp_path, *args)
    assert code == 0, output
    said = re.search(r"resuming: ([\d,]+) observations and ([\d,]+) files already done", _text(output))
    assert said and int(said.group(2).replace(",", "")) >= 50
    files = len(read_photos(out))
    lines = terminal_screen(output, 120)
    assert f"{files:,}/{files:,}" in bar_line(lines, "photos")
    stored = json.loads((out / "summary.json").read_text())["observations"]
    assert f"{stored:,}/{stored:,}" in bar_line(lines, "observations")
    assert f"finished: observations {stored:,}/{stored:,} | photos {files:,}/{files:,}" in _text(output)


def test_files_found_already_stored_are_counted_on_the_photos_bar(tmp_path, start_simulator):
    """Files stored whose rows are pending again (a run stopped before it recorded them):
    the photos bar says them found already stored, as the log line and the summary do (it
    said only the megabytes fetched: 0)."""
    sim = start_simulator(World({9650: 12}, seed=65, photo_scale=0.01))
    out = tmp_path / "o"
    first = run_cli(tmp_path, "--place", "9650", "--sizes", "square", *local(sim, out))
    assert first.returncode == 0, first.stderr
    found = pending_again(out)
    again = ["photos", str(out), "--no-limits", "--sizes", "square"]
    code, output = run_in_terminal(tmp_path, *again, columns=80)
    assert code == 0, output
    files = len(read_photos(out))
    photos = bar_line(terminal_screen(output), "photos")
    assert re.search(rf"━ +{files}/{files} +0 MB, {found} found already stored +done$", photos), photos
    assert f"0 photo files fetched (0.0 MB), {found} found already stored" in _text(output)


@pytest.mark.slow
# -- 4. time held by budgets ---------------------------------------------------------------------
def test_time_held_by_a_budget_is_wall_time_however_many_wait(sim, tmp_path):
    out = tmp_path / "o"
    budget = ["--api-rpm", "30", "--budget-window-scale", "0.05"]  # 10 requests a second
    result = run_cli(tmp_path, "--place", "9601", "--no-photos", "--per-page", "20", "--ranges", "4",
                     "--api-url", sim.api_url, "--out", str(out), *budget)  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    held = summary["waiting"]["30 API requests a 3 s"]
    # Four ranges wait for the budget at once: their waits overlap, and count once.
    assert 0.5 * summary["elapsed"] < held <= summary["seconds_waiting"] <= summary["elapsed"]
    assert re.search(r"held by budgets for \d+ s of it:\n +\d+ s  30 API requests a 3 s", result.stdout)


@pytest.mark.slow
def test_a_photo_rate_that_paces_every_request_is_said_while_it_holds_the_run(tmp_path, start_simulator):
    """Each wait for a photo host's rate is a short gap, too short to be said on its own; the
    display says the rate while it holds the run most of the time (it said nothing)."""
    sim = start_simulator(World({9650: 160}, seed=65, photo_scale=0.01))
    budget = ["--media-rpm", "60", "--budget-window-scale", "0.05"]  # 20 files a second
    args = ["--place", "9650", "--sizes", "square", "--api-url", sim.api_url, "--out", str(tmp_path / "o")]
    code, output = run_in_terminal(tmp_path, *args, *budget)
    assert code == 0, output
    assert re.search(r"waiting: 60 photo requests a 3 s to 127\.0\.0\.1:\d+ \(at that pace\)", _text(output))


@pytest.mark.slow
def test_a_photo_host_slowed_by_its_429s_is_said_as_that_not_as_the_budget(tmp_path, start_simulator):
    """After 429s a host is paced at a fraction of its budget: its waits were booked to the
    budget ("120 photo requests a 3 s"), which the display says while it holds the run and
    the summary lists, blaming a rate the run was far below. They are the slowed host's now."""
    faults = Faults(photo={"429-no-retry-after": 0.25}, seed=3)
    sim = start_simulator(World({9650: 90}, seed=65, photo_scale=0.01), faults=faults)
    budget = ["--media-rpm", "120", "--budget-window-scale", "0.05", "--retry-wait", "0.01"]
    out = ["--api-url", sim.api_url, "--out", str(tmp_path / "o")]
    result = run_cli(tmp_path, "--place", "9650", "--sizes", "square", *out, *budget)
    assert result.returncode in (0, 3), result.stderr
    waits = json.loads((tmp_path / "o" / "summary.json").read_text())["waiting"]
    said = r"photo requests to 127\.0\.0\.1:\d+ slowed down after its 429s"
    slowed = [budget for budget in waits if re.fullmatch(said, budget)]
    assert slowed and sum(waits[b] for b in slowed) > 0, waits
    assert re.search(r"\d+ s  photo requests to \S+ slowed down after its 429s", result.stdout), result.stdout


def _render(progress: Progress, width: int = 80, photos: bool = True) -> list[str]:
    console = Console(file=io.StringIO(), width=width, color_system=None, force_terminal=False)
    display = Display(console, photos)
    display.show(progress)
    console.print(display.bars.get_renderable())
    return console.file.getvalue().splitlines()  # type: ignore[attr-defined]


def _pace(**budgets: float) -> Pace:
    settings = make_settings([1], budgets=Budgets(**budgets))  # type: ignore[arg-type]
    return Pace.of(settings)


def test_time_left_is_what_the_budgets_allow_for_what_is_left():
    # 8,000 observations left at 200 a page: 40 pages and a last one for each of 4 ranges,
    # at 60 requests a minute.
    progress = Progress(pace=_pace(), expected=10_000, stored_before=2_000)
    assert bar_line(_render(progress), "observations").endswith("0:00:44")
    # Photos: 6,000 files queued and as many to come with the 6,000 observations left (one
    # file an observation, as paged so far), at 600 a minute: 20 minutes.
    progress.stored_before, progress.paged, progress.queued = 3_000, 1_000, 1_000
    progress.left_to_fetch({"open": 6_000})
    assert bar_line(_render(progress), "photos").endswith("0:20:00")


def test_time_left_of_photos_follows_the_files_between_two_reads_of_the_state():
    """The state is read every few seconds; between two reads the bar counts the files fetched
    and recorded since (it said 0:00:00 with 1,455 files to go, and 0:00:06 with 32)."""
    progress = Progress(pace=_pace(), expected=600)
    assert not re.search(r"\d:\d\d:\d\d", bar_line(_render(progress), "photos"))  # not known: not said
    progress.left_to_fetch({})  # read before the first page
    progress.page_saved(600, {PhotoStatus.PENDING: 1_200})
    progress.paging_finished()
    assert bar_line(_render(progress), "photos").endswith("0:02:00")  # 1,200 files at 600 a minute
    for _ in range(1_100):
        progress.finished(PhotoStatus.DONE, 1_000, "open")
    assert bar_line(_render(progress), "photos").endswith("0:00:10")  # 100 left
    progress.left_to_fetch({"open": 100})  # the next read agrees
    assert bar_line(_render(progress), "photos").endswith("0:00:10")


def test_time_left_counts_whole_hours_of_a_byte_budget():
    progress = Progress(pace=_pace(media_gb_per_hour=1.0), expected=100, stored_before=100)
    progress.left_to_fetch({"open": 5_000})
    progress.finished("done", 500_000, "open")  # 0.5 MB a file: 2.5 GB, 3 hours' budgets
    assert bar_line(_render(progress), "photos").endswith("2:00:00")


# -- 6. what the display shows, and only while it is live ---------------------------------------
def test_the_display_fits_80_columns_and_a_wait_does_not_widen_it():
    progress = Progress(pace=_pace(), expected=1_234_567, stored_before=234_567, rows_before=3_456_789)
    progress.left_to_fetch({"open": 3_000_000})
    quiet = _render(progress)
    progress.waiting = "10000 API requests a day, until 2026-11-30 10:14:26 and a long reason besides that"
    progress.retried("HTTP 503", 30)
    waiting = _render(progress)
    assert all(len(line) <= 80 for line in quiet + waiting)
    assert waiting[:2] == quiet[:2]  # the bars keep their columns
    assert "234,567/1,234,567" in waiting[0] and "0/3,456,789" in waiting[1]
    assert waiting[2].startswith("retrying: HTTP 503, next try in 30 s | waiting: 10000 API requests a day")
    assert len(waiting) == 3
    progress.retried("HTTP 429", 0.2)
    assert _render(progress)[2].startswith("retrying: HTTP 429, next try in 0.")


def test_what_has_ended_shows_no_rate_and_no_photos_bar_without_photos():
    progress = Progress(pace=_pace(), expected=500, paged=500, paging_done=True)
    progress.retried("HTTP 500", 0)  # its wait is over: not shown
    lines = _render(progress, photos=False)
    assert len(lines) == 1
    assert re.fullmatch(r"observations ━+ 500/500 +done", lines[0])
