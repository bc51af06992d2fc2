"""Many overlapping places in one deduplicated stream, and --update for what changed since."""

from __future__ import annotations

import functools
import operator
from collections import Counter

import pandas as pd
import pytest
from helpers import DEFAULTS, api_requests, expected_ids, local, photo_requests, read_observations, run_cli

from inat_async.config import make_settings
from inat_async.pipeline.pager import PLACES_PER_QUERY, queries
from inat_async.simulator import World


@pytest.mark.slow
def test_thirty_overlapping_places_from_a_file_yield_their_union_once(tmp_path, start_simulator):
    places = {7000 + i: 10 + 2 * i for i in range(30)}
    world = World(places, seed=13, overlap=0.4, photo_scale=0.01)
    ids = list(places)
    lines = ["# marine protected areas", ""] + [str(p) for p in ids[:10]]
    lines += [f"https://www.inaturalist.org/places/{p}" for p in ids[10:20]]
    lines += [f"{p}   # with a comment" for p in ids[20:]] + [str(ids[0])]  # a repeat too
    (tmp_path / "places.txt").write_text("\n".join(lines) + "\n")
    out = tmp_path / "o"
    sim = start_simulator(world)
    result = run_cli(
        tmp_path, "--places-file", str(tmp_path / "places.txt"), "--sizes", "square", *local(sim, out)
    )
    log = sim.log
    assert result.returncode == 0, result.stderr
    frame = read_observations(out)
    assert frame["id"].is_unique
    assert sorted(frame["id"]) == expected_ids(world, ids)
    overlapping = 0
    for row in frame.itertuples():
        own = set(world.observation_json(row.id)["place_ids"])
        want = [p for p in ids if p in own]
        assert str(row.place_ids).split(";") == [str(p) for p in want]
        overlapping += len(want) > 1
    assert overlapping > 50  # the places really overlap
    # One stream for all places; each photo file fetched once.
    assert {r.query["place_id"] for r in api_requests(log)} == {",".join(map(str, ids))}
    fetched = Counter(r.path for r in photo_requests(log))
    assert fetched and max(fetched.values()) == 1


def test_many_places_are_paged_in_chunks_that_keep_urls_short():
    settings = make_settings(range(1_000_000, 1_000_000 + 250))
    chunks = [params["place_id"].split(",") for _, params in queries(settings)]
    assert [len(c) for c in chunks] == [PLACES_PER_QUERY, PLACES_PER_QUERY, 50]
    assert functools.reduce(operator.iadd, chunks, []) == [str(p) for p in settings.places]
    assert max(len(key) for key, _ in queries(settings)) < 2000


def _read(path):
    return path.read_bytes()


@pytest.mark.slow
def test_update_fetches_exactly_what_changed_and_equals_a_fresh_harvest(tmp_path, start_simulator):
    world = World({5001: 400}, seed=17, photo_scale=0.01)
    out = tmp_path / "o"
    sim = start_simulator(world)
    args = ["--place", "5001", "--sizes", "square,small", *local(sim, out)]
    assert run_cli(tmp_path, *args).returncode == 0
    refused = run_cli(tmp_path, *args[:-2], "--out", str(tmp_path / "new"), "--update")
    assert refused.returncode == 2 and "without --update" in refused.stderr
    old = expected_ids(world, [5001])
    added = world.add_observations(5001, 12)
    edited = old[:3]
    for obs_id in edited:
        world.edit(obs_id, species_guess='changed, "edited"')
    world.edit(old[3], quality_grade="casual", taxon_id=None)  # now fails identified=true
    sim.clear_log()
    update = run_cli(tmp_path, *args, "--update")
    log = sim.log
    fresh = run_cli(tmp_path, *args[:-2], "--out", str(tmp_path / "fresh"))
    assert update.returncode == 0 and fresh.returncode == 0, update.stderr + fresh.stderr
    pages = [r for r in api_requests(log) if r.query.get("per_page") == "200"]
    assert pages and all("updated_since" in r.query for r in pages)
    since = pages[0].query["updated_since"]
    changed = expected_ids(world, [5001], updated_since=since)
    assert set(changed) == (set(added) | set(edited)) & set(expected_ids(world, [5001]))
    matching = set(expected_ids(world, [5001]))
    new_photos = {p for o in added if o in matching for p in world.photo_ids(o)[:1]}
    new_photos = {p for p in new_photos if not world.photo_info(p).placeholder}
    assert {int(r.path.split("/")[2]) for r in photo_requests(log)} == new_photos
    frame = read_observations(out).set_index("id")
    assert frame.loc[edited[0], "species_guess"] == 'changed, "edited"'
    assert set(added) & matching <= set(frame.index)
    # What an update cannot see: an observation that stopped matching stays (see README).
    assert old[3] in frame.index and old[3] not in expected_ids(world, [5001])
    fresh_frame = read_observations(tmp_path / "fresh").set_index("id")
    pd.testing.assert_frame_equal(frame.drop(index=old[3]), fresh_frame, check_dtype=False)
    photos = (out / "photos.csv").read_text().splitlines()
    fresh_photos = (tmp_path / "fresh" / "photos.csv").read_text().splitlines()
    assert sorted(line for line in photos if not line.startswith(f"{old[3]},")) == sorted(fresh_photos)


def test_defaults_match_the_seed_filters():
    assert make_settings([1]).filters == DEFAULTS
