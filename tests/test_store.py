"""Photo files in a store of the user's choosing (issue 15): another folder or an object store
(S3 through fsspec, against moto's server on 127.0.0.1), and `inat-async photos OUT`, the
photo stage alone on a folder paged with --no-photos."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sqlite3
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from helpers import (
    copy_paged,
    done_files,
    error_line,
    local,
    photo_statuses,
    read_photos,
    rendered_dom,
    run_here,
)

from inat_async.simulator import World

pytest.importorskip("s3fs", reason="the dask extra (s3fs) is not installed")
pytest.importorskip("moto.server", reason="moto[server] is not installed")

WORLD = World({3001: 24}, seed=5, photo_scale=0.01)
KEYS = ["--storage-option", "key=testing", "--storage-option", "secret=testing"]


@pytest.fixture(scope="module")
def full(sim, tmp_path_factory):
    """A whole harvest of WORLD, to compare a photo stage's outcome with."""
    out = tmp_path_factory.mktemp("full") / "o"
    result = run_here(out.parent, "--place", "3001", *local(sim, out))
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="module")
def stored(sim, tmp_path_factory):
    """A harvest (the main command) whose photos went to another folder: base/o, base/store."""
    base = tmp_path_factory.mktemp("stored")
    result = run_here(base, "--place", "3001", *local(sim, base / "o", "--store", str(base / "store")))
    assert result.returncode == 0, result.stderr
    (base / "stdout").write_text(result.stdout)
    return base


def _objects(s3, bucket: str, prefix: str) -> dict[str, bytes]:
    listing = s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return {
        o["Key"][len(prefix) :]: s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listing
    }


def test_photos_command_fetches_a_folder_paged_without_photos_as_a_harvest_would(sim, paged, full, tmp_path):
    out = copy_paged(paged, tmp_path)
    result = run_here(tmp_path, "photos", str(out), "--no-limits")
    assert result.returncode == 0, result.stderr
    photos = read_photos(out)
    assert photo_statuses(photos) == photo_statuses(read_photos(full))
    expected = done_files(photos, WORLD)
    assert len(expected) >= 40
    assert {path: (out / path).read_bytes() for path in expected} == expected
    assert "photo files: " in result.stdout
    # Again: every file is found in place and checked, none fetched again.
    before = len(sim.log)
    again = run_here(tmp_path, "photos", str(out), "--no-limits")
    assert again.returncode == 0, again.stderr
    assert [r for r in sim.log[before:] if r.host != "api"] == []


def test_photos_command_writes_again_the_exports_the_folder_has(sim, tmp_path):
    """Paged with --format csv,parquet: the photos command rewrites both (it rewrote only
    photos.csv, and photos.parquet kept no file done)."""
    out = tmp_path / "o"
    paged = run_here(tmp_path, "--place", "3001", *local(sim, out, "--no-photos", "--format", "csv,parquet"))
    assert paged.returncode == 0, paged.stderr
    result = run_here(tmp_path, "photos", str(out), "--no-limits")
    assert result.returncode == 0, result.stderr
    csv, parquet = read_photos(out), pd.read_parquet(out / "photos.parquet")
    assert (csv.status == "done").sum() > 0
    assert sorted(csv.status) == sorted(parquet.status)


def test_photos_command_with_another_size_adds_it_and_keeps_those_fetched(sim, paged, tmp_path):
    """README: "Another size later". The sizes fetched before keep their rows and files."""
    out = copy_paged(paged, tmp_path)
    assert run_here(tmp_path, "photos", str(out), "--no-limits", "--sizes", "square").returncode == 0
    square = {path: (out / path).read_bytes() for path in done_files(read_photos(out), WORLD)}
    result = run_here(tmp_path, "photos", str(out), "--no-limits", "--sizes", "large")
    assert result.returncode == 0, result.stderr
    photos = read_photos(out)
    assert set(photos["size"]) == {"square", "large"}
    assert {path: (out / path).read_bytes() for path in square} == square
    files = done_files(photos, WORLD)
    assert {path: (out / path).read_bytes() for path in files} == files


def test_photos_go_to_an_s3_bucket_byte_exact_with_the_statuses_of_a_local_run(
    sim, paged, full, s3, tmp_path
):
    s3.create_bucket(Bucket="harvest")
    out = copy_paged(paged, tmp_path)
    store = ["--store", "s3://harvest/inat/run1", "--storage-option", f"endpoint_url={s3.endpoint}", *KEYS]
    result = run_here(tmp_path, "photos", str(out), "--no-limits", *store)
    assert result.returncode == 0, result.stderr
    photos = read_photos(out)
    assert photo_statuses(photos) == photo_statuses(read_photos(full))
    assert _objects(s3, "harvest", "inat/run1/") == done_files(
        photos, WORLD
    )  # paths relative to the store root
    assert not (out / "photos").exists()
    assert "photo files in s3://harvest/inat/run1: " in result.stdout
    assert '"store": "s3://harvest/inat/run1"' in (out / "summary.json").read_text()
    # A rerun finds each object whole and fetches nothing; a damaged one is fetched again.
    damaged = photos[photos.status == "done"].iloc[0]
    s3.put_object(Bucket="harvest", Key=f"inat/run1/{damaged.path}", Body=b"<html>not an image</html>")
    conn = sqlite3.connect(out / "harvest.sqlite")
    conn.execute("UPDATE photos SET status = 'pending', bytes = NULL WHERE status = 'done'")
    conn.commit()
    conn.close()
    before = len(sim.log)
    again = run_here(tmp_path, "photos", str(out), "--no-limits", *store)
    assert again.returncode == 0, again.stderr
    fetched = [r for r in sim.log[before:] if r.host != "api"]
    assert len(fetched) == 1 and str(damaged.photo_id) in fetched[0].path
    assert _objects(s3, "harvest", "inat/run1/") == done_files(read_photos(out), WORLD)
    # The rerun says what it fetched apart from what it found, the bytes the simulator served.
    found = (photos.status == "done").sum() - 1
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["files_fetched"], summary["files_found"]) == (1, found)
    assert (
        summary["bytes_this_run"]
        == fetched[0].nbytes
        == len(WORLD.photo_bytes(int(damaged.photo_id), damaged["size"]))
    )
    assert (
        f"1 photo file fetched ({fetched[0].nbytes / 1e6:,.1f} MB), {found} found already stored"
        in again.stdout
    )
    # Neither the keys nor any storage option is kept in the state; the same store without
    # its options is one, another bucket is refused.
    assert b"testing" not in (out / "harvest.sqlite").read_bytes()
    other = run_here(tmp_path, "photos", str(out), "--no-limits", "--store", "s3://harvest/inat/run2",
                    "--storage-option", f"endpoint_url={s3.endpoint}", *KEYS)  # fmt: skip
    _refused(other, "are in s3://harvest/inat/run1 (recorded when it first stored photos)",
             "pass --store s3://harvest/inat/run1 and its --storage-option again")  # fmt: skip
    # report.html: no file of the bucket is read for it; the photos shown from their source.
    page = _report(out)
    squares = photos[(photos.status == "done") & (photos["size"] == "square")]
    assert page.images == list(squares.url[:48]) and page.images
    assert "The photo files are in s3://harvest/inat/run1" in page.text["photos-store"]
    assert page.text["store"] == "s3://harvest/inat/run1"
    assert page.text["megabytes"] == f"{summary['bytes_on_disk'] / 1e6:,.1f}"
    assert (
        summary["bytes_stored"]
        == summary["bytes_on_disk"]
        == sum(len(data) for data in _objects(s3, "harvest", "inat/run1/").values())
    )


def test_a_harvest_writes_its_photos_to_another_folder_as_it_would_to_its_own(full, stored):
    store = stored / "store"
    photos = read_photos(stored / "o")
    assert photo_statuses(photos) == photo_statuses(read_photos(full))
    expected = done_files(photos, WORLD)
    assert {path: (store / path).read_bytes() for path in expected} == expected
    assert not (stored / "o" / "photos").exists()
    assert f"photo files in {store}: " in (stored / "stdout").read_text()


def _exports(out: Path) -> dict[str, bytes]:
    names = ("observations.csv", "photos.csv", "summary.json", "report.html")
    return {name: (out / name).read_bytes() for name in names}


def test_export_store_alone_puts_the_exports_beside_the_photos_in_the_bucket(sim, paged, s3, tmp_path):
    s3.create_bucket(Bucket="together")
    out = tmp_path / "o"
    store = ["--store", "s3://together/run", "--storage-option", f"endpoint_url={s3.endpoint}", *KEYS]
    result = run_here(tmp_path, "--place", "3001", *local(sim, out, *store, "--export-store"))
    assert result.returncode == 0, result.stderr
    photos = read_photos(out)
    objects = _objects(s3, "together", "run/")
    assert {k: v for k, v in objects.items() if k.startswith("photos/")} == done_files(photos, WORLD)
    assert {k: v for k, v in objects.items() if not k.startswith("photos/")} == _exports(out)
    assert "4 export files copied to s3://together/run" in result.stderr


def test_export_store_url_gets_the_photo_commands_exports_while_photos_stay_in_out(sim, paged, s3, tmp_path):
    s3.create_bucket(Bucket="exports")
    out = copy_paged(paged, tmp_path)
    where = ["--export-store", "s3://exports/inat", "--storage-option", f"endpoint_url={s3.endpoint}", *KEYS]
    result = run_here(tmp_path, "photos", str(out), "--no-limits", "--format", "csv", *where)
    assert result.returncode == 0, result.stderr
    expected = done_files(read_photos(out), WORLD)
    assert {path: (out / path).read_bytes() for path in expected} == expected
    assert _objects(s3, "exports", "inat/") == _exports(out)


def test_update_deletes_the_objects_of_photos_that_no_longer_belong(start_simulator, s3, tmp_path):
    """A photo removed, and one turned into a placeholder: --update deletes their objects from
    the bucket, as it deletes their files from OUT, and the bucket holds what photos.csv says."""
    world = World({3003: 12}, seed=7, photos=(1, 3), placeholder_rate=0.0, photo_scale=0.01)
    sim = start_simulator(world)
    s3.create_bucket(Bucket="updated")
    out = tmp_path / "o"
    store = ["--store", "s3://updated/run", "--storage-option", f"endpoint_url={s3.endpoint}", *KEYS]
    args = ["--place", "3003", "--sizes", "square,small"]
    first = run_here(tmp_path, *args, *local(sim, out, *store))
    assert first.returncode == 0, first.stderr
    done = read_photos(out).query("status == 'done'")
    gone = sorted(set(done.photo_id))[:2]
    before = _objects(s3, "updated", "run/")
    assert {path for path in before if int(path.rpartition("/")[2].split("_")[0]) in gone}
    world.edit_photo(int(gone[0]), removed=True)
    world.edit_photo(int(gone[1]), placeholder=True)
    update = run_here(tmp_path, *args, "--update", *local(sim, out, *store))
    assert update.returncode == 0, update.stderr
    photos = read_photos(out)
    assert not set(photos.query("status == 'done'").photo_id) & set(gone)
    after = _objects(s3, "updated", "run/")
    assert not {path for path in after if int(path.rpartition("/")[2].split("_")[0]) in gone}
    assert after == done_files(photos, world)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--storage-option", "endpoint_url=http://x"], "--storage-option: applies to a --store: give one"),
        (
            ["--store", "s3://b", "--storage-option", "novalue"],
            "--storage-option: 'novalue' is not KEY=VALUE",
        ),
        (["--export-store"], "--export-store: given alone means the --store: give one, or a URL"),
        (
            ["--store", "s3://b", "--storage-option", "use_ssl=maybe"],
            "--storage-option: use_ssl takes true or false (or yes/no, 1/0), not 'maybe'",
        ),
        (["--scheduler", "lokal:2"], "--scheduler: 'lokal:2' is not local, local:N or a scheduler address"),
        (["--store", "a-file"], "--store: a-file is a file, not a folder"),
        (["--store", "a-file/photos"], "--store: a-file is a file, not a folder"),
        (["--store", "file://a-file/photos"], "--store: a-file is a file, not a folder"),
        (["--export-store", "a-file"], "--export-store: a-file is a file, not a folder"),
        (["--store", "nosuch://bucket/x"], "--store: nosuch:// is not a storage fsspec knows"),
        (["--store", "memory://x"], "--store: memory:// keeps files in this process only"),
        (["--store", "s3://b", "--format", "csv,webdataset"], "--store: the WebDataset is written from"),
    ],
)
def test_store_and_scheduler_options_are_checked_before_any_request(tmp_path, args, message):
    (tmp_path / "a-file").write_text("not a folder")
    out = tmp_path / "o"
    result = run_here(
        tmp_path, "--place", "1", "--api-url", "http://127.0.0.1:9/v1", "--out", str(out), *args
    )
    assert result.returncode == 2
    assert message in error_line(result)
    assert not out.exists()


def test_a_store_whose_library_is_not_installed_is_refused_before_any_request(tmp_path):
    """gs:// is a storage fsspec knows, but its library (gcsfs) is not the dask extra's: the
    run said so only once it opened the store (and --export-store only after the harvest)."""
    if importlib.util.find_spec("gcsfs") is not None:
        pytest.skip("gcsfs is installed here")
    for flag in ("--store", "--export-store"):
        out = tmp_path / flag.strip("-")
        result = run_here(tmp_path, "--place", "1", "--api-url", "http://127.0.0.1:9/v1", "--out", str(out),
                         "--storage-option", "token=anon", flag, "gs://bucket/inat")  # fmt: skip
        assert result.returncode == 2
        line = error_line(result)
        assert line.startswith(f"inat-async: error: {flag}: gs:// needs a library that is not installed"), (
            line
        )
        assert "gcsfs" in line and not out.exists()


def test_photos_command_refuses_a_folder_without_a_harvest(tmp_path):
    result = run_here(tmp_path, "photos", str(tmp_path))
    assert result.returncode == 2
    assert "holds no harvest" in error_line(result)


# -- The store is tied to the state (issue 15: "never shows the user something untrue") -------
def _into_folder(stored, tmp_path):
    """A copy of the module's harvest whose photos went to another folder: (OUT, the store,
    its files)."""
    out, store = tmp_path / "o", stored / "store"
    shutil.copytree(stored / "o", out)
    files = done_files(read_photos(out), WORLD)
    assert files and {path: (store / path).read_bytes() for path in files} == files
    return out, store, files


def _refused(result, *said: str) -> str:
    assert result.returncode == 2, result.stderr
    line = error_line(result)
    assert all(words in line for words in said), line
    return line


@pytest.mark.parametrize(
    "command",
    [
        ["--place", "3001"],  # the main command, without --store
        ["--place", "3001", "--update"],
        ["photos"],
        ["photos", "--store", "{other}"],  # another store than the one the files are in
        ["--place", "3001", "--store", "{other}"],
        ["--place", "3001", "--dry-run"],  # its estimate said nothing was left to fetch
    ],
)
def test_a_run_whose_store_is_not_the_one_holding_the_files_is_refused_in_one_line(
    sim, stored, tmp_path, command
):
    """The state said those files were done though the new store held none of them."""
    out, store, files = _into_folder(stored, tmp_path)
    other = str(tmp_path / "other")
    args = [a.replace("{other}", other) for a in command]
    if args[0] == "photos":
        args = ["photos", str(out), "--no-limits", *args[1:]]
    else:
        args = [*args[:2], *local(sim, out, *args[2:])]
    before = len(sim.log)
    line = _refused(run_here(tmp_path, *args), f"--store: the photo files of {out} are in {store.resolve()}",
                    f"pass --store {store.resolve()} and its --storage-option again")  # fmt: skip
    assert sim.log[before:] == []  # refused before any request
    assert not (out / "photos").exists() and not Path(other).exists()
    assert read_photos(out).query("status == 'done'").shape[0] == len(files)
    assert "testing" not in line


def test_an_update_that_stores_no_photo_names_the_store_the_files_are_in(sim, paged, tmp_path):
    """Paged with --no-photos, photos into a store, then --update --no-photos without --store
    (as the README says): the files stay where they are, and the summary (and summary.json)
    said they were in OUT, which holds none."""
    out, store = copy_paged(paged, tmp_path), tmp_path / "store"
    square = ["--no-limits", "--sizes", "square"]
    fetched = run_here(tmp_path, "photos", str(out), *square, "--store", str(store))
    assert fetched.returncode == 0, fetched.stderr
    done = read_photos(out).query("status == 'done'").shape[0]
    result = run_here(tmp_path, "--place", "3001", "--update", *local(sim, out, "--no-photos"))
    assert result.returncode == 0, result.stderr
    assert f"photo files in {store.resolve()}: {done} done" in result.stdout
    assert json.loads((out / "summary.json").read_text())["store"] == str(store.resolve())
    assert not (out / "photos").exists()
    again = run_here(tmp_path, "--place", "3001", "--update", *local(sim, out))  # photos asked for
    assert error_line(again) == (
        f"inat-async: error: --out: {out} holds a harvest made with other settings (--no-photos was True "
        "and is now False): run the same command as before, or harvest into a new --out folder"
    )


def test_a_store_after_a_harvest_into_out_is_refused_and_the_same_store_goes_on(sim, paged, tmp_path):
    """The other way round: files in OUT, then a --store (the state would call its files done
    there too); and the same --store again after a store goes on."""
    out = copy_paged(paged, tmp_path)
    assert run_here(tmp_path, "photos", str(out), "--no-limits", "--sizes", "square").returncode == 0
    store = tmp_path / "store"
    refused = run_here(tmp_path, "photos", str(out), "--no-limits", "--store", str(store))
    _refused(refused, f"the photo files of {out} are in that folder itself", "without --store")
    assert not store.exists()
    same = run_here(tmp_path, "photos", str(out), "--no-limits", "--store", str(out))  # OUT named
    assert same.returncode == 0, same.stderr


def test_export_of_a_webdataset_names_the_store_the_files_are_in(stored, tmp_path):
    out, store, _ = _into_folder(stored, tmp_path)
    result = run_here(tmp_path, "export", str(out), "--format", "webdataset", "--webdataset-size", "medium")
    _refused(result, f"the medium files of {out} are in {store.resolve()}")
    assert not (out / "webdataset").exists()


def test_opendata_with_another_store_than_its_first_run_is_refused(sim, tmp_path):
    from inat_async.simulator.dump import write_dump

    dump = tmp_path / "dump"
    write_dump(World({3001: 6}, seed=5, photo_scale=0.01), dump)
    out, store = tmp_path / "o", tmp_path / "store"
    args = ["opendata", "--dump", str(dump), "--out", str(out), "--api-url", sim.api_url,
            "--photo-base", sim.hosts["open"], "--no-limits", "--sizes", "square"]  # fmt: skip
    first = run_here(tmp_path, *args, "--store", str(store))
    assert first.returncode == 0, first.stderr
    assert (read_photos(out).status == "done").any()
    _refused(run_here(tmp_path, *args), f"are in {store.resolve()}", "--store")


# -- What a run says it did: fetched apart from found already stored -----------------------------
def test_a_rerun_after_the_state_lost_the_files_status_reports_them_found_not_fetched(sim, stored, tmp_path):
    """Files stored, their rows pending again (a run killed before it recorded them): the same
    command finds every one, fetches none, and says so; it counted them as fetched bytes."""
    out, store, files = _into_folder(stored, tmp_path)
    with sqlite3.connect(out / "harvest.sqlite") as db:
        db.execute("UPDATE photos SET status = 'pending', bytes = NULL WHERE status = 'done'")
    db.close()
    before = len(sim.log)
    again = run_here(tmp_path, "--place", "3001", *local(sim, out, "--store", str(store)))
    assert again.returncode == 0, again.stderr
    assert [r for r in sim.log[before:] if r.host != "api"] == []
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["files_fetched"], summary["files_found"], summary["bytes_this_run"]) == (0, len(files), 0)
    assert summary["bytes_found"] == summary["bytes_on_disk"] == sum(map(len, files.values()))
    assert f"0 photo files fetched (0.0 MB), {len(files)} found already stored" in again.stdout
    assert f"| 0.0 MB, {len(files)} found already stored |" in again.stderr  # the progress line
    assert read_photos(out).query("status == 'done'").shape[0] == len(files)


# -- report.html and summary.json of a harvest into another folder -----------------------------
class _Page(HTMLParser):
    """The report as a browser reads it: each element's text by id, and the img sources."""

    def __init__(self) -> None:
        super().__init__()
        self.text: dict[str, str] = {}
        self.images: list[str] = []
        self._open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "img":
            self.images.append(found.get("src") or "")
        elif tag not in ("br", "meta", "circle", "line", "rect"):
            self._open.append(found.get("id") or "")
            if found.get("id"):
                self.text[found["id"] or ""] = ""

    def handle_endtag(self, tag: str) -> None:
        if self._open and tag not in ("img", "br", "meta", "circle", "line", "rect"):
            self._open.pop()

    def handle_data(self, data: str) -> None:
        for key in filter(None, self._open):
            self.text[key] += data


def _report(out: Path, dom: str | None = None) -> _Page:
    page = _Page()
    page.feed(dom if dom is not None else (out / "report.html").read_text(encoding="utf-8"))
    return page


def test_report_links_the_photos_of_another_folder_and_says_where_the_bytes_are(stored, tmp_path):
    """report.html had an empty photo grid, and "MB on disk" of files not in OUT."""
    out, store = stored / "o", stored / "store"
    photos = read_photos(out)
    squares = photos[(photos.status == "done") & (photos["size"] == "square")]
    page = _report(out, rendered_dom(out / "report.html", tmp_path))
    assert page.images and len(page.images) == min(48, len(squares))
    # Each image a path relative to OUT (as the page's own folder resolves it): the store's file.
    for src, path in zip(page.images, squares.path, strict=False):
        assert not src.startswith(("data:", "/", "http")) and os.path.samefile(out / src, store / path)
    assert page.text["store"] == str(store.resolve())
    summary = json.loads((out / "summary.json").read_text())
    stored_bytes = sum(f.stat().st_size for f in (store / "photos").rglob("*") if f.is_file())
    assert summary["bytes_on_disk"] == summary["bytes_stored"] == stored_bytes
    assert page.text["megabytes"] == f"{stored_bytes / 1e6:,.1f}"


# -- The summary's wording and order -----------------------------------------------------------
def test_summary_places_in_one_order_and_plain_status_strings(start_simulator, tmp_path):
    """Places given as 3012,3011: the main command listed them so, the photos command (from
    the state) sorted; the statuses of Summary.photos were PhotoStatus members."""
    from helpers import run_harvest

    sim = start_simulator(World({3011: 3, 3012: 3}, seed=3, photo_scale=0.01))
    out = tmp_path / "o"
    first = run_here(tmp_path, "--place", "3012,3011", *local(sim, out, "--no-photos"))
    assert first.returncode == 0, first.stderr
    photos = run_here(tmp_path, "photos", str(out), "--no-limits", "--sizes", "square")
    assert photos.returncode == 0, photos.stderr
    for said in (first.stdout, photos.stdout):
        assert said.index("place 3011:") < said.index("place 3012:"), said
    summary = run_harvest([3012, 3011], api_url=sim.api_url, out=tmp_path / "lib", sizes="square")
    assert list(summary.per_place) == [3011, 3012]
    assert "PhotoStatus" not in repr(summary) and all(type(k) is str for k in summary.photos)
    assert "1 API request," in replace(summary, api_requests=1).table()
    assert "2 API requests," in replace(summary, api_requests=2).table()


def test_the_store_librarys_own_info_lines_are_not_said(sim, paged, s3, tmp_path, monkeypatch):
    """botocore says "Found credentials in environment variables." at INFO, its own news; the
    console says inat_async's lines and other libraries' warnings (-v says all)."""
    s3.create_bucket(Bucket="quiet")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    out = copy_paged(paged, tmp_path)
    store = ["--store", "s3://quiet/x", "--storage-option", f"endpoint_url={s3.endpoint}"]
    result = run_here(tmp_path, "photos", str(out), "--no-limits", "--sizes", "square", *store)
    assert result.returncode == 0, result.stderr
    assert "photo files to fetch into s3://quiet/x" in result.stderr
    assert "Found credentials" not in result.stderr
