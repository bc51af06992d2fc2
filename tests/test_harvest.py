"""The core harvester against the simulator: one place past the API's result window and two
that overlap.

The window is 10,000 results on the real API (page * per_page may not pass it); this world's
is 1,000, scaled down as the tests scale budget windows, so that one place holds more than a
window without ten thousand observations. One size (thumb: not the API's square, so every URL
is rewritten) keeps the photo files few; byte-exact files of the other sizes are checked by
test_cli, test_crash and test_simulator.
"""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from helpers import api_requests, expected_ids, photo_requests, read_observations, read_photos, run_cli

import inat_async
from inat_async.photos import size_url
from inat_async.records import SEED_COLUMNS
from inat_async.simulator import SimulatorThread, World
from inat_async.simulator.query import QueryError

PLACES = (128892, 1001, 1002)
SIZES = ("thumb",)
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def world():
    return World({128892: 1_800, 1001: 300, 1002: 300}, seed=7, photo_scale=0.02, result_window=1_000)


@pytest.fixture(scope="module")
def harvested(world, tmp_path_factory):
    """One harvest as a user runs it; the tests below read what it left."""
    tmp = tmp_path_factory.mktemp("big")
    with SimulatorThread(world) as sim:
        args = [
            "--place",
            "128892",
            "--place",
            "1001,1002",
            "--out",
            str(tmp / "out"),
            "--api-url",
            sim.api_url,
            "--no-limits",
            "--workers",
            "24",
            "--sizes",
            ",".join(SIZES),
            "-q",
        ]
        first = run_cli(tmp, *args)
        first_log = sim.log
        sim.clear_log()
        again = run_cli(tmp, *args)
        again_log = sim.log
        return {
            "out": tmp / "out",
            "run": first,
            "log": first_log,
            "again": again,
            "again_log": again_log,
            "hosts": dict(sim.hosts),
        }


def test_every_matching_observation_exactly_once_past_the_result_window(world, harvested):
    assert harvested["run"].returncode == 0, harvested["run"].stderr
    assert len(expected_ids(world, [128892])) > world.result_window
    with pytest.raises(QueryError, match="Result window"):  # paging by number would stop here
        world.search({"place_id": "128892", "page": "6", "per_page": "200"})
    frame = read_observations(harvested["out"])
    assert list(frame.columns[: len(SEED_COLUMNS)]) == list(SEED_COLUMNS)
    assert frame.columns[len(SEED_COLUMNS)] == "place_ids"
    assert frame["id"].is_unique
    assert sorted(frame["id"]) == expected_ids(world, PLACES)


def test_pages_by_id_never_by_page_number(harvested):
    requests = api_requests(harvested["log"])
    assert requests and all(r.status == 200 for r in requests)
    assert not any("page" in r.query for r in requests)
    assert {r.query["order_by"] for r in requests} == {"id"}
    assert {r.query["place_id"] for r in requests} == {"128892,1001,1002"}
    pages = [r for r in requests if r.query["per_page"] == "200"]
    assert {r.query["order"] for r in pages} == {"asc"}
    # Each id range is paged forward by id_above, each page asked for once.
    seen = [(r.query["id_above"], r.query.get("id_below")) for r in pages]
    assert len(set(seen)) == len(seen)
    expected_pages = math.ceil(len(read_observations(harvested["out"])) / 200)
    assert len(pages) <= expected_pages + 2 * 8  # a last page per range, and a few steals


def test_observations_csv_reads_back_exactly(world, harvested):
    frame = read_observations(harvested["out"]).set_index("id")
    rows = frame.to_dict("index")
    sample = list(frame.index[::2])  # the simulator renders each one again
    for obs in json.loads(world.render_results(sample)):
        row = rows[obs["id"]]
        lat, lng = (float(v) for v in obs["location"].split(","))
        expect = {
            "taxon.name": obs["taxon"]["name"],
            "quality_grade": obs["quality_grade"],
            "time_observed_at": obs["time_observed_at"],
            "species_guess": obs["species_guess"],
            "license_code": obs["license_code"],
            "observed_on": obs["observed_on"],
            "community_taxon_id": obs.get("community_taxon_id"),
            "Latitude": lat,
            "Longitude": lng,
            "place_ids": ";".join(str(p) for p in PLACES if p in obs["place_ids"]),
        }
        got = {k: (None if isinstance(row[k], float) and math.isnan(row[k]) else row[k]) for k in expect}
        assert got == expect, obs["id"]
    assert frame["species_guess"].str.contains("\n").any()  # hard text made it through
    assert frame["species_guess"].str.contains('"').any()


def test_every_requested_photo_file_byte_exact(world, harvested):
    out = harvested["out"]
    photos = read_photos(out)
    wanted = set()
    for obs_id in expected_ids(world, PLACES):
        ids = world.photo_ids(obs_id)
        if ids:
            wanted |= {(obs_id, ids[0], size) for size in SIZES}
    assert set(zip(photos.observation_id, photos.photo_id, photos["size"], strict=True)) == wanted
    assert len(photos) == len(wanted)
    counts = photos.status.value_counts().to_dict()
    assert set(counts) <= {"done", "missing", "skipped"} and counts["done"] > 0.8 * len(wanted)
    for row in photos.itertuples():
        expected = world.photo_bytes(row.photo_id, row.size)
        if row.status == "done":
            data = (out / row.path).read_bytes()
            assert data == expected and row.bytes == len(data)
        elif row.status == "missing":
            assert expected is None
        else:
            assert row.status == "skipped" and ("/assets/" in row.url or "attachment_defaults" in row.url)
    assert not list(out.rglob("*.part"))


def test_photo_urls_swap_the_size_word_of_the_api_square_url(world, harvested):
    photos = read_photos(harvested["out"])
    fetchable = photos[photos.status != "skipped"].head(300)
    for row in fetchable.itertuples():
        square = world.observation_json(row.observation_id, harvested["hosts"])["photos"][0]["url"]
        assert row.url == size_url(square, row.size)[0]
    asked = {r.path for r in photo_requests(harvested["log"])}
    assert all("?" not in p for p in asked)


def test_every_request_names_inat_async_and_its_version(harvested):
    agents = {r.user_agent for r in harvested["log"]}
    assert agents == {f"inat_async/{inat_async.__version__}"}


def test_running_again_fetches_nothing_and_keeps_the_outputs(harvested):
    again = harvested["again"]
    assert again.returncode == 0, again.stderr
    assert harvested["again_log"] == []
    assert "observations in" in again.stdout


def test_folder_layout_stays_small(harvested):
    for folder in (harvested["out"] / "photos").rglob("*"):
        if folder.is_dir():
            assert sum(1 for _ in folder.iterdir()) <= 10_000


def test_csv_is_comma_separated_and_standard(harvested):
    text = (harvested["out"] / "observations.csv").read_text(encoding="utf-8")
    assert text.startswith("id,taxon.name,quality_grade,")
    assert pd.read_csv(harvested["out"] / "photos.csv").shape[1] == 11
