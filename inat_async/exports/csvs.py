"""observations.csv and photos.csv, written in chunks from the state.

Each file is written under a temporary name and renamed into place, so a reader never sees
half a CSV. Every text value is enclosed in double quotes (inner ones doubled) and numbers are
bare: a value holding a lone carriage return, which a minimal quoting leaves bare and every
reader takes for a line end, reads back whole with pandas and with Python's csv module. NUL,
which no CSV reader carries, is dropped.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from inat_async.exports.taxonomy import TAXONOMY_COLUMNS, Lineages, with_taxonomy
from inat_async.records import COLUMNS, PHOTO_COLUMNS
from inat_async.store.files import replacing
from inat_async.store.state import State

CHUNK_ROWS = 5_000
TAXON_AT = COLUMNS.index("taxon.id")  # the classification columns follow from it


def write_csvs(state: State, out: Path) -> None:
    rows = with_taxonomy(state.observation_rows(CHUNK_ROWS), Lineages.of_state(state), TAXON_AT)
    _write_csv(rows, (*COLUMNS, *TAXONOMY_COLUMNS), out / "observations.csv")
    _write_csv(state.photo_rows(CHUNK_ROWS), PHOTO_COLUMNS, out / "photos.csv")


def _write_csv(chunks: Iterable[Sequence[Sequence[Any]]], columns: tuple[str, ...], target: Path) -> None:
    with replacing(target) as part, open(part, "w", encoding="utf-8", newline="") as file:
        file.write(",".join(columns) + "\n")  # plain names: no quotes needed
        for rows in chunks:
            file.write(_csv_text(rows))


def _csv_text(rows: Iterable[Sequence[Any]]) -> str:
    """Rows as CSV lines: text quoted, numbers bare, None an empty quoted value, NUL dropped
    (one pass over the chunk's text rather than a check of every value)."""
    text = io.StringIO()
    csv.writer(text, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n").writerows(rows)
    return text.getvalue().replace("\x00", "")
