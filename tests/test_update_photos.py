"""--update makes the photo rows of an updated observation what a fresh harvest writes.

Photos change on iNaturalist without their observation being edited by hand: a relicensed
photo moves between the static host and the open-data bucket, a copyright-flagged one turns
into a placeholder, a deleted one leaves its observation. Each change bumps the observation's
updated_at, so --update pages it again: its rows, files and exports must then be exactly those
of a fresh harvest into another folder.
"""

from __future__ import annotations

import sqlite3
import tarfile
import zipfile
from pathlib import Path

import pytest
from helpers import expected_ids, local, photo_requests, run_cli

from inat_async.simulator import SimulatorThread, World

pytestmark = pytest.mark.slow

PLACE = 6001
SIZES = "square,small"


def _photos_by_kind(world: World) -> dict[str, tuple[int, int]]:
    """(observation id, photo id) of matching observations' photos, one for each change, each of
    another observation: a photo with no licence, and others with one."""
    unlicensed, licensed = [], []
    for obs_id in expected_ids(world, [PLACE]):
        photos = world.observation_json(obs_id)["photos"]
        fine = [p for p in photos if not world.photo_info(p["id"]).placeholder]
        if len(fine) >= 2:  # a second photo, so that removing one leaves the observation some
            (licensed if fine[1]["license_code"] else unlicensed).append((obs_id, fine[1]["id"]))
    assert len(unlicensed) >= 2 and len(licensed) >= 4
    return {
        "moved": unlicensed[0],  # run 1 lists it at its old static URL: 403
        "relicensed": unlicensed[1],
        "hidden": licensed[0],
        "removed": licensed[1],
        "unlicensed": licensed[2],
        "renamed": licensed[3],  # a new attribution and position, the same file: not fetched again
    }


def _files(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in (out / "photos").rglob("*") if p.is_file()}


def _rows(out: Path, photo_id: int) -> list[tuple]:
    with sqlite3.connect(out / "harvest.sqlite") as db:
        return db.execute(
            "SELECT size, url, host, path, status, license_code, attribution FROM photos"
            " WHERE photo_id = ? ORDER BY size",
            (photo_id,),
        ).fetchall()


def _webdataset(out: Path) -> tuple[dict[str, bytes], list[str]]:
    """The shards' members (name -> bytes) and the keys index.parquet lists."""
    pd = pytest.importorskip("pandas")
    members: dict[str, bytes] = {}
    for shard in sorted((out / "webdataset").glob("shard-*.tar")):
        with tarfile.open(shard) as tar:
            for info in tar.getmembers():
                assert info.name not in members, info.name
                members[info.name] = tar.extractfile(info).read()  # type: ignore[union-attr]
    return members, sorted(pd.read_parquet(out / "webdataset" / "index.parquet")["key"])


def _assert_webdataset_of_fresh(out: Path, fresh: Path, gone: set[int]) -> None:
    """The shards after --update hold what a fresh harvest's hold: no sample of a photo gone,
    every json today's, and the index lists exactly the samples of the shards."""
    ours, keys = _webdataset(out)
    theirs, fresh_keys = _webdataset(fresh)
    assert sorted(ours) == sorted(theirs)
    for name in ours:
        assert ours[name] == theirs[name], name
    assert keys == fresh_keys == sorted({name.rsplit(".", 1)[0] for name in ours})
    assert not {int(key.split("_")[1]) for key in keys} & gone


@pytest.fixture(scope="module")
def updated(tmp_path_factory):
    """Run 1, the photos changed, --update; and a fresh harvest of the changed world."""
    tmp = tmp_path_factory.mktemp("update_photos")
    world = World({PLACE: 60}, seed=29, photos=(1, 4), placeholder_rate=0.0, photo_scale=0.01)
    chosen = _photos_by_kind(world)
    world.edit_photo(chosen["moved"][1], moved=True)  # files on the open bucket, listed on static
    out, fresh = tmp / "out", tmp / "fresh"
    with SimulatorThread(world) as sim:
        formats = "csv,dwca,parquet,webdataset"
        args = ["--place", str(PLACE), "--all-photos", "--sizes", SIZES, "--format", formats,
                "--shard-size", "4", "--webdataset-size", "square"]  # fmt: skip
        first = run_cli(tmp, *args, *local(sim, out))
        before = {kind: _rows(out, photo_id) for kind, (_, photo_id) in chosen.items()}
        files_before = _files(out)
        world.edit_photo(chosen["moved"][1], license_code="cc-by")
        world.edit_photo(chosen["relicensed"][1], license_code="cc-by")
        world.edit_photo(chosen["hidden"][1], placeholder=True)
        world.edit_photo(chosen["removed"][1], removed=True)
        world.edit_photo(chosen["unlicensed"][1], license_code=None)
        world.edit_photo(
            chosen["renamed"][1], attribution="(c) Zoë, some rights reserved (CC BY)", position=7
        )
        sim.clear_log()
        update = run_cli(tmp, *args, "--update", *local(sim, out))
        fetched = photo_requests(sim.log)
        hosts = dict(sim.hosts)
        again = run_cli(tmp, *args, *local(sim, fresh))
    for result in (first, update, again):
        assert result.returncode == 0, result.stderr
    return {
        "world": world,
        "chosen": chosen,
        "out": out,
        "fresh": fresh,
        "before": before,
        "files_before": files_before,
        "fetched": fetched,
        "hosts": hosts,
    }


def test_run_one_saw_the_old_state_of_each_photo(updated):
    before = updated["before"]
    assert {row[4] for row in before["moved"]} == {"missing"}  # its old static URL answers 403
    assert all(row[1].startswith(updated["hosts"]["static"]) for row in before["moved"])
    assert {row[5] for row in before["relicensed"]} == {None}
    assert {row[4] for row in before["hidden"]} == {"done"}
    assert {row[4] for row in before["removed"]} == {"done"}
    assert all(row[5] for row in before["unlicensed"])


def test_every_photo_row_after_update_is_what_a_fresh_harvest_writes(updated):
    out, fresh = updated["out"], updated["fresh"]
    assert (out / "photos.csv").read_bytes() == (fresh / "photos.csv").read_bytes()
    for kind, (_, photo_id) in updated["chosen"].items():
        assert _rows(out, photo_id) == _rows(fresh, photo_id), kind
    moved = _rows(out, updated["chosen"]["moved"][1])
    assert {(row[4], row[5]) for row in moved} == {("done", "cc-by")}
    assert all(row[1].startswith(updated["hosts"]["open"]) for row in moved)
    assert {row[4] for row in _rows(out, updated["chosen"]["hidden"][1])} == {"skipped"}
    assert _rows(out, updated["chosen"]["removed"][1]) == []
    assert {row[5] for row in _rows(out, updated["chosen"]["unlicensed"][1])} == {None}
    renamed = _rows(out, updated["chosen"]["renamed"][1])
    assert {(row[4], row[6]) for row in renamed} == {("done", "(c) Zoë, some rights reserved (CC BY)")}


def test_files_whose_url_changed_are_fetched_again_and_nothing_else(updated):
    chosen = updated["chosen"]
    refetched = {chosen[kind][1] for kind in ("moved", "relicensed", "unlicensed")}
    asked = {(r.host, int(r.path.split("/")[2])) for r in updated["fetched"]}
    assert asked == {("open", chosen["moved"][1]), ("open", chosen["relicensed"][1])} | {
        ("static", chosen["unlicensed"][1])
    }
    assert len(updated["fetched"]) == len(refetched) * len(SIZES.split(","))


def test_files_that_no_longer_belong_are_deleted_and_the_rest_equal_a_fresh_harvest(updated):
    out, fresh = updated["out"], updated["fresh"]
    files = _files(out)
    assert files == _files(fresh)
    gone = {updated["chosen"][kind][1] for kind in ("hidden", "removed")}
    had = {name for name in updated["files_before"] if int(Path(name).stem.split("_")[0]) in gone}
    assert had and not had & set(files)


def test_every_export_holds_the_new_rows(updated):
    out, fresh = updated["out"], updated["fresh"]
    for member in ("occurrence.txt", "multimedia.txt"):
        with zipfile.ZipFile(out / "dwca.zip") as ours, zipfile.ZipFile(fresh / "dwca.zip") as theirs:
            assert ours.read(member) == theirs.read(member), member
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    ours, theirs = (pd.read_parquet(folder / "photos.parquet") for folder in (out, fresh))
    pd.testing.assert_frame_equal(ours, theirs)


def test_webdataset_after_update_holds_no_removed_photo_and_todays_metadata(updated):
    """Removed and hidden photos leave the shards and the index; a relicensed or re-attributed
    photo's json is today's (the shards once held them, complete)."""
    chosen = updated["chosen"]
    gone = {chosen["hidden"][1], chosen["removed"][1]}
    _assert_webdataset_of_fresh(updated["out"], updated["fresh"], gone)


def test_with_photo_license_a_photo_relicensed_out_of_the_list_loses_its_file(tmp_path, start_simulator):
    """--photo-license cc-by: one photo loses its licence (its file goes, its row is skipped),
    a skipped one gains cc-by (it is fetched); the same as a fresh harvest."""
    world = World({PLACE: 80}, seed=31, photos=(1, 1), placeholder_rate=0.0, photo_scale=0.01)
    first = {o: world.observation_json(o)["photos"][0] for o in expected_ids(world, [PLACE])}
    dropped = next(p["id"] for p in first.values() if p["license_code"] == "cc-by")
    gained = next(p["id"] for p in first.values() if p["license_code"] is None)
    out, fresh = tmp_path / "out", tmp_path / "fresh"
    sim = start_simulator(world)
    args = ["--place", str(PLACE), "--sizes", "square", "--photo-license", "CC-BY",
            "--format", "csv,webdataset", "--shard-size", "2", "--webdataset-size", "square"]  # fmt: skip
    assert run_cli(tmp_path, *args, *local(sim, out)).returncode == 0
    assert [row[4] for row in _rows(out, dropped)] == ["done"]
    assert [row[4] for row in _rows(out, gained)] == ["skipped"]
    world.edit_photo(dropped, license_code=None)
    world.edit_photo(gained, license_code="cc-by")
    sim.clear_log()
    assert run_cli(tmp_path, *args, "--update", *local(sim, out)).returncode == 0
    fetched = [int(r.path.split("/")[2]) for r in photo_requests(sim.log)]
    assert run_cli(tmp_path, *args, *local(sim, fresh)).returncode == 0
    assert fetched == [gained]
    assert [row[4] for row in _rows(out, dropped)] == ["skipped"]
    assert (out / "photos.csv").read_bytes() == (fresh / "photos.csv").read_bytes()
    assert _files(out) == _files(fresh)
    _assert_webdataset_of_fresh(out, fresh, {dropped})
