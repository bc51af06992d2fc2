"""The manifest of a cluster photo stage: the state's pending files, sorted by photo id, in
Parquet shards of ``shard_files`` files (OUT/manifest/shard-NNNNNN.parquet). A shard is one
Dask task; it travels to its worker as its Parquet bytes (workers need not see OUT), and its
outcomes come back as a small table that the driver alone writes into the state.

A rerun builds the manifest again from what is still pending: files stored by a task whose
outcome never reached the state (a killed driver) are found in the store and checked there.
"""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from inat_async.pipeline.sink import MANIFEST
from inat_async.store.state import PhotoJob, State

_JOB = pa.schema(
    [
        ("photo_id", pa.int64()),
        ("seq", pa.int64()),
        ("url", pa.string()),
        ("host", pa.string()),
        ("path", pa.string()),
        ("max_bytes", pa.int64()),
    ]
)
#: What a task returns for each file: its outcome, as State.finish_photo takes it.
OUTCOME = pa.schema(
    [
        ("seq", pa.int64()),
        ("status", pa.string()),
        ("bytes", pa.int64()),
        ("reason", pa.string()),
        ("host", pa.string()),
        ("worker", pa.string()),
    ]
)


def write_manifest(state: State, out: Path, shard_files: int) -> list[Path]:
    """The shards of the files pending now, written under OUT/manifest (the last run's
    removed first); their paths, in photo id order."""
    folder = out / MANIFEST
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    shards = []
    for number, rows in enumerate(_chunks(state.pending_by_photo(), shard_files)):
        path = folder / f"shard-{number:06d}.parquet"
        table = pa.Table.from_pylist([_row(photo_id, job) for photo_id, job in rows], schema=_JOB)
        pq.write_table(table, path)
        shards.append(path)
    return shards


def _row(photo_id: int, job: PhotoJob) -> dict[str, Any]:
    return {"photo_id": photo_id, "seq": job.seq, "url": job.url, "host": job.host, "path": job.path,
            "max_bytes": job.max_bytes}  # fmt: skip


def _chunks(items: Iterator[tuple[int, PhotoJob]], size: int) -> Iterator[list[tuple[int, PhotoJob]]]:
    while chunk := list(islice(items, size)):
        yield chunk


def read_jobs(shard: bytes) -> list[PhotoJob]:
    """A shard's jobs from its Parquet bytes (on a worker)."""
    table = pq.read_table(io.BytesIO(shard), schema=_JOB)
    return [
        PhotoJob(row["seq"], row["url"], row["host"], row["path"], row["max_bytes"])
        for row in table.to_pylist()
    ]


def outcome_table(rows: list[tuple[int, str, int | None, str | None, str, str]]) -> pa.Table:
    columns: list[tuple[Any, ...]] = list(zip(*rows, strict=True)) if rows else [() for _ in OUTCOME.names]
    return pa.Table.from_arrays(
        [pa.array(c, type=f.type) for c, f in zip(columns, OUTCOME, strict=True)], schema=OUTCOME
    )


def outcomes(table: pa.Table) -> Iterator[tuple[int, str, int | None, str | None, str, str]]:
    for row in table.to_pylist():
        yield row["seq"], row["status"], row["bytes"], row["reason"], row["host"], row["worker"]
