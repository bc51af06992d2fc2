"""Running a :class:`Simulator` in a background thread, for synchronous code.

Plain pytest functions, benchmarks and tests that drive the harvester as a subprocess need the
simulator serving while the calling thread blocks; this wrapper runs it on its own event loop in
a daemon thread and forwards attribute reads and writes to it.
"""

from __future__ import annotations

import asyncio
import threading
from types import TracebackType
from typing import Any

from .server import Request, Simulator
from .world import World

_OWN = frozenset({"_sim", "_loop", "_thread", "_ready", "_error"})


class SimulatorThread:
    """``with SimulatorThread(world, **simulator_kwargs) as sim:`` — a Simulator in a thread.

    Reading an attribute reads the running :class:`Simulator`'s (``api_url``, ``hosts``,
    ``violations``, ``log`` — a copy…); assigning one (``sim.blocked = True``,
    ``sim.faults = Faults(...)``) sets it on the simulator.
    """

    def __init__(self, world: World, **kwargs: Any) -> None:
        self._sim = Simulator(world, **kwargs)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self) -> SimulatorThread:
        """Start serving; returns when the listeners are bound (or raises their error)."""
        self._thread = threading.Thread(target=self._run, name="inat-simulator", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._sim.start())
        except BaseException as exc:  # reported to the starting thread
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self._sim.stop())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def stop(self) -> None:
        """Stop serving and wait for the thread to end."""
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
        self._thread = None

    @property
    def log(self) -> list[Request]:
        """A copy of the request log, in arrival order (copying a list is atomic under the GIL)."""
        return self._sim.log

    def __getattr__(self, name: str) -> Any:
        if name in _OWN:
            raise AttributeError(name)
        return getattr(self._sim, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _OWN:
            object.__setattr__(self, name, value)
        else:
            setattr(self._sim, name, value)

    def __enter__(self) -> SimulatorThread:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
