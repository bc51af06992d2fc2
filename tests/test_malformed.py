"""Malformed values are data errors, not tracebacks (issue 12 point 3): a page that does not fit
stops the harvest with exit 5 and one line after its retries; an observation or a photo that
does not fit is skipped, counted with its reason in the log and summary.json, and the rest kept."""

from __future__ import annotations

import json

import pytest
from aiohttp import web
from fakehost import FakeHost
from helpers import error_line, expected_ids, local, read_observations, read_photos, run_cli

from inat_async.simulator import World

DEEP = b'{"total_results": 1, "results": [' + b"[" * 200_000 + b"]" * 200_000 + b"]}"


@pytest.mark.parametrize(
    "body, says",
    [
        (DEEP, "nested deeper"),
        (b'{"total_results": 1000000000000000000000000000000, "results": []}', "not an observations page"),
        (b'{"total_results": "many", "results": []}', "not an observations page"),
        (b'{"total_results": 3, "results": {"id": 1}}', "not an observations page"),
    ],
    ids=["nested-200000-deep", "total-10**30", "total-a-string", "results-an-object"],
)
def test_a_page_that_does_not_fit_is_retried_then_stops_with_exit_5_and_one_line(tmp_path, body, says):
    async def answer(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    with FakeHost(answer) as api:
        result = run_cli(
            tmp_path, "--place", "1", "--api-url", api.url + "/v1", "--out", str(tmp_path / "o"),
            "--ranges", "1", "--no-limits", "--retry-wait", "0.01", timeout=60,
        )  # fmt: skip
    assert result.returncode == 5, result.stderr
    assert says in error_line(result) and "after 8 tries" in error_line(result)
    assert api.requests == 8


def test_observations_and_photos_that_do_not_fit_are_skipped_counted_and_the_rest_kept(
    tmp_path, start_simulator
):
    world = World({9701: 60}, seed=71, photo_scale=0.02, placeholder_rate=0.0, missing_size_rate=0.0)
    ids = expected_ids(world, [9701])
    out = tmp_path / "o"
    sim = start_simulator(world)
    good, own = (world.observation_json(i, sim.hosts)["photos"][0] for i in ids[3:5])
    world.edit(ids[0], place_ids=7)  # TypeError in the old code
    world.edit(ids[1], photos=5)  # TypeError
    world.edit(ids[2], community_taxon_id=10**30)  # OverflowError into SQLite
    # A photo id past SQLite's integers (OverflowError); the observation's other photo stays.
    world.edit(ids[3], photos=[{**good, "id": 2**64}, good], observation_photos=[])
    world.edit(ids[4], photos=[{"id": 5, "original_dimensions": {"width": "wide"}}, own])
    args = ["--place", "9701", "--sizes", "square", "--all-photos", *local(sim, out)]
    result = run_cli(tmp_path, *args)
    # Asked again (the edited observations changed since): nothing is counted twice.
    again = run_cli(tmp_path, *args, "--update")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    kept = set(read_observations(out)["id"])
    assert kept == set(ids) - {ids[0], ids[1], ids[2]}
    photos = read_photos(out)
    assert set(photos[photos.observation_id == ids[3]].photo_id) == {good["id"]}
    assert set(photos[photos.observation_id == ids[4]].photo_id) == {own["id"]}
    rejected = json.loads((out / "summary.json").read_text())["rejected"]
    assert sum(n for what, n in rejected.items() if what.startswith("observation:")) == 3
    assert sum(n for what, n in rejected.items() if what.startswith("photo:")) == 2
    assert any("place_ids" in what for what in rejected) and any("$.id" in what for what in rejected)
    assert "skipped" in result.stderr and "malformed" in result.stdout
    assert again.returncode == 0, again.stderr
    assert json.loads((out / "summary.json").read_text())["rejected"] == rejected
