"""Hostile answers: servers that trickle, bodies far larger than they can be, and images
judged by their bytes, not their labels (issue 12 points 1 and 2, issue 11 point 5).

Photo tests harvest from the simulator's API with a few observations whose photos point at
a hostile photo host; API tests point the harvest at a hostile API. Timeouts are scaled down:
a byte every 0.1 s against --timeout 0.5 is the 0.5 s against --timeout 2 of the issue.
"""

from __future__ import annotations

import contextlib
import gzip
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiohttp import web
from fakehost import FakeHost, gzip_bomb, trickle
from helpers import cli_env, error_line, expected_ids, read_photos, run_cli

from inat_async.simulator import SimulatorThread, World

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01" + bytes(range(256)) * 8 + b"\xff\xd9"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(3000)
WEBP = b"RIFF\x00\x10\x00\x00WEBPVP8 " + bytes(2000)
HTML = b"<!DOCTYPE html><html><body>Service Unavailable</body></html>"


def _fast(*extra: str, timeout: str = "0.5") -> list[str]:
    return ["--no-limits", "--retry-wait", "0.01", "--timeout", timeout, *extra]


def _photos_on(host: FakeHost, world: World, place: int, photos: dict[int, dict]) -> dict[int, int]:
    """Point one observation each at photo ``id`` on ``host``; returns observation id by photo id."""
    ids = expected_ids(world, [place])
    placed = {}
    assert len(ids) >= len(photos)
    for obs_id, (photo_id, extra) in zip(ids, photos.items(), strict=False):
        photo = {"id": photo_id, "url": f"{host.url}/photos/{photo_id}/square.jpg", "license_code": "cc-by"}
        world.edit(obs_id, photos=[{**photo, **extra}], observation_photos=[])
        placed[photo_id] = obs_id
    return placed


def _photo_server(answers):
    """A photo host answering /photos/<id>/<size>.jpg with the handler ``answers`` has for <id>."""

    async def handler(request: web.Request) -> web.StreamResponse:
        return await answers[int(request.path.split("/")[2])](request)

    return handler


def _harvest_photos(tmp_path, answers, sizes="square", dimensions=None, timeout="0.5"):
    world = World({9601: 30}, seed=61, photo_scale=0.02, placeholder_rate=0.0, missing_size_rate=0.0)
    out = tmp_path / "o"
    with FakeHost(_photo_server(answers)) as host, SimulatorThread(world) as sim:
        extras = {pid: {"original_dimensions": dimensions} if dimensions else {} for pid in answers}
        _photos_on(host, world, 9601, extras)
        result = run_cli(
            tmp_path, "--place", "9601", "--api-url", sim.api_url, "--out", str(out), "--sizes", sizes,
            *_fast(timeout=timeout), timeout=60,
        )  # fmt: skip
    photos = read_photos(out)
    return result, photos[photos.photo_id.isin(list(answers))].set_index("photo_id"), out


# -- 1. Every request has a deadline --------------------------------------------------------


@pytest.mark.slow
def test_a_photo_trickled_a_byte_at_a_time_fails_with_its_reason_instead_of_holding_the_harvest(tmp_path):
    slow = trickle(JPEG, every=0.1, headers={"Content-Type": "image/jpeg"})
    result, photos, _ = _harvest_photos(tmp_path, {1001: slow})
    assert result.returncode == 3, result.stderr
    assert photos.loc[1001, "status"] == "failed"
    assert "too slow" in photos.loc[1001, "reason"] and "after 5 tries" in photos.loc[1001, "reason"]


@pytest.mark.slow
def test_a_photo_below_the_minimum_throughput_fails_though_bytes_keep_coming(tmp_path):
    """Another instance: 1 KB every 0.1 s of a declared 2 MB photo (about 30 minutes)."""
    headers = {"Content-Type": "image/jpeg", "Content-Length": str(2_000_000)}
    slow = trickle(JPEG, every=0.1, step=100, headers=headers)
    result, photos, _ = _harvest_photos(tmp_path, {1002: slow}, "original")
    assert result.returncode == 3, result.stderr
    assert photos.loc[1002, "status"] == "failed" and "too slow" in photos.loc[1002, "reason"]


def _api_harvest(tmp_path, handler, *extra: str) -> tuple[subprocess.CompletedProcess[str], FakeHost]:
    with FakeHost(handler) as api:
        result = run_cli(
            tmp_path, "--place", "1", "--api-url", api.url + "/v1", "--out", str(tmp_path / "o"),
            "--ranges", "1", *_fast(*extra), timeout=60,
        )  # fmt: skip
    return result, api


@pytest.mark.slow
def test_an_api_page_trickled_a_byte_at_a_time_stops_the_harvest_with_exit_5(tmp_path):
    page = b'{"total_results": 1, "page": 1, "per_page": 200, "results": []}'
    result, api = _api_harvest(tmp_path, trickle(page, every=0.1))
    assert result.returncode == 5, result.stderr
    assert "too slow" in error_line(result) and "after 8 tries" in error_line(result)
    assert api.requests == 8


# -- 2. Bodies are capped before they are in memory or on disk -------------------------------


def _run_measured(tmp_path, *args: str) -> tuple[int, str, int]:
    """A harvest in a subprocess: (exit status, stderr, its peak memory in MB). The peak is
    the kernel's high-water mark of the child's own memory (VmHWM), read until it ends."""
    err = tmp_path / "stderr"
    peak_kb = 0
    with open(err, "w") as stderr:
        child = subprocess.Popen(
            [sys.executable, "-m", "inat_async", *args], stdout=subprocess.DEVNULL, stderr=stderr,
            env=cli_env(tmp_path), cwd=tmp_path,
        )  # fmt: skip
        status = Path(f"/proc/{child.pid}/status")
        while child.poll() is None:
            with contextlib.suppress(OSError, ValueError, StopIteration):
                text = status.read_text()
                peak_kb = max(
                    peak_kb,
                    int(next(line for line in text.splitlines() if line.startswith("VmHWM")).split()[1]),
                )
            time.sleep(0.01)
    return child.returncode, err.read_text(), peak_kb // 1024


@pytest.mark.slow
@pytest.mark.parametrize(
    "encoding, body",
    [("gzip", gzip_bomb(3 << 30)), ("identity", b'{"results": [' + b" " * 100_000_000 + b"]}")],
    ids=["3MB-gzip-inflating-to-3GB", "100MB-plain"],
)
def test_an_api_answer_past_its_cap_is_a_server_error_not_gigabytes_of_memory(tmp_path, encoding, body):
    async def bomb(request: web.Request) -> web.Response:
        headers = {"Content-Type": "application/json", "Content-Encoding": encoding}
        return web.Response(body=body, headers=headers)

    with FakeHost(bomb) as api:
        args = ["--place", "1", "--api-url", api.url + "/v1", "--out", str(tmp_path / "o"), "--ranges", "1"]
        # A busy machine may take more than the usual half second to start sending 100 MB.
        status, stderr, peak_mb = _run_measured(tmp_path, *args, *_fast(timeout="10"))
    assert status == 5, stderr
    assert "larger than 64,000,000 bytes" in stderr.strip().splitlines()[-1]
    assert "Traceback" not in stderr
    assert peak_mb < 250, peak_mb


def _streamed(data: bytes, *, length: int | None = None, kind: str = "image/jpeg"):
    """A handler that sends ``data`` fast, with or without a Content-Length."""

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": kind})
        if length is not None:
            response.content_length = length
        await response.prepare(request)
        for start in range(0, len(data), 1 << 20):
            await response.write(data[start : start + (1 << 20)])
        return response

    return handler


def test_a_60_mb_square_is_refused_not_kept(tmp_path):
    big = JPEG + bytes(60_000_000)
    result, photos, out = _harvest_photos(tmp_path, {1003: _streamed(big, length=len(big))})
    assert result.returncode == 3, result.stderr
    assert photos.loc[1003, "status"] == "failed"
    assert "larger than a photo of its size can be" in photos.loc[1003, "reason"]
    assert not [p for p in out.rglob("1003_*")]


def test_a_medium_far_beyond_its_original_dimensions_is_cut_off_mid_body(tmp_path):
    """Another instance: no Content-Length, and the API says the original is 100 x 80 px."""
    big = JPEG + bytes(5_000_000)
    dims = {"width": 100, "height": 80}
    result, photos, out = _harvest_photos(tmp_path, {1004: _streamed(big)}, "medium", dims)
    assert result.returncode == 3, result.stderr
    assert photos.loc[1004, "status"] == "failed" and "larger than" in photos.loc[1004, "reason"]
    assert not list(out.rglob("*1004_*"))  # nor a temporary left behind


# -- 11.5 An image is decided by its bytes, not its label ----------------------------------


def _answer(body: bytes, kind: str):
    """A handler of ``body`` labelled ``kind`` ("": an empty Content-Type; aiohttp would
    otherwise add one)."""

    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=body, headers={"Content-Type": kind})

    return handler


def test_images_with_any_label_or_none_are_kept_and_pages_with_an_image_label_refused(tmp_path):
    answers = {
        1101: _answer(JPEG, "binary/octet-stream"),
        1102: _answer(JPEG, "application/octet-stream"),
        1103: _answer(PNG, ""),
        1104: _answer(WEBP, "text/plain"),
        1105: _answer(HTML, "image/jpeg"),
        1106: _answer(b'{"error": "not found"}', "image/png"),
        1107: _answer(b'<?xml version="1.0"?><Error><Code>AccessDenied</Code></Error>', "image/jpeg"),
    }
    result, photos, out = _harvest_photos(tmp_path, answers, timeout="5")
    assert result.returncode == 3, result.stderr
    for photo_id, body in ((1101, JPEG), (1102, JPEG), (1103, PNG), (1104, WEBP)):
        assert photos.loc[photo_id, "status"] == "done"
        assert (out / photos.loc[photo_id, "path"]).read_bytes() == body
    reasons = {pid: photos.loc[pid, "reason"] for pid in (1105, 1106, 1107)}
    assert set(photos.loc[list(reasons), "status"]) == {"failed"}
    assert "an HTML page, not an image (image/jpeg)" in reasons[1105]
    assert "JSON, not an image (image/png)" in reasons[1106]
    assert "XML, not an image (image/jpeg)" in reasons[1107]


def test_a_gzipped_ip_block_page_still_stops_the_harvest_at_once(tmp_path):
    """Bodies are decoded here now (with their cap): so is the block page a proxy gzipped."""
    page = gzip.compress(b"<html><body><h1>403 Forbidden</h1>This IP has been blocked</body></html>")

    async def blocked(request: web.Request) -> web.Response:
        headers = {"Content-Type": "text/html", "Content-Encoding": "gzip"}
        return web.Response(status=403, body=page, headers=headers)

    result, api = _api_harvest(tmp_path, blocked)
    assert result.returncode == 4, result.stderr
    assert "blocked" in error_line(result)
    assert api.requests == 1


# -- An error answer is said as the API said it, once --------------------------------------


def test_a_403_past_the_result_window_is_said_in_the_apis_words_and_not_retried(tmp_path):
    """The 403 JSON of the 10,000-result wall (here a wall of 100, below one page of 200):
    its body was read to look for the block page, and was then reported as 'not JSON' and
    retried eight times."""
    world = World({9601: 300}, seed=61, result_window=100)
    with SimulatorThread(world) as sim:
        args = ["--place", "9601", "--api-url", sim.api_url, "--out", str(tmp_path / "o"), "--ranges", "1"]
        result = run_cli(tmp_path, *args, *_fast(), timeout=60)
        pages = [r for r in sim.log if r.path.endswith("/observations") and r.query.get("per_page") != "0"]
    asked = [r.status for r in pages]
    assert result.returncode == 5, result.stderr
    said = "inat-async: error: the API answered HTTP 403: Result window is too large"
    assert error_line(result).startswith(said)
    assert asked == [403], asked


def test_an_html_error_page_from_the_api_is_said_with_its_status_and_not_retried(tmp_path):
    async def not_found(request: web.Request) -> web.Response:
        body = b"<html><body><h1>404 Not Found</h1>\n<p>nginx</p></body></html>"
        return web.Response(status=404, body=body, headers={"Content-Type": "text/html"})

    result, api = _api_harvest(tmp_path, not_found)
    assert result.returncode == 5, result.stderr
    assert "the API answered HTTP 404: 404 Not Found nginx" in error_line(result)
    assert "not JSON" not in result.stderr
    assert api.requests == 1
