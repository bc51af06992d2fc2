"""Set up in each worker process of a LocalCluster the driver starts (a Dask preload).

Those workers share the driver's process group, so Ctrl-C at a terminal reaches them too: each
would stop on its own, with its tracebacks, while the driver stops them anyway when it closes
the cluster. They leave SIGINT to the driver, and say nothing more of Dask's: what a worker
logs while its cluster closes under it (a heartbeat's CommClosedError) is no news to the
user, who was told the run was interrupted. Nor do they log, with its traceback, a task that
ended the run on purpose (a HarvestError: an IP block, a store refusing writes): the driver
says it in one line.
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
    logging.getLogger("distributed.worker").addFilter(not_a_run_ending_error)


def not_a_run_ending_error(record: logging.LogRecord) -> bool:
    """False for Dask's "Compute Failed" record of a task that raised a HarvestError (its
    exception's text, as distributed.worker logs it, starts with the class's name)."""
    if not str(record.msg).startswith("Compute Failed") or not isinstance(record.args, tuple):
        return True
    said = [str(arg) for arg in record.args]
    return not any(text.startswith(_run_ending()) for text in said)


def _run_ending() -> tuple[str, ...]:
    from inat_async.errors import HarvestError

    classes: list[type[HarvestError]] = [HarvestError]
    for kind in classes:
        classes.extend(kind.__subclasses__())
    return tuple(f"{kind.__name__}(" for kind in classes)


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
