"""The photo stage on a Dask cluster (issue 15): a LocalCluster of 2 worker processes (one for
the module, and the one `--scheduler local:2` starts), the simulator, and moto's S3 server on
127.0.0.1. Objects byte-exact with a local run's photos.csv statuses, a photo budget that
binds kept across both workers, and a worker killed mid-run losing nothing."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import dask_hold
import pytest
from dask_hold import holding_a_result
from helpers import (
    bar_line,
    cli_env,
    copy_paged,
    done_files,
    local,
    pending_again,
    photo_statuses,
    read_photos,
    run_cli,
    run_here,
    run_in_terminal,
    start_cli,
    terminal_screen,
)

from inat_async.model import PhotoStatus
from inat_async.simulator import (
    ByteLimit,
    RateLimit,
    SimulatorThread,
    World,
    byte_violations,
    max_in_window,
    violations,
)

pytestmark = pytest.mark.slow  # a LocalCluster of worker processes: seconds a test

pytest.importorskip("distributed", reason="the dask extra is not installed")
pytest.importorskip("s3fs", reason="the dask extra (s3fs) is not installed")
pytest.importorskip("moto.server", reason="moto[server] is not installed")

WORLD = World({3001: 40}, seed=5, photo_scale=0.01)
MINUTE = 1.0  # a scaled "minute" of photo requests
RPM = 8  # photo requests per host in any such minute: binds (about 25 square files on one host)
HOUR = 1.0  # a scaled "hour" of photo bytes
BYTES = 10_000  # photo bytes per host in any such hour: binds (about 30 KB of medium files on one host)
KEPT = "every file stored so far is kept. Run the same command again."
KEYS = ["--storage-option", "key=testing", "--storage-option", "secret=testing"]


@pytest.fixture(scope="module")
def local_cluster():
    """A LocalCluster of 2 worker processes (its scheduler in this process)."""
    from distributed import LocalCluster

    logging.getLogger("distributed").setLevel(logging.WARNING)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as running:
        yield running


@pytest.fixture(scope="module")
def cluster(local_cluster) -> str:
    """The module's LocalCluster's scheduler address."""
    return local_cluster.scheduler_address


@pytest.fixture(scope="module")
def sim():
    # Photo arrivals counted per host over the scaled minute; not enforced: a violation is ours.
    with SimulatorThread(WORLD, photo_limit=RateLimit(RPM, MINUTE, enforce=False)) as running:
        yield running


@pytest.fixture(scope="module")
def paged(sim, tmp_path_factory):
    """A folder paged with --no-photos (each test copies it), and a local run to compare with."""
    base = tmp_path_factory.mktemp("paged")
    result = run_here(base, "--place", "3001", *local(sim, base / "paged", "--no-photos"))
    assert result.returncode == 0, result.stderr
    shutil.copytree(base / "paged", base / "here")
    result = run_here(base, "photos", str(base / "here"), "--no-limits")
    assert result.returncode == 0, result.stderr
    return base


def _objects(s3, bucket: str, prefix: str) -> list[tuple[str, bytes]]:
    """Every object under the prefix, by key (a key twice would show twice)."""
    listing = s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return [
        (o["Key"][len(prefix) :], s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()) for o in listing
    ]


def _photo_log(sim, since: int = 0):
    return [r for r in sim.log[since:] if r.host in ("open", "static")]


def test_a_binding_photo_budget_holds_across_both_workers_into_a_local_folder(sim, paged, cluster, tmp_path):
    out, store = copy_paged(paged, tmp_path), tmp_path / "store"
    before = len(sim.log)
    result = run_here(
        tmp_path, "photos", str(out), "--scheduler", cluster, "--store", str(store), "--sizes", "square",
        "--shard-files", "4", "--media-rpm", str(RPM), "--budget-window-scale", str(MINUTE / 60),
        "-v",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    for host in ("open", "static"):  # this run's arrivals alone, by the simulator's rule (its
        # own count also takes the fixture's unlimited run, when it ended less than a minute ago)
        assert violations([r.time for r in _photo_log(sim, before) if r.host == host], RPM, MINUTE) == 0, host
    # The budget bound: the bucket's files took more than two of its minutes.
    bucket = [r.time for r in _photo_log(sim, before) if r.host == "open"]
    assert len(bucket) > 2 * RPM and bucket[-1] - bucket[0] > 2 * MINUTE
    per_worker = next(line for line in result.stderr.splitlines() if "files per worker:" in line)
    assert per_worker.count("tcp://") == 2, per_worker  # both workers fetched
    expected = _squares_stored(out, paged, store)
    assert sorted(str(p.relative_to(store)) for p in store.rglob("*") if p.is_file()) == sorted(expected)


def test_a_binding_byte_budget_is_never_exceeded_by_the_files_in_flight_on_both_workers(
    sim, paged, cluster, tmp_path
):
    """Bytes are booked before each request (at the size expected of its kind), not when its
    answer tells them: the files in flight on both workers never overrun a sliding hour."""
    out = copy_paged(paged, tmp_path)
    before = len(sim.log)
    sim.photo_latency = 0.05  # answers take a while: many files in flight at once
    try:
        result = run_here(
            tmp_path, "photos", str(out), "--scheduler", cluster, "--sizes", "medium", "--shard-files", "4",
            "--budget-window-scale", str(HOUR / 3600), "--media-gb-per-hour", str(BYTES / 1e9),
            "--media-rpm", "1000000", "-v",
        )  # fmt: skip
    finally:
        sim.photo_latency = 0.0
    assert result.returncode == 0, result.stderr
    served = [r for r in _photo_log(sim, before) if r.host == "open" and r.status == 200]
    for host in ("open", "static"):  # this run's answers alone, by the simulator's rule
        answers = [(r.time, r.nbytes) for r in _photo_log(sim, before) if r.host == host]
        assert byte_violations(answers, ByteLimit(BYTES, HOUR)) == 0, host
    assert sum(r.nbytes for r in served) > 2 * BYTES  # the budget bound: more than two hours' worth
    assert served[-1].time - served[0].time > 2 * HOUR
    per_worker = next(line for line in result.stderr.splitlines() if "files per worker:" in line)
    assert per_worker.count("tcp://") == 2, per_worker
    expected = done_files(read_photos(out), WORLD)
    assert len(expected) >= 25
    assert {path: (out / path).read_bytes() for path in expected} == expected


def test_a_worker_killed_mid_run_then_the_same_command_stores_every_object_once_byte_exact(
    sim, paged, s3, local_cluster, tmp_path
):
    """With every budget on (booked on the scheduler, so the kill loses none of them), a
    worker killed while it runs a shard and holds the result of one it finished, the driver
    awaiting that result: the lost result's shard runs again and finds its files stored
    (none fetched twice), the run goes on without the worker, and the same command finds
    every object once, byte-exact."""
    from distributed import Client

    s3.create_bucket(Bucket="photos")
    out = copy_paged(paged, tmp_path)
    cluster = local_cluster.scheduler_address
    command = [
        "photos", str(out), "--scheduler", cluster, "--store", "s3://photos/inat",
        "--storage-option", f"endpoint_url={s3.endpoint}", *KEYS, "--shard-files", "8", "--workers", "2",
        "--media-rpm", "100000", "--budget-window-scale", str(MINUTE / 60),
    ]  # fmt: skip
    sim.photo_latency = 0.05  # a shard takes a while: the kill lands inside one
    try:
        with Client(cluster) as client, holding_a_result(local_cluster.scheduler) as (finished, held, let_go):
            pids = client.run(os.getpid)
            before = len(sim.log)
            child = start_cli(tmp_path, *command)
            _wait_until(held.is_set, child)
            holder = client.run_on_scheduler(_holder_of, key=finished[0])
            _wait_until(lambda: client.run_on_scheduler(_processing_on, address=holder), child)
            killed_at = len(_photo_log(sim, before))
            os.kill(pids[holder], signal.SIGKILL)
            let_go.set()
            _, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        assert len(_photo_log(sim, before)) > killed_at  # the run went on after the kill
        # The lost result's shard (of the first 4 submitted: 8 files) ran again and found them.
        assert json.loads((out / "summary.json").read_text())["files_found"] >= 8, err
        again = run_here(tmp_path, *command)
    finally:
        sim.photo_latency = 0.0
    assert again.returncode == 0, again.stderr
    photos = read_photos(out)
    assert photo_statuses(photos) == photo_statuses(read_photos(paged / "here"))
    # Each object once (a key twice would be listed twice), byte-exact, and nothing else.
    assert sorted(_objects(s3, "photos", "inat/")) == sorted(done_files(photos, WORLD).items())


def test_the_main_command_pages_here_and_downloads_on_the_cluster_each_worker_in_its_own_budget(
    sim, paged, cluster, tmp_path
):
    """--budget-scope worker (a worker an IP): each worker keeps the request budget alone, so
    the bucket sees up to twice it from two workers, never more, and more than once it."""
    out = tmp_path / "o"
    before = len(sim.log)
    result = run_here(
        tmp_path, "--place", "3001", "--api-url", sim.api_url, "--out", str(out), "--scheduler", cluster,
        "--shard-files", "4", "-v", "--budget-scope", "worker", "--media-rpm", str(RPM),
        "--budget-window-scale", str(MINUTE / 60), "--api-rpm", "100000", "--sizes", "square",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    per_worker = next(line for line in result.stderr.splitlines() if "files per worker:" in line)
    assert per_worker.count("tcp://") == 2, per_worker
    bucket = [r.time for r in _photo_log(sim, before) if r.host == "open"]
    assert len(bucket) > 2 * RPM  # square files alone: enough to need both workers' budgets
    assert RPM < max_in_window(bucket, MINUTE) <= 2 * RPM
    _squares_stored(out, paged, out)


def test_a_cluster_left_without_any_worker_ends_the_run_with_one_line_and_the_next_run_finishes(
    sim, paged, cluster, tmp_path
):
    """The driver once waited on the cluster for ever: now a cluster with no worker left for
    --worker-wait seconds ends the run (exit 1, one line), keeping every file recorded."""
    from distributed import LocalCluster

    out, store = copy_paged(paged, tmp_path), tmp_path / "store"
    options = ["--store", str(store), "--no-limits", "--shard-files", "4", "--workers", "1"]
    options += ["--sizes", "square"]
    with LocalCluster(n_workers=1, processes=False, protocol="tcp://", dashboard_address=":0") as doomed:
        sim.photo_latency = 0.05  # a shard takes a while: the worker leaves inside the run
        try:
            before = len(sim.log)
            child = start_cli(tmp_path, "photos", str(out), "--scheduler", doomed.scheduler_address,
                              "--worker-wait", "1", *options)  # fmt: skip
            _wait_for_photos(sim, before, child, 6)
            doomed.scale(0)  # its only worker leaves; none comes back
            _, err = child.communicate(timeout=60)
        finally:
            sim.photo_latency = 0.0
    assert child.returncode == 1, err
    assert f"no Dask worker at {doomed.scheduler_address} for 1 s (--worker-wait)" in _one_error(err)
    # Said as it happened, not only once the wait was over.
    assert re.search(r"the Dask worker tcp://\S+ left the cluster: its tasks run again on another", err), err
    assert "no Dask worker left: waiting up to 1 s for one (--worker-wait)" in err
    done = _recorded_done(out)
    assert {path: (store / path).read_bytes() for path in done} == done  # what it recorded is stored
    again = run_here(tmp_path, "photos", str(out), "--scheduler", cluster, *options)
    assert again.returncode == 0, again.stderr
    _squares_stored(out, paged, store)


def test_tasks_the_scheduler_cancels_mid_run_are_submitted_again_and_the_run_ends_complete(
    sim, paged, local_cluster, tmp_path
):
    """A task lost to the driver (here cancelled on the scheduler by another client) is
    submitted again, not taken as a result nor waited on for ever: tasks cancelled as they
    run, and one cancelled after it finished, while the driver awaits its result (held back
    by the scheduler until then)."""
    from distributed import Client, Future

    out, cluster = copy_paged(paged, tmp_path), local_cluster.scheduler_address
    sim.photo_latency = 0.05
    try:
        with holding_a_result(local_cluster.scheduler) as (finished, held, let_go):
            child = start_cli(tmp_path, "photos", str(out), "--scheduler", cluster, "--no-limits",
                              "--sizes", "square", "--shard-files", "4", "--workers", "1")  # fmt: skip
            _wait_until(held.is_set, child)
            with Client(local_cluster) as other:
                running = other.run_on_scheduler(_running_photo_tasks)
                assert running
                other.cancel([Future(key, other) for key in [*running, *finished]], force=True)
            let_go.set()
            _, err = child.communicate(timeout=60)
    finally:
        sim.photo_latency = 0.0
    assert child.returncode == 0, err
    assert "submitted again: the scheduler cancelled it" in err
    assert "submitted again: its result did not come (FutureCancelledError)" in err
    _squares_stored(out, paged, out)


def test_ctrl_c_to_the_issues_command_says_one_line_leaves_no_worker_and_the_same_command_stores_every_file(
    sim, paged, s3, cluster, tmp_path
):
    """`photos OUT --scheduler local:2 --store s3://bucket/prefix --storage-option
    endpoint_url=http://127.0.0.1:PORT` (a LocalCluster of its own, objects in moto's S3),
    stopped by Ctrl-C at a terminal: SIGINT to the whole process group, the driver and its
    Dask workers. Exit 130 with one line, no traceback (there were thousands of lines of
    Dask's), no worker left; then the same command stores every file byte-exact, with the
    photos.csv statuses of a local run."""
    s3.create_bucket(Bucket="bucket")
    out = copy_paged(paged, tmp_path)
    command = [
        "photos", str(out), "--scheduler", "local:2", "--store", "s3://bucket/prefix",
        "--storage-option", f"endpoint_url={s3.endpoint}", *KEYS, "--no-limits", "--shard-files", "8",
    ]  # fmt: skip
    ctrl_c = lambda child: os.killpg(child.pid, signal.SIGINT)  # noqa: E731
    err, workers = _stopped(sim, tmp_path, [*command, "-q"], ctrl_c)
    _stopped_cleanly(err, workers)
    # The same command, on the module's cluster (a third local:2 start would add seconds only).
    again = run_here(tmp_path, *[cluster if word == "local:2" else word for word in command])
    assert again.returncode == 0, again.stderr
    photos = read_photos(out)
    assert photo_statuses(photos) == photo_statuses(read_photos(paged / "here"))
    assert sorted(_objects(s3, "bucket", "prefix/")) == sorted(done_files(photos, WORLD).items())
    assert "photo files in s3://bucket/prefix: " in again.stdout
    assert not (out / "manifest").exists()  # spent once every shard's outcomes are in the state


def test_a_local_clusters_worker_leaves_ctrl_c_to_the_driver_and_says_nothing_of_dasks_after_it(
    local_cluster,
):
    """A worker of a `local:N` cluster (its preload run here in one of the module's) gets the
    terminal's SIGINT with its driver: it neither stops (the driver closes the cluster) nor
    says anything more of Dask's as the cluster closes under it (a heartbeat's CommClosedError
    was printed after the run's one line)."""
    from distributed import Client

    from inat_async.cluster.preload import dask_setup

    def speaks() -> bool:
        return logging.getLogger("distributed.worker").isEnabledFor(logging.ERROR)

    with Client(local_cluster) as client:
        worker = next(iter(client.scheduler_info()["workers"]))
        pid = client.run(os.getpid, workers=[worker])[worker]
        client.run(dask_setup, None, workers=[worker])
        assert client.run(speaks, workers=[worker]) == {worker: True}
        os.kill(pid, signal.SIGINT)
        deadline = time.monotonic() + 10
        while client.run(speaks, workers=[worker])[worker] and time.monotonic() < deadline:
            time.sleep(0.02)
        assert client.run(speaks, workers=[worker]) == {worker: False}
        assert client.submit(os.getpid, workers=[worker], pure=False).result() == pid  # still there


def test_sigterm_to_the_driver_alone_stops_its_local_cluster_at_once_keeping_every_file_it_recorded(
    sim, paged, tmp_path
):
    """SIGTERM to the driver of a `--scheduler local:2` run (its workers not signalled), sent
    while the driver awaits a finished task's result: the same one line and exit status as
    Ctrl-C (the cancel was once taken for a lost result, the shard submitted again and the run
    gone on to exit 0), its workers gone, every file the state says is done is stored; then
    the same command without --scheduler (here, in this process) finishes the rest and removes
    the manifest the stopped run left in OUT (it stayed there for ever)."""
    out, store = copy_paged(paged, tmp_path), tmp_path / "store"
    options = ["--store", str(store), "--no-limits", "--shard-files", "4", "--workers", "2"]
    options += ["--sizes", "square"]
    err, workers = _stopped(sim, tmp_path, ["photos", str(out), "--scheduler", "local:2", *options, "-q"],
                            lambda child: child.send_signal(signal.SIGTERM), hold=True)  # fmt: skip
    _stopped_cleanly(err, workers)
    done = _recorded_done(out)
    here = read_photos(paged / "here")
    assert len(done) < len(done_files(here[here["size"] == "square"], WORLD))  # stopped part way
    assert {path: (store / path).read_bytes() for path in done} == done  # every file recorded is stored
    assert (out / "manifest").is_dir()  # the stopped run's shards
    before = len(sim.log)
    again = run_here(tmp_path, "photos", str(out), *options)
    assert again.returncode == 0, again.stderr
    assert not (out / "manifest").exists()
    _squares_stored(out, paged, store)
    photos = read_photos(out)
    # Files stored by the stopped shards are found, not counted as fetched: the bytes fetched
    # are those the simulator served this run.
    served = [r for r in _photo_log(sim, before) if r.status == 200]
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["files_fetched"], summary["bytes_this_run"]) == (
        len(served),
        sum(r.nbytes for r in served),
    )
    assert summary["files_found"] == len(photos.query("status == 'done'")) - len(done) - len(served)


def test_files_stored_but_not_recorded_are_found_on_the_workers_and_said_found_not_fetched(
    sim, paged, cluster, tmp_path
):
    """Every file of a finished folder stored, the state's rows pending again (a driver killed
    before it recorded them): the workers find each file, fetch none, and the summary and the
    live photos bar say so (it counted their bytes as fetched this run; the bar said nothing)."""
    out = tmp_path / "o"
    shutil.copytree(paged / "here", out)
    found = pending_again(out)
    before = len(sim.log)
    again = ["photos", str(out), "--scheduler", cluster, "--no-limits"]
    code, output = run_in_terminal(tmp_path, *again, columns=120)
    assert code == 0, output
    assert _photo_log(sim, before) == []
    summary = json.loads((out / "summary.json").read_text())
    assert (
        (summary["files_fetched"], summary["bytes_this_run"], summary["files_found"])
        == (0, 0, found)
        != (0, 0, 0)
    )
    screen = terminal_screen(output, 120)
    photos, files = bar_line(screen, "photos"), len(read_photos(out))  # the live bar says them too
    assert re.search(rf"━ +{files}/{files} +0 MB, {found} found already stored +done$", photos), photos
    assert f"0 photo files fetched (0.0 MB), {found} found already stored" in " ".join(screen)
    assert photo_statuses(read_photos(out)) == photo_statuses(read_photos(paged / "here"))


def _squares_stored(out: Path, paged: Path, store: Path) -> dict[str, bytes]:
    """Check that the square-only photo run in ``out`` ended with a local run's photos.csv
    statuses and every done file byte-exact under ``store``; returns those files by path."""
    photos, here = read_photos(out), read_photos(paged / "here")
    assert photo_statuses(photos) == photo_statuses(here[here["size"] == "square"])
    expected = done_files(photos, WORLD)
    assert {path: (store / path).read_bytes() for path in expected} == expected
    return expected


def _recorded_done(out) -> dict[str, bytes]:
    """The bytes each file the state records as done must hold (photos.csv is the next run's)."""
    with sqlite3.connect(out / "harvest.sqlite") as db:
        rows = db.execute("SELECT path, photo_id, size FROM photos WHERE status = 'done'").fetchall()
    return {path: WORLD.photo_bytes(photo_id, size) for path, photo_id, size in rows}


def _stopped(sim, tmp_path, args: list[str], stop, hold: bool = False) -> tuple[str, list]:
    """The CLI started in a process group of its own (as a terminal starts it), stopped by
    ``stop(child)`` once photos flow, or with ``hold`` once the driver awaits a finished
    task's result (its `local:N` scheduler holds back the first, see dask_hold.py): its
    stderr, and the processes it had started."""
    import psutil

    env = cli_env(tmp_path)
    if hold:
        env["DASK_DISTRIBUTED__SCHEDULER__PRELOAD"] = json.dumps([dask_hold.__file__])
    sim.photo_latency = 0.05  # a shard takes a while: the stop lands inside the run
    try:
        before = len(sim.log)
        child = subprocess.Popen(
            [sys.executable, "-m", "inat_async", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env=env, cwd=tmp_path, process_group=0,
        )  # fmt: skip
        if hold:
            _wait_until((tmp_path / dask_hold.HELD).exists, child)
        else:
            _wait_for_photos(sim, before, child, 8)
        workers = psutil.Process(child.pid).children(recursive=True)
        stop(child)
        _, err = child.communicate(timeout=60)
    finally:
        sim.photo_latency = 0.0
    assert child.returncode == 130, err
    return err, workers


def _stopped_cleanly(err: str, workers: list) -> None:
    """One line (-q: no progress lines), nothing after it or before it (no traceback, no line
    of Dask's as its comms close: a worker's heartbeat CommClosedError was seen after it), and
    no process of the run left."""
    import psutil

    assert err.strip().splitlines() == [f"inat-async: interrupted; {KEPT}"], err
    assert workers  # the LocalCluster's worker processes
    _, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive, alive


def test_a_photo_host_that_stalls_mid_body_holds_no_cluster_task_past_the_files_deadline(
    sim, paged, cluster, tmp_path
):
    """A worker was seen stuck for minutes on a photo socket: a photo host that sends half a
    body and then nothing (for 60 s here) costs an attempt its deadline (--timeout, then a
    minimum throughput), as on one machine; the file is tried again and the run ends as usual."""
    from inat_async.simulator import Faults

    out = copy_paged(paged, tmp_path)
    sim.faults = Faults(slow_delay=60.0)
    sim.faults.inject("photo", "stall", "stall")
    try:
        before = len(sim.log)
        child = start_cli(tmp_path, "photos", str(out), "--scheduler", cluster, "--no-limits",
                          "--sizes", "square", "--timeout", "1", "--retry-wait", "0.05")  # fmt: skip
        _, err = child.communicate(timeout=30)  # the stalls would hold it a minute
    finally:
        sim.faults = None
    assert child.returncode == 0, err
    assert [r.fault for r in _photo_log(sim, before)].count("stall") == 2
    _squares_stored(out, paged, out)


def _holder_of(dask_scheduler, key: str) -> str:
    """The address of the worker holding a finished task's result."""
    (holder,) = dask_scheduler.tasks[key].who_has
    return holder.address


def _processing_on(dask_scheduler, address: str) -> bool:
    """Whether the worker at ``address`` runs a photo task."""
    return any(str(task.key).startswith("inat-") for task in dask_scheduler.workers[address].processing)


def _running_photo_tasks(dask_scheduler) -> list[str]:
    return [key for key, task in dask_scheduler.tasks.items() if str(key).startswith("inat-")
            and task.state == "processing"]  # fmt: skip


def _one_error(err: str) -> str:
    """The one error line a run ended with, and no traceback before it."""
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("inat-async: error:")]
    assert len(errors) == 1, err
    return errors[0]


def _wait_for_photos(sim, since: int, child, count: int) -> None:
    """Until ``count`` photo requests came since log entry ``since`` (or the run ended)."""
    _wait_until(lambda: len(_photo_log(sim, since)) >= count, child)


def _wait_until(ready, child) -> None:
    """Until ``ready()`` (or the run ended: then its stderr is said)."""
    deadline = time.monotonic() + 60
    while not ready() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert child.poll() is None, f"the run ended before it was stopped: {child.communicate()[1]}"


def test_shards_are_cut_so_that_every_worker_thread_gets_two():
    """1,479 files on 2 threads went in one shard of 2,000, to one thread: now four of 370."""
    from inat_async.cluster.driver import shard_files

    assert shard_files(1_479, threads=2, most=2_000) == 370
    assert shard_files(50, threads=4, most=2_000) == 100  # a task has its cost: not fewer
    assert shard_files(1_000_000, threads=8, most=2_000) == 2_000
    assert shard_files(1_479, threads=2, most=4) == 4  # --shard-files is the most


def test_the_driver_shows_the_files_of_a_shard_while_its_task_runs_and_the_waits_of_its_workers(
    sim, paged, cluster, tmp_path, caplog
):
    """One shard, its task paced by a binding photo budget for seconds: the driver's progress
    lines count its files as they come (the task's reports, Dask events), not all at once
    when its table comes, and the summary names the budget that held the workers."""
    from inat_async.api import photos
    from inat_async.config import Budgets

    out = copy_paged(paged, tmp_path)
    with caplog.at_level(logging.INFO, logger="inat_async"):
        summary = asyncio.run(
            photos(
                out, scheduler=cluster, sizes="square", budgets=Budgets(media_rpm=RPM, minute=MINUTE),
                budget_file=tmp_path / "budget.sqlite", progress_interval=0.2,
            )
        )  # fmt: skip
    said = [r.getMessage() for r in caplog.records]
    assert any(" files in 1 shards on " in line for line in said), said
    counts = [
        int(m.group(1).replace(",", "")) for line in said if (m := re.search(r"\| photos ([\d,]+)/", line))
    ]
    # Before the task's table came, its files were not counted: a count between none of them
    # and all of them was seen while the only task ran, and none ever went back.
    finished = sum(summary.photos.values()) - summary.photos.get(PhotoStatus.PENDING, 0)
    before = finished - summary.files_fetched
    assert any(before < n < finished for n in counts), (before, counts, finished)
    assert counts == sorted(counts) and counts[-1] <= finished
    held = {budget: s for budget, s in summary.waiting.items() if "photo requests" in budget}
    assert held and sum(held.values()) > MINUTE, summary.waiting


def test_a_store_that_stalls_then_refuses_puts_holds_no_cluster_task_and_stops_the_run_in_one_line(
    s3, paged, cluster, tmp_path
):
    """The object store's faults on the cluster. A PUT that is never answered held the task's
    end (its store's threads waited on s3fs's own timeouts, minutes): now each file's PUT is
    bounded, the files are `failed` (not done) and the run ends. A store that refuses every
    PUT (403) stops the run at once in one line, the error carried from the worker; once the
    store takes writes again, the same command stores every file byte-exact."""
    from fakes3 import S3Front, s3_error

    s3.create_bucket(Bucket="faults")
    out = copy_paged(paged, tmp_path)
    with S3Front(s3.endpoint) as front:
        args = ["photos", str(out), "--scheduler", cluster, "--no-limits", "--sizes", "square",
                "--retry-wait", "0.01", "--store", "s3://faults/run", "--storage-option",
                f"endpoint_url={front.url}", *KEYS]  # fmt: skip
        front.on_put = lambda path: "stall"
        stalled = run_cli(tmp_path, *args, "--timeout", "0.3", timeout=60)  # a hang guard
        assert stalled.returncode == 3, stalled.stderr
        photos = read_photos(out).query("status != 'skipped'")  # placeholders: never fetched
        assert set(photos.status) == {"failed"} and 1 <= front.stalled <= 5 * len(photos)
        # Each failed at its stalled PUT, or (a busy machine) at its GET under the same 0.3 s.
        stalled_put = photos.reason.str.startswith("the store did not answer a PUT (within 0.3")
        slow_get = photos.reason.str.match(r"^(timed out|too slow)")
        assert stalled_put.any() and (stalled_put | slow_get).all(), list(photos.reason)
        front.release()
        front.on_put = lambda path: s3_error(403, "AccessDenied", "Access Denied")
        refused = run_here(tmp_path, *args)
        assert refused.returncode == 8, refused.stderr
        assert _one_error(refused.stderr).startswith(
            "inat-async: error: s3://faults/run refuses a PUT (access denied: Access Denied): check its "
            "credentials (--storage-option key and secret, or profile)"
        )
        front.release()
        again = run_here(tmp_path, *args)
    assert again.returncode == 0, again.stderr
    photos = read_photos(out)
    assert set(photos.status) == {"done", "skipped"}
    assert dict(_objects(s3, "faults", "run/")) == done_files(photos, WORLD)


def test_a_relative_out_or_store_names_the_folder_where_the_command_runs_not_each_workers(
    sim, paged, cluster, tmp_path
):
    """The module's workers run in this test process' folder, not the command's: a relative
    OUT (the default store) and a relative --store are the command's folders, as in a local
    run; nothing is written where the workers run."""
    workers_folder = Path.cwd()
    out = copy_paged(paged, tmp_path)
    shutil.copytree(out, tmp_path / "o2")
    for args, store in ((["o"], out), (["o2", "--store", "kept"], tmp_path / "kept")):
        result = run_here(
            tmp_path, "photos", *args, "--scheduler", cluster, "--sizes", "square", "--no-limits"
        )
        assert result.returncode == 0, result.stderr
        _squares_stored(tmp_path / args[0], paged, store)
    assert not (workers_folder / "o").exists() and not (workers_folder / "kept").exists()


def test_workers_that_cannot_import_inat_async_end_the_run_at_once_in_one_line(sim, paged, tmp_path):
    """A worker without the package dies on its first task, and the driver would wait
    --worker-wait (5 minutes) for workers that die again, then advise starting some: it asks
    each worker first, and says what to install."""
    from distributed import LocalCluster

    # Its path, never imported here: importing it hides inat_async from this process too (every
    # later test of the process failed with No module named 'inat_async').
    without_us = str(Path(__file__).with_name("dask_without_us.py"))
    out = copy_paged(paged, tmp_path)
    with LocalCluster(
        n_workers=1, processes=True, dashboard_address=":0", preload=[without_us],
        silence_logs=logging.CRITICAL,
    ) as lacking:  # fmt: skip
        result = run_here(tmp_path, "photos", str(out), "--scheduler", lacking.scheduler_address)
    said = result.stderr.strip().splitlines()
    assert result.returncode == 1, result.stderr
    assert said[-1].startswith("inat-async: error: 1 of the 1 Dask workers at tcp://"), said
    assert "cannot run inat_async" in said[-1] and "No module named 'inat_async" in said[-1]
    assert "Traceback" not in result.stderr
    assert set(read_photos(out)["status"]) <= {"pending", "skipped"}  # nothing said done


def test_an_address_where_no_dask_scheduler_answers_is_said_in_one_line(sim, paged, tmp_path):
    """The simulator's API port speaks HTTP, not Dask's protocol (Dask took its bytes for a
    frame of 3 EiB and raised a MemoryError in a traceback of 76 lines)."""
    out = copy_paged(paged, tmp_path)
    address = sim.api_url.replace("http://", "tcp://").split("/v1")[0]
    result = run_here(tmp_path, "photos", str(out), "--scheduler", address)
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"inat-async: error: no Dask scheduler answers at {address}: what answers there is not a Dask "
        "scheduler (MemoryError); start one there (dask scheduler) or give its address, then run the "
        "same command again"
    )
    assert "Traceback" not in result.stderr


def test_budget_scope_worker_on_a_local_cluster_is_warned_of(paged, tmp_path):
    """Its worker processes share this machine's IP: each with the whole budget, together they
    would send more than iNaturalist allows one."""
    out = tmp_path / "done"
    shutil.copytree(paged / "here", out)  # every file fetched: no cluster is started
    result = run_here(tmp_path, "photos", str(out), "--scheduler", "local:2", "--budget-scope", "worker")
    assert result.returncode == 0, result.stderr
    assert "--budget-scope worker on a local cluster: its worker processes share this machine's IP" in (
        result.stderr
    )
    assert "local cluster" not in run_here(tmp_path, "photos", str(out), "--scheduler", "local:2").stderr


def test_an_ip_block_met_on_a_local_cluster_is_said_in_one_line_not_with_dasks_tracebacks(
    sim, paged, tmp_path
):
    """A photo host answers that the IP is blocked, budgets on (leases held and waited for):
    exit 4 and its one line. Every such run printed Dask's "Compute Failed" of the task that
    met it, with its traceback, and most an unseen "cannot schedule new futures" or a lease's
    "Release failed" as the cluster closed."""
    out = copy_paged(paged, tmp_path)
    sim.blocked = True
    try:
        result = run_cli(tmp_path, "photos", str(out), "--scheduler", "local:2", timeout=120)
    finally:
        sim.blocked = False
    assert result.returncode == 4, result.stderr
    *said, last = result.stderr.strip().splitlines()
    assert "blocked" in last
    # Said before the seconds the processes take to start, while the bars stand still.
    assert any(line.endswith("INFO starting a local Dask cluster of 2 worker processes") for line in said)
    assert all(re.match(r"\d\d:\d\d:\d\d (INFO|WARNING) ", line) for line in said), result.stderr
