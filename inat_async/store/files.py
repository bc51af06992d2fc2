"""Output files written whole: a reader never sees half a file, and nothing planted in the
output folder can redirect a write."""

from __future__ import annotations

import contextlib
import glob
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

# The mode a new file gets from open(): 0666 less the process's umask, read once at import
# (os.umask can only be read by setting it). mkstemp creates 0600 whatever the umask says.
_UMASK = os.umask(0o022)
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK


def as_if_opened(fd: int) -> None:
    """Give a temporary made by mkstemp (0600) the mode open() would give the file, so the
    outputs renamed from it can be read as the user's umask allows (a group, a web server)."""
    os.fchmod(fd, FILE_MODE)


@contextlib.contextmanager
def replacing(target: Path) -> Iterator[Path]:
    """A temporary file beside ``target`` to write to, synced and renamed over ``target``
    only when the block ends without an error: a reader never sees half a file, and a
    failure leaves none. Its name is unpredictable and it is created without following a
    link (O_EXCL), so nothing planted in the folder can redirect the writing; temporaries a
    killed run left are removed first."""
    for stale in target.parent.glob(f".{glob.escape(target.name)}.*.part"):
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    as_if_opened(fd)
    os.close(fd)
    part = Path(name)
    try:
        yield part
        _sync(part)
        os.replace(part, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            part.unlink()


def _sync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
