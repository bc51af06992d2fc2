"""Set up in each worker process of a LocalCluster the driver starts (a Dask preload).

Those workers share the driver's process group, so Ctrl-C at a terminal reaches them too: each
would stop on its own, with its tracebacks, while the driver stops them anyway when it closes
the cluster. They leave SIGINT to the driver.
"""

from __future__ import annotations

import signal
from typing import Any


def dask_setup(worker: Any) -> None:
    """Dask calls it as the worker starts, in the worker process's main thread."""
    del worker
    signal.signal(signal.SIGINT, signal.SIG_IGN)
