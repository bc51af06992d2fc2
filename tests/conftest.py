"""The tests' fixtures: simulators on loopback, shared by a module's tests where they can
share one, or started for a test of its own (faults, limits, latency). Helpers that are not
fixtures are in helpers.py."""

from __future__ import annotations

import contextlib
import logging
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import local, run_here

from inat_async.simulator import SimulatorThread, World

# A test run started in the background (`cmd &` in a script, nohup) inherits SIGINT ignored,
# and so would every harvest it starts: Ctrl-C is tested as a terminal delivers it.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def start_simulator() -> Iterator[Callable[..., SimulatorThread]]:
    """A factory for a test that needs a simulator of its own: ``start_simulator(world,
    **options)`` (faults, limits, latency, as SimulatorThread takes them) starts one, and
    every one it started is stopped when the test ends."""
    with contextlib.ExitStack() as running:

        def start(world: World, **options: Any) -> SimulatorThread:
            return running.enter_context(SimulatorThread(world, **options))

        yield start


@pytest.fixture(scope="module")
def module_simulator(request: pytest.FixtureRequest) -> Iterator[SimulatorThread]:
    """One simulator of the module's ``WORLD``, shared by the module's tests."""
    with SimulatorThread(request.module.WORLD) as sim:
        yield sim


@pytest.fixture(scope="module")
def sim(module_simulator: SimulatorThread) -> SimulatorThread:
    """The module's simulator (module_simulator), for a module that defines no ``sim`` of its own."""
    return module_simulator


@pytest.fixture(scope="module")
def paged(
    sim: SimulatorThread, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The module's WORLD (its first place) paged with --no-photos into ``paged/paged``, once
    for the module: each test copies it (helpers.copy_paged) and runs a photo stage on it."""
    base = tmp_path_factory.mktemp("paged")
    place = str(request.module.WORLD.place_ids[0])
    result = run_here(base, "--place", place, *local(sim, base / "paged", "--no-photos"))
    assert result.returncode == 0, result.stderr
    return base


@pytest.fixture
def shared_sim(module_simulator: SimulatorThread) -> SimulatorThread:
    """The module's simulator as a new one starts: no faults, nothing hidden, ascending
    order, not blocked, an empty request log (what an earlier test set is undone)."""
    sim = module_simulator
    sim.faults = None
    sim.hidden.clear()
    sim.descending = False
    sim.blocked = False
    sim.violations = 0
    sim.clear_log()
    return sim


@pytest.fixture(scope="module")
def s3() -> Iterator[Any]:
    """moto's S3 server on 127.0.0.1 (a port of its own, for the module) and a boto3 client
    of it, its address as ``client.endpoint``; any key and secret are taken."""
    boto3 = pytest.importorskip("boto3")
    server_module = pytest.importorskip("moto.server")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line a request otherwise
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        client = boto3.client(
            "s3",
            endpoint_url=f"http://{host}:{port}",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )
        client.endpoint = f"http://{host}:{port}"
        yield client
    finally:
        server.stop()
