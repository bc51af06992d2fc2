"""The first photo is the one the API lists first, and ``position`` is the API's own value.

iNaturalist lists an observation's photos positioned ones first, then those whose
observation_photos position is null; the harvest follows that list as it is, and writes the
position the API gives (empty when null) instead of making one up.
"""

from __future__ import annotations

import shutil
import sqlite3
import zipfile

import pandas as pd
import pytest
from helpers import expected_ids, local, photo_requests, run_cli

from inat_async.simulator import SimulatorThread, World
from inat_async.store.state import SCHEMA_VERSION

pytestmark = pytest.mark.slow

PLACE = 6101


@pytest.fixture(scope="module")
def harvests(tmp_path_factory):
    """Two observations with edited positions: [5, null] and [4, null, null]; harvested with
    the first photo only and with --all-photos."""
    tmp = tmp_path_factory.mktemp("order")
    world = World({PLACE: 60}, seed=37, photos=(2, 3), placeholder_rate=0.0, photo_scale=0.01)
    by_count = {}
    for obs_id in expected_ids(world, [PLACE]):
        by_count.setdefault(len(world.photo_ids(obs_id)), obs_id)
    edits = {by_count[2]: (5, None), by_count[3]: (4, None, None)}
    for obs_id, positions in edits.items():
        for photo_id, position in zip(world.photo_ids(obs_id), positions, strict=True):
            world.edit_photo(photo_id, position=position)
    results = {}
    with SimulatorThread(world) as sim:
        for name, extra in (("first", []), ("all", ["--all-photos"])):
            out = tmp / name
            args = ["--place", str(PLACE), "--sizes", "square", "--format", "csv,dwca", *extra]
            result = run_cli(tmp, *args, *local(sim, out))
            assert result.returncode == 0, result.stderr
            results[name] = out
        yield {"world": world, "edits": edits, "args": args, "sim": sim, **results}


def _photos(out) -> pd.DataFrame:
    return pd.read_csv(out / "photos.csv", keep_default_na=False, na_values=[""], dtype={"position": "Int64"})


def test_the_first_photo_is_the_one_the_api_lists_first(harvests):
    photos = _photos(harvests["first"]).set_index("observation_id")
    for obs_id, positions in harvests["edits"].items():
        row = photos.loc[obs_id]
        assert row.photo_id == harvests["world"].photo_ids(obs_id)[0]
        assert row.position == positions[0]


def test_all_photos_come_in_the_api_order_with_the_api_positions(harvests):
    photos = _photos(harvests["all"])
    for obs_id, positions in harvests["edits"].items():
        rows = photos[photos.observation_id == obs_id]
        assert rows.photo_id.tolist() == harvests["world"].photo_ids(obs_id)
        assert [None if pd.isna(p) else int(p) for p in rows.position] == list(positions)
    others = photos[~photos.observation_id.isin(harvests["edits"])].groupby("observation_id")
    assert all(rows.position.tolist() == list(range(len(rows))) for _, rows in others)


def test_darwin_core_multimedia_follows_the_api_order(harvests):
    with zipfile.ZipFile(harvests["all"] / "dwca.zip") as archive:
        lines = archive.read("multimedia.txt").decode().splitlines()[1:]
    for obs_id in harvests["edits"]:
        listed = [line.split("\t") for line in lines if line.startswith(f"{obs_id}\t")]
        ids = [int(fields[4].rsplit("/", 1)[1]) for fields in listed]  # references: .../photos/<id>
        assert ids == harvests["world"].photo_ids(obs_id)


def test_a_version_2_state_is_upgraded_with_the_api_positions(harvests, tmp_path):
    """The --all-photos state as version 2 wrote it (made-up positions, no api_order): the
    same command upgrades it, asks for nothing and writes the same photos.csv."""
    out = tmp_path / "all"
    shutil.copytree(harvests["all"], out)
    reference = (out / "photos.csv").read_bytes()
    with sqlite3.connect(out / "harvest.sqlite") as db:
        db.executescript(
            """
            CREATE TABLE photos_v2 (
                seq INTEGER PRIMARY KEY, photo_id INTEGER NOT NULL, size TEXT NOT NULL,
                observation_id INTEGER NOT NULL, position INTEGER NOT NULL, url TEXT NOT NULL,
                host TEXT, path TEXT, status TEXT NOT NULL, reason TEXT, bytes INTEGER,
                license_code TEXT, attribution TEXT, UNIQUE (photo_id, size));
            INSERT INTO photos_v2 SELECT seq, photo_id, size, observation_id,
                COALESCE(position, api_order), url, host, path, status, reason, bytes,
                license_code, attribution FROM photos;
            DROP TABLE photos;
            ALTER TABLE photos_v2 RENAME TO photos;
            CREATE INDEX photos_pending ON photos (status, host, seq);
            CREATE INDEX photos_observation ON photos (observation_id);
            UPDATE meta SET value = '2' WHERE key = 'schema_version';
            """
        )
    (out / "photos.csv").unlink()
    sim = harvests["sim"]
    sim.clear_log()
    result = run_cli(tmp_path, *harvests["args"], *local(sim, out))
    assert result.returncode == 0, result.stderr
    assert photo_requests(sim.log) == []
    assert (out / "photos.csv").read_bytes() == reference
    with sqlite3.connect(out / "harvest.sqlite") as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == str(
            SCHEMA_VERSION
        )
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
