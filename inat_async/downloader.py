"""The workers: download photo files concurrently, each written to a temporary name and
renamed into place only when complete, so a final name always holds a whole file."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import aiofiles.os
import aiohttp

from .errors import PermanentError, TransientError
from .http import RETRYABLE, Http, describe
from .photos import looks_like_image
from .state import PhotoJob

CHUNK = 256 * 1024
#: Bodies are held in memory up to this many bytes, then written out (bounded memory).
SPILL = 1024 * 1024


class Downloader:
    """Fetches one :class:`PhotoJob` at a time; returns (status, bytes, reason)."""

    def __init__(self, http: Http, out: Path):
        self.http = http
        self.out = out
        self.settings = http.settings
        self._folders: set[Path] = set()  # made already: no mkdir per file
        # One thread writes every file: writes are quick copies into the page cache, and more
        # threads only made the event loop wait for the GIL (12% more CPU a file with 6).
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inat_async-writer")

    def close(self) -> None:
        """Wait for the writes and clean-ups handed to the writer thread; end it."""
        self._writer.shutdown()

    def on_disk(self, jobs: list[PhotoJob]) -> dict[int, int]:
        """Sizes of the jobs' files already in place (renamed by a run that ended before it
        recorded them; complete by construction), by seq. Blocking: run it in a thread."""
        sizes = {}
        for job in jobs:
            with contextlib.suppress(FileNotFoundError):
                sizes[job.seq] = os.stat(self.out / job.path).st_size
        return sizes

    async def fetch(self, job: PhotoJob) -> tuple[str, int | None, str | None]:
        final = self.out / job.path
        if final.parent not in self._folders:
            final.parent.mkdir(parents=True, exist_ok=True)
            self._folders.add(final.parent)
        try:
            nbytes = await self.http.retrying(
                job.host, self.settings.photo_attempts, lambda: self._attempt(job.url, job.host, final)
            )
        except PermanentError as exc:
            return exc.status, None, exc.reason
        except RETRYABLE as exc:
            return "failed", None, f"{describe(exc)} (after {self.settings.photo_attempts} tries)"
        return "done", nbytes, None

    async def _attempt(self, url: str, host: str, final: Path) -> int:
        async with self._turn(host), self.http.session.get(url, allow_redirects=False) as response:
            await self.http.check_status(response)
            if response.status in (403, 404):
                raise PermanentError("missing", f"HTTP {response.status}: this size is not on the server")
            if response.status != 200:
                raise PermanentError("failed", f"HTTP {response.status}")
            length = self._expected_length(response)
            await self.http.politeness.spent_bytes(host, length or 0)
            return await self._stream(response, final, length)

    @contextlib.asynccontextmanager
    async def _turn(self, host: str) -> AsyncIterator[None]:
        async with self.http.politeness.media_turn(host):
            self.http.stop_if_blocked()  # met by another worker while this one waited
            yield

    def _expected_length(self, response: aiohttp.ClientResponse) -> int | None:
        kind = response.headers.get("Content-Type", "")
        if not kind.startswith("image/"):
            # An HTML page with status 200 is a proxy's hiccup, not the photo.
            raise TransientError(f"answer is {kind.split(';')[0] or 'untyped'}, not an image")
        length = response.content_length
        if length is not None and length > self.settings.max_photo_bytes:
            raise PermanentError("failed", f"{length} bytes is larger than any photo")
        return length

    async def _stream(self, response: aiohttp.ClientResponse, final: Path, length: int | None) -> int:
        part = final.with_name(f".{final.name}.part")
        size = written = 0
        head, chunks = b"", []
        try:
            async for chunk in response.content.iter_chunked(CHUNK):
                size += len(chunk)
                if size > self.settings.max_photo_bytes:
                    raise PermanentError("failed", "body larger than any photo")
                head = head or chunk[:16]
                chunks.append(chunk)
                if size - written >= SPILL:
                    await _write(part, chunks, append=written > 0, executor=self._writer)
                    chunks, written = [], size
            if length is not None and size != length:
                raise TransientError(f"body shorter than its Content-Length ({size} of {length} bytes)")
            if not looks_like_image(head):
                raise TransientError("body is not a JPEG, PNG or GIF file")
            await _write(part, chunks, append=written > 0, rename_to=final, executor=self._writer)
        except BaseException:
            # Through the writer thread, after a write of this file it may be doing still
            # (a cancelled await does not stop the thread), never before it.
            self._writer.submit(_discard, part)
            raise
        return size


@aiofiles.os.wrap
def _write(part: Path, chunks: list[bytes], *, append: bool, rename_to: Path | None = None) -> None:
    """Add ``chunks`` to the temporary file, and rename it into place when done: one trip to
    the writer thread for each SPILL bytes (a trip a chunk cost more than the writing)."""
    with open(part, "ab" if append else "wb") as file:
        file.writelines(chunks)
    if rename_to is not None:
        os.replace(part, rename_to)


def _discard(part: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        part.unlink()


#: What a worker does with each outcome: (job, status, bytes, reason).
Record = Callable[[PhotoJob, str, int | None, str | None], None]


async def run_workers(downloader: Downloader, queue: asyncio.Queue[PhotoJob | None], record: Record) -> None:
    """One worker: take jobs until the None sentinel, record each outcome."""
    while (job := await queue.get()) is not None:
        status, nbytes, reason = await downloader.fetch(job)
        record(job, status, nbytes, reason)
