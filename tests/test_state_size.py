"""The state keeps each observation's JSON exactly as the API sent it, compressed with a
zstandard dictionary trained on the harvest's own first observations (store/rawjson.py):
a fraction of the zlib blob each one took up to state version 5, which is upgraded in place."""

from __future__ import annotations

import shutil
import sqlite3
import urllib.request
import zipfile
import zlib
from pathlib import Path

import msgspec
import pytest
from helpers import DEFAULTS, run_harvest

from inat_async import export
from inat_async.simulator import SimulatorThread, World
from inat_async.store.rawjson import TRAIN_AT
from inat_async.store.state import SCHEMA_VERSION, State

pytestmark = pytest.mark.slow  # harvests of seconds each (see pyproject.toml markers)

PLACE = 4242
LARGE = World({PLACE: 1_400}, seed=21)  # past TRAIN_AT matching: a dictionary is trained
SMALL = World({PLACE: 150}, seed=22)  # too few: plain frames


class _Page(msgspec.Struct):
    results: list[msgspec.Raw]


def _sent(api_url: str) -> dict[int, bytes]:
    """Each matching observation's JSON as the API sends it, by id (paged here by hand)."""
    sent: dict[int, bytes] = {}
    last = 0
    while True:
        query = "&".join(f"{k}={v}" for k, v in DEFAULTS.items())
        url = f"{api_url}/observations?{query}&place_id={PLACE}&order_by=id&order=asc&per_page=200"
        with urllib.request.urlopen(f"{url}&id_above={last}") as answer:
            results = msgspec.json.decode(answer.read(), type=_Page).results
        if not results:
            return sent
        for raw in results:
            last = msgspec.json.decode(raw)["id"]
            sent[last] = bytes(raw)


def _stored(out: Path) -> dict[int, bytes]:
    """Each stored observation's JSON, read back through the state."""
    state = State(out / "harvest.sqlite")
    try:
        return dict(state.observations_json())
    finally:
        state.close()


def _blobs(out: Path) -> list[bytes]:
    with sqlite3.connect(out / "harvest.sqlite") as db:
        return [blob for (blob,) in db.execute("SELECT raw FROM observations")]


def _occurrences(out: Path) -> bytes:
    with zipfile.ZipFile(out / "dwca.zip") as archive:
        return archive.read("occurrence.txt")


@pytest.fixture(scope="module")
def harvests(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, dict[int, bytes]]]:
    done = {}
    for name, world in (("large", LARGE), ("small", SMALL)):
        out = tmp_path_factory.mktemp(name) / "out"
        with SimulatorThread(world) as sim:
            run_harvest([PLACE], out=out, api_url=sim.api_url, no_photos=True, formats="csv,dwca")
            done[name] = (out, _sent(sim.api_url))
    return done


def test_each_observation_is_kept_as_sent_in_a_third_of_its_zlib_size(harvests):
    out, sent = harvests["large"]
    assert len(sent) > TRAIN_AT
    assert _stored(out) == sent
    kept = sum(map(len, _blobs(out)))
    assert kept <= sum(len(zlib.compress(raw, 6)) for raw in sent.values()) / 3


def test_a_harvest_too_small_for_a_dictionary_keeps_them_as_sent(harvests):
    out, sent = harvests["small"]
    assert 0 < len(sent) < TRAIN_AT
    assert _stored(out) == sent
    with sqlite3.connect(out / "harvest.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM dictionaries").fetchone()[0] == 0


@pytest.mark.parametrize("name", ["large", "small"])
def test_a_version_5_state_is_upgraded_in_place_and_exports_the_same(harvests, tmp_path, name):
    """A state as version 5 left it (each observation's JSON a zlib blob, no dictionaries):
    the next command upgrades it, every observation's JSON intact, the file smaller."""
    source, sent = harvests[name]
    out = tmp_path / "out"
    shutil.copytree(source, out)
    before = (out / "observations.csv").read_bytes(), _occurrences(out)
    with sqlite3.connect(out / "harvest.sqlite") as db:
        db.executemany(
            'UPDATE observations SET raw = ? WHERE "id" = ?',
            [(zlib.compress(raw, 6), oid) for oid, raw in sent.items()],
        )
        db.execute("DROP TABLE dictionaries")
        db.execute("UPDATE meta SET value = '5' WHERE key = 'schema_version'")
    with sqlite3.connect(out / "harvest.sqlite") as db:
        db.execute("VACUUM")
    version_5 = (out / "harvest.sqlite").stat().st_size
    (out / "observations.csv").unlink()
    (out / "dwca.zip").unlink()
    export(out, "csv,dwca")
    assert ((out / "observations.csv").read_bytes(), _occurrences(out)) == before
    assert _stored(out) == sent
    with sqlite3.connect(out / "harvest.sqlite") as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == str(
            SCHEMA_VERSION
        )
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    if name == "large":
        assert (out / "harvest.sqlite").stat().st_size < version_5 / 2
