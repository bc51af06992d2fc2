"""`inat-async opendata`: a harvest selected from the open-data dumps (issue 16).

The simulator writes its world as a dump in the real layout (gzip, tab-separated, no
quoting, quotes in names, observations without photos, photos listed twice), serves the
dump's photos on its open-data host and /v1/places/{id} with a boundary. Each selection is
checked against one made here independently: the tables read with gzip and str.split, the
points tested with shapely one by one.
"""

from __future__ import annotations

import gzip
import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import zipfile
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from helpers import cli_env, start_cli
from shapely.geometry import Point, shape

from inat_async.cli import main
from inat_async.simulator import SimulatorThread, World
from inat_async.simulator.dump import TABLES, place_boundary, write_dump

PLACE = 128892
FUNGI = 47170  # a kingdom: its species and genera are selected through their ancestry
ANIMALS = 1


@pytest.fixture(scope="module")
def world() -> World:
    return World({PLACE: 400, 1001: 150}, seed=5, photo_scale=0.02)


@pytest.fixture(scope="module")
def dump(world: World, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("dump")
    write_dump(world, folder)
    return folder


@pytest.fixture(scope="module")
def sim(world: World):
    with SimulatorThread(world) as sim:
        yield sim


def read_table(dump: Path, name: str) -> list[dict[str, str]]:
    """A dump table as a reader with no CSV library reads it: lines split at tabs."""
    with gzip.open(dump / f"{name}.csv.gz", "rt", encoding="utf-8", newline="\n") as file:
        header, *rows = (line.rstrip("\n").split("\t") for line in file)
    return [dict(zip(header, row, strict=True)) for row in rows]


def expected(
    dump: Path,
    *,
    boundary: Any = None,
    taxon: int | None = None,
    licences: set[str] | None = None,
    grades: set[str] | None = None,
    dates: tuple[str, str] | None = None,
    bbox: tuple[float, float, float, float] | None = None,
) -> tuple[set[str], dict[str, list[dict[str, str]]]]:
    """(uuids selected, their matching photos in order, once each), chosen here row by row."""
    taxa = read_table(dump, "taxa")
    wanted = None
    if taxon is not None:
        wanted = {
            t["taxon_id"]
            for t in taxa
            if t["taxon_id"] == str(taxon) or str(taxon) in t["ancestry"].split("/")
        }
    chosen = set()
    for row in read_table(dump, "observations"):
        if wanted is not None and row["taxon_id"] not in wanted:
            continue
        if grades is not None and row["quality_grade"] not in grades:
            continue
        if dates is not None and not dates[0] <= row["observed_on"] <= dates[1]:
            continue
        if boundary is not None or bbox is not None:
            if not row["latitude"]:
                continue
            lng, lat = float(row["longitude"]), float(row["latitude"])
            if boundary is not None and not boundary.intersects(Point(lng, lat)):
                continue
            if bbox is not None and not (bbox[0] <= lng <= bbox[2] and bbox[1] <= lat <= bbox[3]):
                continue
        chosen.add(row["observation_uuid"])
    photos: dict[str, list[dict[str, str]]] = defaultdict(list)
    seen = set()
    for row in read_table(dump, "photos"):
        fits = licences is None or row["license"].lower() in licences
        if fits and row["observation_uuid"] in chosen and row["photo_id"] not in seen:
            seen.add(row["photo_id"])
            photos[row["observation_uuid"]].append(row)
    for rows in photos.values():
        rows.sort(key=lambda p: (int(p["position"]), int(p["photo_id"])))
    return set(photos), dict(photos)


def uuids_of(out: Path) -> set[str]:
    return {uri.rsplit("/", 1)[1] for uri in pd.read_csv(out / "observations.csv")["uri"]}


def opendata_args(sim, dump: str, out: Path, *extra: str) -> list[str]:
    return [
        "opendata",
        "--dump",
        dump,
        "--out",
        str(out),
        "--api-url",
        sim.api_url,
        "--photo-base",
        sim.hosts["open"],
        "--no-limits",
        *extra,
    ]


def in_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    """The command as `inat-async ARGS` runs it, in this process (no interpreter to start)."""
    monkeypatch.setenv("INAT_ASYNC_BUDGET_FILE", str(tmp_path / "budget.sqlite"))
    return main(list(args))


PLACE_QUERY = ("--place", str(PLACE), "--taxon", str(FUNGI), "--photo-license", "cc0,cc-by")


def check_place_harvest(
    world: World,
    dump: Path,
    out: Path,
    stored: Callable[[str], bytes] | None = None,
    sizes: set[str] = {"square", "medium", "original"},  # noqa: B006  # read only
) -> None:
    """The place/taxon/licence selection, its first photos byte-exact (``stored``: a file's
    bytes by its path in photos.csv; default: in OUT), and the exports."""
    stored = stored or (lambda path: (out / path).read_bytes())
    boundary = shape(place_boundary(world, PLACE))
    uuids, photos = expected(dump, boundary=boundary, taxon=FUNGI, licences={"cc0", "cc-by"})
    assert len(uuids) >= 5
    assert uuids_of(out) == uuids
    observers = {row["observer_id"]: row for row in read_table(dump, "observers")}
    owner = {row["observation_uuid"]: row["observer_id"] for row in read_table(dump, "observations")}
    table = pd.read_csv(out / "photos.csv", dtype={"reason": str, "path": str})
    firsts = {int(rows[0]["photo_id"]): uuid for uuid, rows in photos.items()}
    assert set(table["photo_id"]) == set(firsts)
    assert set(table["size"]) == sizes
    assert set(table["status"]) <= {"done", "missing"}
    for row in table.itertuples():
        observer = observers[owner[firsts[row.photo_id]]]
        assert (
            observer["name"] in row.attribution if observer["name"] else observer["login"] in row.attribution
        )
        assert row.license_code in ("cc0", "cc-by")
        served = world.photo_bytes(row.photo_id, row.size)
        if row.status == "done":
            assert stored(row.path) == served
        else:
            assert served is None
    assert table["attribution"].str.contains('"').any()  # an observer's name with a quote, read whole
    # Each observation's classification, from the dump's taxa (names with quotes included).
    taxa = {row["taxon_id"]: row for row in read_table(dump, "taxa")}
    observations = pd.read_csv(out / "observations.csv")
    for record in observations.to_dict("records"):
        ancestry = taxa[str(record["taxon.id"])]["ancestry"].split("/")
        above = {taxa[a]["rank"]: taxa[a] for a in ancestry if a in taxa}  # Life is not listed
        assert (record["taxon.kingdom"], record["taxon.kingdom_id"]) == (above["kingdom"]["name"], FUNGI)
        assert record["taxon.genus"] == above["genus"]["name"]
    check_columns(observations)
    parquet = pd.read_parquet(out / "observations.parquet")
    assert len(parquet) == len(uuids)
    with zipfile.ZipFile(out / "dwca.zip") as archive:
        occurrences = archive.read("occurrence.txt").decode().splitlines()
    assert len(occurrences) == len(uuids) + 1


#: observations.csv's columns an open-data harvest leaves empty, and those it always fills
#: (as the README lists them; the coordinates and accuracy only where the dump has them).
EMPTY = ["time_observed_at", "species_guess", "license_code", "community_taxon_id", "obscured",
         "geoprivacy", "created_at", "updated_at"]  # fmt: skip
FILLED = ["id", "uri", "taxon.name", "taxon.id", "taxon.rank", "quality_grade", "observed_on", "user.login",
          "photo_count", "place_ids", "taxon.kingdom", "taxon.kingdom_id", "taxon.genus",
          "taxon.genus_id"]  # fmt: skip


def check_columns(observations: pd.DataFrame) -> None:
    """The README's account of observations.csv, and the id: the uuid's first 16 hex digits
    with the top two bits cleared."""
    assert observations[EMPTY].isna().all().all()
    assert observations[FILLED].notna().all().all()
    assert observations[["Latitude", "Longitude", "positional_accuracy"]].notna().any().all()
    assert observations["positional_accuracy"].equals(observations["public_positional_accuracy"])
    uuids = observations["uri"].str.rsplit("/", n=1).str[1]
    assert list(observations["id"]) == [int(u.replace("-", "")[:16], 16) % 2**62 for u in uuids]


def test_place_taxon_licence_selects_exactly_and_a_killed_run_continues(
    sim, world: World, dump: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The issue's example: the selection committed before the photos start; killed during
    the photos, the same command finishes them without fetching a file twice or asking the
    place's boundary again; then exactly the observations inside the place's polygon, of the
    taxon or a descendant, with a cc0 or cc-by photo, their first photos byte-exact, and the
    exports."""
    out = tmp_path / "out"
    sim.clear_log()
    args = opendata_args(sim, str(dump), out, *PLACE_QUERY, "--format", "csv,parquet,dwca", "--workers", "1")
    sim.photo_latency = 0.05
    try:
        child = start_cli(tmp_path, *args)
        deadline = time.monotonic() + 60
        while (
            len(list(out.glob("photos/*/*/*"))) < 4 and child.poll() is None and time.monotonic() < deadline
        ):
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        sim.photo_latency = 0.0
    assert len([r for r in sim.log if r.path == f"/v1/places/{PLACE}"]) == 1
    on_disk = {p.name for p in out.glob("photos/*/*/*")}
    assert on_disk, "killed before any photo"
    with sqlite3.connect(out / "harvest.sqlite") as db:  # the selection was committed whole
        stored = db.execute("SELECT COUNT(*) FROM observations").fetchone()[0]
    uuids, _ = expected(
        dump, boundary=shape(place_boundary(world, PLACE)), taxon=FUNGI, licences={"cc0", "cc-by"}
    )
    assert stored == len(uuids)
    sim.clear_log()
    assert in_process(tmp_path, monkeypatch, *args, "-q") == 0
    asked = {r.path.split("/")[2] + "_" + r.path.split("/")[3] for r in sim.log if r.host == "open"}
    assert not asked & on_disk
    assert not [r for r in sim.log if r.host == "api"]  # the boundary was kept in the state
    check_place_harvest(world, dump, out)


def test_polygon_box_grade_and_dates_select_exactly(
    sim, world: World, dump: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Another instance: a MultiPolygon file over both places, a box cutting it, research
    grade, a date range, every licence, metadata only."""
    lat, lng, radius = world.place_area(PLACE)
    lat2, lng2, radius2 = world.place_area(1001)
    triangle = [[lng - radius, lat - radius], [lng + radius, lat - radius], [lng, lat + radius]]
    other = [
        [lng2 - radius2, lat2 - radius2],
        [lng2 + radius2, lat2 - radius2],
        [lng2 + radius2, lat2 + radius2],
    ]
    multi = {"type": "MultiPolygon", "coordinates": [[[*triangle, triangle[0]]], [[*other, other[0]]]]}
    polygon = tmp_path / "area.geojson"
    polygon.write_text(json.dumps({"type": "Feature", "properties": {}, "geometry": multi}))
    box = (min(lng, lng2) - 1, min(lat, lat2) - 1, max(lng, lng2) + 1, lat + radius / 2)
    out = tmp_path / "out"
    extra = ("--polygon", str(polygon), "--bbox=" + ",".join(map(str, box)), "--quality-grade", "research",
             "--observed-from", "2016-06-01", "--observed-to", "2024-06-30", "--no-photos")  # fmt: skip
    assert in_process(tmp_path, monkeypatch, *opendata_args(sim, str(dump), out, *extra, "-q")) == 0
    uuids, _ = expected(
        dump, boundary=shape(multi), grades={"research"}, dates=("2016-06-01", "2024-06-30"), bbox=box
    )
    assert len(uuids) >= 20
    assert uuids_of(out) == uuids
    assert pd.read_csv(out / "observations.csv")["quality_grade"].eq("research").all()


def test_bad_input_is_one_line(sim, dump: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    (tmp_path / "not.geojson").write_text('{"type": "Point", "coordinates": [0, 0]}')
    cases = {
        ("--polygon", str(tmp_path / "not.geojson")): "--polygon: must be a GeoJSON Polygon or MultiPolygon",
        ("--bbox", "0,5,1,1"): "--bbox: needs",  # SOUTH above NORTH
        ("--quality-grade", "best"): "--quality-grade: choose from research, needs_id, casual",
        ("--observed-from", "2020-13-01"): "--observed-from: '2020-13-01' is not a date",
        ("--observed-from", "2024-01-01", "--observed-to", "2020-01-01"): (
            "--observed-to: 2020-01-01 is before --observed-from 2024-01-01: nothing can match"
        ),
        ("--observed-from", "2024-06-02", "--observed-to", "2024-06-01"): "is before --observed-from",
        # a box across the antimeridian: what to do instead is said
        ("--bbox", "170,-50,-170,-30"): (
            "--bbox: crosses the antimeridian (WEST 170 > EAST -170): select its two halves in two runs "
            "into two folders (170,-50,180,-30 and -180,-50,-170,-30), or give --polygon a GeoJSON "
            "MultiPolygon of the two boxes"
        ),
    }
    cases[("--bbox=0,0,1,1", "--dump", str(tmp_path / "nowhere"))] = "has no readable observations.csv.gz"
    # --storage-option once named the dump's options: alone, it is said which is which
    cases[("--storage-option", "endpoint_url=http://127.0.0.1:9")] = (
        "--storage-option: sets an option of the photo --store, and none is given; "
        "an option of the dump's file system is --dump-storage-option"
    )
    cases[("--store", "s3://b", "--dump-storage-option", "novalue")] = (
        "--dump-storage-option: 'novalue' is not KEY=VALUE"
    )
    other = tmp_path / "other-layout"  # a header quoted: its columns are not the dump's
    shutil.copytree(dump, other)
    with (
        gzip.open(dump / "observations.csv.gz", "rt") as src,
        gzip.open(other / "observations.csv.gz", "wt") as dst,
    ):
        header = src.readline().rstrip("\n").split("\t")
        dst.write("\t".join(f'"{name}"' for name in header) + "\n" + src.read())
    cases[("--bbox=0,0,1,1", "--dump", str(other))] = "observations.csv.gz of the dump at"
    for extra, message in cases.items():
        status = main(opendata_args(sim, str(dump), tmp_path / "out", *extra))
        lines = capsys.readouterr().err.strip().splitlines()
        assert status == 2
        assert lines[-1].startswith("inat-async: error: ") and message in lines[-1], lines
    assert not (tmp_path / "out").exists()  # nothing left by a refused run


# -- the same from a local S3 server (moto), read anonymously as the real bucket is -------------
@pytest.fixture(scope="module")
def bucket(dump: Path, s3) -> str:
    """The dump in a public bucket of moto's S3 server; the server's address."""
    pytest.importorskip("s3fs")
    s3.create_bucket(Bucket="open-data", ACL="public-read")
    for table in dump.glob("*.csv.gz"):
        s3.upload_file(str(table), "open-data", f"dumps/{table.name}", ExtraArgs={"ACL": "public-read"})
    return str(s3.endpoint)


def objects_in(s3, bucket: str, prefix: str) -> dict[str, bytes]:
    """Every object under the prefix, by its key below it."""
    listing = s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return {
        o["Key"][len(prefix) :]: s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listing
    }


def test_the_same_from_a_local_s3_server_with_the_photos_into_another_bucket(
    sim, world: World, dump: Path, bucket: str, s3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The issue's example with the dump read anonymously from one bucket of a local S3
    server (--dump-storage-option), and the photos written to another (--store, with the
    store's --storage-option and keys), byte-exact, nothing in OUT; then `photos OUT` takes
    the open-data folder (no API query in it, its photos on the dump's own host) and stores
    another size only."""
    s3.create_bucket(Bucket="photos")
    out = tmp_path / "out"
    store = ("--store", "s3://photos/fungi", "--storage-option", f"endpoint_url={bucket}",
             "--storage-option", "key=testing", "--storage-option", "secret=testing")  # fmt: skip
    args = opendata_args(sim, "s3://open-data/dumps", out, *PLACE_QUERY, "--format", "csv,parquet,dwca",
                         "--dump-storage-option", f"endpoint_url={bucket}", *store)  # fmt: skip
    for sizes, command in (({"square"}, args), ({"square", "medium"}, ("photos", str(out), *store))):
        sim.clear_log()
        assert in_process(tmp_path, monkeypatch, *command, "--sizes", ",".join(sorted(sizes)), "-q") == 0
        objects = objects_in(s3, "photos", "fungi/")
        check_place_harvest(world, dump, out, objects.__getitem__, sizes=sizes)
        done = pd.read_csv(out / "photos.csv").query("status == 'done'")
        assert sorted(objects) == sorted(done["path"]) and len(objects) >= 5 * len(sizes)
    fetched = [r.path for r in sim.log if r.host == "open"]
    assert fetched and all(path.split("/")[3].startswith("medium.") for path in fetched), fetched
    assert not (out / "photos").exists()
    assert '"store": "s3://photos/fungi"' in (out / "summary.json").read_text()


def test_the_photos_command_stopped_by_a_block_says_so_in_one_line(
    sim, dump: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    """A stop met inside the photo stage (the IP-block page) ends `photos OUT` with its own
    exit status and line, as it ends a harvest (it was an exception group's traceback)."""
    out = tmp_path / "out"
    selected = opendata_args(sim, str(dump), out, *PLACE_QUERY, "--no-photos", "-q")
    assert in_process(tmp_path, monkeypatch, *selected) == 0
    capsys.readouterr()
    sim.blocked = True
    try:
        status = in_process(tmp_path, monkeypatch, "photos", str(out), "--no-limits", "-q")
    finally:
        sim.blocked = False
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 4, err
    assert len(err) == 1 and err[0].startswith("inat-async: error: ") and "blocked" in err[0]


@pytest.mark.slow  # a LocalCluster of two processes starts and stops: about 10 s
def test_photos_fetched_on_a_dask_cluster(
    sim, world: World, dump: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """`opendata --scheduler local:2`: the photos fetched by two Dask worker processes."""
    pytest.importorskip("distributed", reason="the dask extra is not installed")
    out = tmp_path / "out"
    args = opendata_args(sim, str(dump), out, *PLACE_QUERY, "--format", "csv,parquet,dwca", "-q")
    assert in_process(tmp_path, monkeypatch, *args, "--scheduler", "local:2", "--shard-files", "16") == 0
    check_place_harvest(world, dump, out)


def test_hydrate_gives_every_api_column_in_requests_of_200_and_a_dry_run_counts_them(
    sim,
    world: World,
    dump: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
):
    uuids, photos = expected(
        dump, boundary=shape(place_boundary(world, PLACE)), taxon=FUNGI, licences={"cc0", "cc-by"}
    )
    assert any(len(rows) > 1 for rows in photos.values())  # --all-photos asks more than the first
    ids = {obs["uuid"]: obs["id"] for obs in world.observations()}
    out = tmp_path / "out"
    args = opendata_args(sim, str(dump), out, *PLACE_QUERY, "--hydrate", "--no-photos", "-q")
    assert in_process(tmp_path, monkeypatch, *args, "--dry-run") == 0
    said = capsys.readouterr().out
    assert f"{len(uuids)} observations selected" in said
    assert "--hydrate: 1 API request (200 observations each)" in said  # one request, said so
    assert not out.exists()  # a dry run writes nothing
    every = opendata_args(
        sim, str(dump), out, *PLACE_QUERY, "--all-photos", "--sizes", "square", "-q", "--dry-run"
    )
    assert in_process(tmp_path, monkeypatch, *every) == 0
    assert f"{sum(map(len, photos.values()))} photo files to fetch" in capsys.readouterr().out
    sim.clear_log()
    assert in_process(tmp_path, monkeypatch, *args) == 0
    table = pd.read_csv(out / "observations.csv")
    assert set(table["id"]) == {ids[uuid] for uuid in uuids}  # the API's ids, not made-up ones
    assert table["created_at"].notna().all() and table["user.login"].notna().all()
    asked = [r for r in sim.log if r.path == "/v1/observations"]
    assert len(asked) == 1 and set(asked[0].query["uuid"].split(",")) == uuids


def write_tables(folder: Path, tables: dict[str, list[str]]) -> Path:
    folder.mkdir()
    for name, lines in tables.items():
        with gzip.open(folder / f"{name}.csv.gz", "wt", encoding="utf-8", newline="\n") as file:
            file.write("\n".join(lines) + "\n")
    return folder


def test_damaged_rows_are_skipped_or_emptied_never_trusted(tmp_path: Path):
    """A row with too few or too many fields is skipped; a value that is not what its column
    holds (a latitude of 95 or '1.2.3', a uuid of another form, a photo id of text) is empty
    and the row falls out of a filter needing it; quotes and backslashes are text."""
    good, other, bad = (
        "0a1b2c3d-0000-4000-8000-00000000000a",
        "0a1b2c3d-0000-4000-8000-00000000000b",
        "not-a-uuid",
    )
    obs = "\t".join(
        ("observation_uuid", "observer_id", "latitude", "longitude", "positional_accuracy", "taxon_id",
         "quality_grade", "observed_on")
    )  # fmt: skip
    dump = write_tables(
        tmp_path / "dump",
        {
            "observations": [
                obs,
                f"{good}\t7\t1.5\t2.5\t10\t3\tresearch\t2020-01-02",
                f"{other}\t8\t95\t2.5\t\t3\tresearch\t2020-01-02",  # latitude out of range
                f"{bad}\t7\t1.5\t2.5\t10\t3\tresearch\t2020-01-02",
                f"{good}\t7\t1.5",  # too few fields
                f"{other}\t8\t1.2.3\t2.5\t\t3\tresearch\t2020-01-02\textra",  # too many
            ],
            "photos": [
                "photo_uuid\tphoto_id\tobservation_uuid\tobserver_id\textension\tlicense\twidth\theight\tposition",
                f"p1\t11\t{good}\t7\tjpg\tCC0\t100\t80\t0",
                f"p2\televen\t{good}\t7\tjpg\tCC0\t100\t80\t1",
                f"p3\t12\t{good}\t7\texe\tCC0\t100\t80\t2",
                f"p4\t13\t{other}\t8\tjpg\tCC-BY\t100\t80\t0",
            ],
            "taxa": [
                "taxon_id\tancestry\trank_level\trank\tname\tactive",
                "3\t1/2\t10\tspecies\tX \"y' z\\\ttrue",
            ],
            "observers": ["observer_id\tlogin\tname", '7\tann\tAnn "Quote', "8\tbob\t"],
        },
    )
    from inat_async.sources import opendata as source

    selection = source.select(source.open_dump(str(dump)), source.DumpQuery(bbox=(0.0, 0.0, 5.0, 5.0)))
    assert [row["observation_uuid"] for row in selection.observations] == [good]
    assert [p["photo_id"] for p in selection.photos[good]] == [11]  # text id and .exe dropped
    (observation,) = source.api_observations(selection)
    assert observation["taxon"]["name"] == "X \"y' z\\"
    assert observation["photos"][0]["attribution"] == '(c) Ann "Quote, no rights reserved (CC0)'


def test_the_simulator_command_writes_a_dump_and_says_how_to_harvest_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    folder = tmp_path / "dump"
    server = subprocess.Popen(
        [sys.executable, "-m", "inat_async.simulator", "--observations", "120", "--places", "128892",
         "--api-latency", "0", "--photo-latency", "0", "--dump", str(folder)],
        stdout=subprocess.PIPE, text=True, env=cli_env(tmp_path),
    )  # fmt: skip
    try:
        assert server.stdout is not None
        line = ""
        while "open-data dump in" not in line:
            line = server.stdout.readline()
            assert line, "the simulator ended without saying where its dump is"
        command = line.split("try: python -m inat_async ", 1)[1].split()
        command[command.index("--out") + 1] = str(tmp_path / "demo")
        assert in_process(tmp_path, monkeypatch, *command, "-q", "--no-photos") == 0
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=15)
    assert sorted(p.name for p in folder.iterdir()) == [f"{t}.csv.gz" for t in sorted(TABLES)]
    assert len(pd.read_csv(tmp_path / "demo" / "observations.csv")) > 0
