"""What users see around a harvest: live progress, the summary, exports, licences, the library API."""

from __future__ import annotations

import asyncio
import json
import zipfile

import pandas as pd
import pytest
from helpers import expected_ids, local, read_photos, run_cli, run_in_terminal

import inat_async
from inat_async.simulator import SimulatorThread, World

WORLD = World({9501: 300, 9502: 200}, seed=37, photo_scale=0.02)


@pytest.fixture(scope="module")
def sim():
    with SimulatorThread(WORLD, photo_latency=0.01) as running:
        yield running


def test_a_terminal_shows_live_progress_bars_and_the_summary(sim, tmp_path):
    out = tmp_path / "o"
    code, screen = run_in_terminal(tmp_path, "--place", "9501", *local(sim, out), "--sizes", "square,medium")
    assert code == 0, screen
    assert "observations" in screen and "photos" in screen
    assert "━" in screen  # rich's bar
    assert "\x1b[" in screen  # redrawn in place
    assert f"{len(expected_ids(WORLD, [9501])):,} observations in" in screen


def test_without_a_terminal_progress_is_plain_log_lines(sim, tmp_path):
    result = run_cli(tmp_path, "--place", "9502", *local(sim, tmp_path / "o"), "--sizes", "square")
    assert result.returncode == 0
    assert "\x1b[" not in result.stderr + result.stdout
    assert "observations in" in result.stdout


@pytest.mark.slow
def test_summary_matches_the_files_on_disk(sim, tmp_path):
    out = tmp_path / "o"
    result = run_cli(
        tmp_path,
        "--place",
        "9501,9502",
        *local(sim, out),
        "--sizes",
        "square,small",
        "--log-file",
        str(tmp_path / "log.txt"),
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    files = [p for p in (out / "photos").rglob("*") if p.is_file()]
    photos = read_photos(out)
    assert summary["observations"] == len(expected_ids(WORLD, [9501, 9502]))
    assert summary["photos"]["done"] == len(files) == (photos.status == "done").sum()
    assert summary["bytes_on_disk"] == sum(p.stat().st_size for p in files)
    assert summary["photos"].get("missing", 0) == (photos.status == "missing").sum()
    assert summary["per_place"] == {str(p): len(expected_ids(WORLD, [p])) for p in (9501, 9502)}
    assert summary["api_requests"] > 0 and summary["elapsed"] > 0
    assert f"place 9501: {len(expected_ids(WORLD, [9501])):,}" in result.stdout
    assert "observations" in (tmp_path / "log.txt").read_text()


@pytest.mark.slow
def test_photo_licence_filter_checks_each_photo_and_records_the_rest(sim, tmp_path):
    out = tmp_path / "o"
    result = run_cli(
        tmp_path,
        "--place",
        "9501",
        *local(sim, out),
        "--sizes",
        "square",
        "--all-photos",
        "--photo-license",
        "cc0,cc-by",
    )
    assert result.returncode == 0, result.stderr
    photos = read_photos(out)
    done = photos[photos.status == "done"]
    assert len(done) and set(done.license_code) <= {"cc0", "cc-by"}
    others = photos[~photos.license_code.isin(["cc0", "cc-by"])]
    assert len(others) and (others.status == "skipped").all()
    assert others.reason.str.contains("licence").all()
    assert photos.attribution.notna().all()
    bad = run_cli(tmp_path, "--place", "9501", "--photo-license", "free", "--out", str(tmp_path / "x"))
    assert bad.returncode == 2 and "--photo-license" in bad.stderr


@pytest.mark.slow
def test_export_writes_parquet_and_dwca_from_the_state_without_a_request(sim, tmp_path):
    out = tmp_path / "o"
    assert (
        run_cli(
            tmp_path, "--place", "9502", *local(sim, out), "--sizes", "square", "--format", "csv,parquet"
        ).returncode
        == 0
    )
    assert (out / "observations.parquet").is_file() and (out / "observations.csv").is_file()
    sim.clear_log()
    result = run_cli(tmp_path, "export", str(out), "--format", "dwca,parquet")
    assert result.returncode == 0, result.stderr
    assert sim.log == []
    with zipfile.ZipFile(out / "dwca.zip") as archive:
        assert {"meta.xml", "eml.xml", "occurrence.txt", "multimedia.txt"} <= set(archive.namelist())
    frame = pd.read_parquet(out / "observations.parquet")
    assert sorted(frame["id"]) == expected_ids(WORLD, [9502])
    missing = run_cli(tmp_path, "export", str(tmp_path / "nothing"))
    assert missing.returncode == 2 and "no harvest" in missing.stderr


def test_the_library_takes_the_api_url_from_inat_api_url_as_the_cli_does(sim, tmp_path, monkeypatch):
    """The README: harvest() takes the CLI's defaults, INAT_API_URL among them."""
    monkeypatch.setenv("INAT_API_URL", sim.api_url)
    summary = inat_async.harvest_blocking([9502], out=tmp_path / "a", limits=False, no_photos=True)
    assert summary.observations == len(expected_ids(WORLD, [9502]))
    assert inat_async.Settings(places=(1,)).api_url == sim.api_url


def test_library_api_from_plain_code_and_from_a_running_event_loop(sim, tmp_path):
    summary = inat_async.harvest_blocking(
        [9502], out=tmp_path / "a", api_url=sim.api_url, limits=False, sizes="square"
    )
    assert isinstance(summary, inat_async.Summary)
    inat_async.export(tmp_path / "a", formats=["csv"])  # the function, though a submodule shares its name
    assert summary.observations == len(expected_ids(WORLD, [9502]))

    async def notebook_cell():
        # In Jupyter a loop is already running: await the async API, or call the blocking one.
        awaited = await inat_async.harvest(
            [9501], out=tmp_path / "b", api_url=sim.api_url, limits=False, no_photos=True
        )
        blocking = inat_async.harvest_blocking(
            [9501], out=tmp_path / "c", api_url=sim.api_url, limits=False, no_photos=True
        )
        return awaited, blocking

    awaited, blocking = asyncio.run(notebook_cell())
    assert awaited.observations == blocking.observations == len(expected_ids(WORLD, [9501]))
    with pytest.raises(inat_async.UsageError, match="sizes"):
        inat_async.harvest_blocking([9501], out=tmp_path / "d", sizes="huge")
