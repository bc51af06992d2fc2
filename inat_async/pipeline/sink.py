"""Where the photo workers write: the downloader for the harvest's store (the output folder,
another folder, or an object store through fsspec), opened and closed around a stage; and
the exports copied to the export store once written in OUT."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from inat_async.config import Settings
from inat_async.errors import StoreError, StoreGone
from inat_async.net.http import MIN_BYTES_PER_SECOND, Http
from inat_async.pipeline.downloader import Downloader
from inat_async.store.objects import ObjectStore, file_remover, local_folder, store_name
from inat_async.store.state import STATE_FILE

log = logging.getLogger("inat_async")

#: The folder in OUT of a cluster run's manifest (its shards of pending files, see cluster/).
MANIFEST = "manifest"
#: What in OUT is the harvest's own, never an export: its state and the cluster's manifest.
_NOT_EXPORTS = (STATE_FILE, MANIFEST)


@contextlib.contextmanager
def store_downloader(http: Http, settings: Settings, *, sole_writer: bool = True) -> Iterator[Downloader]:
    """A downloader writing to ``settings.store`` (default: OUT), closed after the stage;
    ``sole_writer``: whether it is the only one writing there (see Downloader)."""
    folder = local_folder(settings.store, settings.out)
    objects = None if folder is not None else open_store(str(settings.store), settings)
    downloader = Downloader(http, folder or settings.out, objects, sole_writer=sole_writer)
    try:
        yield downloader
    finally:
        downloader.close()
        if objects is not None:
            objects.close()


def open_store(url: str, settings: Settings) -> ObjectStore:
    """The object store at ``url``, its calls bounded as the harvest's requests are (--timeout
    for an answer, then at least MIN_BYTES_PER_SECOND)."""
    return ObjectStore(
        url,
        settings.storage_options,
        timeout=settings.request_timeout,
        connect_timeout=settings.connect_timeout,
        min_rate=MIN_BYTES_PER_SECOND,
        tries=settings.photo_attempts,
        retry_wait=settings.backoff_initial,
    )


@contextlib.contextmanager
def store_remover(settings: Settings) -> Iterator[Callable[[list[str]], None] | None]:
    """What deletes photo files from the run's store on --update (None: OUT itself, which the
    state deletes from): a folder's, or an object store's deletes, bounded and tried again
    (see ObjectStore.remove), the store closed after the run."""
    if local_folder(settings.store, settings.out) is not None:
        yield file_remover(settings.store, settings.out)
        return
    objects = open_store(str(settings.store), settings)
    try:
        yield objects.remove
    finally:
        objects.close()


def check_stores(settings: Settings) -> None:
    """Each object store the run writes to (--store unless --no-photos, --export-store) looked
    at once, bounded, before the run's first request: a mistake in its settings ends the run
    in one line (see ObjectStore.check)."""
    photos = None if settings.no_photos else settings.store
    for url in dict.fromkeys(u for u in (photos, settings.export_store) if u is not None):
        if local_folder(url, settings.out) is None:
            objects = open_store(url, settings)
            try:
                objects.check()
            finally:
                objects.close()


@contextlib.contextmanager
def exports_to_store(settings: Settings) -> Iterator[None]:
    """Around the writing of the exports (and summary.json, report.html) in OUT: every file
    the block wrote there, copied to ``settings.export_store`` under the same path, each
    whole (a temporary name renamed in a folder; one upload to an object store)."""
    if settings.export_store is None:
        yield
        return
    before = _export_files(settings.out)
    yield
    written = sorted(path for path, stamp in _export_files(settings.out).items() if before.get(path) != stamp)
    folder = local_folder(settings.export_store, settings.out)
    if folder is not None:
        for path in written:
            _copy_whole(settings.out / path, folder / path)
    else:
        _upload_all(settings, written)
    log.info("%d export files copied to %s", len(written), store_name(settings.export_store, settings.out))


def _upload_all(settings: Settings, paths: list[str]) -> None:
    """OUT's files at these paths uploaded to the export store (see ObjectStore.upload); its
    bucket gone is said as one of the export store's."""
    assert settings.export_store is not None
    objects = open_store(settings.export_store, settings)
    try:
        for path in paths:
            objects.upload(settings.out / path, path)
    except StoreGone as exc:
        raise StoreError(
            f"{exc.store} refuses a PUT of {path}: its bucket is not there ({exc.said}); create it, or "
            "pass the {export_store} to use, then run the same command again"
        ) from None
    finally:
        objects.close()


def _export_files(out: Path) -> dict[str, tuple[int, int, int]]:
    """OUT's files but the state, the manifest, the photos and temporaries: (inode, mtime,
    size) by path, to tell the ones an export wrote (written whole: a new inode)."""
    found: dict[str, tuple[int, int, int]] = {}
    for root, folders, files in os.walk(out):
        here = Path(root)
        folders[:] = [f for f in folders if not (here == out and f in ("photos", "manifest")) and f[0] != "."]
        for name in files:
            if name.startswith(".") or (here == out and name.startswith(_NOT_EXPORTS)):
                continue
            stat = (here / name).lstat()
            found[str((here / name).relative_to(out))] = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
    return found


def _copy_whole(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    os.close(fd)
    try:
        shutil.copyfile(source, name)
        os.replace(name, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)
