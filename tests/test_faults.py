"""Every fault the simulator knows is survived; untrusted data never steers a write; exit statuses."""

from __future__ import annotations

import sqlite3

import pytest
from helpers import error_line, expected_ids, local, read_observations, read_photos, run_cli

from inat_async.simulator import Faults, World
from inat_async.store.state import SCHEMA_VERSION

WORLD = World({9101: 500, 9102: 300}, seed=23, photo_scale=0.02)


def _check_photos_byte_exact(world, out):
    photos = read_photos(out)
    for row in photos.itertuples():
        expected = world.photo_bytes(row.photo_id, row.size)
        if row.status == "done":
            assert (out / row.path).read_bytes() == expected
        elif row.status == "missing":
            assert expected is None and row.reason.startswith("HTTP 40")
        else:
            assert row.status == "skipped" and "placeholder" in row.reason
    return photos


@pytest.mark.slow
def test_a_few_percent_of_every_fault_is_survived_byte_exact(tmp_path, start_simulator):
    kinds = ["500", "502", "503", "504", "429", "429-no-retry-after", "reset", "truncated", "slow", "html"]
    faults = Faults.uniform(0.04, kinds, seed=4, slow_delay=2.0, retry_after=0.05)
    faults.photo = dict(faults.api)
    out = tmp_path / "o"
    sim = start_simulator(WORLD, faults=faults)
    result = run_cli(
        tmp_path,
        "--place",
        "9101,9102",
        *local(sim, out),
        "--timeout",
        "0.5",
        "--retry-wait",
        "0.01",
        "--per-page",
        "50",
        "--sizes",
        "square,small",
    )
    seen = {r.fault for r in sim.log if r.fault}
    assert result.returncode == 0, result.stderr
    assert seen >= set(kinds)  # every kind really happened
    assert sorted(read_observations(out)["id"]) == expected_ids(WORLD, [9101, 9102])
    photos = _check_photos_byte_exact(WORLD, out)
    assert set(photos.status) <= {"done", "missing", "skipped"}
    assert "missing" in result.stdout and "skipped" in result.stdout  # reported at the end


def _harvest_into(sim, tmp_path, out, *extra):
    return run_cli(tmp_path, "--place", "9102", *local(sim, out), "--retry-wait", "0.01", *extra)


def test_untrusted_photo_data_never_writes_outside_the_output_folder(tmp_path, start_simulator):
    world = World({9201: 40}, seed=29, photo_scale=0.02)
    ids = expected_ids(world, [9201])
    evil = [
        {"id": 1, "url": "http://evil.invalid/photos/1/square.jpg"},
        {"id": "../../../tmp/pwned", "url": "OPEN/photos/2/square.jpg"},
        {"id": 3, "url": "OPEN/photos/3/square.exe"},
        {"id": 4, "url": "OPEN/photos/../../../../tmp/4/square.jpg"},
        {"id": -5, "url": "OPEN/photos/5/square.jpg"},
        {"id": 6, "url": None},
    ]
    out = tmp_path / "o"
    sim = start_simulator(world)
    for obs_id, photo in zip(ids, evil, strict=False):
        url = photo["url"].replace("OPEN", sim.hosts["open"]) if photo["url"] else None
        world.edit(obs_id, photos=[{**photo, "url": url}], observation_photos=[])
    result = _harvest_into(sim, tmp_path, out, "--place", "9201", "--all-photos")
    assert result.returncode in (0, 3), result.stderr
    assert sorted(read_observations(out)["id"]) == ids  # the harvest went on
    photos = read_photos(out)
    rows = {int(r.photo_id): r for r in photos.itertuples() if r.observation_id in ids[:6]}
    assert set(rows) == {1, 3, 4, 6}  # non-integer and negative ids dropped
    assert "host" in rows[1].reason and "extension" in rows[3].reason
    assert rows[4].path == "photos/000/000/4_square.jpg" or rows[4].status != "done"
    for path in out.rglob("*"):
        assert path.resolve().is_relative_to(out.resolve())
    assert not (tmp_path / "pwned").exists()


@pytest.mark.slow
def test_bodies_larger_than_any_photo_are_refused_and_reported_with_exit_3(tmp_path, shared_sim):
    out = tmp_path / "o"
    result = _harvest_into(shared_sim, tmp_path, out, "--sizes", "square,original", "--max-photo-mb", "0.004")
    assert result.returncode == 3, result.stderr
    photos = read_photos(out)
    big = photos[(photos.status == "failed")]
    assert len(big) > 0 and big.reason.str.contains("larger than").all()
    assert (photos[photos.status == "done"]["bytes"] <= 4000).all()
    assert all(p.stat().st_size <= 4000 for p in (out / "photos").rglob("*") if p.is_file())
    assert "failed" in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize(
    "fault, reason",
    # A body cut short is said by its kind, not aiohttp's text ("ContentLengthError: 400", no status).
    [("html", r"not an image"), ("truncated", r"^connection dropped mid-body \(after \d+ tries\)$")],
)
def test_a_photo_never_answered_right_fails_after_its_retries(tmp_path, start_simulator, fault, reason):
    out = tmp_path / "o"
    world = World({9102: 60}, seed=23, photo_scale=0.02)  # each photo is tried 8 times
    sim = start_simulator(world, faults=Faults(photo={fault: 1.0}))
    result = _harvest_into(sim, tmp_path, out, "--sizes", "square")
    assert result.returncode == 3
    photos = read_photos(out)
    failed = photos[photos.status == "failed"]
    assert len(failed) and failed.reason.str.contains(reason).all(), failed.reason.tolist()
    assert not [p for p in out.rglob("*.jpg") if not p.name.startswith(".")]
    # A later run, with the host healthy again, finishes the job.
    sim.faults = None
    again = _harvest_into(sim, tmp_path, out, "--sizes", "square")
    assert again.returncode == 0, again.stderr
    _check_photos_byte_exact(world, out)


@pytest.mark.slow
def test_a_server_answering_garbage_stops_with_one_line_and_harms_nothing(tmp_path, shared_sim):
    out = tmp_path / "o"
    assert _harvest_into(shared_sim, tmp_path, out, "--no-photos").returncode == 0
    before = (out / "observations.csv").read_bytes()
    shared_sim.faults = Faults(api={"html": 1.0})
    result = _harvest_into(shared_sim, tmp_path, out, "--no-photos", "--update")
    assert result.returncode == 5
    assert "the answer is not JSON (it starts '<" in error_line(result)
    assert (out / "observations.csv").read_bytes() == before
    with sqlite3.connect(out / "harvest.sqlite") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["garbage", "version"])
def test_a_corrupt_or_foreign_state_is_refused_untouched(tmp_path, damage, shared_sim):
    out = tmp_path / "o"
    assert _harvest_into(shared_sim, tmp_path, out, "--no-photos").returncode == 0
    state = out / "harvest.sqlite"
    if damage == "garbage":
        state.write_bytes(b"this is not SQLite" * 100)
    else:
        db = sqlite3.connect(state)
        with db:
            db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.close()
    before = state.read_bytes()
    shared_sim.clear_log()
    result = _harvest_into(shared_sim, tmp_path, out, "--no-photos")
    assert shared_sim.log == []
    assert result.returncode == 2
    assert ("not a readable harvest state" if damage == "garbage" else "incompatible version") in error_line(
        result
    )
    assert state.read_bytes() == before


@pytest.mark.slow
def test_a_state_of_the_previous_version_is_carried_on(tmp_path, shared_sim):
    """A harvest.sqlite of state version 1 (no photos.host, photos.max_bytes) is upgraded in place, and the
    harvest goes on: the files still to fetch are fetched, nothing else is asked again."""
    out = tmp_path / "o"
    assert _harvest_into(shared_sim, tmp_path, out).returncode == 0
    reference = {name: (out / name).read_bytes() for name in ("observations.csv", "photos.csv")}
    state = out / "harvest.sqlite"
    with sqlite3.connect(state) as db:  # as version 1 left it, ten files short
        undone = db.execute("SELECT seq, path FROM photos WHERE status = 'done' LIMIT 10").fetchall()
        db.executemany(
            "UPDATE photos SET status = 'pending', bytes = NULL WHERE seq = ?", [(s,) for s, _ in undone]
        )
        db.execute("DROP INDEX photos_pending")
        db.execute("ALTER TABLE photos DROP COLUMN host")
        db.execute("ALTER TABLE photos DROP COLUMN max_bytes")
        db.execute("DROP TABLE rejected")
        db.execute("CREATE INDEX photos_status ON photos (status, seq)")
        db.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    for _, path in undone:
        (out / path).unlink()
    shared_sim.clear_log()
    result = _harvest_into(shared_sim, tmp_path, out)
    fetched = sorted(_photo_and_size(r.path) for r in shared_sim.log if r.host in ("open", "static"))
    api = [r for r in shared_sim.log if r.host == "api"]
    assert result.returncode == 0, result.stderr
    assert api == []
    assert fetched == sorted(_photo_and_size(path) for _, path in undone)
    assert {name: (out / name).read_bytes() for name in reference} == reference
    _check_photos_byte_exact(WORLD, out)
    with sqlite3.connect(state) as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == str(
            SCHEMA_VERSION
        )


def _photo_and_size(path: str) -> tuple[int, str]:
    """(photo id, size) of a photo URL's path or of a file under photos/."""
    *_, folder, name = path.split("/")
    stem = name.rsplit(".", 1)[0]
    if "_" in stem:
        photo_id, size = stem.split("_", 1)
        return int(photo_id), size
    return int(folder), stem
