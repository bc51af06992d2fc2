"""Offline simulator of the iNaturalist v1 API and its two photo hosts.

Tests, benchmarks and users trying the harvester offline run it on 127.0.0.1::

    world = World({128892: 5_000, 1001: 2_000}, seed=1)
    async with Simulator(world, faults=Faults(api={"500": 0.02})) as sim:
        ...  # harvest from sim.api_url; photo URLs point at sim.hosts

or from a shell: ``python -m inat_async.simulator --places 128892``.
"""

from .faults import FAULT_KINDS, ByteLimit, Faults, RateLimit, byte_violations, max_in_window, violations
from .query import QueryError
from .server import Request, Simulator
from .thread import SimulatorThread
from .world import Page, PhotoInfo, World

__all__ = [
    "FAULT_KINDS",
    "ByteLimit",
    "Faults",
    "Page",
    "PhotoInfo",
    "QueryError",
    "RateLimit",
    "Request",
    "Simulator",
    "SimulatorThread",
    "World",
    "byte_violations",
    "max_in_window",
    "violations",
]
