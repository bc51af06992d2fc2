"""The formats users load elsewhere (issue 17), each read back by an independent reader.

One small harvest through the command line writes every format at once; each test reads one
of them with the tool its users have (geopandas, json, ...), never with our code, and checks
counts and values against the observations exactly as the simulator served them.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import sys
import warnings
import zipfile
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from helpers import local, rendered_dom, run_cli

from inat_async.simulator import SimulatorThread, World
from inat_async.simulator.templates import taxa_by_id

pytestmark = pytest.mark.slow  # harvests of seconds each (see pyproject.toml markers)

DWC = "http://rs.tdwg.org/dwc/terms/"

PLACES = (2001, 2002)
FORMATS = "csv,parquet,dwca,geoparquet,geojson,inat-csv,webdataset"
SHARD_SIZE = 4
EXPORTED = (
    "webdataset",
    "observations.parquet",
    "dwca.zip",
    "observations.geoparquet",
    "observations.geojson",
    "inat_export.csv",
)


@pytest.fixture(scope="module")
def world() -> World:
    world = World({2001: 40, 2002: 16}, seed=17, photo_scale=0.01, nonmatching=0.25)
    ids = world.matching_ids({"place_id": "2001,2002"})
    # An observation obscured by its observer (public point randomised), one private (no point).
    world.edit(ids[1], obscured=True, geoprivacy="obscured", public_positional_accuracy=25_000)
    world.edit(ids[2], location=None, geoprivacy="private")
    return world


@pytest.fixture(scope="module")
def harvest(world, tmp_path_factory):
    """A harvest of every observation (private ones too: the geo filter dropped), two sizes of
    each first photo, every format of this module written by --format; before it, its dry run;
    after it, the same command again, and a harvest with --no-taxonomy into another folder."""
    tmp = tmp_path_factory.mktemp("formats")
    out = tmp / "out"
    places = ",".join(map(str, PLACES))
    command = ["--place", places, "--param", "geo=", "--sizes", "square,medium", "--format", FORMATS,
               "--shard-size", str(SHARD_SIZE)]  # fmt: skip
    with SimulatorThread(world) as sim:
        dry = run_cli(tmp, *command, *local(sim, out), "--dry-run", timeout=120)
        assert dry.returncode == 0, dry.stderr
        sim.clear_log()
        result = run_cli(tmp, *command, *local(sim, out), timeout=120)
        assert result.returncode == 0, result.stderr
        first = sim.log
        shards = {p.name: p.stat() for p in (out / "webdataset").glob("shard-*.tar")}
        sim.clear_log()
        added = world.add_observations(2001, 9)  # then an update brings their photos in
        again = run_cli(tmp, *command, *local(sim, out), "--update", timeout=120)
        assert again.returncode == 0, again.stderr
        second = sim.log
        sim.clear_log()
        bare = tmp / "bare"
        plain = run_cli(tmp, *command[:4], "--no-photos", "--no-taxonomy", "--format", "dwca,inat-csv",
                        *local(sim, bare), timeout=120)  # fmt: skip
        assert plain.returncode == 0, plain.stderr
        without = sim.log
        served = list(world.observations(sim.hosts))
    wanted = set(world.matching_ids({"place_id": places, "identified": "true", "rank": "species"}))
    served = sorted((o for o in served if o["id"] in wanted), key=lambda o: o["id"])
    before = [o for o in served if o["id"] not in set(added)]
    return {
        "out": out,
        "tmp": tmp,
        "bare": bare,
        "served": served,
        "served_before": before,
        "dry_run": dry.stdout,
        "shards_before": shards,
        "added": added,
        "logs": {"first": first, "again": second, "no_taxonomy": without},
    }


def _point(obs: dict) -> tuple[float, float] | None:
    """The public point (lng, lat) an observation's location says, None for a private one."""
    if obs.get("geoprivacy") == "private" or not obs.get("location"):
        return None
    lat, lng = (float(v) for v in obs["location"].split(","))
    return lng, lat


# -- GeoParquet and GeoJSON ---------------------------------------------------------------------
def test_geoparquet_reads_in_geopandas_as_wgs84_points(harvest):
    geopandas = pytest.importorskip("geopandas")
    frame = geopandas.read_parquet(harvest["out"] / "observations.geoparquet")
    served = harvest["served"]
    assert frame["id"].tolist() == [o["id"] for o in served]
    # GeoParquet's default CRS: WGS 84, longitude first.
    assert frame.crs.to_authority() == ("OGC", "CRS84") and frame.crs.datum.name.startswith("World Geodetic")
    assert frame.geometry.name == "geometry" and set(frame.geom_type.dropna()) == {"Point"}
    for row, obs in zip(frame.itertuples(), served, strict=True):
        point = _point(obs)
        if point is None:
            assert row.geometry is None or row.geometry.is_empty
        else:
            assert (row.geometry.x, row.geometry.y) == point
        assert row.scientific_name == obs["taxon"]["name"]
        assert row.quality_grade == obs["quality_grade"]
        assert row.obscured == obs["obscured"]
    assert frame["time_observed_at"].dt.tz is not None


def test_geo_files_mark_private_without_a_point_and_obscured_with_the_public_one(harvest):
    geopandas = pytest.importorskip("geopandas")
    frame = geopandas.read_parquet(harvest["out"] / "observations.geoparquet").set_index("id")
    private = [o for o in harvest["served"] if o.get("geoprivacy") == "private"]
    obscured = [o for o in harvest["served"] if o.get("obscured")]
    assert private and obscured
    for obs in private:
        geometry = frame.loc[obs["id"], "geometry"]
        assert geometry is None or geometry.is_empty
    collection = json.loads((harvest["out"] / "observations.geojson").read_text())
    features = {feature["id"]: feature for feature in collection["features"]}
    for obs in obscured:
        point = frame.loc[obs["id"], "geometry"]
        assert frame.loc[obs["id"], "obscured"] and (point.x, point.y) == _point(obs)
        properties = features[obs["id"]]["properties"]
        assert properties["obscured"] is True
        assert properties["public_positional_accuracy"] == obs["public_positional_accuracy"]
    for obs in private:
        assert features[obs["id"]]["geometry"] is None


def test_geojson_is_a_feature_collection_of_points(harvest):
    path = harvest["out"] / "observations.geojson"
    collection = json.loads(path.read_text(encoding="utf-8"))
    assert collection["type"] == "FeatureCollection"
    features = collection["features"]
    assert [f["id"] for f in features] == [o["id"] for o in harvest["served"]]
    for feature, obs in zip(features, harvest["served"], strict=True):
        point = _point(obs)
        assert feature["type"] == "Feature"
        if point is None:
            assert feature["geometry"] is None
        else:
            assert feature["geometry"] == {"type": "Point", "coordinates": list(point)}
        props = feature["properties"]
        assert props["id"] == obs["id"] and props["uuid"] == obs["uuid"]
        assert props["scientific_name"] == obs["taxon"]["name"]
        assert props["observed_on"] == obs["observed_on"]
        assert props["user_login"] == obs["user"]["login"]
        assert props["url"] == obs["uri"]
    geopandas = pytest.importorskip("geopandas")
    frame = geopandas.read_file(path)
    assert len(frame) == len(features) and frame.crs.to_epsg() == 4326


# -- iNaturalist's own export columns ----------------------------------------------------------
# The first columns of iNaturalist's web export (observations/export), in its order.
INAT_EXPORT_COLUMNS = [
    "id", "uuid", "observed_on_string", "observed_on", "time_observed_at", "time_zone", "user_id",
    "user_login", "user_name", "created_at", "updated_at", "quality_grade", "license", "url",
    "image_url", "sound_url", "tag_list", "description", "num_identification_agreements",
    "num_identification_disagreements", "captive_cultivated", "oauth_application_id", "place_guess",
    "latitude", "longitude", "positional_accuracy", "public_positional_accuracy", "geoprivacy",
    "taxon_geoprivacy", "coordinates_obscured", "positioning_method", "positioning_device",
    "species_guess", "scientific_name", "common_name", "iconic_taxon_name", "taxon_id",
]  # fmt: skip


def _utc(value: str | None) -> str:
    """An API time as the web export writes it: 2019-08-14 00:02:39 UTC."""
    if not value:
        return ""
    return datetime.fromisoformat(value).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def test_inat_csv_has_the_web_exports_columns_and_value_formats(harvest):
    frame = pd.read_csv(harvest["out"] / "inat_export.csv", dtype=str, keep_default_na=False)
    assert list(frame.columns)[: len(INAT_EXPORT_COLUMNS)] == INAT_EXPORT_COLUMNS
    assert frame["id"].astype(int).tolist() == [o["id"] for o in harvest["served"]]
    for row, obs in zip(frame.to_dict("records"), harvest["served"], strict=True):
        assert row["uuid"] == obs["uuid"] and row["observed_on"] == (obs["observed_on"] or "")
        assert row["observed_on_string"] == (obs.get("observed_on_string") or "")
        assert row["time_observed_at"] == _utc(obs["time_observed_at"])
        assert row["created_at"] == _utc(obs["created_at"]) and row["updated_at"] == _utc(obs["updated_at"])
        assert row["license"] == (obs["license_code"] or "").upper()  # CC-BY-NC, CC0
        assert row["url"] == obs["uri"] and row["user_login"] == obs["user"]["login"]
        assert row["user_id"] == str(obs["user"]["id"])
        assert row["coordinates_obscured"] == str(obs["obscured"]).lower()
        assert row["captive_cultivated"] == str(obs["captive"]).lower()
        assert row["scientific_name"] == obs["taxon"]["name"] and row["taxon_id"] == str(obs["taxon"]["id"])
        assert row["description"] == (obs.get("description") or "")
        point = _point(obs)
        assert (row["longitude"], row["latitude"]) == (tuple(map(repr, point)) if point else ("", ""))
        if obs["photos"]:
            first = obs["photos"][0]["url"]
            assert row["image_url"] == first.replace("/square.", "/medium.")
    assert set(frame["license"]) <= {"", "CC0", "CC-BY", "CC-BY-NC", "CC-BY-SA", "CC-BY-ND", "CC-BY-NC-SA",
                                     "CC-BY-NC-ND"}  # fmt: skip
    assert all(t.endswith(" UTC") for t in frame["time_observed_at"] if t)


def test_inat_csv_loads_with_pyinaturalist_converts_reader(harvest):
    convert = pytest.importorskip("pyinaturalist_convert")
    read = getattr(convert, "load_csv_exports", None) or convert.read_csv_export
    frame = read(str(harvest["out"] / "inat_export.csv"))
    served = harvest["served"]
    assert frame["id"].tolist() == [o["id"] for o in served]
    assert frame["taxon.id"].tolist() == [o["taxon"]["id"] for o in served]
    assert frame["obscured"].tolist() == [o["obscured"] for o in served]
    assert frame["license_code"].tolist() == [(o["license_code"] or "").upper() for o in served]
    with_photos = [
        (row, obs) for row, obs in zip(frame.to_dict("records"), served, strict=True) if obs["photos"]
    ]
    assert with_photos
    for row, obs in with_photos:
        assert str(row["photo.id"]) == str(obs["photos"][0]["id"])


# -- Darwin Core, validated by others ----------------------------------------------------------
DWC_TEXT_SCHEMA = Path(__file__).parent / "data" / "tdwg_dwc_text.xsd"  # see data/SOURCES.md


def _meta_schema():
    """TDWG's schema of meta.xml, offline: its two unused remote imports are refused."""
    xmlschema = pytest.importorskip("xmlschema")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", xmlschema.XMLSchemaImportWarning)
        return xmlschema.XMLSchema(str(DWC_TEXT_SCHEMA), allow="local")


def _dwcahandler_says_valid(archive: Path) -> bool:
    dwcahandler = pytest.importorskip("dwcahandler")
    keys = {dwcahandler.MetaElementTypes.OCCURRENCE: "occurrenceID"}
    return bool(dwcahandler.DwcaHandler.validate_dwca(str(archive), content_keys=keys))


def _rewritten(archive: Path, target: Path, member: str, change) -> Path:
    """A copy of ``archive`` with ``member``'s text changed by ``change``."""
    with zipfile.ZipFile(archive) as source, zipfile.ZipFile(target, "w") as copy:
        for info in source.infolist():
            data = source.read(info)
            copy.writestr(info.filename, change(data.decode()) if info.filename == member else data)
    return target


def test_dwca_passes_dwcahandler_and_the_tdwg_text_schema(harvest):
    archive = harvest["out"] / "dwca.zip"
    with zipfile.ZipFile(archive) as members:
        meta = members.read("meta.xml").decode()
    _meta_schema().validate(meta)  # raises on any error
    assert _dwcahandler_says_valid(archive)


def test_dwca_checks_fail_on_a_duplicated_occurrence_id_and_a_broken_descriptor(harvest, tmp_path):
    archive = harvest["out"] / "dwca.zip"

    def duplicate_a_row(text: str) -> str:
        lines = text.splitlines(keepends=True)
        return "".join([*lines, lines[1]])  # the first record twice: one occurrenceID twice

    duplicated = _rewritten(archive, tmp_path / "duplicated.zip", "occurrence.txt", duplicate_a_row)
    assert not _dwcahandler_says_valid(duplicated)
    # The schema sees meta.xml only (never the data rows): a descriptor whose core has lost
    # its files element is refused by it.
    with zipfile.ZipFile(archive) as members:
        meta = members.read("meta.xml").decode()
    broken = re.sub(r"<files>.*?</files>", "", meta, count=1, flags=re.S)
    assert not _meta_schema().is_valid(broken)


# -- Taxonomy ------------------------------------------------------------------------------------
RANKS = ("kingdom", "phylum", "class", "order", "family", "genus")


def _classification(obs: dict) -> dict[str, tuple[int, str]]:
    """(id, name) at each rank of an observation's taxon, from the simulator's /v1/taxa data."""
    known = taxa_by_id()
    found = {}
    for ancestor in obs["taxon"]["ancestor_ids"]:
        taxon = known.get(ancestor)
        if taxon and taxon["rank"] in RANKS:
            found[taxon["rank"]] = (ancestor, taxon["name"])
    return found


def test_taxonomy_is_asked_in_batches_counted_by_the_dry_run_and_cached(harvest):
    taxa = [r for r in harvest["logs"]["first"] if r.path.startswith("/v1/taxa/")]
    first = harvest["served_before"]
    leaves = {o["taxon"]["id"] for o in first}
    higher = {a for o in first for a in o["taxon"]["ancestor_ids"]} - leaves
    asked = [int(i) for r in taxa for i in r.path.rsplit("/", 1)[1].split(",")]
    assert sorted(asked) == sorted(higher) and all(len(r.path.split(",")) <= 30 for r in taxa)
    assert len(taxa) == math.ceil(len(higher) / 30) >= 2
    said = re.search(r"of which (\d+) name the observations' higher taxa", harvest["dry_run"])
    assert said and int(said.group(1)) == len(taxa), harvest["dry_run"]
    # The update's new observations: only taxa never named before are asked (the table is kept).
    api = [r for r in harvest["logs"]["again"] if r.host == "api"]
    later = [
        int(i) for r in api if r.path.startswith("/v1/taxa/") for i in r.path.rsplit("/", 1)[1].split(",")
    ]
    assert not set(later) & set(asked)
    summary = json.loads((harvest["out"] / "summary.json").read_text())
    assert summary["api_requests"] == len(api)  # the taxonomy's requests are the harvest's
    assert not [r for r in harvest["logs"]["no_taxonomy"] if r.path.startswith("/v1/taxa/")]


def test_darwin_core_names_kingdom_to_genus_and_the_higher_classification(harvest):
    from dwca.read import DwCAReader

    with DwCAReader(str(harvest["out"] / "dwca.zip")) as reader:
        rows = {int(row.id): row.data for row in reader}
    assert sorted(rows) == [o["id"] for o in harvest["served"]]
    for obs in harvest["served"]:
        row, expected = rows[obs["id"]], _classification(obs)
        assert set(expected) == set(RANKS)
        for rank in RANKS:
            assert row[DWC + rank] == expected[rank][1]
        higher = row[DWC + "higherClassification"].split(" | ")
        assert higher[0] == expected["kingdom"][1] and expected["genus"][1] in higher
        assert obs["taxon"]["name"] not in higher  # it ends above the taxon itself
        assert row[DWC + "vernacularName"] == (obs["taxon"].get("preferred_common_name") or "")
    with DwCAReader(str(harvest["bare"] / "dwca.zip")) as reader:  # --no-taxonomy
        assert {row.data[DWC + "kingdom"] for row in reader} == {""}


def test_observations_csv_and_parquet_name_each_rank_and_its_id(harvest):
    csv = pd.read_csv(harvest["out"] / "observations.csv")
    parquet = pd.read_parquet(harvest["out"] / "observations.parquet")
    for frame in (csv, parquet):
        assert frame["id"].tolist() == [o["id"] for o in harvest["served"]]
        for row, obs in zip(frame.to_dict("records"), harvest["served"], strict=True):
            expected = _classification(obs)
            assert [row[f"taxon.{rank}"] for rank in RANKS] == [expected[rank][1] for rank in RANKS]
            assert [row[f"taxon.{rank}_id"] for rank in RANKS] == [expected[rank][0] for rank in RANKS]
    assert str(parquet["taxon.genus_id"].dtype) == "int64"


def test_inat_csv_names_the_taxa_as_the_web_export_does(harvest):
    frame = pd.read_csv(harvest["out"] / "inat_export.csv", dtype=str, keep_default_na=False)
    for row, obs in zip(frame.to_dict("records"), harvest["served"], strict=True):
        expected = _classification(obs)
        assert [row[f"taxon_{rank}_name"] for rank in RANKS] == [expected[rank][1] for rank in RANKS]
        assert row["taxon_species_name"] == obs["taxon"]["name"]
    convert = pytest.importorskip("pyinaturalist_convert")
    read = getattr(convert, "load_csv_exports", None) or convert.read_csv_export
    loaded = read(str(harvest["out"] / "inat_export.csv"))
    assert loaded["taxon.rank"].tolist() == ["species"] * len(harvest["served"])
    assert loaded["taxon.name"].tolist() == [o["taxon"]["name"] for o in harvest["served"]]
    assert loaded["taxon.kingdom"].tolist() == [_classification(o)["kingdom"][1] for o in harvest["served"]]


# -- WebDataset ----------------------------------------------------------------------------------
def _medium_files(harvest) -> list[tuple[int, int]]:
    """(observation id, photo id) of each medium file on disk, in photos.csv's order."""
    photos = pd.read_csv(harvest["out"] / "photos.csv")
    done = photos[(photos["status"] == "done") & (photos["size"] == "medium")]
    return list(zip(done["observation_id"], done["photo_id"], strict=True))


def test_webdataset_shards_read_with_the_webdataset_library(harvest):
    webdataset = pytest.importorskip("webdataset")
    folder = harvest["out"] / "webdataset"
    shards = sorted(str(p) for p in folder.glob("shard-*.tar"))
    samples = list(webdataset.WebDataset(shards, shardshuffle=False).decode("pil"))
    files = _medium_files(harvest)
    assert [s["__key__"] for s in samples] == [f"{o}_{p}" for o, p in files]
    by_id = {o["id"]: o for o in harvest["served"]}
    for sample in samples:
        meta, obs = sample["json"], by_id[sample["json"]["observation_id"]]
        image = next(sample[k] for k in ("jpg", "jpeg", "png", "gif") if k in sample)
        assert getattr(image, "size", None) or len(image) > 0
        assert meta["taxon_id"] == obs["taxon"]["id"] and meta["scientific_name"] == obs["taxon"]["name"]
        assert meta["ranks"] == {rank: name for rank, (_, name) in _classification(obs).items()}
        photo = next(p for p in obs["photos"] if p["id"] == meta["photo_id"])
        assert meta["license_code"] == photo["license_code"] and meta["attribution"] == photo["attribution"]
        point = _point(obs)
        assert (meta["longitude"], meta["latitude"]) == (point if point else (None, None))
    index = pd.read_parquet(folder / "index.parquet")
    assert index["key"].tolist() == [s["__key__"] for s in samples]
    assert index["label"].tolist() == [s["json"]["taxon_id"] for s in samples]
    assert index.groupby("shard").size().tolist()[:-1] == [SHARD_SIZE] * (len(shards) - 1)


def test_webdataset_a_later_run_writes_only_the_shards_not_complete(harvest):
    before = harvest["shards_before"]
    folder = harvest["out"] / "webdataset"
    after = {p.name: p.stat() for p in folder.glob("shard-*.tar")}
    index = pd.read_parquet(folder / "index.parquet")
    counts = index.groupby("shard").size()
    complete_before = sorted(before)[: len(before) - 1]  # the last one was not full
    assert len(after) > len(before) and complete_before
    for name in complete_before:  # untouched: the same file, never rewritten
        assert (after[name].st_ino, after[name].st_mtime_ns) == (
            before[name].st_ino,
            before[name].st_mtime_ns,
        )
    last = sorted(before)[-1]
    assert after[last].st_ino != before[last].st_ino  # the incomplete one was written again, fuller
    assert counts.iloc[len(before) - 1] == SHARD_SIZE
    added = {f"{o}_{p}" for o, p in _medium_files(harvest) if o in set(harvest["added"])}
    assert added and added <= set(index["key"])


def test_webdataset_size_must_be_one_harvested():
    from inat_async import SettingError, make_settings

    with pytest.raises(SettingError, match="webdataset_size"):
        make_settings([1], formats="webdataset", sizes="square", webdataset_size="medium")
    assert make_settings([1], formats="webdataset", sizes="medium").webdataset_size == "medium"


def test_export_of_another_webdataset_size_rebuilds_it_and_refuses_what_it_cannot_build(harvest):
    """Another harvested size: shards of that size only, none of the earlier size left on
    disk unlisted; a size never harvested, or files kept outside the folder (a --store), are
    refused in one line rather than written as an empty or mixed dataset."""
    copy = harvest["tmp"] / "sizes"
    shutil.copytree(harvest["out"], copy)
    export = ("export", str(copy), "--format", "webdataset", "--shard-size", str(SHARD_SIZE))
    square = run_cli(harvest["tmp"], *export, "--webdataset-size", "square", timeout=60)
    assert square.returncode == 0, square.stderr
    index = pd.read_parquet(copy / "webdataset" / "index.parquet")
    photos = pd.read_csv(copy / "photos.csv")
    done = photos[(photos["status"] == "done") & (photos["size"] == "square")]
    keys = zip(done["observation_id"], done["photo_id"], strict=True)
    assert list(index["key"]) == [f"{o}_{p}" for o, p in keys]
    on_disk = {p.name for p in (copy / "webdataset").glob("shard-*.tar")}
    assert on_disk == {f"shard-{n:06d}.tar" for n in set(index["shard"])}
    thumb = run_cli(harvest["tmp"], *export, "--webdataset-size", "thumb", timeout=60)
    assert thumb.returncode == 2 and "--webdataset-size: this harvest has no thumb files" in thumb.stderr
    shutil.rmtree(copy / "photos")  # as when the photos went to a --store
    away = run_cli(harvest["tmp"], *export, "--webdataset-size", "square", timeout=60)
    assert away.returncode == 2 and "are not in it" in away.stderr
    assert pd.read_parquet(copy / "webdataset" / "index.parquet").equals(index)  # left as it was


# -- The report page ---------------------------------------------------------------------------
class _Page(HTMLParser):
    """What a person sees of a page: each element's text by id, and every URL it refers to."""

    def __init__(self) -> None:
        super().__init__()
        self.text: dict[str, str] = {}
        self.urls: list[str] = []
        self.images = 0
        self._open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.urls += [v or "" for k, v in attrs if k in ("src", "href", "xlink:href", "srcset", "data")]
        self.images += tag == "img"
        if "id" in found and tag not in ("img", "br"):
            self._open.append(found["id"] or "")
            self.text[found["id"] or ""] = ""
        elif tag not in ("img", "br", "meta", "circle", "line", "rect"):
            self._open.append("")

    def handle_endtag(self, tag: str) -> None:
        if self._open and tag not in ("img", "br", "meta", "circle", "line", "rect"):
            self._open.pop()

    def handle_data(self, data: str) -> None:
        for key in self._open:
            if key:
                self.text[key] += data


def test_report_page_renders_in_headless_chromium_with_the_summary_counts(harvest, tmp_path):
    page = harvest["out"] / "report.html"
    rendered = rendered_dom(page, tmp_path)  # not one console message
    if rendered is None:
        pytest.skip("no Chromium here (.ci/run installs Debian's chromium)")
    dom = _Page()
    dom.feed(rendered)
    summary = json.loads((harvest["out"] / "summary.json").read_text())
    assert dom.text["observations"] == f"{summary['observations']:,}"
    for place, count in summary["per_place"].items():
        assert dom.text[f"place-{place}"] == f"{count:,}"
    for status, count in summary["photos"].items():
        assert dom.text[f"photos-{status}"] == f"{count:,}"
    # Self-contained: every image is in the page, and nothing refers to anything outside it.
    photos = pd.read_csv(harvest["out"] / "photos.csv")
    squares = photos[(photos["status"] == "done") & (photos["size"] == "square")]
    assert dom.images == min(48, len(squares)) > 0
    assert dom.urls and all(url.startswith("data:image/") for url in dom.urls)
    assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", page.read_text())
    assert (harvest["bare"] / "report.html").is_file()  # every harvest writes one


# -- The extras' one-line errors ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "extra"), [("geoparquet", "geo"), ("webdataset", "webdataset"), ("parquet", "parquet")]
)
def test_a_format_whose_extra_is_missing_says_how_to_install_it(harvest, kind, extra, monkeypatch):
    from inat_async import UsageError, export

    copy = harvest["tmp"] / f"without-{kind}"
    shutil.copytree(harvest["out"], copy, ignore=shutil.ignore_patterns("photos", *EXPORTED))
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow now raises ImportError
    with pytest.raises(UsageError, match=rf"pip install 'inat_async\[{extra}\]'$"):
        export(copy, kind)


# -- inat-async export writes each format again, from the state alone --------------------------
def test_export_command_writes_each_format_again(harvest):
    out = harvest["out"]
    copy = harvest["tmp"] / "copy"
    shutil.copytree(out, copy, ignore=shutil.ignore_patterns(*EXPORTED))
    args = ("export", str(copy), "--format", FORMATS, "--shard-size", str(SHARD_SIZE))
    result = run_cli(harvest["tmp"], *args, timeout=60)
    assert result.returncode == 0, result.stderr
    for name in EXPORTED:
        assert (copy / name).exists(), name
    assert (copy / "observations.geojson").read_bytes() == (out / "observations.geojson").read_bytes()
    index = pd.read_parquet(copy / "webdataset" / "index.parquet")
    assert len(index) == len(pd.read_parquet(out / "webdataset" / "index.parquet"))
