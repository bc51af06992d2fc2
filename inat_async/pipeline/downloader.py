"""The workers: download photo files concurrently, each written to a temporary file and
renamed into place only when complete and synced, so a final name always holds a whole file.

Temporaries get unpredictable names and are created without following links (the tempfile
module: O_EXCL), beside their final name; a link planted at a final name is replaced, not
followed; a folder that leads out of the output folder is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import random
import stat
import sys
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO

import aiohttp

from inat_async.errors import PermanentError, TransientError
from inat_async.image import HEAD, byte_cap, is_image, what_came
from inat_async.model import PhotoStatus
from inat_async.net.http import RETRYABLE, BodyTooLarge, Deadline, Http, body_chunks, describe
from inat_async.store.files import as_if_opened
from inat_async.store.objects import ObjectStore
from inat_async.store.state import PhotoJob

#: Bodies are held in memory up to this many bytes, then written out (bounded memory).
SPILL = 1024 * 1024
#: Threads that write files, sync them to the disk and rename them into place. Each file
#: synced alone (fsync, 2 to 3 ms) needed 8 threads to overlap their syncs; with syncs in
#: group commits (syncfs, below) a thread makes and writes a file in about 0.2 ms, and more
#: threads only contend with the event loop for the GIL (2 against 8, interleaved at 64 in
#: flight: 1.16 against 1.21 ms of CPU a file, medians of 3). Elsewhere than Linux the files
#: are synced one by one, and 8 overlap them.
FILE_THREADS = 2 if sys.platform.startswith("linux") else 8


def _load_syncfs() -> Callable[[int], int] | None:
    """Linux's syncfs(2), which writes out every file of one file system in one call: files
    done meanwhile are synced together (group commit) instead of one fsync each, which cost
    0.34 ms of CPU a file here (against 0.05 for a syncfs each 64). None elsewhere: each file
    is then synced alone."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        syncfs: Callable[[int], int] = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    return syncfs


_SYNCFS = _load_syncfs()
#: Files waiting for a group commit, each with the future its worker awaits.
_Batch = list[tuple["_Part", "asyncio.Future[None]"]]


class _GroupCommit:
    """Whole temporaries synced together and then renamed into place, one batch at a time:
    a file that comes while a batch is being synced goes in the next, with every other that
    came meanwhile (the batch grows with the load, and waits for no timer). A final name
    still only ever holds a file that was synced before it was renamed."""

    def __init__(self, root: Path, files: ThreadPoolExecutor, syncfs: Callable[[int], int]):
        self._root = root
        self._files = files
        self._syncfs = syncfs
        self._turn = asyncio.Lock()
        self._waiting: _Batch = []

    async def commit(self, part: _Part) -> None:
        """Return once ``part`` is synced and renamed into place (or raise why not)."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((part, done))
        async with self._turn:
            if not done.done() and self._waiting:
                batch, self._waiting = self._waiting, []
                work = asyncio.get_running_loop().run_in_executor(self._files, self._sync_and_rename, batch)
                # The batch's waiters are told when the thread ends, even if this one is cancelled.
                work.add_done_callback(lambda w: _settle(batch, w))
                await asyncio.shield(work)
        await done

    def _sync_and_rename(self, batch: _Batch) -> list[BaseException | None]:
        fd = os.open(self._root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            if self._syncfs(fd) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"syncfs: {os.strerror(err)}")
        finally:
            os.close(fd)
        outcomes: list[BaseException | None] = []
        for part, _ in batch:
            try:
                part.rename()
            except (PermanentError, OSError) as exc:
                part.discard()
                outcomes.append(exc)
            else:
                outcomes.append(None)
        return outcomes


def _settle(batch: _Batch, work: asyncio.Future[list[BaseException | None]]) -> None:
    """Each waiter of a batch told its file's outcome (the batch's error, if it failed whole)."""
    failed = OSError("the sync was cancelled") if work.cancelled() else work.exception()
    outcomes = [failed] * len(batch) if failed is not None else work.result()
    for (_, done), outcome in zip(batch, outcomes, strict=True):
        if done.done():
            continue
        if outcome is None:
            done.set_result(None)
        else:
            done.set_exception(outcome)


class Downloader:
    """Fetches one :class:`PhotoJob` at a time; returns (status, bytes, reason). Files go
    under the folder ``out``, or with ``objects`` to that object store, each in one PUT."""

    def __init__(
        self, http: Http, out: Path, objects: ObjectStore | None = None, *, sole_writer: bool = True
    ):
        self.http = http
        self.out = out
        self.objects = objects
        # Alone in its folders, a run may remove the temporaries a killed run left there;
        # one of many (cluster workers sharing a folder) would remove the others' live ones.
        self.sole_writer = sole_writer
        self.settings = http.settings
        self._root = out.resolve()
        self._folders: set[Path] = set()  # checked and cleaned already (under _preparing)
        self._preparing = threading.Lock()
        # A file whose body fits in SPILL (most photos) costs one hand-off to a thread: made,
        # written, synced and renamed in one step (two hand-offs a file cost the event loop
        # about 8% more CPU a file at 64 in flight).
        self._files = ThreadPoolExecutor(max_workers=FILE_THREADS, thread_name_prefix="inat_async-files")
        self._group: _GroupCommit | None = None  # made in the event loop, on first use

    def group_commit(self) -> _GroupCommit | None:
        """The batches files are synced and renamed in (None: each file synced alone)."""
        if self._group is None and _SYNCFS is not None:
            self._group = _GroupCommit(self._root, self._files, _SYNCFS)
        return self._group

    def close(self) -> None:
        """Wait for the writes, syncs and clean-ups handed to the threads; end them."""
        self._files.shutdown()

    def on_disk(self, jobs: list[PhotoJob]) -> dict[int, int]:
        """Sizes of the jobs' files already in place (renamed by a run that ended before it
        recorded them), by seq. Only a regular file that could be the photo counts: not
        empty, within its size's cap, starting with an image signature; anything else found
        there (a link, a folder, an empty or foreign file) is fetched again. Blocking: run
        it in a thread."""
        if self.objects is not None:
            return self.objects.whole_sizes({job.seq: (job.path, self._cap(job)) for job in jobs})
        sizes = {}
        for job in jobs:
            with contextlib.suppress(OSError):
                size = self._whole_photo(self.out / job.path, self._cap(job))
                if size is not None:
                    sizes[job.seq] = size
        return sizes

    @staticmethod
    def _whole_photo(path: Path, cap: int) -> int | None:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or not 0 < info.st_size <= cap:
                return None
            return info.st_size if is_image(os.pread(fd, HEAD, 0)) else None
        finally:
            os.close(fd)

    def _cap(self, job: PhotoJob) -> int:
        """The most bytes this file may have: its size's cap, and never over --max-photo-mb."""
        return min(self.settings.max_photo_bytes, job.max_bytes or byte_cap("original"))

    async def fetch(self, job: PhotoJob) -> tuple[PhotoStatus, int | None, str | None]:
        final = self.out / job.path
        cap = self._cap(job)
        # For an object store the body is held whole, then stored once fetched: outside the
        # photo host's turn and deadline, and a store that fails is tried again without
        # fetching the file again.
        whole = _Whole() if self.objects is not None else None
        try:
            nbytes = await self.http.retrying(
                job.host,
                self.settings.photo_attempts,
                lambda: self._attempt(job.url, final, cap, whole),
                url=job.url,
            )
            if whole is not None:
                await self._put(job, whole.take())
        except PermanentError as exc:
            return PhotoStatus(exc.status), None, exc.reason
        except RETRYABLE as exc:
            return PhotoStatus.FAILED, None, f"{describe(exc)} (after {self.settings.photo_attempts} tries)"
        return PhotoStatus.DONE, nbytes, None

    async def _put(self, job: PhotoJob, data: bytes) -> None:
        """``data`` stored under the job's path, tried as often as a file is fetched, with
        the same backoff; FAILED with the store's reason when every try failed. A store
        that refuses writes (StoreError) ends the run."""
        assert self.objects is not None
        tries = self.settings.photo_attempts
        for tried in range(1, tries + 1):
            try:
                await self.objects.put(job.path, data)
                return
            except TransientError as exc:
                if tried == tries:
                    raise PermanentError(PhotoStatus.FAILED, f"{exc} (after {tries} tries)") from None
                wait = self._backoff(tried)
                self.http.tell_retry(f"{self.objects.url}/{job.path}", exc, wait, tried, tries)
                await asyncio.sleep(wait)

    def _backoff(self, tried: int) -> float:
        """A fetch's backoff before try ``tried + 1``: doubling from --retry-wait, with up to as
        much again of jitter."""
        s = self.settings
        doubled = min(s.backoff_initial * 2.0 ** (tried - 1), s.max_backoff)
        return doubled + random.uniform(0, s.backoff_initial)

    async def _attempt(self, url: str, final: Path, cap: int, whole: _Whole | None) -> int:
        async with self.http.photo(url, cap=cap) as (response, deadline):
            if response.status in (403, 404):
                raise PermanentError(
                    PhotoStatus.MISSING, f"HTTP {response.status}: this size is not on the server"
                )
            if response.status != 200:
                raise PermanentError(PhotoStatus.FAILED, f"HTTP {response.status}")
            part = whole if whole is not None else _Part(final, self)
            return await self._stream(response, part, response.content_length, cap, deadline)

    async def _stream(
        self, response: aiohttp.ClientResponse, part: _Part | _Whole, length: int | None, cap: int,
        deadline: Deadline,
    ) -> int:  # fmt: skip
        size = written = 0
        head, chunks = b"", []
        try:
            async for chunk in body_chunks(response, cap, deadline):
                size += len(chunk)
                if len(head) < HEAD:
                    head += chunk[: HEAD - len(head)]
                    self._check_head(head, response, final=len(head) >= HEAD)
                chunks.append(chunk)
                if size - written >= SPILL:
                    await part.run(self._files, part.write, chunks)
                    chunks, written = [], size
            if length is not None and deadline.received != length:
                raise TransientError(
                    f"body shorter than its Content-Length ({deadline.received} of {length} bytes)"
                )
            self._check_head(head, response, final=True)
            await part.finish_all(chunks)
        except BodyTooLarge:
            part.discard_later()
            raise PermanentError(
                PhotoStatus.FAILED, f"body larger than a photo of its size can be ({cap:,} bytes)"
            ) from None
        except BaseException:
            part.discard_later()
            raise
        return size

    @staticmethod
    def _check_head(head: bytes, response: aiohttp.ClientResponse, *, final: bool) -> None:
        """An image is decided by its first bytes, not by its Content-Type."""
        if final and not is_image(head):
            raise TransientError(what_came(head, response.headers.get("Content-Type")))

    def prepare(self, folder: Path) -> None:
        """A photo folder, once a run, before any temporary is made in it: made, checked to
        lie inside the output folder (no planted link leads out), and rid of temporaries a
        killed run left (none of this run's is there yet: each thread that would make one
        waits here until the folder is in _folders)."""
        if folder in self._folders:
            return
        with self._preparing:
            if folder not in self._folders:
                self._prepare(folder)

    def _prepare(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        if not folder.resolve().is_relative_to(self._root):
            raise PermanentError(
                PhotoStatus.FAILED, f"{folder.relative_to(self.out)} leads out of the output folder"
            )
        if not self.sole_writer:
            self._folders.add(folder)
            return
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name.startswith(".") and entry.name.endswith(".part"):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)
        self._folders.add(folder)


class _Whole:
    """A photo's body held whole in memory, for an object store (the _Part steps for it):
    stored in one PUT once fetched, so no partial object ever stands under its key."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._body: bytes | None = None

    async def run(self, executor: ThreadPoolExecutor, step: Callable[..., Any], *args: Any) -> None:
        del executor  # nothing to write yet: the body stays in memory
        step(*args)

    def write(self, chunks: list[bytes]) -> None:
        self._chunks += chunks

    async def finish_all(self, chunks: list[bytes]) -> None:
        self._body = b"".join([*self._chunks, *chunks])
        self._chunks = []

    def discard_later(self) -> None:
        self._chunks, self._body = [], None  # a try that failed: the next starts anew

    def take(self) -> bytes:
        """The whole body of the try that succeeded."""
        assert self._body is not None
        body, self._body = self._body, None
        return body


class _Part:
    """A photo's temporary file, used from one thread at a time: an unpredictable name
    beside the final one, created with O_EXCL (never through a link), synced before it is
    renamed into place."""

    def __init__(self, final: Path, downloader: Downloader):
        self.final = final
        self._downloader = downloader
        self._file: BinaryIO | None = None
        self._path = ""
        self._pending: Future[Any] | None = None
        # A group commit renames in one thread what a cancelled worker may discard in another.
        self._renaming = threading.Lock()

    async def run(self, executor: ThreadPoolExecutor, step: Callable[..., object], *args: Any) -> None:
        """One step on this file in a thread, awaited (and remembered: see discard_later)."""
        self._pending = executor.submit(step, *args)
        await asyncio.wrap_future(self._pending)

    def discard_later(self) -> None:
        """Remove the temporary after the step on it a thread may be doing still (a
        cancelled await does not stop the thread), never before it."""
        if self._pending is None:
            self._discard_in_a_thread()
        else:
            self._pending.add_done_callback(lambda _: self._discard_in_a_thread())

    def _discard_in_a_thread(self) -> None:
        try:
            self._downloader._files.submit(self.discard)
        except RuntimeError:  # the run is ending and its pool shut: here, once the step is done
            self.discard()

    def write(self, chunks: list[bytes]) -> None:
        if self._file is None:
            self._downloader.prepare(self.final.parent)
            fd, self._path = tempfile.mkstemp(
                dir=self.final.parent, prefix=f".{self.final.name}.", suffix=".part"
            )
            as_if_opened(fd)
            self._file = os.fdopen(fd, "wb")
        self._file.writelines(chunks)

    async def finish_all(self, chunks: list[bytes]) -> None:
        """The last chunks written and the file synced and renamed into place: with the
        others done meanwhile where the system syncs a file system at once, else alone."""
        group = self._downloader.group_commit()
        if group is None:
            await self.run(self._downloader._files, self.finish, chunks, True)
            return
        await self.run(self._downloader._files, self.finish, chunks, False)
        await group.commit(self)

    def finish(self, chunks: list[bytes], sync_and_rename: bool) -> None:
        """The last chunks written, the file closed; synced and renamed into place too when
        ``sync_and_rename`` (else its group commit does both)."""
        self.write(chunks)
        assert self._file is not None
        self._file.flush()
        if sync_and_rename:
            os.fsync(self._file.fileno())
        self._close()
        if sync_and_rename:
            self.rename()

    def rename(self) -> None:
        """The complete, synced temporary renamed into place (unless its worker gave it up
        and it was discarded meanwhile)."""
        with self._renaming:
            if self._path:
                self._rename()

    def _rename(self) -> None:
        try:
            os.replace(self._path, self.final)
        except IsADirectoryError:
            raise PermanentError(
                PhotoStatus.FAILED, f"a folder is in the way at {self.final.name}: move it away"
            ) from None
        self._path = ""

    def discard(self) -> None:
        with self._renaming:
            # A full disk cannot take what is still buffered, which is not wanted anyway: the
            # temporary is removed all the same (it stayed, with a traceback, 1 run in 40).
            with contextlib.suppress(OSError):
                self._close()
            if self._path:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self._path)
                self._path = ""

    def _close(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            file.close()  # closed even when its last flush fails


#: What a worker does with each outcome: (job, status, bytes, reason).
Record = Callable[[PhotoJob, PhotoStatus, int | None, str | None], None]


async def run_workers(downloader: Downloader, queue: asyncio.Queue[PhotoJob | None], record: Record) -> None:
    """One worker: take jobs until the None sentinel, record each outcome."""
    while (job := await queue.get()) is not None:
        status, nbytes, reason = await downloader.fetch(job)
        record(job, status, nbytes, reason)
