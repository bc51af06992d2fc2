"""The HTTP side of the simulator: the v1 API and the two photo hosts on loopback.

:class:`Simulator` serves a :class:`~inat_async.simulator.world.World` on 127.0.0.1 with one
listener per host kind, as the real service has separate hosts: the API (``/v1/observations``,
plus the ``/assets/…`` and ``/attachment_defaults/…`` placeholder images of www.inaturalist.org),
the open-data photo bucket and the static photo host (``/photos/{id}/{size}.{ext}``). Every
request is logged with its arrival time, and can be slowed, throttled, blocked or broken
according to settings that may be changed while it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import hashlib
import json
import math
import random
import socket
import struct
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from email.utils import formatdate
from types import TracebackType

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from . import images
from .dump import place_record
from .faults import ByteLimit, Faults, RateLimit
from .query import QueryError, error_body, parse_bool
from .world import Page, World

#: Host kinds, in port order (with a fixed ``port``: API, open, static on port, +1, +2).
HOST_KINDS: tuple[str, ...] = ("api", "open", "static")

_JSON = "application/json; charset=utf-8"
_HTML = "text/html; charset=utf-8"
_XML = "application/xml"
_HTML_200 = (
    b"<!DOCTYPE html><html><head><title>iNaturalist</title></head>"
    b"<body><h1>Something went wrong</h1><p>Please try again later.</p></body></html>"
)
_API_HEADERS = {
    "Server": "nginx",
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Headers": (
        "Origin, X-Requested-With, Content-Type, Accept, Authorization, Access-Control-Allow-Methods"
    ),
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS, PUT, DELETE",
    "X-Content-Type-Options": "nosniff",
    "Vary": "Accept-Encoding",
}
_PHOTO_HEADERS = {"Server": "AmazonS3", "Accept-Ranges": "bytes"}
#: The fault drawn for the request being answered (each request is served in a task of its own).
_FAULT: contextvars.ContextVar[str | None] = contextvars.ContextVar("fault", default=None)
_ELASTIC = "Elasticsearch error, if this persists please contact the iNaturalist development team."


@dataclass
class Request:
    """One logged request. ``status`` is 0 while it is still being answered."""

    time: float  # time.monotonic() at arrival
    host: str  # "api", "open", "static" or "assets"
    path: str
    query: dict[str, str]
    status: int = 0
    retry_after: str | None = None
    fault: str | None = None
    method: str = "GET"
    user_agent: str = ""
    nbytes: int = 0  # the body's bytes of a photo answered 200


def _html_page(status: int, title: str, text: str = "") -> bytes:
    return (
        f"<html>\r\n<head><title>{status} {title}</title></head>\r\n<body>\r\n"
        f"<center><h1>{status} {title}</h1></center>\r\n{text}<hr><center>nginx</center>\r\n"
        "</body>\r\n</html>\r\n"
    ).encode()


def _s3_error(code: str, message: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        f"<RequestId>{hashlib.md5(message.encode()).hexdigest()[:16].upper()}</RequestId>"
        "</Error>"
    ).encode()


def _reply(
    status: int, body: bytes, ctype: str | None, headers: dict[str, str] | None = None
) -> web.Response:
    """A response with an exact Content-Type header (charset included where the real one has)."""
    all_headers = dict(headers or {})
    if ctype is not None:
        all_headers["Content-Type"] = ctype
    return web.Response(status=status, body=body, headers=all_headers)


def _format_seconds(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"


class Simulator:
    """The API and photo hosts of a world on 127.0.0.1, as an async context manager.

    Run-time settings (plain attributes, may be reassigned while serving): ``api_latency`` and
    ``photo_latency`` (seconds added to each answer; with ``api_latency_max``, each API
    answer's is drawn evenly between the two, from the world's seed), ``faults`` (:class:`Faults` or None),
    ``api_limit`` / ``photo_limit`` (:class:`RateLimit` or None; the photo limit counts each
    photo host separately), ``photo_byte_limit`` (:class:`ByteLimit` or None: the bytes of
    each photo host's answers per sliding window, counted in ``byte_violations``),
    ``blocked`` (every request answers the 403 IP-block page),
    ``descending`` (a server that is not iNaturalist's: largest ids first whatever ``order``
    says) and ``hidden`` (observation id -> how many more page answers leave it out, while
    ``total_results`` still counts it; see :meth:`hide`).
    """

    def __init__(
        self,
        world: World,
        *,
        api_latency: float = 0.0,
        photo_latency: float = 0.0,
        api_latency_max: float | None = None,
        faults: Faults | None = None,
        api_limit: RateLimit | None = None,
        photo_limit: RateLimit | None = None,
        photo_byte_limit: ByteLimit | None = None,
        blocked: bool = False,
        descending: bool = False,
        hidden: dict[int, float] | None = None,
        port: int = 0,
    ) -> None:
        self.world = world
        self.api_latency = api_latency
        self.photo_latency = photo_latency
        self.api_latency_max = api_latency_max
        self._latency_draws = random.Random(world.seed)
        self.faults = faults
        self.api_limit = api_limit
        self.photo_limit = photo_limit
        self.photo_byte_limit = photo_byte_limit
        self.byte_violations = 0
        self._served: defaultdict[str, deque[tuple[float, int]]] = defaultdict(deque)
        self.blocked = blocked
        self.descending = descending
        self.hidden: dict[int, float] = dict(hidden or {})
        self.port = port
        self.violations = 0
        self.hosts: dict[str, str] = {}
        self.api_root = ""
        self.api_url = ""
        self._log: list[Request] = []
        self._arrivals: defaultdict[str, deque[float]] = defaultdict(deque)
        self._runners: list[web.AppRunner] = []

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Bind the three listeners (ports chosen by the OS unless ``port`` was given)."""
        bases: dict[str, str] = {}
        try:
            for offset, kind in enumerate(HOST_KINDS):
                runner = web.AppRunner(self._app(kind), access_log=None, shutdown_timeout=0.2)
                await runner.setup()
                self._runners.append(runner)
                port = self.port + offset if self.port else 0
                site = web.TCPSite(runner, "127.0.0.1", port)
                await site.start()
                bound = runner.addresses[0][1]
                bases[kind] = f"http://127.0.0.1:{bound}"
        except BaseException:
            await self.stop()
            raise
        self.api_root = bases["api"]
        self.api_url = bases["api"] + "/v1"
        self.hosts = {"open": bases["open"], "static": bases["static"], "assets": bases["api"]}

    async def stop(self) -> None:
        """Close the listeners."""
        runners, self._runners = self._runners, []
        for runner in runners:
            await runner.cleanup()

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def hide(self, obs_id: int, times: int | None = None) -> None:
        """Leave an observation out of the next ``times`` page answers that hold it (None:
        of every one), while counts (``total_results``, ``per_page=0``) include it: an
        observation the index counts but cannot page."""
        self.hidden[obs_id] = math.inf if times is None else times

    @property
    def log(self) -> list[Request]:
        """A copy of the request log, in arrival order."""
        return list(self._log)

    def clear_log(self) -> None:
        """Forget the logged requests (the rate-limit windows are kept)."""
        self._log.clear()

    # ------------------------------------------------------------------ plumbing

    def _app(self, kind: str) -> web.Application:
        app = web.Application(middlewares=[self._middleware_for(kind)])
        if kind == "api":
            app.router.add_get("/v1/observations", self._observations)
            app.router.add_get("/v1/observations/", self._observations)
            app.router.add_get("/v1/places/{place_id}", self._place)
            app.router.add_get("/v1/taxa/{ids}", self._taxa)
            app.router.add_get("/assets/{name}", self._assets)
            app.router.add_get("/attachment_defaults/{path:.+}", self._assets)
        else:

            async def photo(request: web.Request) -> web.Response:
                return await self._photo(request, kind)

            app.router.add_get("/photos/{photo_id}/{name}", photo)
        return app

    def _middleware_for(self, app_kind: str) -> Middleware:
        @web.middleware
        async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
            kind = app_kind
            if app_kind == "api" and not (request.path == "/v1" or request.path.startswith("/v1/")):
                kind = "assets"
            entry = Request(
                time.monotonic(),
                kind,
                request.path,
                dict(request.query.items()),
                method=request.method,
                user_agent=request.headers.get("User-Agent", ""),
            )
            self._log.append(entry)
            response = await self._serve(request, handler, kind, entry)
            entry.status = response.status
            if kind in ("open", "static") and request.method == "GET" and response.status == 200:
                entry.nbytes = response.content_length or 0
                self._count_bytes(kind, entry)
            entry.retry_after = response.headers.get("Retry-After")
            return response

        return middleware

    def _count_bytes(self, kind: str, entry: Request) -> None:
        """A photo's bytes in its host's trailing window (by arrival): over the byte limit,
        a byte violation."""
        limit, served = self.photo_byte_limit, self._served[kind]
        served.append((entry.time, entry.nbytes))
        if limit is None:
            return
        while served and served[0][0] <= entry.time - 2 * limit.window:  # answers come out of order
            served.popleft()
        in_window = sum(n for t, n in served if entry.time - limit.window < t <= entry.time)
        self.byte_violations += in_window > limit.max_bytes

    def _throttle(self, kind: str, limit: RateLimit | None, now: float) -> tuple[bool, str | None]:
        """Record an arrival; (refuse?, Retry-After to send) under the host's limit."""
        arrivals = self._arrivals[kind]
        horizon = limit.window if limit is not None else 600.0
        while arrivals and arrivals[0] <= now - horizon:
            arrivals.popleft()
        violation = limit is not None and len(arrivals) >= limit.max_requests
        arrivals.append(now)
        if limit is None or not violation:
            return False, None
        self.violations += 1
        if not limit.enforce or limit.retry_after is None:
            return limit.enforce, None
        wait = max(0.0, arrivals[-limit.max_requests] + limit.window - now)
        if limit.retry_after == "http-date":
            return True, formatdate(time.time() + math.ceil(wait), usegmt=True)
        if limit.retry_after == "auto":
            return True, str(max(1, math.ceil(wait)))
        return True, _format_seconds(float(limit.retry_after))

    def _latency(self, group: str) -> float:
        if group != "api":
            return self.photo_latency
        if self.api_latency_max is None:
            return self.api_latency
        return self._latency_draws.uniform(self.api_latency, self.api_latency_max)

    async def _serve(
        self, request: web.Request, handler: Handler, kind: str, entry: Request
    ) -> web.StreamResponse:
        group = "api" if kind == "api" else "photo"
        limit = self.api_limit if group == "api" else self.photo_limit
        refuse, retry_after = self._throttle(kind, limit, entry.time)
        if self.blocked:
            body = _html_page(403, "Forbidden", "<p>This IP has been blocked</p>\r\n")
            return _reply(403, body, _HTML, {"Server": "nginx"})
        if refuse:
            return self._too_many(group, retry_after)
        latency = self._latency(group)
        if latency > 0:
            await asyncio.sleep(latency)
        faults = self.faults
        fault = faults.pick(group, entry.query) if faults is not None else None
        entry.fault = fault
        _FAULT.set(fault)  # the paging quirks are the handler's to apply
        if fault is not None and faults is not None:
            broken = self._fault_response(group, fault, faults)
            if broken is not None:
                return broken
            if fault == "slow":
                await asyncio.sleep(faults.slow_delay)
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            if exc.status == 404:
                response = self._not_found(group)
            else:
                response = _reply(exc.status, (exc.text or "").encode(), "text/plain")
        if fault == "html":
            return _reply(200, _HTML_200, _HTML)
        if fault in ("reset", "truncated", "stall") and isinstance(response, web.Response):
            stall = faults.slow_delay if fault == "stall" and faults is not None else 0.0
            return await self._cut(request, response, reset=fault == "reset", stall=stall)
        return response

    def _too_many(self, group: str, retry_after: str | None) -> web.Response:
        headers = dict(_API_HEADERS if group == "api" else _PHOTO_HEADERS)
        if retry_after is not None:
            headers["Retry-After"] = retry_after
        if group == "api":
            return _reply(429, error_body(429, "Too Many Requests"), _JSON, headers)
        return _reply(429, _html_page(429, "Too Many Requests"), _HTML, headers)

    def _fault_response(self, group: str, fault: str, faults: Faults) -> web.Response | None:
        """The answer for a fault that replaces the real answer, else None."""
        api = group == "api"
        headers = dict(_API_HEADERS if api else _PHOTO_HEADERS)
        if fault == "500":
            if api:
                return _reply(500, error_body(500, _ELASTIC), _JSON, headers)
            body = _s3_error("InternalError", "We encountered an internal error.")
            return _reply(500, body, _XML, headers)
        if fault == "502":
            return _reply(502, _html_page(502, "Bad Gateway"), _HTML, {"Server": "nginx"})
        if fault == "503":
            headers = {"Server": "nginx", "Retry-After": _format_seconds(faults.retry_after)}
            return _reply(503, _html_page(503, "Service Temporarily Unavailable"), _HTML, headers)
        if fault == "504":
            return _reply(504, _html_page(504, "Gateway Time-out"), _HTML, {"Server": "nginx"})
        if fault == "429":
            return self._too_many(group, _format_seconds(faults.retry_after))
        if fault == "429-no-retry-after":
            return self._too_many(group, None)
        return None

    async def _cut(
        self, request: web.Request, response: web.Response, *, reset: bool, stall: float = 0.0
    ) -> web.StreamResponse:
        """Send the headers and half the body, then (after ``stall`` seconds of silence)
        reset (RST) or close (FIN) the connection."""
        body = bytes(response.body or b"")  # type: ignore[arg-type]
        cut = web.StreamResponse(status=response.status, headers=response.headers)
        cut.content_length = len(body)
        await cut.prepare(request)
        await cut.write(body[: len(body) // 2])
        await asyncio.sleep(stall)
        transport = request.transport
        if transport is not None:
            for _ in range(50):
                if transport.get_write_buffer_size() == 0:
                    break
                await asyncio.sleep(0.002)
            await asyncio.sleep(0.02)
            sock = transport.get_extra_info("socket")
            if reset and sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                transport.abort()
            else:
                transport.close()
        return cut

    def _not_found(self, group: str) -> web.Response:
        if group == "api":
            return _reply(404, error_body(404, "Not found"), _JSON, _API_HEADERS)
        body = _s3_error("NoSuchKey", "The specified key does not exist.")
        return _reply(404, body, _XML, _PHOTO_HEADERS)

    # ------------------------------------------------------------------ handlers

    async def _observations(self, request: web.Request) -> web.Response:
        headers = dict(_API_HEADERS)
        query = dict(request.query)
        if self.descending:
            query["order"] = "desc"
        try:
            page = self._quirks(self.world.search(query), _FAULT.get())
        except QueryError as exc:
            return _reply(exc.status, exc.body, _JSON, headers)
        only_id = parse_bool(request.query.get("only_id")) is True
        body = self.world.render_page(page, self.hosts, only_id=only_id)
        headers["ETag"] = f'W/"{len(body):x}-{hashlib.md5(body).hexdigest()[:27]}"'
        return _reply(200, body, _JSON, headers)

    async def _place(self, request: web.Request) -> web.Response:
        """``/v1/places/{id}`` of a place of the world, with its boundary (see dump.py)."""
        text = request.match_info["place_id"]
        place = int(text) if text.isdigit() else 0
        if place not in self.world.place_ids:
            return _reply(404, error_body(404, "Not found"), _JSON, _API_HEADERS)
        body = json.dumps(place_record(self.world, place)).encode()
        return _reply(200, body, _JSON, dict(_API_HEADERS))

    async def _taxa(self, request: web.Request) -> web.Response:
        """/v1/taxa/{ids}: comma-separated ids; a value that is not one answers 422."""
        parts = request.match_info["ids"].split(",")
        if not all(part.strip().isdigit() for part in parts):
            return _reply(422, error_body(422, "Invalid taxon ID"), _JSON, _API_HEADERS)
        body = self.world.render_taxa((int(part) for part in parts), self.hosts)
        return _reply(200, body, _JSON, dict(_API_HEADERS))

    def _quirks(self, page: Page, fault: str | None) -> Page:
        """A page as the paging faults and hidden observations leave it."""
        if fault == "zero" or (fault == "empty" and page.per_page > 0):
            return Page(0, 1, page.per_page, [])
        ids = [i for i in page.ids if not self._hidden_now(i)]
        if fault == "unordered" and len(ids) >= 2:
            ids[-2:] = ids[:-3:-1]
        return dataclasses.replace(page, ids=ids)

    def _hidden_now(self, obs_id: int) -> bool:
        left = self.hidden.get(obs_id, 0)
        if left > 0:
            self.hidden[obs_id] = left - 1
        return left > 0

    async def _photo(self, request: web.Request, kind: str) -> web.Response:
        try:
            photo_id = int(request.match_info["photo_id"])
        except ValueError:
            return self._not_found("photo")
        size, _, ext = request.match_info["name"].rpartition(".")
        info = self.world.photo_info(photo_id)
        if info is None or info.ext != ext:
            return self._not_found("photo")
        status = self.world.photo_status(photo_id, size, host=kind)
        if status == 404:
            return self._not_found("photo")
        if status == 403:
            return _reply(403, _s3_error("AccessDenied", "Access Denied"), _XML, _PHOTO_HEADERS)
        data = self.world.photo_bytes(photo_id, size)
        if data is None:  # changed meanwhile
            return self._not_found("photo")
        headers = dict(_PHOTO_HEADERS)
        headers["ETag"] = self._etag(photo_id, size, data)
        headers["Last-Modified"] = formatdate(1_600_000_000 + photo_id % 100_000_000, usegmt=True)
        headers["Cache-Control"] = "max-age=31536000"
        return _ranged(request, data, images.content_type(ext), headers)

    def _etag(self, photo_id: int, size: str, data: bytes) -> str:
        """An S3-style ETag: 32 hex digits, one per file content (S3's is the MD5 of the
        content; hashing every body cost the photo hosts a quarter of their time)."""
        key = f"{self.world.seed}/{photo_id}/{size}/{len(data)}/{data[-64:].hex()}"
        return f'"{hashlib.md5(key.encode()).hexdigest()}"'

    async def _assets(self, request: web.Request) -> web.Response:
        """Placeholder images of www.inaturalist.org (hidden or copyright-flagged photos)."""
        name = request.path.rsplit("/", 1)[-1]
        stem, _, ext = name.rpartition(".")
        size = stem.rsplit("-", 1)[-1]
        valid = ext == "png" and size in images.SIZES
        if request.path.startswith("/assets/"):
            valid = valid and stem.startswith("copyright-infringement-")
        if not valid:
            return _reply(404, b"Not Found", "text/plain; charset=utf-8", {"Server": "nginx"})
        data = images.placeholder_png(request.path)
        headers = {"Server": "nginx", "Cache-Control": "public, max-age=31536000"}
        return _ranged(request, data, "image/png", headers)


def _ranged(request: web.Request, data: bytes, ctype: str, headers: dict[str, str]) -> web.Response:
    """Answer ``data`` whole, or the single byte range asked for (206), or 416."""
    header = request.headers.get("Range", "")
    if not header.startswith("bytes=") or "," in header:
        return _reply(200, data, ctype, headers)
    first, _, last = header[len("bytes=") :].strip().partition("-")
    total = len(data)
    try:
        if first:
            start = int(first)
            end = min(int(last), total - 1) if last else total - 1
        else:
            start, end = max(0, total - int(last)), total - 1
    except ValueError:
        return _reply(200, data, ctype, headers)
    if start > end or start >= total:
        return _reply(416, b"", None, {**headers, "Content-Range": f"bytes */{total}"})
    headers = {**headers, "Content-Range": f"bytes {start}-{end}/{total}"}
    return _reply(206, data[start : end + 1], ctype, headers)
