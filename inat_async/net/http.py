"""HTTP for the harvest: one aiohttp session, answers sorted into retry, fail or stop.

Every request is retried by tenacity on 429, 5xx, timeouts, dropped connections and bodies
that are not what was asked for, with exponential backoff and jitter, never sooner than the
server's Retry-After. Every request has an overall deadline (:class:`Deadline`) and every body
a cap on its decoded size (:func:`body_chunks`), so no server can hold a worker forever or
fill memory or disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import errno
import logging
import re
import socket
import time
import zlib
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import aiohttp

from inat_async.config import Settings
from inat_async.errors import BlockedError, PermanentError, ServerError, TransientError, UsageError
from inat_async.model import PhotoStatus, decode_page
from inat_async.net.politeness import Politeness, WaitClock
from inat_async.photos import host_of
from inat_async.version import __version__

if TYPE_CHECKING:
    from tenacity import RetryCallState

USER_AGENT = f"inat_async/{__version__}"
RETRYABLE = (TransientError, aiohttp.ClientError, asyncio.TimeoutError)
_BLOCKED = "This IP has been blocked"
_TAG = re.compile(r"<[^>]*>")  # an HTML page's markup, left out of the message it makes
# A host that never answered and cannot be reached this way is given few tries: a wrong URL
# or a network that is down is said in seconds. Once it has answered, every try is spent.
UNREACHABLE = frozenset({"name does not resolve", "connection refused"})
_UNREACHABLE_TRIES = 3
T = TypeVar("T")
log = logging.getLogger("inat_async")
#: An API page of 200 observations is a few MB; one that inflates past this is refused.
API_BODY_CAP = 64_000_000
#: The slowest a body may come, after the --timeout allowed for the answer to start: a
#: server trickling bytes fails the request instead of holding it forever.
MIN_BYTES_PER_SECOND = 4096
CHUNK = 256 * 1024
#: Asked for and decoded here, with a cap on the decoded size (aiohttp's own decoding has none).
_ENCODINGS = {"gzip": 47, "x-gzip": 47, "deflate": 47}  # zlib wbits: a gzip or zlib header
_PIECE = 1 << 20  # decoded bytes at most from one step of zlib


def retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header: a number of seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _transient_for(response: aiohttp.ClientResponse) -> TransientError | None:
    """The retryable error a 429 or 5xx status means, or None."""
    status = response.status
    if status == 429 or status >= 500:
        return TransientError(
            f"HTTP {status}", retry_after(response.headers.get("Retry-After")), throttled=status in (429, 503)
        )
    return None


class BodyTooLarge(Exception):
    """A body decoded past its cap; ``cap`` in bytes."""

    def __init__(self, cap: int):
        super().__init__(f"larger than {cap:,} bytes")
        self.cap = cap


class Deadline:
    """One request's overall deadline, on the event loop's monotonic clock: ``timeout`` for
    the answer to start, and as long again as its body takes at MIN_BYTES_PER_SECOND."""

    def __init__(self, timeout: float):
        self.timeout = timeout
        self.received = 0
        self._timer: asyncio.Timeout | None = None
        self._start = 0.0

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Deadline]:
        self._start = asyncio.get_running_loop().time()
        try:
            async with asyncio.timeout(self._start + self.timeout) as self._timer:
                yield self
        except TimeoutError:
            if self._timer is None or not self._timer.expired():
                raise  # aiohttp's own read timeout: nothing came for --timeout
            elapsed = asyncio.get_running_loop().time() - self._start
            raise TransientError(
                f"too slow ({self.received:,} bytes in {elapsed:.1f} s; "
                f"at least {MIN_BYTES_PER_SECOND:,} bytes/s after {self.timeout:g} s)"
            ) from None

    def got(self, nbytes: int) -> None:
        """``nbytes`` more arrived: the deadline moves by what they were allowed."""
        self.received += nbytes
        if self._timer is not None:
            self._timer.reschedule(self._start + self.timeout + self.received / MIN_BYTES_PER_SECOND)


class _Decoder:
    """A body's Content-Encoding undone chunk by chunk, never past ``cap`` decoded bytes
    (a gzip bomb of a few MB stops at the cap, not at GBs in memory)."""

    def __init__(self, encoding: str | None, cap: int):
        encoding = (encoding or "identity").strip().lower()
        if encoding not in (*_ENCODINGS, "identity"):
            raise TransientError(f"answer encoded as {encoding[:20]!r}, which was not asked for")
        self._zlib = zlib.decompressobj(_ENCODINGS[encoding]) if encoding != "identity" else None
        self.room = cap
        self.cap = cap

    def feed(self, chunk: bytes) -> Iterator[bytes]:
        """The decoded bytes of ``chunk``, a piece at a time (one chunk of a bomb inflates
        a thousandfold: never all at once)."""
        if self._zlib is None:
            yield self._count(chunk)
            return
        while chunk:
            try:
                data = self._zlib.decompress(chunk, _PIECE)
            except zlib.error as exc:
                raise TransientError(f"answer does not decode ({exc})") from None
            yield self._count(data)
            chunk = self._zlib.unconsumed_tail

    def end(self) -> bytes:
        return self._count(self._zlib.flush()) if self._zlib is not None else b""

    def _count(self, data: bytes) -> bytes:
        self.room -= len(data)
        if self.room < 0:
            raise BodyTooLarge(self.cap)
        return data


async def _head_text(response: aiohttp.ClientResponse, limit: int) -> str:
    """The start of a (short) body as text, decoded like any body (a proxy may gzip it)."""
    decoder = _Decoder(response.headers.get("Content-Encoding"), limit)
    text: list[bytes] = []
    with contextlib.suppress(BodyTooLarge, TransientError):
        text += decoder.feed(await response.content.read(limit))
    return b"".join(text).decode("utf-8", "replace")


async def body_chunks(response: aiohttp.ClientResponse, cap: int, deadline: Deadline) -> AsyncIterator[bytes]:
    """The decoded body of ``response`` chunk by chunk: at most ``cap`` bytes (else
    BodyTooLarge), each chunk counted against the request's deadline."""
    decoder = _Decoder(response.headers.get("Content-Encoding"), cap)
    async for chunk in response.content.iter_chunked(CHUNK):
        deadline.got(len(chunk))
        for data in decoder.feed(chunk):
            if data:
                yield data
    if data := decoder.end():
        yield data


class Http:
    """The harvest's HTTP session with its timeouts, User-Agent and politeness."""

    def __init__(
        self, settings: Settings, politeness: Politeness, on_retry: Callable[[str, float], None] | None = None
    ):
        self.settings = settings
        self.politeness = politeness
        self.api_requests = 0
        self.retries: Counter[str] = Counter()  # by reason, this run
        self._on_retry = on_retry or (lambda reason, wait: None)
        self._reached: set[str] = set()  # hosts that answered at least once
        self._session: aiohttp.ClientSession | None = None
        self._photos: aiohttp.ClientSession | None = None
        self._blocked: BlockedError | None = None

    async def check_status(self, response: aiohttp.ClientResponse, *, api: bool = False) -> None:
        """Raise what an answer's status says before its body is used: TransientError for
        429 and 5xx, BlockedError (remembered) for iNaturalist's "IP blocked" page, and for
        another 403 of the ``api`` ServerError with the API's own message (its body, read
        here to tell, is not there for the caller to read)."""
        if (error := _transient_for(response)) is not None:
            raise error
        if response.status != 403:
            return
        head = await _head_text(response, 65536)
        if _BLOCKED in head:
            self._blocked = BlockedError(
                f"{host_of(str(response.url))} says this IP has been blocked; stopping at once. "
                "Do not retry from this address: contact help@inaturalist.org"
            )
            raise self._blocked
        if api:
            raise ServerError(f"the API answered HTTP 403: {error_message(head.encode())}")

    def stop_if_blocked(self) -> None:
        """Before a request: once one answer said blocked, no other request goes out."""
        if self._blocked is not None:
            raise BlockedError(str(self._blocked))

    async def __aenter__(self) -> Http:
        s = self.settings
        timeout = aiohttp.ClientTimeout(
            total=None, connect=s.connect_timeout, sock_connect=s.connect_timeout, sock_read=s.request_timeout
        )
        headers = {"User-Agent": USER_AGENT, "Accept-Encoding": ", ".join(_ENCODINGS)}
        sent = aiohttp.TraceConfig()
        sent.on_request_headers_sent.append(_note_sent)
        # Bodies are decoded by body_chunks, with a cap on their decoded size. Only API
        # requests are traced (their budget slot is booked when sent): photo files go through
        # a session of their own, without a trace's cost on every file.
        self._session = aiohttp.ClientSession(
            timeout=timeout, connector=aiohttp.TCPConnector(limit=100, ttl_dns_cache=300), headers=headers,
            auto_decompress=False, trace_configs=[sent],
        )  # fmt: skip
        self._photos = aiohttp.ClientSession(
            timeout=timeout, connector=aiohttp.TCPConnector(limit=max(100, s.workers * 2), ttl_dns_cache=300),
            headers=headers, auto_decompress=False,
        )  # fmt: skip
        return self

    async def __aexit__(self, *_: object) -> None:
        for session in (self._session, self._photos):
            if session:
                await session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None
        return self._session

    @property
    def wait_clock(self) -> WaitClock:
        """The time its budgets held this run's requests (the summary's "held by budgets"),
        where a stage that sends its requests elsewhere (a cluster) adds theirs."""
        return self.politeness.clock

    @property
    def photo_session(self) -> aiohttp.ClientSession:
        assert self._photos is not None
        return self._photos

    async def retrying(
        self, host: str, attempts: int, call: Callable[[], Awaitable[T]], *, url: str | None = None
    ) -> T:
        """Run ``call`` (a request to ``host``, of ``url`` when given: the log names it) until
        it succeeds, retrying RETRYABLE failures with backoff. The first try goes outside
        tenacity (setting up its loop cost more CPU than a photo file's own request); its
        failure is handed to tenacity as the first attempt."""
        try:
            result = await call()
        except RETRYABLE as exc:
            first: BaseException = exc
        else:
            self._succeeded(host)
            return result
        return await self._retry(host, attempts, call, first, url or host)

    def _succeeded(self, host: str) -> None:
        self._reached.add(host)
        self.politeness.succeeded(host)

    async def _retry(
        self, host: str, attempts: int, call: Callable[[], Awaitable[T]], first: BaseException, url: str
    ) -> T:
        """Tenacity's loop after a failed first try, which it sees as its first attempt."""
        from tenacity import AsyncRetrying, retry_if_exception_type  # here: only a retry needs it (start-up)
        from tenacity.wait import wait_exponential, wait_random

        s = self.settings
        replay = [first]

        async def again() -> T:
            if replay:
                raise replay.pop()
            return await call()

        # Doubling from --retry-wait, with up to as much again of jitter (wait_exponential_jitter
        # says so with an 'initial' that tenacity 9.2 deprecates and older ones lack a name for).
        backoff = wait_exponential(multiplier=s.backoff_initial, max=s.max_backoff) + wait_random(
            0, s.backoff_initial
        )

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            after = exc.retry_after if isinstance(exc, TransientError) else None
            # A server's Retry-After, within reason: a year would hold the harvest a year.
            return max(backoff(state), min(after or 0.0, s.max_backoff))

        def give_up(state: RetryCallState) -> bool:
            exc = state.outcome.exception() if state.outcome else None
            if exc is None or retry_reason(exc) not in UNREACHABLE:
                self._reached.add(host)
            elif host not in self._reached and state.attempt_number >= _UNREACHABLE_TRIES:
                return True
            return state.attempt_number >= attempts

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            assert exc is not None
            quick = host not in self._reached and retry_reason(exc) in UNREACHABLE
            tries = min(attempts, _UNREACHABLE_TRIES) if quick else attempts
            self.tell_retry(url, exc, state.upcoming_sleep, state.attempt_number, tries)
            if isinstance(exc, TransientError) and exc.throttled:
                self.politeness.throttled(host, exc.retry_after)

        async for attempt in AsyncRetrying(
            stop=give_up,
            wait=wait,
            retry=retry_if_exception_type(RETRYABLE),
            before_sleep=before_sleep,
            reraise=True,
        ):
            with attempt:
                result = await again()
        self._succeeded(host)
        return result

    def tell_retry(self, url: str, exc: BaseException, wait: float, tried: int, attempts: int) -> None:
        """Count a retry by its reason, log it (at info the first time of its kind, then at
        debug) and show it while its backoff lasts."""
        reason = retry_reason(exc)
        level = logging.DEBUG if self.retries[reason] else logging.INFO
        self.retries[reason] += 1
        said = str(exc) if isinstance(exc, TransientError) else reason  # ours have their details
        log.log(level, "retrying %s: %s, next try in %.1f s (%d of %d tries)", url, said, wait, tried,
                attempts)  # fmt: skip
        self._on_retry(reason, wait)

    @contextlib.asynccontextmanager
    async def photo(
        self, url: str, *, cap: int | None = None, head: bool = False
    ) -> AsyncIterator[tuple[aiohttp.ClientResponse, Deadline]]:
        """One request for a photo file (a GET, or a HEAD), with its photo host's politeness
        around it as an API request has its own: the host's turn (its rate and concurrency),
        no request once an answer said the IP is blocked, the overall deadline, the status
        sorted (429 and 5xx to retry, the blocked page to stop), and a file's Content-Length
        booked against the host's bytes; a length over ``cap`` is refused before its body."""
        host = host_of(url)
        async with self.politeness.media_turn(host, None if head else size_word(url), cap) as booked:
            self.stop_if_blocked()  # met by another request while this one waited its turn
            async with (
                self.deadline() as deadline,
                self.photo_session.request("HEAD" if head else "GET", url, allow_redirects=False) as response,
            ):
                if not head:  # what a GET spends, whatever its answer, before its status is sorted
                    length = response.content_length if response.status == 200 else 0
                    await self.politeness.spent_bytes(host, length or 0, booked)
                await self.check_status(response)
                if response.status == 200 and not head:
                    _check_length(response.content_length, cap)
                yield response, deadline

    def deadline(self) -> contextlib.AbstractAsyncContextManager[Deadline]:
        """A request's overall deadline, from --timeout (see :class:`Deadline`)."""
        return Deadline(self.settings.request_timeout).running()

    async def get_json(
        self, url: str, params: dict[str, str], *, raw_results: bool = False
    ) -> dict[str, Any]:
        """GET an API URL and return its page, retrying what can be retried. The page is
        checked as it enters (:func:`~inat_async.model.decode_page`); its observations are
        checked one by one later, where one that does not fit is skipped, not the page
        (``raw_results``: each result left as its JSON, for model.check_observations)."""
        host = host_of(url)

        async def once() -> dict[str, Any]:
            slot = await self.politeness.api_turn(host)
            self.stop_if_blocked()
            self.api_requests += 1
            # Booked at the moment it went, not when it answers: other ranges book meanwhile.
            sent = _Sent(lambda at: self.politeness.api_sent(host, slot, at))
            async with (
                self.deadline() as deadline,
                self.session.get(url, params=params, trace_request_ctx=sent) as response,
            ):
                await self.check_status(response, api=True)
                return await _api_json(response, deadline, raw_results)

        try:
            return await self.retrying(host, self.settings.api_attempts, once, url=url)
        except RETRYABLE as exc:
            if host not in self._reached:
                raise ServerError(
                    f"cannot reach the API at {self.settings.api_url}: {retry_reason(exc)}; "
                    "check {api_url} and the network"
                ) from exc
            raise ServerError(
                f"{url} kept failing ({describe(exc)}) after {self.settings.api_attempts} tries; "
                "run the same command again later to continue"
            ) from exc


def _check_length(length: int | None, cap: int | None) -> None:
    if length is not None and cap is not None and length > cap:
        raise PermanentError(
            PhotoStatus.FAILED, f"{length:,} bytes is larger than a photo of its size can be"
        )


def size_word(url: str) -> str:
    """The size a photo URL names (``.../123/medium.jpg``: medium), at most 16 letters: the
    kind whose files' sizes a cluster's byte budget learns (any other URL is one kind)."""
    stem = url.rpartition("/")[2].partition(".")[0]
    return stem if stem.isalpha() and len(stem) <= 16 else "photo"


async def _api_json(
    response: aiohttp.ClientResponse, deadline: Deadline, raw_results: bool
) -> dict[str, Any]:
    body = bytearray()
    try:
        async for chunk in body_chunks(response, API_BODY_CAP, deadline):
            body += chunk
    except BodyTooLarge as exc:
        raise TransientError(f"HTTP {response.status} answer is {exc}, not an observations page") from None
    if response.status != 200:
        message = error_message(bytes(body))
        if response.status == 422:
            raise UsageError(f"iNaturalist rejected the query: {message}")
        raise ServerError(f"the API answered HTTP {response.status}: {message}")
    return decode_page(body, raw_results=raw_results)


def error_message(body: bytes) -> str:
    """An error answer's own words, at most 200 characters on one line: its JSON's "error"
    (v1's shape, see the API notes), else the start of its text (an HTML page from a proxy)."""
    try:
        message = decode_page(body, error=True).get("error")
    except TransientError:
        message = None
    text = str(message) if message else _TAG.sub(" ", body.decode("utf-8", "replace"))
    return " ".join(text.split())[:200] or "no message"


@dataclass
class _Sent:
    """Told, when a request's headers are written, the time its budget slot was really used."""

    tell: Callable[[float], Awaitable[None]]


async def _note_sent(_: aiohttp.ClientSession, context: Any, __: Any) -> None:
    if isinstance(context.trace_request_ctx, _Sent):
        await context.trace_request_ctx.tell(time.time())


def retry_reason(exc: BaseException) -> str:
    """A retryable failure's kind, the same words for every instance of it: what the log, the
    display and the summary's count of retries by reason name. Details in parentheses (byte
    counts, say) are left out."""
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out"
    if isinstance(exc, aiohttp.ClientConnectorError):
        if isinstance(exc.os_error, socket.gaierror):
            return "name does not resolve"
        return "connection refused" if isinstance(exc.os_error, ConnectionRefusedError) else "cannot connect"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "server disconnected"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "connection dropped mid-body"
    if isinstance(exc, aiohttp.ClientOSError):
        reset = exc.errno == errno.ECONNRESET
        return "connection reset" if reset else (exc.strerror or "network error").lower()
    return str(exc).split(" (", 1)[0] or type(exc).__name__


def describe(exc: BaseException) -> str:
    """A retryable failure in a few words, for a message or photos.csv: ours with their
    details, aiohttp's by their kind (its own text names its internals: the 400 of
    'ContentLengthError: 400' is no HTTP status)."""
    if isinstance(exc, asyncio.TimeoutError | aiohttp.ClientError):
        return retry_reason(exc)
    return str(exc) or type(exc).__name__
