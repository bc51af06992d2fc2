"""--dry-run: the counts the simulator holds, the requests and time they imply, nothing written."""

from __future__ import annotations

import re

from conftest import DEFAULTS, expected_ids, run_cli

from inat_async.simulator import SimulatorThread, World


def test_dry_run_numbers_match_the_simulator_and_nothing_is_written(tmp_path):
    world = World({8001: 90, 8002: 70, 8003: 40}, seed=21, overlap=0.5, photo_scale=0.05)
    out = tmp_path / "o"
    with SimulatorThread(world) as sim:
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
    assert requests == 1 + 4 + 3  # one page of results, one last page per range, the plan
    assert "nothing was downloaded or written" in text
    assert not out.exists()
    api = [r for r in log if r.host == "api"]
    assert len(api) == 3 + 1 + 1  # a count per place, one for all, one sample page
    heads = [r for r in log if r.host != "api"]
    assert 0 < len(heads) <= 9 and {r.method for r in heads} == {"HEAD"}  # a few HEADs, no download
