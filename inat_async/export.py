"""The final stage: observations.csv and photos.csv, written in chunks from the state.

Each file is written under a temporary name and renamed into place, so a reader never sees
half a CSV. Columns are kept as Python objects so integer ids with gaps stay integers.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from .records import COLUMNS, SQL_COLUMNS
from .settings import SIZES
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
_SIZE_ORDER = f"instr('{','.join(SIZES)}', size)"


FORMATS = ("csv", "parquet", "dwca")


@contextlib.contextmanager
def replacing(target: Path) -> Iterator[Path]:
    """A temporary name beside ``target`` to write to, renamed over ``target`` only when the
    block ends without an error: a reader never sees half a file, and a failure leaves none."""
    part = target.with_name(f".{target.name}.part")
    try:
        yield part
        os.replace(part, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            part.unlink()


def write_exports(state: State, out: Path, formats: tuple[str, ...], api_url: str | None = None) -> None:
    """Write each of ``formats`` from the state alone: no request is made."""
    from .dwca import write_dwca
    from .parquet import write_parquet

    for kind in formats:
        if kind == "csv":
            write_csvs(state, out)
        elif kind == "parquet":
            write_parquet(state, out)
        else:
            write_dwca(state, out, api_url=api_url)


def parse_formats(value: str) -> tuple[str, ...]:
    from .errors import UsageError

    formats = tuple(dict.fromkeys(v.strip().lower() for v in value.split(",") if v.strip()))
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise UsageError(f"--format: {unknown[0] if unknown else value!r} is not one of {', '.join(FORMATS)}")
    return formats


def write_csvs(state: State, out: Path) -> None:
    observations = ", ".join(f'"{c}"' for c in SQL_COLUMNS)
    _write_csv(
        state, f'SELECT {observations} FROM observations ORDER BY "id"', COLUMNS, out / "observations.csv"
    )
    _write_csv(
        state,
        f"SELECT {', '.join(PHOTO_COLUMNS)} FROM photos"
        f" ORDER BY observation_id, position, photo_id, {_SIZE_ORDER}",
        PHOTO_COLUMNS,
        out / "photos.csv",
    )


def _write_csv(state: State, sql: str, columns: tuple[str, ...], target: Path) -> None:
    import pandas as pd  # half a second to import: not before the last stage needs it

    with replacing(target) as part:
        pd.DataFrame(columns=list(columns)).to_csv(part, index=False)
        for _, rows in state.query_chunks(sql, CHUNK_ROWS):
            frame = pd.DataFrame(rows, columns=list(columns), dtype=object)
            frame.to_csv(part, mode="a", header=False, index=False)
