"""The final stage: observations.csv and photos.csv, written in chunks from the state.

Each file is written under a temporary name and renamed into place, so a reader never sees
half a CSV. Every text value is enclosed in double quotes (inner ones doubled) and numbers are
bare: a value holding a lone carriage return, which a minimal quoting leaves bare and every
reader takes for a line end, reads back whole with pandas and with Python's csv module. NUL,
which no CSV reader carries, is dropped.
"""

from __future__ import annotations

import contextlib
import csv
import glob
import io
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .records import COLUMNS, SQL_COLUMNS
from .settings import SIZES

if TYPE_CHECKING:  # the CLI imports this module for its formats, before it needs a state
    from .state import State

CHUNK_ROWS = 5_000
PHOTO_COLUMNS = (
    "observation_id",
    "photo_id",
    "position",
    "size",
    "url",
    "path",
    "status",
    "bytes",
    "license_code",
    "attribution",
    "reason",
)
#: The photo rows' order in every export: by observation, in the API's order of its photos,
#: each photo's sizes smallest first.
PHOTO_ORDER = f"observation_id, api_order, photo_id, instr('{','.join(SIZES)}', size)"


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


def write_exports(state: State, out: Path, formats: tuple[str, ...], api_url: str | None = None) -> None:
    """Write each of ``formats`` (settings.FORMATS, checked there) from the state alone: no
    request is made."""
    from .dwca import write_dwca
    from .parquet import write_parquet

    for kind in formats:
        if kind == "csv":
            write_csvs(state, out)
        elif kind == "parquet":
            write_parquet(state, out)
        else:
            write_dwca(state, out, api_url=api_url)


def write_csvs(state: State, out: Path) -> None:
    observations = ", ".join(f'"{c}"' for c in SQL_COLUMNS)
    _write_csv(
        state, f'SELECT {observations} FROM observations ORDER BY "id"', COLUMNS, out / "observations.csv"
    )
    _write_csv(
        state,
        f"SELECT {', '.join(PHOTO_COLUMNS)} FROM photos ORDER BY {PHOTO_ORDER}",
        PHOTO_COLUMNS,
        out / "photos.csv",
    )


def _write_csv(state: State, sql: str, columns: tuple[str, ...], target: Path) -> None:
    with replacing(target) as part, open(part, "w", encoding="utf-8", newline="") as file:
        file.write(",".join(columns) + "\n")  # plain names: no quotes needed
        for _, rows in state.query_chunks(sql, CHUNK_ROWS):
            file.write(_csv_text(rows))


def _csv_text(rows: Iterable[Sequence[Any]]) -> str:
    """Rows as CSV lines: text quoted, numbers bare, None an empty quoted value, NUL dropped
    (one pass over the chunk's text rather than a check of every value)."""
    text = io.StringIO()
    csv.writer(text, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n").writerows(rows)
    return text.getvalue().replace("\x00", "")
