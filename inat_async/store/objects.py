"""Where photo files go: the output folder (as always), another folder, or any fsspec URL
(``s3://bucket/prefix``, ``gs://...``) with its storage options.

A local folder is written by the downloader itself (a temporary name, synced, renamed into
place). An object store gets each file whole in one call (a PUT, atomic: no partial object
ever stands under a final key). Keys are the paths the state holds (``photos/NNN/NNN/...``),
under the store's root, so photos.csv's ``path`` is relative to the store root either way.

fsspec and its backends (s3fs, gcsfs) are the ``dask`` extra: imported only for a URL.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from inat_async.errors import SettingError
from inat_async.image import HEAD, is_image
from inat_async.model import PhotoStatus
from inat_async.store.state import State

#: Threads that PUT and check objects: each call blocks on the network, not the CPU.
IO_THREADS = 16


def local_folder(store: str | None, out: Path) -> Path | None:
    """The folder photo files go to when the store is one (None: OUT, a path, file://...);
    None for an object store."""
    if store is None:
        return out
    if "://" not in store:
        return Path(store).expanduser()
    scheme, _, rest = store.partition("://")
    return Path(rest) if scheme == "file" else None


#: The state's meta key holding where the harvest's photo files are (see tie_store).
STORE_KEY = "photo_store"
#: What STORE_KEY holds for OUT itself (so a harvest folder may be moved).
IN_OUT = "."


def store_record(store: str | None, out: Path) -> str:
    """The store as the state records it: IN_OUT for OUT itself, a folder's absolute path,
    or the URL (never its storage options: they may hold secrets)."""
    folder = local_folder(store, out)
    if folder is None:
        return str(store).rstrip("/")
    folder = folder.resolve()
    return IN_OUT if folder == out.resolve() else str(folder)


def tie_store(state: State, store: str | None, out: Path) -> None:
    """Tie the harvest's photo files to the store this run writes them to: the first run that
    stores photos records it in the state; a later run with another store (or none, or one
    after none) is refused while the recorded one holds files the state counts as done
    (they are there, and only there)."""
    recorded = state.meta(STORE_KEY)
    done = bool(recorded is not None and state.photo_counts().get(PhotoStatus.DONE))
    state.set_meta(STORE_KEY, check_store(recorded, store, out, done))


def check_store(recorded: str | None, store: str | None, out: Path, done: bool) -> str:
    """The store as the state records it (see store_record), once checked against the one
    ``recorded`` before: another is refused while the state holds files ``done`` there."""
    here = store_record(store, out)
    if recorded is not None and recorded != here and done:
        raise SettingError("store", _store_differs(recorded, out))
    return here


def _store_differs(recorded: str, out: Path) -> str:
    if recorded == IN_OUT:
        return (
            f"the photo files of {out} are in that folder itself (recorded when it first stored "
            "photos), not in this store: run the same command without {store}, or harvest into a new folder"
        )
    return (
        f"the photo files of {out} are in {recorded} (recorded when it first stored photos): "
        f"pass {{store}} {recorded} and its {{storage_options}} again, or harvest into a new folder"
    )


def recorded_store(state: State) -> str | None:
    """Where the state says its photo files are: None for OUT itself (or nothing recorded,
    a harvest from before the store was recorded), else a folder's path or a URL."""
    recorded = state.meta(STORE_KEY)
    return None if recorded in (None, IN_OUT) else recorded


def store_name(store: str | None, out: Path) -> str:
    """What the summary names as the store: its URL, or the folder."""
    folder = local_folder(store, out)
    return str(folder) if folder is not None else str(store)


def file_remover(
    store: str | None, out: Path, options: Mapping[str, str]
) -> Callable[[list[str]], None] | None:
    """What deletes photo files from the store by their paths (files that no longer belong,
    on --update): None for OUT itself (the state does it), else for that folder or object
    store; a file already gone is no error."""
    folder = local_folder(store, out)
    if folder == out:
        return None
    if folder is not None:
        return lambda paths: _unlink_all(folder, paths)
    fs, root = _filesystem(str(store).rstrip("/"), options)

    def remove(paths: list[str]) -> None:
        for path in paths:
            with contextlib.suppress(FileNotFoundError):
                fs.rm_file(f"{root}/{path}" if root else path)

    return remove


def _unlink_all(folder: Path, paths: list[str]) -> None:
    for path in paths:
        (folder / path).unlink(missing_ok=True)


class ObjectStore:
    """Photo files as objects under ``url``, written whole; used from one event loop."""

    def __init__(self, url: str, options: Mapping[str, str] | None = None, threads: int = IO_THREADS):
        self.url = url.rstrip("/")
        self.options = dict(options or {})
        self.fs, self.root = _filesystem(self.url, self.options)
        self._io = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="inat_async-store")

    def close(self) -> None:
        self._io.shutdown()

    def key(self, path: str) -> str:
        return f"{self.root}/{path}" if self.root else path

    async def put(self, path: str, data: bytes) -> None:
        """Store ``data`` under ``path`` in one call: the object appears whole or not at all."""
        await self._run(self.fs.pipe_file, self.key(path), data)

    def whole_sizes(self, paths: Mapping[int, tuple[str, int]]) -> dict[int, int]:
        """Sizes of the objects already stored whole, by job id: ``paths`` maps an id to
        (path, cap). An object counts when not empty, within its cap and starting with an
        image signature; anything else is fetched and written again. One listing per
        folder, then a read of the first bytes of each object found. Blocking (the reads
        run in the store's threads at once): call it from a thread."""
        folders = sorted({path.rpartition("/")[0] for path, _ in paths.values()})
        listed: dict[str, int] = {}
        for found in self._io.map(self._listing, folders):
            listed.update(found)
        candidates = {
            job: (path, size)
            for job, (path, cap) in paths.items()
            if 0 < (size := listed.get(self.key(path), 0)) <= cap
        }
        heads = self._io.map(self._starts_as_image, [path for path, _ in candidates.values()])
        return {job: size for (job, (_, size)), image in zip(candidates.items(), heads, strict=True) if image}

    def _listing(self, folder: str) -> dict[str, int]:
        """Objects directly in ``folder`` and their sizes (nothing if it is not there)."""
        try:
            entries = self.fs.ls(self.key(folder), detail=True, refresh=True)
        except FileNotFoundError:
            return {}
        return {
            str(e["name"]).rstrip("/"): int(e.get("size") or 0) for e in entries if e.get("type") == "file"
        }

    def _starts_as_image(self, path: str) -> bool:
        try:
            return is_image(self.fs.cat_file(self.key(path), start=0, end=HEAD))
        except FileNotFoundError:
            return False

    def put_file(self, local: Path, path: str) -> None:
        """A local file stored under ``path`` (one PUT, or a multipart upload completed at
        once: never a partial object under its key). Blocking."""
        self.fs.put_file(str(local), self.key(path))

    def read(self, path: str) -> bytes:
        """An object's bytes (for checks and tests)."""
        return bytes(self.fs.cat_file(self.key(path)))

    def paths(self) -> list[str]:
        """Every object under the store's root, by its path there."""
        prefix = f"{self.root}/" if self.root else ""
        return sorted(str(p)[len(prefix) :] for p in self.fs.find(self.root))

    async def _run(self, call: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._io, call, *args)


def _filesystem(url: str, options: Mapping[str, str]) -> tuple[Any, str]:
    try:
        import fsspec
    except ImportError:
        raise SettingError("store", "an object store needs fsspec: pip install 'inat_async[dask]'") from None
    try:
        fs, root = fsspec.core.url_to_fs(url, **_typed(options))
    except (ImportError, ValueError, OSError) as exc:  # unknown, not installed, not reachable
        raise SettingError("store", f"{url}: {exc}") from None
    return fs, str(root).rstrip("/")


def _typed(options: Mapping[str, str]) -> dict[str, Any]:
    """--storage-option values as fsspec wants them: true/false as booleans, the rest as
    given; ``endpoint_url`` and the like S3 takes as client options."""
    typed: dict[str, Any] = {}
    for key, value in options.items():
        typed[key] = {"true": True, "false": False}.get(value.lower(), value)
    return typed
