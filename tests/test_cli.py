"""What a user sees at the command line: options, bad input, exit statuses, folders."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import error_line, expected_ids, local, photo_requests, read_observations, read_photos, run_cli

from inat_async.simulator import SimulatorThread, World


@pytest.fixture(scope="module")
def sim():
    world = World({2001: 300, 2002: 200}, seed=3, photo_scale=0.02)
    with SimulatorThread(world) as running:
        yield running


def _one_line_error(result, *words):
    assert result.returncode == 2, (result.stdout, result.stderr)
    line = error_line(result)
    for word in words:
        assert word in line


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--place", "12a"], ["'12a'", "place"]),
        (["--place", "1,-3"], ["'-3'"]),
        (["--place", "1", "--sizes", "square,huge"], ["'huge'", "square, thumb"]),
        (["--place", "1", "--param", "rank"], ["KEY=VALUE"]),
        (["--place", "1", "--param", "page=3"], ["page"]),
        (["--place", "1", "--workers", "0"], ["--workers"]),
        (["--place", "1", "--workers", "many"], ["--workers"]),
        ([], ["--place"]),
        (["--place", "1", "--api-url", "ftp://x"], ["--api-url"]),
    ],
)
def test_bad_input_is_one_line_and_exit_2_before_any_request(sim, tmp_path, args, words):
    sim.clear_log()
    api = [] if "--api-url" in args else ["--api-url", sim.api_url]
    result = run_cli(tmp_path, *args, *api, "--out", str(tmp_path / "o"))
    _one_line_error(result, *words)
    assert sim.log == []
    assert not (tmp_path / "o").exists()


def test_unwritable_out_is_refused_before_any_request(sim, tmp_path):
    locked = tmp_path / "ro"
    locked.mkdir(mode=0o500)
    # root writes anywhere a mode allows; /proc refuses everyone.
    parent = Path("/proc") if os.geteuid() == 0 else locked
    sim.clear_log()
    result = run_cli(tmp_path, "--place", "2001", "--api-url", sim.api_url, "--out", str(parent / "x"))
    _one_line_error(result, "cannot write")
    assert sim.log == []


def test_out_that_is_a_file_or_has_no_parent_is_refused(sim, tmp_path):
    (tmp_path / "file").write_text("not a folder")
    sim.clear_log()
    for out in (tmp_path / "file", tmp_path / "no" / "such" / "dir"):
        _one_line_error(run_cli(tmp_path, "--place", "2001", "--api-url", sim.api_url, "--out", str(out)))
    assert sim.log == []


def test_unknown_place_is_the_apis_422_in_one_line(sim, tmp_path):
    result = run_cli(tmp_path, "--place", "999999", *local(sim, tmp_path / "o"))
    _one_line_error(result, "Unknown place_id 999999")


def test_params_add_override_and_drop_filters(sim, tmp_path):
    out = tmp_path / "o"
    result = run_cli(
        tmp_path,
        "--place",
        "2001",
        "--param",
        "rank=",
        "--param",
        "quality_grade=needs_id,casual",
        "--no-photos",
        *local(sim, out),
    )
    assert result.returncode == 0, result.stderr
    want = expected_ids(sim.world, [2001], rank="", quality_grade="needs_id,casual")
    assert sorted(read_observations(out)["id"]) == want
    assert len(want) > len(expected_ids(sim.world, [2001], quality_grade="needs_id,casual"))  # genus too
    assert not (out / "photos").exists() and len(read_photos(out)) == 0


def test_all_photos_fetches_every_photo_in_position_order(sim, tmp_path):
    out = tmp_path / "o"
    sim.clear_log()
    result = run_cli(tmp_path, "--place", "2002", "--all-photos", "--sizes", "thumb,large", *local(sim, out))
    assert result.returncode == 0, result.stderr
    photos = read_photos(out)
    want = {
        (o, p, s)
        for o in expected_ids(sim.world, [2002])
        for p in sim.world.photo_ids(o)
        for s in ("thumb", "large")
    }
    assert set(zip(photos.observation_id, photos.photo_id, photos["size"], strict=True)) == want
    assert any(len(sim.world.photo_ids(o)) > 1 for o, _, _ in want)
    for row in photos[photos.status == "done"].itertuples():
        assert (out / row.path).read_bytes() == sim.world.photo_bytes(row.photo_id, row.size)
        assert sim.world.photo_ids(row.observation_id)[row.position] == row.photo_id
    assert {r.path.rsplit("/", 1)[1].split(".")[0] for r in photo_requests(sim.log)} <= {"thumb", "large"}


def test_a_folder_harvested_with_other_settings_is_refused_with_what_differs(sim, tmp_path):
    out = tmp_path / "o"
    base = ["--place", "2002", "--no-photos", *local(sim, out)]
    assert run_cli(tmp_path, *base).returncode == 0
    before = (out / "observations.csv").read_bytes()
    result = run_cli(tmp_path, *base, "--param", "quality_grade=research")
    _one_line_error(result, "filters", "quality_grade")
    assert (out / "observations.csv").read_bytes() == before


def test_help_lists_every_option_with_its_default(tmp_path):
    result = run_cli(tmp_path, "--help")
    assert result.returncode == 0
    for option in (
        "--place",
        "--param",
        "--sizes",
        "--all-photos",
        "--no-photos",
        "--out",
        "--api-url",
        "--workers",
        "--api-rpm",
        "--media-rpm",
        "--no-limits",
    ):
        assert option in result.stdout
    assert "square,medium,original" in result.stdout and "inat_harvest" in result.stdout


def test_console_script_and_module_run_the_same_cli(tmp_path):
    import shutil

    script = shutil.which("inat-async")
    if script is None:
        pytest.skip("package not installed with its console script")
    import subprocess

    result = subprocess.run([script, "--version"], capture_output=True, text=True)
    assert result.stdout.strip() == run_cli(tmp_path, "--version").stdout.strip()
