"""An object store's settings checked once, bounded, before the run's first request (issue 15):
no credentials, an endpoint nobody answers, a bucket that is not there, an option the store
does not take each end the run in one line naming what to fix (they ended in the backend's
traceback, some after the paging, one after 14 s). Over real sockets: moto's S3 server on
127.0.0.1 (the ``s3`` fixture) and a port nobody listens on."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest
from fakes3 import S3Front
from helpers import copy_paged, error_line, local, read_photos, run_here

from inat_async.simulator import World
from inat_async.store.objects import access_denied, no_credentials

pytest.importorskip("s3fs", reason="the dask extra (s3fs) is not installed")
pytest.importorskip("moto.server", reason="moto[server] is not installed")

WORLD = World({3001: 6}, seed=7, photo_scale=0.01)
KEYS = ["--storage-option", "key=testing", "--storage-option", "secret=testing"]
FAST = ["--no-limits", "--sizes", "square", "--retry-wait", "0.01", "--timeout", "2"]


@pytest.fixture(scope="module")
def bucket(s3):
    s3.create_bucket(Bucket="preflight")
    return "s3://preflight/run"


@pytest.fixture
def no_aws_credentials(monkeypatch, tmp_path):
    """No credentials anywhere botocore looks: no AWS_* variable, empty credentials and
    config files, no instance metadata service."""
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        monkeypatch.delenv(name)
    empty = tmp_path / "empty-aws"
    empty.write_text("")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def _closed_port() -> str:
    """An address on 127.0.0.1 nobody listens on (connections refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def _photos(paged: Path, tmp_path: Path, url: str, *options: str):
    out = copy_paged(paged, tmp_path)
    return out, run_here(tmp_path, "photos", str(out), *FAST, "--store", url, *options)


def _no_photo_request(sim, before: int) -> bool:
    return not [r for r in sim.log[before:] if r.host != "api"]


def test_no_credentials_is_one_line_before_paging_naming_the_store_and_how_to_give_them(
    sim, s3, bucket, no_aws_credentials, tmp_path
):
    """Only an endpoint_url, no key anywhere: a 100-line traceback (NoCredentialsError) at the
    first PUT, after the paging. Now one line before any request, exit 2 (a setting)."""
    before = len(sim.log)
    store = ["--store", bucket, "--storage-option", f"endpoint_url={s3.endpoint}"]
    result = run_here(tmp_path, "--place", "3001", *local(sim, tmp_path / "o", *FAST, *store))
    assert result.returncode == 2, result.stderr
    assert error_line(result) == (
        f"inat-async: error: --storage-option: {bucket} needs credentials and none were found (Unable to "
        "locate credentials): pass them as --storage-option key=... and --storage-option secret=... (or "
        "profile=...), or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or write them in "
        "~/.aws/credentials)"
    )
    assert len(sim.log) == before  # not one request to the API


def test_a_boolean_storage_option_said_as_a_word_is_a_boolean(sim, s3, bucket, no_aws_credentials, tmp_path):
    """--storage-option anon=no reached s3fs as the string "no", which reads as true: the run
    went on anonymously, without the credentials it has none of. Now "no" is False: one line
    saying credentials are needed, exit 2, before any request."""
    before = len(sim.log)
    store = [
        "--store",
        bucket,
        "--storage-option",
        f"endpoint_url={s3.endpoint}",
        "--storage-option",
        "anon=no",
    ]
    result = run_here(tmp_path, "--place", "3001", *local(sim, tmp_path / "o", *FAST, *store))
    assert result.returncode == 2, result.stderr
    assert error_line(result).startswith(f"inat-async: error: --storage-option: {bucket} needs credentials")
    assert len(sim.log) == before


@pytest.mark.parametrize(
    ("url", "how"),
    [
        (
            "s3://b/p",
            "pass them as --storage-option key=... and --storage-option secret=... (or profile=...), or "
            "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or write them in ~/.aws/credentials)",
        ),
        (
            "gs://b/p",
            "pass --storage-option token=FILE (a service account's key file), or set "
            "GOOGLE_APPLICATION_CREDENTIALS to that file (or run: gcloud auth application-default login)",
        ),
        ("az://b/p", "pass them as the storage options az:// takes (--storage-option KEY=VALUE)"),
    ],
)
def test_no_credentials_says_where_the_stores_protocol_takes_them_from(url, how):
    """The hint named AWS's variables for any store (gs:// too): now those of its protocol,
    as the command line says it."""
    line = no_credentials(url, "none").render(lambda name: "--storage-option")
    assert line == f"--storage-option: {url} needs credentials and none were found (none): {how}"


@pytest.mark.parametrize(
    ("url", "which"),
    [
        ("s3://b/p", "--storage-option key and secret, or profile"),
        ("gs://b/p", "--storage-option token, or GOOGLE_APPLICATION_CREDENTIALS"),
        ("az://b/p", "the --storage-option of az://"),
    ],
)
def test_a_refused_write_names_the_credentials_of_the_stores_protocol(url, which):
    """A store that refuses a PUT named S3's key and secret for any store: now its protocol's."""
    line = access_denied(url, "a PUT", "Forbidden").render(lambda name: "--storage-option")
    assert line == (
        f"{url} refuses a PUT (access denied: Forbidden): check its credentials ({which}) and that they "
        "may write there, then run the same command again"
    )


def test_an_endpoint_nobody_answers_is_one_line_naming_it(sim, paged, tmp_path):
    """endpoint_url a closed port: a 157-line traceback after 14 s. Now one line naming the
    endpoint, exit 2, no photo fetched; the same for the --export-store."""
    endpoint = _closed_port()
    before = len(sim.log)
    options = ["--storage-option", f"endpoint_url={endpoint}", *KEYS]
    _, result = _photos(paged, tmp_path, "s3://preflight/run", *options)
    assert result.returncode == 2, result.stderr
    line = error_line(result)
    assert line.startswith(f"inat-async: error: --storage-option: nobody answers at {endpoint} (within "), (
        line
    )
    assert line.endswith(": check its endpoint_url, or that the store is up, then run the same command again")
    assert _no_photo_request(sim, before)
    out = copy_paged(paged, tmp_path / "exports")
    exports = run_here(tmp_path, "photos", str(out), *FAST, "--export-store", "s3://preflight/x", *options)
    assert exports.returncode == 2, exports.stderr
    assert f"nobody answers at {endpoint}" in error_line(exports)
    assert _no_photo_request(sim, before)


def test_a_bucket_that_is_not_there_is_one_line_before_any_photo(sim, paged, s3, tmp_path):
    """A bucket no one created: its files were each fetched, then refused. Now one line
    naming it before any photo request, exit 8 (the store)."""
    before = len(sim.log)
    _, result = _photos(
        paged, tmp_path, "s3://nosuchbucket/run", "--storage-option", f"endpoint_url={s3.endpoint}", *KEYS
    )
    assert result.returncode == 8, result.stderr
    assert error_line(result).startswith(
        "inat-async: error: s3://nosuchbucket/run: its bucket nosuchbucket is not there ("
    )
    assert error_line(result).endswith(
        "): create it, or pass the --store to use, then run the same command again"
    )
    assert _no_photo_request(sim, before)


@pytest.mark.parametrize("option", ["bogus_option=1", "endpoint=http://127.0.0.1:9"])
def test_an_option_the_store_does_not_take_is_one_line_naming_it(sim, paged, s3, bucket, tmp_path, option):
    """--storage-option bogus_option=1: a 101-line traceback (TypeError: AioSession.__init__()
    got an unexpected keyword argument). Now one line naming the option, exit 2; the same
    for a near miss of a real one (endpoint for endpoint_url)."""
    before = len(sim.log)
    name = option.partition("=")[0]
    options = ["--storage-option", f"endpoint_url={s3.endpoint}", *KEYS, "--storage-option", option]
    _, result = _photos(paged, tmp_path, bucket, *options)
    assert result.returncode == 2, result.stderr
    assert error_line(result).startswith(
        f"inat-async: error: --storage-option: {name} is not an option s3:// takes ("
    ), error_line(result)
    assert _no_photo_request(sim, before)


def test_a_store_that_stops_mid_run_fails_its_files_in_one_line_and_the_rerun_names_it(
    sim, paged, s3, bucket, tmp_path
):
    """The store's server gone after the first PUTs (connections refused): it ended in a
    traceback (EndpointConnectionError). Each file's PUT is tried again, then the file is
    failed with the store's reason, exit 3; the same command while the store is still down
    stops before any request, one line naming the endpoint (exit 2)."""
    front = S3Front(s3.endpoint).__enter__()
    endpoint = front.url

    def stop_at_the_third(path: str) -> str | None:
        if front.puts == 3:
            threading.Thread(target=front.__exit__).start()  # not from its own loop
            return "stall"
        return None

    front.on_put = stop_at_the_third
    out = copy_paged(paged, tmp_path)
    args = ["photos", str(out), *FAST, "--workers", "1", "--store", bucket,
            "--storage-option", f"endpoint_url={endpoint}", *KEYS]  # fmt: skip
    result = run_here(tmp_path, *args)
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr
    photos = read_photos(out)
    failed = photos[photos.status == "failed"]
    assert len(failed) >= 3 and set(photos.status) <= {"done", "failed"}
    assert all(
        r.startswith("the store failed a PUT (") and r.endswith("(after 5 tries)") for r in failed.reason
    ), list(failed.reason)
    again = run_here(tmp_path, *args)
    assert again.returncode == 2, again.stderr
    assert f"nobody answers at {endpoint}" in error_line(again)
