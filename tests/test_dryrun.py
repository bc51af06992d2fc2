"""--dry-run: the counts the simulator holds, the requests and time they imply, nothing written."""

from __future__ import annotations

import math
import re

import pytest
from helpers import DEFAULTS, expected_ids, local, run_cli

from inat_async.simulator import World

pytestmark = pytest.mark.slow


def test_dry_run_numbers_match_the_simulator_and_nothing_is_written(tmp_path, start_simulator):
    world = World({8001: 90, 8002: 70, 8003: 40}, seed=21, overlap=0.5, photo_scale=0.05)
    out = tmp_path / "o"
    sim = start_simulator(world)
    result = run_cli(
        tmp_path,
        "--place",
        "8001,8002,8003",
        "--dry-run",
        "--api-url",
        sim.api_url,
        "--out",
        str(out),
        "--api-rpm",
        "60",
        "--budget-window-scale",  # a "minute" of 6 s: its 5 requests go 0.1 s apart
        "0.1",
    )
    log = sim.log
    assert result.returncode == 0, result.stderr
    text = result.stdout
    for place in (8001, 8002, 8003):
        count = world.count({**DEFAULTS, "place_id": str(place)})
        assert re.search(rf"^{place}\s+{count:,}$", text, re.M), text
    union = expected_ids(world, [8001, 8002, 8003])
    assert sum(world.count({**DEFAULTS, "place_id": str(p)}) for p in (8001, 8002, 8003)) > len(union)
    assert re.search(rf"^all \(once each\)\s+{len(union):,}$", text, re.M)
    # The sample page holds every observation here, so the photo count is exact.
    photos = [world.photo_ids(o)[0] for o in union if world.photo_ids(o)]
    fetchable = [p for p in photos if not world.photo_info(p).placeholder]
    for size in ("square", "medium", "original"):
        assert re.search(rf"^  {size}\s+{len(fetchable):,} files", text, re.M), text
    requests = int(re.search(r"API requests: (\d+)", text).group(1))
    # The taxonomy's requests: the higher taxa of the observations' taxa, 30 a request.
    served = [o for o in world.observations() if o["id"] in set(union)]
    leaves = {o["taxon"]["id"] for o in served}
    higher = {a for o in served for a in o["taxon"]["ancestor_ids"]} - leaves
    taxa = math.ceil(len(higher) / 30)
    assert re.search(rf"^  of which {taxa} name the observations' higher taxa", text, re.M), text
    # one page of results, a count ending its one range (never more ranges than pages), the
    # plan, the open range, reconciling
    assert requests == 1 + 1 + 2 + 1 + 1 + taxa
    assert "nothing was downloaded or written" in text
    assert not out.exists()
    api = [r for r in log if r.host == "api"]
    assert len(api) == 3 + 1 + 1  # a count per place, one for all, one sample page
    heads = [r for r in log if r.host != "api"]
    assert 0 < len(heads) <= 30 and {r.method for r in heads} == {"HEAD"}  # a few HEADs, no download


def _dry_run(tmp_path, sim, out, *extra):
    return run_cli(
        tmp_path, "--place", "8101", "--api-url", sim.api_url, "--out", str(out), "--dry-run", *extra
    )


def test_a_dry_run_of_a_harvested_folder_estimates_what_is_left_or_the_update(tmp_path, start_simulator):
    world = World({8101: 400}, seed=22, photo_scale=0.02)
    out = tmp_path / "o"
    sim = start_simulator(world)
    assert run_cli(tmp_path, "--place", "8101", *local(sim, out), "--sizes", "square").returncode == 0
    state = (out / "harvest.sqlite").read_bytes()
    finished = _dry_run(tmp_path, sim, out, "--sizes", "square", "--budget-window-scale", "0.1")
    unchanged = _dry_run(tmp_path, sim, out, "--sizes", "square", "--update", "--no-limits")
    assert unchanged.returncode == 0, unchanged.stderr
    assert "photo files to fetch (left by earlier runs):" in unchanged.stdout
    assert "(;" not in unchanged.stdout and "from 0 observations" not in unchanged.stdout
    for nothing in (unchanged.stdout, finished.stdout):  # no files weigh 0.00 GB, not '? GB'
        assert re.search(r"^  square\s+0 files\s+0\.00 GB$", nothing, re.M), nothing
        assert re.search(r"^  all\s+0 files\s+0\.00 GB: ", nothing, re.M), nothing
        assert "? GB" not in nothing
    added = world.add_observations(8101, 30)
    sim.clear_log()
    # A "minute" of 10 s: its 6 requests take a second, not six.
    update = _dry_run(
        tmp_path, sim, out, "--sizes", "square", "--update", "--budget-window-scale", f"{1 / 6}"
    )
    log = sim.log
    assert finished.returncode == update.returncode == 0, finished.stderr + update.stderr
    # The same command would find nothing left to do.
    stored = len(expected_ids(world, [8101])) - len(set(added) & set(expected_ids(world, [8101])))
    said = f"holds {stored:,} observations already, and 0 photo files left to fetch; to page: 0"
    assert said in finished.stdout
    assert re.search(r"^API requests: 0:", finished.stdout, re.M)
    assert re.search(r"^  square\s+0 files", finished.stdout, re.M)
    # With --update: what changed, not the whole harvest.
    text = update.stdout
    changed = len(set(added) & set(expected_ids(world, [8101])))
    assert re.search(rf"^all \(once each\)\s+{changed:,}$", text, re.M), text
    # one page, a count ending its one range (one page: one range), the plan, the open range's
    # count, reconciling
    assert re.search(r"^API requests: 6: about 1 s at 60/minute", text, re.M), text
    new_files = [o for o in added if o in expected_ids(world, [8101]) and world.photo_ids(o)]
    fetchable = [o for o in new_files if not world.photo_info(world.photo_ids(o)[0]).placeholder]
    assert re.search(rf"^  square\s+{len(fetchable):,} files", text, re.M), text
    assert all("updated_since" in r.query for r in log if r.host == "api")
    assert (out / "harvest.sqlite").read_bytes() == state


def test_a_dry_run_without_limits_is_estimated_without_them(tmp_path, start_simulator):
    world = World({8101: 300}, seed=24, photo_scale=0.02)
    sim = start_simulator(world)
    limited = _dry_run(tmp_path, sim, tmp_path / "o", "--budget-window-scale", "0.1")
    unlimited = _dry_run(tmp_path, sim, tmp_path / "o", "--no-limits")
    assert limited.returncode == unlimited.returncode == 0, limited.stderr + unlimited.stderr
    assert "at 60/minute" in limited.stdout and "600/minute" in limited.stdout
    assert "/minute" not in unlimited.stdout and "/hour" not in unlimited.stdout
    assert re.search(
        r"^API requests: \d+: about \d+ s with no limits, 4 ranges at the \d+ ms", unlimited.stdout, re.M
    )


def test_the_bytes_of_a_harvest_of_several_places_are_estimated_within_a_tenth(tmp_path, start_simulator):
    """Sampled along the query's ids (its first and last pages, two between) with ten HEADs
    a size spread over the sample; its first page and three HEADs were 21% off here."""
    world = World({128892: 600, 1001: 500, 1002: 500}, seed=6, photo_scale=1.0)
    places = [128892, 1001, 1002]
    firsts = [world.photo_ids(o)[0] for o in expected_ids(world, places) if world.photo_ids(o)]
    fetched = [p for p in firsts if not world.photo_info(p).placeholder]
    truth = sum(world.photo_length(p, size) for p in fetched for size in ("square", "medium", "original"))
    sim = start_simulator(world)
    result = run_cli(tmp_path, "--place", ",".join(map(str, places)), "--dry-run", "--no-taxonomy",
                     *local(sim, tmp_path / "o"))  # fmt: skip
    assert result.returncode == 0, result.stderr
    estimate = float(re.search(r"^  all\s+[\d,]+ files\s+([\d.]+) GB", result.stdout, re.M).group(1)) * 1e9
    assert abs(estimate - truth) <= 0.1 * truth, (estimate, truth)
    pages = [r for r in sim.log if r.host == "api" and r.query.get("per_page") == "200"]
    assert {r.query["order"] for r in pages} == {"asc", "desc"} and len(pages) == 4


def test_a_dry_run_asks_its_sample_pages_at_the_harvests_per_page(tmp_path, start_simulator):
    """--per-page 50 for a heavy query: the sample pages asked 200 anyway, past a result
    window (here 100) the harvest itself never meets."""
    world = World({9601: 300}, seed=61, result_window=100)
    sim = start_simulator(world)
    args = ["--place", "9601", "--dry-run", "--per-page", "50"]
    result = run_cli(tmp_path, *args, *local(sim, tmp_path / "o"))
    assert result.returncode == 0, result.stderr
    count = world.count({**DEFAULTS, "place_id": "9601"})
    assert re.search(rf"^9601\s+{count:,}$", result.stdout, re.M), result.stdout
    asked = {r.query.get("per_page") for r in sim.log if r.host == "api" and r.path.endswith("/observations")}
    assert asked == {"0", "50"}, asked


def test_ranges_never_outnumber_the_pages_of_the_query_and_the_dry_run_agrees(tmp_path, start_simulator):
    """--ranges 1000 on a place of 325 observations: 4,939 requests once, against 13 by default;
    now at most a range a page, in the run and in the dry run's estimate (and with --per-page 50,
    7 pages: at most 7 ranges)."""
    world = World({8201: 325}, seed=23, photo_scale=0.01)
    sim = start_simulator(world)
    requests, estimates = {}, {}
    for name, extra in {
        "default": (),
        "many": ("--ranges", "1000"),
        "small pages": ("--ranges", "1000", "--per-page", "50"),
    }.items():
        args = ("--place", "8201", "--no-photos", "--no-taxonomy", "--no-limits", *extra)
        dry = run_cli(tmp_path, *args, *local(sim, tmp_path / f"dry {name}"), "--dry-run")
        sim.clear_log()
        run = run_cli(tmp_path, *args, *local(sim, tmp_path / name))
        assert dry.returncode == run.returncode == 0, dry.stderr + run.stderr
        requests[name] = len([r for r in sim.log if r.host == "api"])
        estimates[name] = int(re.search(r"^API requests: (\d+):", dry.stdout, re.M).group(1))
    pages = math.ceil(len(expected_ids(world, [8201])) / 200)
    assert pages == 2
    assert requests["many"] == requests["default"] <= 2 * pages + 6
    assert estimates["many"] == estimates["default"]
    assert requests["small pages"] <= 2 * 7 + 6 and estimates["small pages"] <= 2 * 7 + 6
