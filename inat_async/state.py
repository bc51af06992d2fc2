"""The harvest's source of truth: one SQLite database, OUT/harvest.sqlite.

A page's observations, their photo rows and the paging cursor are committed in one
transaction, so a crash at any moment leaves either the whole page or none of it. A photo
file's row turns 'done' only after the file stands complete under its final name, and those
rows are written in batches: a crash may lose one, and the next run finds its files on disk
and records them without fetching them again.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import UsageError
from .http import host_of
from .photos import PhotoFile
from .records import SQL_COLUMNS

SCHEMA_VERSION = 2  # 2: photos.host, so each photo host is fed on its own
#: Finished files written to the state in one transaction.
_DONE_BATCH = 256
STATE_FILE = "harvest.sqlite"

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cursors (
    stream TEXT NOT NULL,          -- the query, less its paging parameters
    lo INTEGER NOT NULL,           -- the range starts above this id
    hi INTEGER,                    -- and ends below this one (NULL: no end)
    last_id INTEGER NOT NULL,      -- the largest id committed so far
    done INTEGER NOT NULL DEFAULT 0,
    total INTEGER,                 -- total_results of the range's first page
    PRIMARY KEY (stream, lo)
);
CREATE TABLE IF NOT EXISTS observations (
    {", ".join(f'"{c}"' for c in SQL_COLUMNS)},
    raw BLOB NOT NULL,             -- zlib-compressed JSON, as the API sent it
    PRIMARY KEY ("id")
);
CREATE TABLE IF NOT EXISTS photos (
    seq INTEGER PRIMARY KEY,       -- queue order
    photo_id INTEGER NOT NULL,
    size TEXT NOT NULL,
    observation_id INTEGER NOT NULL,
    position INTEGER NOT NULL,
    url TEXT NOT NULL,
    host TEXT,                     -- the URL's host[:port], for files to fetch
    path TEXT,
    status TEXT NOT NULL,
    reason TEXT,
    bytes INTEGER,
    license_code TEXT,
    attribution TEXT,
    UNIQUE (photo_id, size)
);
CREATE INDEX IF NOT EXISTS photos_pending ON photos (status, host, seq);
CREATE INDEX IF NOT EXISTS photos_observation ON photos (observation_id);
"""


@dataclass(frozen=True)
class Cursor:
    stream: str
    lo: int
    hi: int | None
    last_id: int
    done: bool
    total: int | None


@dataclass(frozen=True)
class PhotoJob:
    seq: int
    url: str
    host: str
    path: str


class State:
    """Typed access to harvest.sqlite; one connection, used from the event loop's thread."""

    def __init__(self, path: Path):
        self.path = path
        self._done: list[tuple[int | None, int]] = []  # (bytes, seq) of files done, not yet written
        self._hosts: set[str] | None = None  # photo_hosts(), once read
        try:
            self._db = sqlite3.connect(path, isolation_level=None, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            version = self.meta("schema_version")
            if version == "1":
                self._migrate_from_1()
            elif version is not None and version != str(SCHEMA_VERSION):
                raise UsageError(
                    f"{path} was written by an incompatible version of inat_async "
                    f"(state version {version}, this one reads {SCHEMA_VERSION}); "
                    "harvest into a new --out folder"
                )
            self._db.executescript(_SCHEMA)
            self.set_meta("schema_version", str(SCHEMA_VERSION))
        except sqlite3.DatabaseError as exc:
            raise UsageError(
                f"{path} is not a readable harvest state ({exc}); move it away or use a new --out folder"
            ) from exc

    def _migrate_from_1(self) -> None:
        """Version 1 had no photos.host: add it for the files still to fetch, in one go."""
        with self._transaction():
            self._db.execute("ALTER TABLE photos ADD COLUMN host TEXT")
            rows = self._db.execute("SELECT seq, url FROM photos WHERE status IN ('pending', 'failed')")
            self._db.executemany(
                "UPDATE photos SET host = ? WHERE seq = ?",
                [(host_of(url), seq) for seq, url in rows.fetchall()],
            )
            self._db.execute("DROP INDEX IF EXISTS photos_status")
            self.set_meta("schema_version", str(SCHEMA_VERSION))

    def close(self) -> None:
        # On the way out of a failed run (a full disk, say) the batch may not be writable:
        # the next run finds those files on disk, so nothing is lost with it.
        with contextlib.suppress(sqlite3.Error):
            self._write_done()
        self._db.close()

    # -- settings ---------------------------------------------------------------------------
    def meta(self, key: str) -> str | None:
        try:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        except sqlite3.OperationalError:  # no meta table yet: a new database
            return None
        return row[0] if row else None

    def set_meta(self, key: str, value: str | None) -> None:
        if value is None:
            self._db.execute("DELETE FROM meta WHERE key = ?", (key,))
        else:
            self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def check_fingerprint(self, fingerprint: dict[str, object]) -> None:
        """Refuse to mix two different harvests in one folder; say what differs."""
        stored = self.meta("fingerprint")
        if stored is None:
            self.set_meta("fingerprint", json.dumps(fingerprint, sort_keys=True))
            return
        before = json.loads(stored)
        differs = [k for k in fingerprint if before.get(k) != fingerprint[k]]
        if differs:
            what = "; ".join(f"{k} was {before.get(k)} and is now {fingerprint[k]}" for k in differs)
            raise UsageError(
                f"{self.path.parent} holds a harvest made with other settings ({what}): "
                "run the same command as before, or harvest into a new --out folder"
            )

    # -- paging -----------------------------------------------------------------------------
    def cursors(self, stream: str) -> list[Cursor]:
        rows = self._db.execute(
            "SELECT stream, lo, hi, last_id, done, total FROM cursors WHERE stream = ? ORDER BY lo", (stream,)
        ).fetchall()
        return [Cursor(r[0], r[1], r[2], r[3], bool(r[4]), r[5]) for r in rows]

    def add_cursor(self, stream: str, lo: int, hi: int | None, total: object = None) -> Cursor:
        self._db.execute(
            "INSERT OR IGNORE INTO cursors (stream, lo, hi, last_id, total) VALUES (?, ?, ?, ?, ?)",
            (stream, lo, hi, lo, total if isinstance(total, int) else None),
        )
        return next(c for c in self.cursors(stream) if c.lo == lo)

    def split_cursor(self, cursor: Cursor, mid: int) -> Cursor:
        """Cut ``cursor``'s range at ``mid``: it keeps the ids below, a new cursor gets the rest."""
        old_hi = self._db.execute(
            "SELECT hi FROM cursors WHERE stream = ? AND lo = ?", (cursor.stream, cursor.lo)
        ).fetchone()[0]
        with self._transaction():
            self._db.execute(
                "UPDATE cursors SET hi = ? WHERE stream = ? AND lo = ?", (mid, cursor.stream, cursor.lo)
            )
            self._db.execute(
                "INSERT INTO cursors (stream, lo, hi, last_id) VALUES (?, ?, ?, ?)",
                (cursor.stream, mid - 1, old_hi, mid - 1),
            )
        return next(c for c in self.cursors(cursor.stream) if c.lo == mid - 1)

    def set_total(self, cursor: Cursor, total: int) -> None:
        self._db.execute(
            "UPDATE cursors SET total = ? WHERE stream = ? AND lo = ?", (total, cursor.stream, cursor.lo)
        )

    def save_page(
        self,
        cursor: Cursor,
        rows: Sequence[tuple[Any, ...]],
        raws: Sequence[bytes],
        photos: Iterable[PhotoFile],
        last_id: int,
        done: bool,
    ) -> int:
        """Commit one page atomically; returns how many new photo files it queued."""
        columns = ", ".join(f'"{c}"' for c in (*SQL_COLUMNS, "raw"))
        marks = ", ".join("?" * (len(SQL_COLUMNS) + 1))
        updates = ", ".join(f'"{c}" = excluded."{c}"' for c in (*SQL_COLUMNS[1:], "raw"))
        # A page may delete photo rows (an edited observation), and SQLite may give a deleted
        # seq to a new row: outcomes waiting for that seq are written first.
        self._write_done()
        with self._transaction():
            self._db.executemany(
                f"INSERT INTO observations ({columns}) VALUES ({marks}) "
                f'ON CONFLICT ("id") DO UPDATE SET {updates}',
                [(*row, zlib.compress(raw, 6)) for row, raw in zip(rows, raws, strict=True)],
            )
            photos = list(photos)
            # An observation edited since it was first paged may have other photos now.
            self._forget_other_photos([row[0] for row in rows], photos)
            hosts = [host_of(p.url) if p.path else None for p in photos]  # only files to fetch have one
            before = self._db.total_changes
            self._db.executemany(
                "INSERT OR IGNORE INTO photos (photo_id, size, observation_id, position, url, host, path,"
                " status, reason, license_code, attribution) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                [
                    (
                        p.photo_id,
                        p.size,
                        p.observation_id,
                        p.position,
                        p.url,
                        host,
                        p.path,
                        p.status,
                        p.reason,
                        p.license_code,
                        p.attribution,
                    )
                    for p, host in zip(photos, hosts, strict=True)
                ],
            )
            added = self._db.total_changes - before
            if self._hosts is not None:
                self._hosts.update(host for host in hosts if host)
            self._db.execute(
                "UPDATE cursors SET last_id = ?, done = ? WHERE stream = ? AND lo = ?",
                (last_id, int(done), cursor.stream, cursor.lo),
            )
        return added

    def _forget_other_photos(self, observation_ids: list[int], photos: list[PhotoFile]) -> None:
        keep = {(p.observation_id, p.photo_id, p.size) for p in photos}
        marks = ",".join("?" * len(observation_ids))
        stale = [
            (photo_id, size)
            for obs_id, photo_id, size in self._db.execute(
                f"SELECT observation_id, photo_id, size FROM photos WHERE observation_id IN ({marks})",
                observation_ids,
            )
            if (obs_id, photo_id, size) not in keep
        ]
        self._db.executemany("DELETE FROM photos WHERE photo_id = ? AND size = ?", stale)

    def paging_done(self, streams: Iterable[str]) -> bool:
        """Whether every range of these streams has been paged to its end."""
        for stream in streams:
            cursors = self.cursors(stream)
            if not cursors or not all(c.done for c in cursors):
                return False
        return True

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)

    # -- photos -----------------------------------------------------------------------------
    def retry_failed(self) -> None:
        """A new run gives photos that failed for good last time one more chance."""
        self._db.execute("UPDATE photos SET status = 'pending', reason = NULL WHERE status = 'failed'")

    def photo_hosts(self) -> set[str]:
        """The hosts that files to fetch are on (of this run's pages, or left by an earlier run)."""
        if self._hosts is None:
            rows = self._db.execute(
                "SELECT DISTINCT host FROM photos WHERE status IN ('pending', 'failed') AND host IS NOT NULL"
            )
            self._hosts = {host for (host,) in rows}
        return set(self._hosts)

    def pending_photos(self, host: str, after_seq: int, limit: int) -> list[PhotoJob]:
        """The next files to fetch from ``host``, in queue order."""
        self._write_done()
        rows = self._db.execute(
            "SELECT seq, url, host, path FROM photos WHERE status = 'pending' AND host = ? AND seq > ?"
            " ORDER BY seq LIMIT ?",
            (host, after_seq, limit),
        ).fetchall()
        return [PhotoJob(*row) for row in rows]

    def finish_photo(self, seq: int, status: str, nbytes: int | None, reason: str | None) -> None:
        """Record a photo's outcome. Files done are written in batches (a statement each cost
        the event loop more than the download): a crash loses at most a batch, and the next
        run finds those files on disk and fetches none of them again."""
        if status == "done":
            self._done.append((nbytes, seq))
            if len(self._done) >= _DONE_BATCH:
                self._write_done()
            return
        self._db.execute(
            "UPDATE photos SET status = ?, bytes = ?, reason = ? WHERE seq = ?", (status, nbytes, reason, seq)
        )

    def _write_done(self) -> None:
        if self._done:
            with self._transaction():
                self._db.executemany(
                    "UPDATE photos SET status = 'done', bytes = ?, reason = NULL WHERE seq = ?", self._done
                )
            self._done.clear()

    def photo_counts(self) -> dict[str, int]:
        self._write_done()
        rows = self._db.execute("SELECT status, COUNT(*) FROM photos GROUP BY status").fetchall()
        return dict(rows)

    def bytes_done(self) -> int:
        self._write_done()
        return int(self._db.execute("SELECT TOTAL(bytes) FROM photos WHERE status = 'done'").fetchone()[0])

    def failed_photos(self, limit: int = 10) -> list[tuple[int, str, str]]:
        self._write_done()
        return self._db.execute(
            "SELECT photo_id, size, reason FROM photos WHERE status = 'failed' ORDER BY seq LIMIT ?", (limit,)
        ).fetchall()

    def observation_count(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM observations").fetchone()[0]

    # -- export -----------------------------------------------------------------------------
    def query_chunks(self, sql: str, chunk: int) -> Iterator[tuple[list[str], list[tuple]]]:
        """(column names, rows) chunks of a read-only query, for the exports."""
        self._write_done()
        cur = self._db.execute(sql)
        names = [d[0] for d in cur.description]
        while rows := cur.fetchmany(chunk):
            yield names, rows

    def raw_observations(self) -> Iterator[dict[str, Any]]:
        for (raw,) in self._db.execute('SELECT raw FROM observations ORDER BY "id"'):
            yield json.loads(zlib.decompress(raw))


class _Transaction:
    """BEGIN IMMEDIATE .. COMMIT, rolled back on any error (autocommit mode elsewhere)."""

    def __init__(self, db: sqlite3.Connection):
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *_: object) -> None:
        self._db.execute("ROLLBACK" if exc_type else "COMMIT")
