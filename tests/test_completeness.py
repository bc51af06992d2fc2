"""A harvest never says "done" with fewer observations than the API says match.

Against the simulator's paging quirks: a page answered empty once, a server that ignores
order=asc, a page out of order, and observations the API counts but does not page (once, or
always). Also: a harvest refused before its first page leaves no state behind.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import time
import urllib.request
from collections import deque
from collections.abc import Mapping
from datetime import datetime

import pytest
from helpers import api_requests, error_line, expected_ids, local, read_observations, run_cli, start_cli

from inat_async.pipeline.harvest import UPDATE_MARGIN
from inat_async.simulator import Faults, World
from inat_async.store.state import SCHEMA_VERSION, State

pytestmark = pytest.mark.slow  # harvests of seconds each (see pyproject.toml markers)

# 600 observations, every one matching the default filters.
WORLD = World({9501: 600}, seed=31, nonmatching=0.0, photo_scale=0.01)
IDS = expected_ids(WORLD, [9501])


def _harvest(sim, tmp_path, out, *extra: str, place: str = "9501"):
    options = ["--no-photos", "--retry-wait", "0.01"]
    return run_cli(tmp_path, "--place", place, *local(sim, out), *options, *extra)


def _ids(out) -> list[int]:
    return sorted(read_observations(out)["id"])


def _stored_ids(out) -> list[int]:
    with sqlite3.connect(out / "harvest.sqlite") as db:
        return [i for (i,) in db.execute('SELECT "id" FROM observations ORDER BY "id"')]


def _counts(log) -> list:
    return [r for r in api_requests(log) if r.query.get("per_page") == "0"]


# ---------------------------------------------------------------- an empty page is not an end


@pytest.mark.parametrize(("ranges", "script"), [("1", [None, "empty"]), ("4", [None, None, "empty"])])
def test_a_page_answered_empty_once_does_not_end_its_range(tmp_path, ranges, script, start_simulator):
    """The example: with one range, page 2 answered once with total_results 0 and no results
    (the old harvester: exit 0 with 200 of 600, and again 200 on a rerun); with 4 ranges the
    first page of a range (the old one: 450 of 600)."""
    assert len(IDS) == 600
    out = tmp_path / "o"
    sim = start_simulator(WORLD, faults=Faults(api_next=deque(script)))
    result = _harvest(sim, tmp_path, out, "--per-page", "200", "--ranges", ranges)
    again = _harvest(sim, tmp_path, out, "--per-page", "200", "--ranges", ranges)
    log = api_requests(sim.log)
    assert result.returncode == 0, result.stderr
    empty = [r for r in log if r.fault == "empty"]
    assert len(empty) == 1 and empty[0].query["per_page"] == "200"  # it hit a page
    assert _ids(out) == IDS
    assert again.returncode == 0 and _ids(out) == IDS


class _EmptyPagesOnce(Faults):
    """Random "empty" answers to page requests of 10 (not the plan's), each page at most
    once, as the API was seen to answer: asking the same page again gets it."""

    def pick(self, group: str, query: Mapping[str, str] | None = None) -> str | None:
        fault = super().pick(group, query)
        if not query or query.get("per_page") != "10":
            return None
        page = (query["id_above"], query.get("id_below"))
        if fault == "empty" and page not in self.seen:
            self.seen.add(page)
            return fault
        return None

    seen: set[tuple[str, str | None]] = set()  # noqa: RUF012 - one instance per test


def test_empty_pages_in_the_middle_of_stolen_ranges_end_nothing(tmp_path, start_simulator):
    world = World({9511: 1000, 9512: 1000}, seed=43, photo_scale=0.01)
    everything = expected_ids(world, [9511, 9512])
    low, high = everything[0], everything[-1]
    planned = {low - 1 + (high - low + 1) * i // 4 for i in range(4)} | {high}
    # The middle half of the id span matches nothing: its two ranges end at once, and their
    # cursors steal from the other two, and then from each other.
    for obs_id in everything:
        if sorted(planned)[1] < obs_id <= sorted(planned)[3]:
            world.edit(obs_id, location=None)
    ids = expected_ids(world, [9511, 9512])
    assert ids[0] == low and ids[-1] == high
    out = tmp_path / "o"
    faults = _EmptyPagesOnce(api={"empty": 0.3}, seed=2)
    faults.seen = set()
    sim = start_simulator(world, faults=faults)
    result = _harvest(sim, tmp_path, out, "--per-page", "10", "--ranges", "4", place="9511,9512")
    log = api_requests(sim.log)
    assert result.returncode == 0, result.stderr
    assert _ids(out) == ids
    # Ranges the plan did not make were stolen; an empty answer came to one of their pages
    # that was neither the first nor the last.
    with sqlite3.connect(out / "harvest.sqlite") as db:
        cursors = db.execute("SELECT lo, last_id FROM cursors").fetchall()
    stolen = [(lo, last) for lo, last in cursors if lo not in planned]
    assert stolen
    empties = [int(r.query["id_above"]) for r in log if r.fault == "empty"]
    hits = sum(any(lo < above < last for lo, last in stolen) for above in empties)
    print(f"{len(stolen)} stolen ranges, {hits} empty answers in their middle")
    assert hits


def test_a_count_answered_zero_once_as_well_is_caught_by_reconciliation(tmp_path, start_simulator):
    """The first page and the count that should confirm the end both answered empty: the
    range ends with nothing, and the reconciliation finds the 600 and pages them."""
    out = tmp_path / "o"
    sim = start_simulator(WORLD, faults=Faults(api_next=deque(["empty", "zero"])))
    result = _harvest(sim, tmp_path, out, "--per-page", "200", "--ranges", "1")
    log = api_requests(sim.log)
    assert result.returncode == 0, result.stderr
    assert [r.fault for r in log[:2]] == ["empty", "zero"]
    assert _ids(out) == IDS


# ---------------------------------------------------------------- pages in ascending id order


@pytest.mark.parametrize("ranges", ["4", "1"])
def test_a_server_sending_the_largest_ids_first_is_refused(tmp_path, ranges, start_simulator):
    """The example: largest ids first whatever order=asc says (the old harvester: exit 0 with
    1 of 1,000). Found by the plan's first and last ids with 4 ranges, by the first page with 1."""
    world = World({9701: 1000}, seed=41, nonmatching=0.0, photo_scale=0.01)
    out = tmp_path / "o"
    sim = start_simulator(world, descending=True)
    result = _harvest(sim, tmp_path, out, "--ranges", ranges, place="9701")
    assert result.returncode == 5, result.stderr
    assert "does not page like iNaturalist's" in error_line(result)


def test_one_page_out_of_order_in_the_middle_stops_the_harvest(tmp_path, start_simulator):
    out = tmp_path / "o"
    sim = start_simulator(WORLD, faults=Faults(api_next=deque([None, None, "unordered"])))
    result = _harvest(sim, tmp_path, out, "--per-page", "50", "--ranges", "1")
    assert result.returncode == 5, result.stderr
    assert "does not page like iNaturalist's" in error_line(result)
    assert _stored_ids(out) == IDS[:100]  # the two pages before it, nothing of it
    sim.faults = None
    again = _harvest(sim, tmp_path, out, "--per-page", "50", "--ranges", "1")
    assert again.returncode == 0, again.stderr
    assert _ids(out) == IDS


# ---------------------------------------------------------------- reconciliation


def test_an_observation_counted_but_left_out_of_its_page_once_is_found(tmp_path, shared_sim):
    out = tmp_path / "o"
    shared_sim.hide(IDS[137], times=1)
    result = _harvest(shared_sim, tmp_path, out, "--per-page", "50")
    log = api_requests(shared_sim.log)
    assert result.returncode == 0, result.stderr
    assert _ids(out) == IDS
    # Found again by a page over a small id span, after a few counts over id spans.
    spans = [r for r in _counts(log) if "id_below" in r.query]
    assert 1 <= len(spans) <= 8, [r.query for r in spans]
    print(f"{len(log)} API requests, {len(_counts(log))} of them counts")


def test_a_reconciliation_killed_midway_does_not_ask_its_counts_again(tmp_path, start_simulator):
    out = tmp_path / "o"

    def args(sim) -> list[str]:
        return ["--place", "9501", *local(sim, out), "--no-photos", "--per-page", "100", "--ranges", "1"]

    sim = start_simulator(WORLD, api_latency=0.2)
    sim.hide(IDS[137], times=1)
    child = start_cli(tmp_path, *args(sim))

    def searching() -> list:  # the reconciliation's counts, from id 0 up
        return [r for r in _counts(sim.log) if r.query["id_above"] == "0"]

    def spans() -> list:  # its counts over id spans, halving from id 0
        return [q for q in searching() if "id_below" in q.query]

    deadline = time.monotonic() + 30
    while len(spans()) < 2 and time.monotonic() < deadline:
        time.sleep(0.005)
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=30)
    answered = [(r.query["id_above"], r.query["id_below"]) for r in spans()[:-1]]  # the last in flight
    sim.clear_log()
    sim.api_latency = 0.02  # slow only to be killed in the middle
    result = run_cli(tmp_path, *args(sim))
    again = [(r.query["id_above"], r.query.get("id_below")) for r in searching()]
    assert result.returncode == 0, result.stderr
    assert _ids(out) == IDS
    assert answered
    # What was answered before the kill comes from the state: the query's count is asked only
    # once more, afresh, after the gap was paged, and no span's count again.
    assert not set(answered) & set(again)
    assert again.count(("0", None)) == 1 and again[-1] == ("0", None)


def test_an_observation_never_paged_is_reported_and_looked_for_again(tmp_path, shared_sim):
    out = tmp_path / "o"
    hidden = IDS[300]
    shared_sim.hide(hidden)
    result = _harvest(shared_sim, tmp_path, out, "--per-page", "50")
    assert result.returncode == 7, result.stderr
    assert "INCOMPLETE: 1 observation(s) that the API counts for place_id=9501" in result.stdout
    assert json.loads((out / "summary.json").read_text())["unfound"] == {"place_id=9501": 1}
    assert _ids(out) == [i for i in IDS if i != hidden]
    shared_sim.clear_log()
    again = _harvest(shared_sim, tmp_path, out, "--per-page", "50")
    assert again.returncode == 7  # the same command looked again
    assert _counts(shared_sim.log) and all(
        r.query.get("id_above") is not None for r in _counts(shared_sim.log)
    )
    shared_sim.hidden.clear()  # the API pages it at last
    found = _harvest(shared_sim, tmp_path, out, "--per-page", "50")
    shared_sim.clear_log()
    done = _harvest(shared_sim, tmp_path, out, "--per-page", "50")
    after_done = shared_sim.log
    assert found.returncode == 0, found.stderr
    assert _ids(out) == IDS
    assert "INCOMPLETE" not in found.stdout
    assert done.returncode == 0 and after_done == []  # complete: nothing asked again


def test_gaps_in_a_query_of_several_overlapping_places(tmp_path, start_simulator):
    places = {9601: 300, 9602: 300, 9603: 300}
    world = World(places, seed=37, overlap=0.3, photo_scale=0.01)
    ids = expected_ids(world, places)
    shared = next(i for i in ids if len(set(world.observation_json(i)["place_ids"]) & set(places)) > 1)
    out = tmp_path / "o"
    sim = start_simulator(world)
    sim.hide(shared, times=1)  # in two of the places: found again
    sim.hide(ids[-1])  # the last of the query, never paged
    result = _harvest(sim, tmp_path, out, "--per-page", "40", place="9601,9602,9603")
    assert result.returncode == 7, result.stderr
    assert "1 observation(s) that the API counts for place_id=9601,9602,9603" in result.stdout
    assert _ids(out) == ids[:-1]


def test_queries_of_100_places_that_share_observations_are_each_reconciled(tmp_path, start_simulator):
    """101 places are two queries (100 places a query); observations of place 100 also lie in
    place 101, so both queries return them: each query is reconciled with what it returned,
    and a gap in the second is reported for it alone."""
    places = {9900 + k: 3 for k in range(101)}
    world = World(places, seed=59, overlap=0.5, nonmatching=0.0, photo_scale=0.01)
    first, second = list(places)[:100], list(places)[100:]
    shared = set(expected_ids(world, first)) & set(expected_ids(world, second))
    assert shared
    (tmp_path / "places.txt").write_text("\n".join(map(str, places)) + "\n")
    out = tmp_path / "o"
    hidden = next(i for i in expected_ids(world, second) if i not in shared)
    sim = start_simulator(world)
    sim.hide(hidden)
    listed = ["--places-file", str(tmp_path / "places.txt")]
    result = run_cli(tmp_path, *listed, *local(sim, out), "--no-photos", "--retry-wait", "0.01")
    assert result.returncode == 7, result.stderr
    unfound = json.loads((out / "summary.json").read_text())["unfound"]
    assert unfound == {f"place_id={second[0]}": 1}
    assert _ids(out) == sorted(set(expected_ids(world, list(places))) - {hidden})


def test_update_reconciles_what_it_asks_for_and_keeps_looking_with_the_same_query(tmp_path, start_simulator):
    world = World({9801: 300}, seed=47, photo_scale=0.01)
    out = tmp_path / "o"
    sim = start_simulator(world)
    assert _harvest(sim, tmp_path, out, place="9801").returncode == 0
    added = world.add_observations(9801, 30)
    matching = [i for i in added if i in expected_ids(world, [9801])]
    edited = expected_ids(world, [9801])[5]
    world.edit(edited, species_guess="edited")
    sim.hide(matching[10])
    sim.clear_log()
    update = _harvest(sim, tmp_path, out, "--update", place="9801")
    first = {r.query["updated_since"] for r in api_requests(sim.log)}
    sim.clear_log()
    again = _harvest(sim, tmp_path, out, "--update", place="9801")
    second = {r.query["updated_since"] for r in api_requests(sim.log)}
    sim.hidden.clear()
    found = _harvest(sim, tmp_path, out, "--update", place="9801")
    since = _next_update_since(out)
    sim.clear_log()
    later = _harvest(sim, tmp_path, out, "--update", place="9801")
    third = {r.query["updated_since"] for r in api_requests(sim.log)}
    assert update.returncode == 7 and "updated since" in update.stdout
    assert again.returncode == 7 and second == first  # the same query, looked at again
    assert found.returncode == 0, found.stderr
    assert later.returncode == 0 and third == {since}  # complete: the next starts from its start
    frame = read_observations(out).set_index("id")
    assert sorted(frame.index) == expected_ids(world, [9801])
    assert frame.loc[edited, "species_guess"] == "edited"


def _next_update_since(out) -> str:
    with sqlite3.connect(out / "harvest.sqlite") as db:
        completed = db.execute("SELECT value FROM meta WHERE key = 'completed_at'").fetchone()[0]
    return (datetime.fromisoformat(completed) - UPDATE_MARGIN).isoformat(timespec="seconds")


def test_an_update_asking_the_query_an_earlier_update_completed_pages_it_again(tmp_path, start_simulator):
    """Two runs begun within the same second give the next --update the same updated_since as
    the last one: that query, completed before, must be paged again, not found done (it was,
    and the update ended at once with what changed since unfetched)."""
    world = World({9802: 120}, seed=48, photo_scale=0.01)
    out = tmp_path / "o"
    sim = start_simulator(world)
    assert _harvest(sim, tmp_path, out, place="9802").returncode == 0
    with sqlite3.connect(out / "harvest.sqlite") as db:
        harvested_at = db.execute("SELECT value FROM meta WHERE key = 'completed_at'").fetchone()[0]
    world.add_observations(9802, 10)
    assert _harvest(sim, tmp_path, out, "--update", place="9802").returncode == 0
    with sqlite3.connect(out / "harvest.sqlite") as db:  # as if the update began in that second
        db.execute("UPDATE meta SET value = ? WHERE key = 'completed_at'", (harvested_at,))
    world.add_observations(9802, 10)
    edited = expected_ids(world, [9802])[3]
    world.edit(edited, species_guess="edited again")
    sim.clear_log()
    again = _harvest(sim, tmp_path, out, "--update", place="9802")
    assert again.returncode == 0, again.stderr
    assert api_requests(sim.log)
    frame = read_observations(out).set_index("id")
    assert sorted(frame.index) == expected_ids(world, [9802])
    assert frame.loc[edited, "species_guess"] == "edited again"


def test_a_state_of_the_previous_version_is_reconciled_and_its_losses_found(tmp_path, shared_sim):
    """A harvest.sqlite left by version 4, where a range was stored as done with
    observations missing (as the empty-page bug left it): the next run counts, finds the
    gaps and pages them, without planning or paging the query again."""
    out = tmp_path / "o"
    assert _harvest(shared_sim, tmp_path, out, "--per-page", "50").returncode == 0
    with sqlite3.connect(out / "harvest.sqlite") as db:
        for table in ("streams", "paged", "counts"):
            db.execute(f"DROP TABLE {table}")
        db.execute("UPDATE meta SET value = '4' WHERE key = 'schema_version'")  # before streams
        db.execute('DELETE FROM observations WHERE "id" > ? AND "id" < ?', (IDS[200], IDS[260]))
    shared_sim.clear_log()
    result = _harvest(shared_sim, tmp_path, out, "--per-page", "50")
    log = api_requests(shared_sim.log)
    assert result.returncode == 0, result.stderr
    assert _ids(out) == IDS
    assert all(r.query["per_page"] in ("0", "50") for r in log) and len(log) <= 12
    with sqlite3.connect(out / "harvest.sqlite") as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == str(
            SCHEMA_VERSION
        )


# ---------------------------------------------------------------- a refused harvest leaves nothing


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--place", "999999"], "Unknown place_id 999999"),
        (["--param", "taxon_id=424242"], "Unknown taxon_id 424242"),
    ],
)
def test_a_harvest_refused_before_its_first_page_leaves_no_state(tmp_path, args, message, shared_sim):
    made = tmp_path / "made"
    kept = tmp_path / "kept"
    kept.mkdir()  # a folder the user made: kept, and nothing of ours left in it
    for out in (made, kept):
        place = [] if args[0] == "--place" else ["--place", "9501"]
        result = run_cli(tmp_path, *place, *args, *local(shared_sim, out), "--no-photos")
        assert result.returncode == 2, result.stderr
        assert message in error_line(result)
    assert not made.exists()
    assert kept.is_dir() and list(kept.iterdir()) == []


def test_a_state_an_earlier_run_left_is_never_removed(tmp_path, shared_sim):
    out = tmp_path / "o"
    out.mkdir()
    State(out / "harvest.sqlite").close()  # an earlier run's state, holding nothing yet
    refused = run_cli(tmp_path, "--place", "999999", *local(shared_sim, out), "--no-photos")
    assert refused.returncode == 2 and (out / "harvest.sqlite").is_file()
    assert _harvest(shared_sim, tmp_path, out).returncode == 0
    other = run_cli(tmp_path, "--place", "999999", *local(shared_sim, out), "--no-photos")
    assert other.returncode == 2  # other settings than the folder's harvest: refused, kept
    assert _stored_ids(out) == IDS


# ---------------------------------------------------------------- the simulator's quirks


def test_the_simulator_paging_quirks_as_a_client_sees_them(tmp_path, start_simulator):
    world = World({9901: 120}, seed=53, nonmatching=0.0, photo_scale=0.01)
    ids = expected_ids(world, [9901])
    base = {"place_id": "9901", "order_by": "id", "order": "asc", "per_page": "50"}
    sim = start_simulator(world)

    def get(**params: str) -> dict:
        query = "&".join(f"{k}={v}" for k, v in {**base, **params}.items())
        with urllib.request.urlopen(f"{sim.api_url}/observations?{query}") as response:
            return json.loads(response.read())

    sim.faults = Faults(api_next=deque(["empty", "empty", "zero", "unordered"]))
    assert get() == {"total_results": 0, "page": 1, "per_page": 50, "results": []}
    assert get(per_page="0")["total_results"] == 120  # "empty" spares counts
    assert get(per_page="0")["total_results"] == 0  # "zero" does not
    assert [o["id"] for o in get()["results"]] == [*ids[:48], ids[49], ids[48]]
    sim.hide(ids[3], times=1)
    assert [o["id"] for o in get()["results"]] == ids[:3] + ids[4:50]
    assert get(per_page="0")["total_results"] == 120
    assert [o["id"] for o in get()["results"]] == ids[:50]  # only once
    sim.descending = True
    assert [o["id"] for o in get()["results"]] == ids[::-1][:50]
