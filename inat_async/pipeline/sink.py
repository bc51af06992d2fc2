"""Where the photo workers write: the downloader for the harvest's store (the output folder,
another folder, or an object store through fsspec), opened and closed around a stage."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from inat_async.config import Settings
from inat_async.net.http import Http
from inat_async.pipeline.downloader import Downloader
from inat_async.store.objects import ObjectStore, local_folder


@contextlib.contextmanager
def store_downloader(http: Http, settings: Settings, *, sole_writer: bool = True) -> Iterator[Downloader]:
    """A downloader writing to ``settings.store`` (default: OUT), closed after the stage;
    ``sole_writer``: whether it is the only one writing there (see Downloader)."""
    folder = local_folder(settings.store, settings.out)
    objects = None if folder is not None else ObjectStore(str(settings.store), settings.storage_options)
    downloader = Downloader(http, folder or settings.out, objects, sole_writer=sole_writer)
    try:
        yield downloader
    finally:
        downloader.close()
        if objects is not None:
            objects.close()
