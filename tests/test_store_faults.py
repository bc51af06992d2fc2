"""An object store that misbehaves (issue 15): never a hang, never a file called done that is
not stored. Over real sockets: moto's S3 server on 127.0.0.1 behind a proxy (fakes3.S3Front)
that stalls PUTs or answers them with S3's errors."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from fakes3 import S3Front, s3_error
from helpers import copy_paged, done_files, error_line, local, read_photos, run_cli, run_here

from inat_async.simulator import World

pytest.importorskip("s3fs", reason="the dask extra (s3fs) is not installed")
pytest.importorskip("moto.server", reason="moto[server] is not installed")

WORLD = World({3001: 16}, seed=5, photo_scale=0.01)
KEYS = ["--storage-option", "key=testing", "--storage-option", "secret=testing"]
#: Square files only: a few small files are enough to show each fault.
FAST = ["--no-limits", "--sizes", "square", "--retry-wait", "0.01"]


@pytest.fixture(scope="module")
def module_front(s3):
    with S3Front(s3.endpoint) as running:
        yield running


@pytest.fixture
def front(module_front):
    """The proxy as a test starts: passing everything on."""
    module_front.release()
    module_front.puts = module_front.stalled = 0
    yield module_front
    module_front.release()


def _store(front: S3Front, url: str) -> list[str]:
    return ["--store", url, "--storage-option", f"endpoint_url={front.url}", *KEYS]


def _statuses(out: Path) -> dict[str, int]:
    """The state's photo rows by status (photos.csv is not written by a run that stopped)."""
    with contextlib.closing(sqlite3.connect(out / "harvest.sqlite")) as db:
        return dict(db.execute("SELECT status, count(*) FROM photos GROUP BY status").fetchall())


def _hosts(out: Path) -> int:
    with contextlib.closing(sqlite3.connect(out / "harvest.sqlite")) as db:
        return len({urlsplit(url).netloc for (url,) in db.execute("SELECT url FROM photos")})


def _objects(s3, bucket: str, prefix: str) -> dict[str, bytes]:
    listing = s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return {
        o["Key"][len(prefix) :]: s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listing
    }


def test_a_store_that_stalls_puts_ends_the_run_with_the_files_failed_then_stores_them(
    s3, paged, front, tmp_path
):
    """A PUT the store accepts and never answers: the run hung at its end for minutes (the
    store's threads waited on s3fs's own timeouts). Now each PUT is bounded, the file is
    `failed` with the store's reason (not done), the process ends (a subprocess, so its exit
    waits on any thread left), and the same command once the store answers stores them all."""
    s3.create_bucket(Bucket="stalls")
    out = copy_paged(paged, tmp_path)
    front.on_put = lambda path: "stall"
    args = ["photos", str(out), *FAST, *_store(front, "s3://stalls/run"), "--timeout", "0.3"]
    result = run_cli(tmp_path, *args, timeout=60)  # a hang guard, not a measure
    assert result.returncode == 3, result.stderr
    photos = read_photos(out)
    assert len(photos) >= 5 and set(photos.status) == {"failed"}
    for reason in photos.reason:  # --timeout, and more for the file's bytes at 4 KB/s
        assert reason.startswith("the store did not answer a PUT (within 0.3") and reason.endswith(
            " s) (after 5 tries)"
        ), reason
    # Each file's PUT was held (a try whose time ran out before it reached the store is one too).
    assert len(photos) <= front.stalled <= 5 * len(photos) and _objects(s3, "stalls", "run/") == {}
    assert "Traceback" not in result.stderr
    front.release()
    again = run_here(tmp_path, *args)
    assert again.returncode == 0, again.stderr
    photos = read_photos(out)
    assert set(photos.status) == {"done"}
    assert _objects(s3, "stalls", "run/") == done_files(photos, WORLD)


def test_puts_answered_500_or_slowdown_are_tried_again_and_every_file_stored(s3, paged, front, tmp_path):
    """The first PUT of each object fails (500 InternalError, 503 SlowDown in turn): each is
    tried again, every file stored byte-exact, and the retries counted by their reason."""
    s3.create_bucket(Bucket="flaky")
    out = copy_paged(paged, tmp_path)
    tried: Counter[str] = Counter()

    def first_fails(path: str):
        tried[path] += 1
        if tried[path] > 1:
            return None
        if len(tried) % 2:
            return s3_error(500, "InternalError", "We encountered an internal error. Please try again.")
        return s3_error(503, "SlowDown", "Please reduce your request rate.")

    front.on_put = first_fails
    result = run_here(tmp_path, "photos", str(out), *FAST, "--timeout", "5", *_store(front, "s3://flaky/run"))
    assert result.returncode == 0, result.stderr
    photos = read_photos(out)
    assert set(photos.status) == {"done"}
    assert _objects(s3, "flaky", "run/") == done_files(photos, WORLD)
    assert len(tried) == len(photos) and set(tried.values()) == {2}
    # s3fs tries a SlowDown again itself; an internal error comes back to the downloader's tries.
    retries = json.loads((out / "summary.json").read_text())["retries"]
    assert retries == {"the store failed a PUT": (len(photos) + 1) // 2}, retries


@pytest.mark.parametrize("workers", ["2"])
def test_a_store_that_refuses_every_put_stops_the_run_at_once_in_one_line(
    s3, paged, front, tmp_path, workers
):
    """403 AccessDenied to every PUT: it ended in a traceback (a PermissionError no one
    expected). A store that refuses one write refuses them all: the run stops at once with one
    line naming the store and the remedy, and no file is called failed or done."""
    s3.create_bucket(Bucket=f"denies{workers}")
    out = copy_paged(paged, tmp_path)
    front.on_put = lambda path: s3_error(403, "AccessDenied", "Access Denied")
    url = f"s3://denies{workers}/run"
    args = ["photos", str(out), *FAST, "--workers", workers, *_store(front, url)]
    result = run_here(tmp_path, *args)
    assert result.returncode == 8, result.stderr
    assert error_line(result) == (
        f"inat-async: error: {url} refuses a PUT (access denied: Access Denied): check its credentials "
        "(--storage-option key and secret, or profile) and that they may write there, then run the "
        "same command again"
    )
    # At most the PUTs in flight when the first was refused (--workers a photo host), of many.
    statuses = _statuses(out)
    assert list(statuses) == ["pending"]
    assert front.puts <= int(workers) * _hosts(out) < statuses["pending"], (front.puts, statuses)
    # The store lets it write again: the same command stores every file.
    front.release()
    again = run_here(tmp_path, *args)
    assert again.returncode == 0, again.stderr
    assert _objects(s3, f"denies{workers}", "run/") == done_files(read_photos(out), WORLD)


def _remove_bucket(s3, bucket: str) -> None:
    """The bucket emptied and deleted (again while a PUT in flight lands in it meanwhile)."""
    for _ in range(20):
        for found in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
            s3.delete_object(Bucket=bucket, Key=found["Key"])
        try:
            s3.delete_bucket(Bucket=bucket)
        except s3.exceptions.ClientError as exc:
            if exc.response["Error"]["Code"] != "BucketNotEmpty":
                raise
        else:
            return
    raise AssertionError(f"{bucket} could not be deleted")


def test_a_bucket_deleted_mid_run_stops_the_run_and_its_files_are_pending_again(s3, paged, front, tmp_path):
    """The bucket deleted after a few files were stored in it (NoSuchBucket): one line, as for
    a store that refuses writes, and the files the state called done there are pending again
    (they went with the bucket); once it is there again the same command stores every file."""
    s3.create_bucket(Bucket="vanishes")
    out = copy_paged(paged, tmp_path)

    def delete_at_the_fourth(path: str) -> None:
        if front.puts == 4:
            _remove_bucket(s3, "vanishes")

    front.on_put = delete_at_the_fourth
    args = ["photos", str(out), *FAST, "--workers", "1", *_store(front, "s3://vanishes/run")]
    result = run_here(tmp_path, *args)
    assert result.returncode == 8, result.stderr
    line = error_line(result)
    assert line.startswith(
        "inat-async: error: s3://vanishes/run refuses a PUT: its bucket is not there "
        "(The specified bucket does not exist); the "
    ), line
    assert line.endswith(
        " files recorded there went with it: they are pending again; create it, or pass the --store to "
        "use, then run the same command again"
    ), line
    assert list(_statuses(out)) == ["pending"]
    front.release()
    s3.create_bucket(Bucket="vanishes")
    again = run_here(tmp_path, *args)
    assert again.returncode == 0, again.stderr
    photos = read_photos(out)
    assert set(photos.status) == {"done"}
    assert _objects(s3, "vanishes", "run/") == done_files(photos, WORLD)


def test_listings_that_stall_are_not_waited_for_the_files_are_fetched_and_stored_again(
    sim, s3, paged, front, tmp_path
):
    """Files stored, their rows pending again (a run killed before it recorded them), and the
    store never answers a listing: a rerun waited on s3fs's own timeouts for each folder
    (minutes). Each listing is bounded: what it could not show is fetched and stored again."""
    s3.create_bucket(Bucket="unlisted")
    out = copy_paged(paged, tmp_path)
    args = ["photos", str(out), *FAST, "--timeout", "0.3", *_store(front, "s3://unlisted/run")]
    assert run_here(tmp_path, *args).returncode == 0
    with contextlib.closing(sqlite3.connect(out / "harvest.sqlite")) as db, db:
        db.execute("UPDATE photos SET status = 'pending', bytes = NULL WHERE status = 'done'")
    front.stall_listings = True
    before = len(sim.log)
    again = run_cli(tmp_path, *args, timeout=60)  # a hang guard
    assert again.returncode == 0, again.stderr
    photos = read_photos(out)
    assert set(photos.status) == {"done"} and front.stalled >= 1
    assert len([r for r in sim.log[before:] if r.host != "api"]) == len(photos)  # fetched again
    assert _objects(s3, "unlisted", "run/") == done_files(photos, WORLD)


def _export_objects(s3, bucket: str, prefix: str, out: Path) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """The objects under ``prefix`` and OUT's files of the same names."""
    objects = _objects(s3, bucket, prefix)
    return objects, {name: (out / name).read_bytes() for name in objects}


def test_export_uploads_the_store_fails_are_tried_again_then_end_the_run_in_one_line(
    s3, paged, front, tmp_path
):
    """--export-store whose PUTs fail (500 InternalError): the run ended in a traceback (a
    TransientError out of the exports). Now each upload is tried as a photo's PUT is, then the
    run ends in one line naming the store and its reason (exit 8); an upload that stalls is
    bounded and tried again: the same command then copies every export, byte-exact."""
    s3.create_bucket(Bucket="exportfails")
    out = copy_paged(paged, tmp_path)
    url = "s3://exportfails/x"
    args = ["photos", str(out), *FAST, "--timeout", "0.3", "--format", "csv", "--export-store", url,
            "--storage-option", f"endpoint_url={front.url}", *KEYS]  # fmt: skip
    front.on_put = lambda path: s3_error(500, "InternalError", "We encountered an internal error.")
    failed = run_here(tmp_path, *args)
    assert failed.returncode == 8, failed.stderr
    line = error_line(failed)
    assert line.startswith(f"inat-async: error: {url}: the store failed a PUT of observations.csv ("), line
    assert line.endswith(
        "We encountered an internal error.) (after 5 tries): check that the store is up, then run the "
        "same command again"
    ), line
    assert front.puts == 5 and _objects(s3, "exportfails", "x/") == {}
    front.on_put = lambda path: "stall" if path.endswith("/summary.json") and not front.stalled else None
    again = run_here(tmp_path, *args)
    assert again.returncode == 0, again.stderr
    objects, files = _export_objects(s3, "exportfails", "x/", out)
    assert front.stalled == 1 and objects == files
    assert set(objects) == {"observations.csv", "photos.csv", "summary.json", "report.html"}


def test_update_deletes_the_store_refuses_or_stalls_end_the_run_in_one_line_and_keep_the_objects(
    start_simulator, s3, front, tmp_path
):
    """--update deletes the object of a photo removed: a store that refuses the delete (403
    AccessDenied) ended the run in a traceback, and one that never answered held it on s3fs's
    own timeouts. Now a refused delete ends the run in one line (exit 8), a stalled one is
    bounded (here by the user's own read timeout) and tried again, then ends it with the
    store's reason; the bucket and the state
    keep the file, and the same command once the store answers deletes it."""
    world = World({3003: 6}, seed=7, photos=(1, 2), placeholder_rate=0.0, photo_scale=0.01)
    sim = start_simulator(world)
    s3.create_bucket(Bucket="keeps")
    out, url = tmp_path / "o", "s3://keeps/run"
    args = ["--place", "3003", *local(sim, out, *FAST, "--timeout", "0.3", *_store(front, url))]
    assert run_here(tmp_path, *args).returncode == 0
    stored = _objects(s3, "keeps", "run/")
    gone = int(min(read_photos(out).query("status == 'done'").photo_id))
    world.edit_photo(gone, removed=True)
    front.on_delete = lambda path: s3_error(403, "AccessDenied", "Access Denied")
    refused = run_here(tmp_path, *args, "--update")
    assert refused.returncode == 8, refused.stderr
    assert error_line(refused) == (
        f"inat-async: error: {url} refuses a delete (access denied: Access Denied): check its credentials "
        "(--storage-option key and secret, or profile) and that they may write there, then run the "
        "same command again"
    )
    front.on_delete = lambda path: "stall"
    # The user's own read timeout for the store (a dotted --storage-option) bounds its calls.
    own = ["--timeout", "30", "--storage-option", "config_kwargs.read_timeout=0.2"]
    stalled = run_here(tmp_path, *args, "--update", *own)
    assert stalled.returncode == 8, stalled.stderr
    assert error_line(stalled) == (
        f"inat-async: error: {url}: the store did not answer a delete (within 0.2 s) (after 5 tries): "
        "check that the store is up, then run the same command again"
    )
    # At most each try held (one whose time ran out before it reached the store was not).
    assert 0 < front.stalled <= 5 and _objects(s3, "keeps", "run/") == stored
    front.release()
    update = run_here(tmp_path, *args, "--update")
    assert update.returncode == 0, update.stderr
    photos = read_photos(out)
    assert gone not in set(photos.photo_id) and _objects(s3, "keeps", "run/") == done_files(photos, world)
