"""Set up in each worker process of a LocalCluster the driver starts (a Dask preload).

Those workers share the driver's process group, so Ctrl-C at a terminal reaches them too: each
would stop on its own, with its tracebacks, while the driver stops them anyway when it closes
the cluster. They leave SIGINT to the driver, and say nothing more of Dask's: what a worker
logs while its cluster closes under it (a heartbeat's CommClosedError) is no news to the
user, who was told the run was interrupted.
"""

from __future__ import annotations

import logging
import signal
from types import FrameType
from typing import Any


def dask_setup(worker: Any) -> None:
    """Dask calls it as the worker starts, in the worker process's main thread."""
    del worker
    signal.signal(signal.SIGINT, _quiet_on_interrupt)


def _quiet_on_interrupt(signum: int, frame: FrameType | None) -> None:
    del signum, frame
    quiet_dask()


def quiet_dask() -> None:
    """Dask's loggers (``distributed`` and each of its own) say nothing more in this process:
    a run that stops (Ctrl-C, SIGTERM, an error) said so in one line, and what Dask logs as
    its cluster closes under it is not the user's news."""
    silent = logging.CRITICAL + 1
    names = [name for name in logging.Logger.manager.loggerDict if name.startswith("distributed.")]
    for name in ["distributed", *names]:
        logging.getLogger(name).setLevel(silent)
