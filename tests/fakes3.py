"""An S3 endpoint that misbehaves, for the tests: a proxy on 127.0.0.1 in front of moto's
server that passes every request on, except the PUTs and DELETEs of objects the test tells it
to stall (the request read, never answered) or to answer with an S3 error. In a thread of its own."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import aiohttp
from aiohttp import web
from fakehost import LoopServer

#: Headers of a hop, not of the message: never passed on as they came.
_HOP = {"host", "content-length", "transfer-encoding", "connection", "expect", "keep-alive"}


def s3_error(status: int, code: str, message: str) -> web.Response:
    """An error as S3 answers it: its status and an XML body naming its code."""
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message><RequestId>fake</RequestId></Error>"
    )
    return web.Response(status=status, body=body.encode(), content_type="application/xml")


class S3Front(LoopServer):
    """``with S3Front(moto_url) as front:`` serves at ``front.url``. Each PUT of an object
    goes through ``front.on_put`` (None: passed on), which returns what to do with it:
    None to pass it on, "stall" to never answer, or a response to answer with; each DELETE
    of an object through ``front.on_delete`` alike; with ``stall_listings`` every listing is
    never answered. Stalled requests are let go
    (answered 503) when the front stops or ``release()`` is called."""

    def __init__(self, upstream: str):
        super().__init__()
        self.upstream = upstream.rstrip("/")
        self.on_put: Callable[[str], web.Response | str | None] | None = None
        self.on_delete: Callable[[str], web.Response | str | None] | None = None
        self.stall_listings = False  # hold every listing (a GET with list-type) unanswered
        self.puts = 0  # PUTs seen
        self.stalled = 0  # PUTs held without an answer
        self._released: asyncio.Event | None = None
        self._session: aiohttp.ClientSession | None = None

    def release(self) -> None:
        """Answer every stalled PUT (with a 503) and stall no more until told again."""
        self.on_put = self.on_delete = None
        self.stall_listings = False
        self._loop.call_soon_threadsafe(self._release_all)

    def _release_all(self) -> None:
        assert self._released is not None
        self._released.set()
        self._released = asyncio.Event()

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.read()
        except ConnectionError:  # the client gave up mid-request (its run stopped): no one to answer
            return web.Response(status=400)
        if request.method in ("PUT", "DELETE") and "/" in request.path.strip("/"):  # an object
            self.puts += request.method == "PUT"
            hook = self.on_put if request.method == "PUT" else self.on_delete
            what = hook(request.path) if hook is not None else None
            if what == "stall":
                return await self._stall()
            if isinstance(what, web.Response):
                return what
        if request.method == "GET" and "list-type" in request.query and self.stall_listings:
            return await self._stall()
        return await self._pass_on(request, body)

    async def _stall(self) -> web.Response:
        self.stalled += 1
        assert self._released is not None
        await self._released.wait()
        return s3_error(503, "SlowDown", "Please reduce your request rate.")

    async def _pass_on(self, request: web.Request, body: bytes) -> web.Response:
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        async with self._session.request(
            request.method, self.upstream + request.path_qs, headers=headers, data=body,
            allow_redirects=False, auto_decompress=False,
        ) as answer:  # fmt: skip
            data = await answer.read()
            kept = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP - {"content-length"}}
        if request.method == "HEAD":  # its Content-Length is the object's, with no body
            return web.Response(status=answer.status, headers=kept)
        kept.pop("Content-Length", None)
        return web.Response(status=answer.status, headers=kept, body=data)

    async def _opened(self) -> None:
        # A client that hangs up before its answer (a run stopping at a refused PUT) is no
        # news of the front's: aiohttp.server logs a traceback of it otherwise, into the log
        # of a CLI that runs in this process (run_here), after its error line.
        logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)
        self._released = asyncio.Event()
        self._session = aiohttp.ClientSession()

    def _app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._serve)
        return app

    async def _closing(self) -> None:
        self._release_all()
        assert self._session is not None
        await self._session.close()
