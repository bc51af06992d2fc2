"""A hostile host on 127.0.0.1 for the tests: every GET is answered by a handler the test gives
(trickled bodies, bombs, mislabelled images), in a thread of its own."""

from __future__ import annotations

import asyncio
import threading
import zlib
from collections.abc import Awaitable, Callable
from typing import Self

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class LoopServer:
    """An aiohttp server on 127.0.0.1 in a thread of its own, for ``with``: serves at
    ``self.url`` once entered; a subclass gives its routes, and what it opens and closes in
    the server's loop."""

    def __init__(self) -> None:
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _app(self) -> web.Application:
        raise NotImplementedError

    async def _opened(self) -> None:
        """Run in the server's loop before it serves."""

    async def _closing(self) -> None:
        """Run in the server's loop once it stops serving."""

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._opened())
        runner = web.AppRunner(self._app(), access_log=None, shutdown_timeout=0.1)
        self._loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            self._loop.run_until_complete(self._closing())
            self._loop.run_until_complete(runner.cleanup())
            self._loop.close()

    def __enter__(self) -> Self:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *_: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


class FakeHost(LoopServer):
    """``with FakeHost(handler) as host:`` serves at ``host.url``; ``host.requests`` counts."""

    def __init__(self, handler: Handler):
        super().__init__()
        self.handler = handler
        self.requests = 0

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        return await self.handler(request)

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._serve)
        return app


def trickle(body: bytes, *, every: float, step: int = 1, headers: dict[str, str] | None = None) -> Handler:
    """A 200 answer whose body comes ``step`` bytes every ``every`` seconds, forever if the
    client waits (the body repeats)."""

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=200, headers=headers or {})
        await response.prepare(request)
        position = 0
        while True:
            await response.write(body[position : position + step] or b" ")
            position = (position + step) % max(1, len(body))
            await asyncio.sleep(every)

    return handler


def gzip_bomb(inflated: int) -> bytes:
    """A gzip stream of ``inflated`` zero bytes, built without inflating it: a full flush
    makes every further megabyte compress to the same block. (Its trailer is left out: a
    reader with a cap never gets that far.)"""
    megabyte = bytes(1 << 20)
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    first = packer.compress(megabyte) + packer.flush(zlib.Z_FULL_FLUSH)
    again = packer.compress(megabyte) + packer.flush(zlib.Z_FULL_FLUSH)
    return first + again * (inflated // len(megabyte) - 1)
