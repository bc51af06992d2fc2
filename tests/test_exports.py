"""Parquet and Darwin Core Archive exports of a real (simulated) harvest, read back by other tools.

pandas and pyarrow read the Parquet files, python-dwca-reader the archive; every value is checked
against the CSVs or against the observations exactly as the simulator served them.
"""

from __future__ import annotations

import sys
import zipfile
from datetime import date, datetime
from pathlib import Path

import pandas as pd
import pytest
from helpers import expected_ids, read_observations, read_photos, run_harvest

from inat_async.errors import UsageError
from inat_async.simulator import SimulatorThread, World
from inat_async.store.state import STATE_FILE, State

pytestmark = pytest.mark.slow

PLACES = (1001, 1002)
DWC = "http://rs.tdwg.org/dwc/terms/"
DC = "http://purl.org/dc/terms/"
LICENSE_URLS = {
    None: "",
    "cc0": "http://creativecommons.org/publicdomain/zero/1.0/",
    "cc-by": "http://creativecommons.org/licenses/by/4.0/",
    "cc-by-nc": "http://creativecommons.org/licenses/by-nc/4.0/",
    "cc-by-sa": "http://creativecommons.org/licenses/by-sa/4.0/",
    "cc-by-nd": "http://creativecommons.org/licenses/by-nd/4.0/",
    "cc-by-nc-sa": "http://creativecommons.org/licenses/by-nc-sa/4.0/",
    "cc-by-nc-nd": "http://creativecommons.org/licenses/by-nc-nd/4.0/",
}


@pytest.fixture(scope="module")
def world() -> World:
    return World({1001: 300, 1002: 120}, seed=11, photo_scale=0.01)


@pytest.fixture(scope="module")
def harvested(world, tmp_path_factory):
    """A finished harvest of every photo in three sizes, as the library leaves it."""
    out = tmp_path_factory.mktemp("exports") / "out"
    with SimulatorThread(world) as sim:
        api_url = sim.api_url
        summary = run_harvest(PLACES, out=out, api_url=api_url, all_photos=True)
        served = {obs["id"]: obs for obs in world.observations(sim.hosts)}
    ids = expected_ids(world, PLACES)
    return {"out": out, "api_url": api_url, "summary": summary, "served": served, "ids": ids}


@pytest.fixture(scope="module")
def state(harvested):
    state = State(harvested["out"] / STATE_FILE)
    yield state
    state.close()


@pytest.fixture(scope="module")
def parquet(harvested, state):
    pytest.importorskip("pyarrow")
    from inat_async.exports.parquet import write_parquet

    return write_parquet(state, harvested["out"])


@pytest.fixture(scope="module")
def archive(harvested, state):
    """The archive's core rows (each with its extension rows read), its descriptor and its EML."""
    pytest.importorskip("dwca")
    from dwca.read import DwCAReader

    from inat_async.exports.dwca import write_dwca

    path = write_dwca(state, harvested["out"], api_url=harvested["api_url"])
    with DwCAReader(str(path)) as reader:
        rows = list(reader)
        for row in rows:
            _ = row.extensions  # read while the archive is open
        return {"path": path, "rows": rows, "descriptor": reader.descriptor, "eml": reader.metadata}


def _served(harvested) -> list[dict]:
    """The observations the harvest's query matched, as the simulator served them, in id order."""
    return [harvested["served"][i] for i in harvested["ids"]]


# -- Parquet ----------------------------------------------------------------------------------------
def test_parquet_files_have_proper_types(harvested, parquet):
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = harvested["out"]
    assert parquet == [out / "observations.parquet", out / "photos.parquet"]
    schema = pq.read_schema(out / "observations.parquet")
    utc = pa.timestamp("us", tz="UTC")
    expected = {
        "id": pa.int64(),
        "community_taxon_id": pa.int64(),
        "taxon.id": pa.int64(),
        "time_observed_at": utc,
        "created_at": utc,
        "updated_at": utc,
        "observed_on": pa.date32(),
        "Latitude": pa.float64(),
        "Longitude": pa.float64(),
        "obscured": pa.bool_(),
        "place_ids": pa.list_(pa.int64()),
        "public_positional_accuracy": pa.int64(),
        "taxon.name": pa.string(),
        "photo_count": pa.int64(),
    }
    assert {name: schema.field(name).type for name in expected} == expected
    assert not schema.field("id").nullable and schema.field("community_taxon_id").nullable
    assert schema.names == list(read_observations(out).columns)  # the CSV's columns, in order
    photos = pq.read_schema(out / "photos.parquet")
    assert photos.field("photo_id").type == pa.int64() and photos.field("bytes").type == pa.int64()
    assert photos.names == list(read_photos(out).columns)
    assert not list(out.glob(".*.part"))


def test_parquet_observations_equal_the_csv(harvested, parquet):
    out = harvested["out"]
    frame = pd.read_parquet(out / "observations.parquet", dtype_backend="numpy_nullable")
    csv = read_observations(out)
    assert len(frame) == len(csv) == harvested["summary"].observations
    assert frame["id"].tolist() == csv["id"].tolist() == harvested["ids"]
    assert str(frame["id"].dtype) == "Int64" and frame["community_taxon_id"].isna().any()
    assert frame["Latitude"].tolist() == csv["Latitude"].tolist()
    assert frame["Longitude"].tolist() == csv["Longitude"].tolist()
    for column in ("time_observed_at", "created_at", "updated_at"):
        assert isinstance(frame[column].dtype, pd.DatetimeTZDtype) and str(frame[column].dt.tz) == "UTC"
        expected = pd.to_datetime(csv[column], utc=True, format="ISO8601")
        assert frame[column].astype(object).tolist() == expected.astype(object).tolist(), column
    # The CSV cannot tell a missing guess from an empty one: compare text with both as "".
    assert frame["species_guess"].fillna("").tolist() == csv["species_guess"].fillna("").tolist()
    places = [[int(p) for p in str(v).split(";")] for v in csv["place_ids"]]
    assert [list(v) for v in frame["place_ids"]] == places


def test_parquet_values_equal_what_the_api_sent(harvested, parquet):
    frame = pd.read_parquet(harvested["out"] / "observations.parquet").set_index("id")
    obscured = 0
    for obs in _served(harvested):
        row = frame.loc[obs["id"]]
        sent = obs["time_observed_at"]
        if sent is None:
            assert pd.isna(row["time_observed_at"])
        else:
            assert row["time_observed_at"].to_pydatetime() == datetime.fromisoformat(sent)
        assert row["observed_on"] == date.fromisoformat(obs["observed_on"])
        assert row["obscured"] == obs["obscured"]
        obscured += obs["obscured"]
        assert row["taxon.id"] == obs["taxon"]["id"]
        assert (None if pd.isna(row["species_guess"]) else row["species_guess"]) == obs["species_guess"]
        lat, lng = (float(v) for v in obs["location"].split(","))
        assert (row["Latitude"], row["Longitude"]) == (lat, lng)
    assert obscured  # both values of the bool were seen


def test_parquet_photos_equal_the_csv(harvested, parquet):
    out = harvested["out"]
    frame = pd.read_parquet(out / "photos.parquet", dtype_backend="numpy_nullable")
    csv = read_photos(out)
    assert len(frame) == len(csv)
    for column in ("observation_id", "photo_id", "position", "bytes"):
        assert str(frame[column].dtype) == "Int64"
        assert frame[column].astype("Float64").fillna(-1).tolist() == csv[column].fillna(-1).tolist()
    assert frame["path"].fillna("").tolist() == csv["path"].fillna("").tolist()
    assert frame["status"].tolist() == csv["status"].tolist()


def test_parquet_without_pyarrow_says_how_to_install_it(state, monkeypatch, tmp_path):
    from inat_async.exports.parquet import write_parquet

    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow now raises ImportError
    with pytest.raises(UsageError, match=r"pip install 'inat_async\[parquet\]'"):
        write_parquet(state, tmp_path)
    assert list(tmp_path.iterdir()) == []


# -- Darwin Core Archive ----------------------------------------------------------------------------
def test_dwca_is_a_zip_with_core_extension_and_metadata(harvested, archive):
    out = harvested["out"]
    assert archive["path"] == out / "dwca.zip"
    with zipfile.ZipFile(archive["path"]) as zf:
        assert sorted(zf.namelist()) == ["eml.xml", "meta.xml", "multimedia.txt", "occurrence.txt"]
        assert zf.testzip() is None
    descriptor = archive["descriptor"]
    assert descriptor.core.type == DWC + "Occurrence"
    assert descriptor.extensions_type == ["http://rs.gbif.org/terms/1.0/Multimedia"]
    assert {
        DWC + t
        for t in (
            "occurrenceID",
            "catalogNumber",
            "basisOfRecord",
            "scientificName",
            "eventDate",
            "decimalLatitude",
            "decimalLongitude",
            "coordinateUncertaintyInMeters",
            "geodeticDatum",
            "informationWithheld",
            "identificationVerificationStatus",
            "recordedBy",
            "taxonRank",
        )
    } | {DC + t for t in ("license", "rightsHolder", "references", "modified")} <= (descriptor.core.terms)
    assert {
        DC + t
        for t in (
            "type",
            "format",
            "identifier",
            "references",
            "license",
            "rightsHolder",
            "creator",
            "source",
        )
    } <= descriptor.extensions[0].terms
    assert not list(out.glob(".*.part"))


def test_dwca_core_has_every_observation_with_its_values(harvested, archive):
    rows = archive["rows"]
    assert [int(row.id) for row in rows] == harvested["ids"]
    withheld = 0
    for row, obs in zip(rows, _served(harvested), strict=True):
        data = {term.rsplit("/", 1)[1]: value for term, value in row.data.items()}
        lat, lng = (float(v) for v in obs["location"].split(","))
        user = obs["user"]
        expected = {
            "occurrenceID": obs["uri"],
            "catalogNumber": str(obs["id"]),
            "basisOfRecord": "HumanObservation",
            "scientificName": obs["taxon"]["name"],
            "taxonRank": obs["taxon"]["rank"],
            "eventDate": obs["time_observed_at"] or obs["observed_on"],
            "geodeticDatum": "WGS84",
            "license": LICENSE_URLS[obs["license_code"]],
            "recordedBy": user["name"] or user["login"],
            "nick": user["login"],  # foaf:nick, as iNaturalist's inaturalistLogin
            "datasetName": "iNaturalist observations of places 1001, 1002",  # the same on every row
            "rightsHolder": user["name"] or user["login"],
            "identificationVerificationStatus": obs["quality_grade"],
            "references": obs["uri"],
            "modified": obs["updated_at"],
            "occurrenceRemarks": obs["description"] or "",
        }
        assert {k: data[k] for k in expected} == expected, obs["id"]
        assert (float(data["decimalLatitude"]), float(data["decimalLongitude"])) == (lat, lng)
        accuracy = obs["public_positional_accuracy"]
        assert data["coordinateUncertaintyInMeters"] == ("" if accuracy is None else str(accuracy))
        if obs["obscured"]:
            withheld += 1
            assert data["informationWithheld"].startswith(f"Coordinate uncertainty increased to {accuracy}m")
        else:
            assert data["informationWithheld"] == ""
    assert withheld


def test_dwca_free_text_survives_tabs_newlines_and_quotes(harvested, archive):
    remarks = [row.data[DWC + "occurrenceRemarks"] for row in archive["rows"]]
    assert remarks == [obs["description"] or "" for obs in _served(harvested)]
    joined = "".join(remarks)
    assert all(c in joined for c in '\t\n\r"')  # the hard cases were there and came back whole


def test_dwca_multimedia_has_one_row_per_photo_with_the_files_of_its_sizes(world, harvested, archive):
    """As GBIF's own iNaturalist archive: a photo is one row, however many sizes were fetched;
    the files of its sizes are in dcterms:source, "|"-separated, smallest first."""
    out = harvested["out"]
    photos = read_photos(out)
    done = photos[photos.status == "done"]
    by_photo = {photo_id: rows for photo_id, rows in done.groupby("photo_id", sort=False)}
    extension_rows = [(row, ext) for row in archive["rows"] for ext in row.extensions]
    assert len(extension_rows) == len(by_photo) < len(done)  # three sizes: each photo once, not thrice
    served = harvested["served"]
    listed = []
    for row, ext in extension_rows:
        data = {term.rsplit("/", 1)[1]: value for term, value in ext.data.items()}
        assert ext.core_id == row.id
        photo_id = int(data["references"].rsplit("/", 1)[1])
        listed.append(photo_id)
        files = by_photo[photo_id]
        assert data["source"].split("|") == files["path"].tolist()
        for path, size in zip(files["path"], files["size"], strict=True):
            assert (out / path).read_bytes() == world.photo_bytes(photo_id, size)
        assert data["identifier"] == files["url"].iloc[-1]  # the largest size harvested
        obs = served[int(row.id)]
        photo = next(p for p in obs["photos"] if p["id"] == photo_id)
        user = obs["user"]
        assert data["type"] == "StillImage"
        assert (
            data["format"]
            == {"jpg": "image/jpeg", "jpeg": "image/jpeg", "png": "image/png", "gif": "image/gif"}[
                Path(files["path"].iloc[0]).suffix[1:].lower()
            ]
        )
        assert data["license"] == LICENSE_URLS[photo["license_code"]]
        assert data["creator"] == data["rightsHolder"] == (user["name"] or user["login"])
        assert data["references"] == f"https://www.inaturalist.org/photos/{photo_id}"
        assert data["created"] == (obs["time_observed_at"] or obs["observed_on"])
    assert listed == list(by_photo)  # in photos.csv's order
    sizes = {len(data.split("|")) for data in (ext.data[DC + "source"] for _, ext in extension_rows)}
    assert sizes == {2, 3}  # a photo with a size missing lists the files it has
    formats = {ext.data[DC + "format"] for _, ext in extension_rows}
    assert {"image/jpeg", "image/png"} <= formats


def test_dwca_eml_says_what_was_harvested_from_where(harvested, archive):
    eml = archive["eml"]
    text = " ".join(t.strip() for t in eml.itertext())
    assert eml.find("dataset/title").text == "iNaturalist observations of places 1001, 1002"
    assert harvested["api_url"] in text
    assert "geo=true&identified=true&rank=species" in text
    assert "sizes square, medium, original" in text
    assert "Each record keeps its own licence" in text
    assert f"{harvested['summary'].observations} observations" in text
    days = sorted(obs["observed_on"] for obs in _served(harvested))
    dates = eml.find("dataset/coverage/temporalCoverage/rangeOfDates")
    assert [dates.findtext(f"{end}/calendarDate") for end in ("beginDate", "endDate")] == [days[0], days[-1]]
