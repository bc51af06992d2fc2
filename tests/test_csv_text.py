"""Every value of every CSV the harvest writes reads back exactly, whatever text it holds.

Free text from iNaturalist (a species guess, a photo's attribution) can hold any control
character and any line break. A lone carriage return left unquoted is a line end to pandas
and to Python's csv module alike, and shifts every row after it. NUL, which neither reader
can carry, is dropped.
"""

from __future__ import annotations

import csv

import pandas as pd
import pytest
from helpers import expected_ids, run_harvest

from inat_async.simulator import SimulatorThread, World

PLACE = 6201
BREAKS = ["\r\n", "\x85", "\u2028", "\u2029"]


def _generated() -> list[str]:
    """Every character below 0x20, U+0085, U+2028, U+2029 and CRLF: inside a value, leading,
    trailing, alone and doubled; and values that are nothing but breaks."""
    values = []
    for c in [chr(code) for code in range(0x20)] + BREAKS:
        values += [f"a{c}b", f"{c}leading", f"trailing{c}", c, c + c]
    return [*values, "\r\n\r\nboth ends\n\r", "\n", "\r", '"\r"', ",\r,", "lone\rcarriage"]


def _expected(value: str) -> str | None:
    """What a reader gets back: NUL dropped, and nothing at all read as missing."""
    return value.replace("\x00", "") or None


@pytest.fixture(scope="module")
def harvested(tmp_path_factory):
    """Each generated value as one observation's species_guess and its photo's attribution."""
    values = _generated()
    world = World({PLACE: len(values) + 40}, seed=41, photos=(1, 2), placeholder_rate=0.0, photo_scale=0.01)
    ids = expected_ids(world, [PLACE])[: len(values)]
    assert len(ids) == len(values)
    photos = {}
    for obs_id, value in zip(ids, values, strict=True):
        world.edit(obs_id, species_guess=value)
        photos[obs_id] = world.photo_ids(obs_id)[0]
        world.edit_photo(photos[obs_id], attribution=value)
    out = tmp_path_factory.mktemp("csv") / "out"
    with SimulatorThread(world) as sim:
        run_harvest([PLACE], out=out, api_url=sim.api_url, sizes="square")
    return {"out": out, "values": dict(zip(ids, values, strict=True)), "photos": photos}


def _read_csv_module(path, key, text_column):
    with open(path, encoding="utf-8", newline="") as file:
        rows = list(csv.DictReader(file))
    return rows, {int(row[key]): row[text_column] or None for row in rows}


def test_a_lone_carriage_return_stays_inside_its_value(harvested):
    obs_id = next(i for i, v in harvested["values"].items() if v == "lone\rcarriage")
    frame = pd.read_csv(harvested["out"] / "observations.csv", keep_default_na=False, na_values=[""])
    assert frame.set_index("id").loc[obs_id, "species_guess"] == "lone\rcarriage"
    assert frame["id"].is_unique and frame["id"].dtype.kind == "i"


def test_observations_csv_reads_back_exactly_with_pandas_and_the_csv_module(harvested):
    path = harvested["out"] / "observations.csv"
    frame = pd.read_csv(path, keep_default_na=False, na_values=[""], dtype={"species_guess": str})
    guesses = dict(zip(frame["id"], frame["species_guess"], strict=True))
    rows, by_csv = _read_csv_module(path, "id", "species_guess")
    width = 22 + 12  # the record's columns, then each rank's name and id (kingdom .. genus)
    assert len(frame) == len(rows) and len(rows[0]) == len(frame.columns) == width
    assert all(len(row) == width and None not in row for row in rows)  # no row short or long
    for obs_id, value in harvested["values"].items():
        read = guesses[obs_id]
        assert (None if pd.isna(read) else read) == _expected(value), repr(value)
        assert by_csv[obs_id] == _expected(value), repr(value)


def test_photos_csv_reads_back_exactly_with_pandas_and_the_csv_module(harvested):
    path = harvested["out"] / "photos.csv"
    frame = pd.read_csv(path, keep_default_na=False, na_values=[""], dtype={"attribution": str})
    frame = frame[frame["size"] == "square"]
    attributions = dict(zip(frame["photo_id"], frame["attribution"], strict=True))
    _, by_csv = _read_csv_module(path, "photo_id", "attribution")
    for obs_id, value in harvested["values"].items():
        photo_id = harvested["photos"][obs_id]
        read = attributions[photo_id]
        assert (None if pd.isna(read) else read) == _expected(value), repr(value)
        assert by_csv[photo_id] == _expected(value), repr(value)
    assert set(frame["status"]) <= {"done", "missing"}  # the columns after it did not shift
