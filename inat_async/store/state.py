"""The harvest's source of truth: one SQLite database, OUT/harvest.sqlite.

A page's observations, their photo rows and the paging cursor are committed in one
transaction, so a crash at any moment leaves either the whole page or none of it. A photo
file's row turns 'done' only after the file stands complete under its final name, and those
rows are written in batches: a crash may lose one, and the next run finds its files on disk
and records them without fetching them again.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import shutil
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qs

import msgspec

from inat_async.config import SIZES
from inat_async.errors import DiskFullError, HarvestError, SettingError, UsageError
from inat_async.image import MAX_EDGE, byte_cap
from inat_async.model import PhotoStatus, Rejected, TaxonRecord
from inat_async.photos import PhotoFile, host_of, is_photo_path, photos_in_order
from inat_async.records import PHOTO_COLUMNS, SQL_COLUMNS
from inat_async.store import rawjson
from inat_async.store.schema import (
    DICTIONARIES_TABLE,
    PHOTO_COLUMNS_SQL,
    PHOTOS_TABLE,
    RECONCILE_TABLES,
    SCHEMA,
    SCHEMA_VERSION,
)

log = logging.getLogger("inat_async")

#: Finished files written to the state in one transaction.
_DONE_BATCH = 256
#: Values in one SQL ``IN (...)`` list.
_IN_LIST = 500
STATE_FILE = "harvest.sqlite"
#: Rows read at a time by the exports' reads.
EXPORT_CHUNK = 5_000
# records.PHOTO_ORDER: by observation, in the API's order of its photos, each photo's sizes
# smallest first.
_PHOTO_ORDER = f"observation_id, api_order, photo_id, instr('{','.join(SIZES)}', size)"
_NO_END = -1  # counts.hi of a span with no upper end


@dataclass(frozen=True)
class Cursor:
    stream: str
    lo: int
    hi: int | None
    last_id: int
    done: bool
    total: int | None


@dataclass(frozen=True)
class _StoredPhoto:
    """What a page needs of a stored photo row to tell whether it still holds a file asked for."""

    seq: int
    observation_id: int
    url: str
    path: str | None
    reason: str | None
    status: PhotoStatus

    def holds(self, wanted: PhotoFile) -> bool:
        """The same file from the same URL (or, for a row with no file, the same skip)."""
        same = self.url == wanted.url and self.path == wanted.path
        return same and (wanted.path is not None or self.reason == wanted.reason)


class FileDone(NamedTuple):
    """A photo file on disk, as the Darwin Core multimedia extension lists it."""

    observation_id: int
    photo_id: int
    url: str
    path: str
    license_code: str | None


@dataclass(frozen=True)
class Coverage:
    """The observations' bounding box and range of dates; None where no observation has one."""

    south: float | None
    north: float | None
    west: float | None
    east: float | None
    first: str | None  # observed_on, YYYY-MM-DD
    last: str | None


class SizedFile(NamedTuple):
    """A photo file of one size on disk, with what its credit needs."""

    observation_id: int
    photo_id: int
    path: str
    license_code: str | None
    attribution: str | None
    url: str | None = None  # where the API said the file is


@dataclass(frozen=True)
class PhotoJob:
    seq: int
    url: str
    host: str
    path: str
    max_bytes: int | None


class State:
    """Typed access to harvest.sqlite; one connection, used from the event loop's thread."""

    def __init__(self, path: Path):
        self.path = path
        self._done: list[tuple[int | None, int]] = []  # (bytes, seq) of files done, not yet written
        self._hosts: set[str] | None = None  # photo_hosts(), once read
        self._streams: dict[str, int] = {}  # stream key -> streams.n
        self._codec = rawjson.RawCodec()
        self._train_at = rawjson.TRAIN_AT  # observations stored when a dictionary is next tried
        # Deletes photo files by their paths in the run's store (--store); None: in OUT.
        self.remove_files: Callable[[list[str]], None] | None = None
        try:
            self._db = sqlite3.connect(path, isolation_level=None, timeout=30)
            self._check_intact()  # before anything is written into it
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._codec = rawjson.RawCodec(self._dictionaries())
            upgraded = self._upgrade(self.meta("schema_version"))
            self._db.executescript(SCHEMA)
            self.set_meta("schema_version", str(SCHEMA_VERSION))
        except sqlite3.DatabaseError as exc:
            raise state_error(exc, path) from None
        if upgraded:
            self._give_back_space()

    def _check_intact(self) -> None:
        """SQLite's quick check of the whole file (not the meta table alone): a state damaged
        by a disk or a copy is refused as it is, never written into."""
        problems = [row[0] for row in self._db.execute("PRAGMA quick_check(3)")]
        if problems != ["ok"]:
            raise sqlite3.DatabaseError("; ".join(problems)[:200])

    def _dictionaries(self) -> list[bytes]:
        try:
            return [data for (data,) in self._db.execute("SELECT data FROM dictionaries")]
        except sqlite3.OperationalError:  # a new state, or one of version 5 or earlier
            return []

    def _upgrade(self, version: str | None) -> bool:
        """Bring a state of an earlier version up to this one in place, a step at a time,
        each in one transaction; refuse one this version cannot read. Returns whether the
        state was upgraded."""
        if version is None or version == str(SCHEMA_VERSION):
            return False
        steps = {
            1: self._add_photo_hosts,
            2: self._take_photo_order_from_the_api,
            3: self._add_photo_caps,
            4: self._record_what_each_query_paged,
            5: self._compress_with_a_dictionary,
        }
        if not version.isdigit() or int(version) not in steps:
            raise SettingError(
                "out",
                f"{self.path} was written by an incompatible version of inat_async "
                f"(state version {version}, this one reads {SCHEMA_VERSION}); "
                "harvest into a new {out} folder",
            )
        for step in range(int(version), SCHEMA_VERSION):
            with self._transaction():
                steps[step]()
                self.set_meta("schema_version", str(step + 1))
        return True

    def _add_photo_hosts(self) -> None:
        """Version 1 had no photos.host: add it for the files still to fetch."""
        self._db.execute("ALTER TABLE photos ADD COLUMN host TEXT")
        rows = self._db.execute(
            "SELECT seq, url FROM photos WHERE status IN (?, ?)", (PhotoStatus.PENDING, PhotoStatus.FAILED)
        )
        self._db.executemany(
            "UPDATE photos SET host = ? WHERE seq = ?", [(host_of(url), seq) for seq, url in rows.fetchall()]
        )
        self._db.execute("DROP INDEX IF EXISTS photos_status")

    def _add_photo_caps(self) -> None:
        """Version 3 had no photos.max_bytes: each file gets its size's cap (no dimensions).
        (The table rebuilt from version 2 has the column already.)"""
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(photos)")}
        if "max_bytes" not in columns:
            self._db.execute("ALTER TABLE photos ADD COLUMN max_bytes INTEGER")
        self._db.executemany(
            "UPDATE photos SET max_bytes = ? WHERE size = ? AND max_bytes IS NULL",
            [(byte_cap(size), size) for size in MAX_EDGE],
        )

    def _take_photo_order_from_the_api(self) -> None:
        """Version 2 kept a position made up when the API gave none, ordered photos by it, and
        could reuse a seq: rebuild the photos table, and take each row's position and order
        from its observation as the API sent it (kept raw in the state): about a minute for
        each 250,000 observations, once."""
        log.info("upgrading %s to state version 3: photo positions as the API gives them", self.path)
        self._db.execute(PHOTOS_TABLE.format(name="photos_v3"))
        kept = "seq, photo_id, size, observation_id, url, host, path, status, reason, bytes, license_code"
        self._db.execute(
            f"INSERT INTO photos_v3 ({kept}, attribution, position, api_order)"
            f" SELECT {kept}, attribution, position, position FROM photos"
        )
        self._db.execute("DROP TABLE photos")
        self._db.execute("ALTER TABLE photos_v3 RENAME TO photos")
        observations = self._db.execute(
            'SELECT raw FROM observations WHERE "id" IN (SELECT observation_id FROM photos)'
        )
        while chunk := observations.fetchmany(1_000):
            self._db.executemany(
                "UPDATE photos SET position = ?, api_order = ? WHERE photo_id = ? AND observation_id = ?",
                [
                    (position, order, photo.get("id"), obs["id"])
                    for obs in (json.loads(self._codec.decompress(raw)) for (raw,) in chunk)
                    for order, (position, photo) in enumerate(photos_in_order(obs))
                ],
            )

    def _record_what_each_query_paged(self) -> None:
        """Version 4 did not record which query (stream) paged an observation: one belongs
        to a stream when it lies in one of the stream's places (exact for a full harvest; an
        --update stream is credited with more than it paged, so its check is lenient). A
        stream paged to its end counts as reconciled, so the run that completed it stays the
        one --update starts from; its count is still checked by the next run."""
        for statement in RECONCILE_TABLES.split(";"):
            if statement.strip():
                self._db.execute(statement)
        for (key,) in self._db.execute("SELECT DISTINCT stream FROM cursors").fetchall():
            places = set(parse_qs(key).get("place_id", [""])[0].split(","))
            sql = "SELECT COUNT(*) = SUM(done) FROM cursors WHERE stream = ?"
            done = self._db.execute(sql, (key,)).fetchone()[0]
            self._db.execute(
                "INSERT OR IGNORE INTO streams (stream, reconciled) VALUES (?, ?)", (key, int(bool(done)))
            )
            n = self._stream_number(key)
            rows = self._db.execute('SELECT "id", place_ids FROM observations')
            while chunk := rows.fetchmany(10_000):
                self._db.executemany(
                    "INSERT OR IGNORE INTO paged (stream, id) VALUES (?, ?)",
                    [(n, oid) for oid, joined in chunk if places & set((joined or "").split(";"))],
                )

    def _compress_with_a_dictionary(self) -> None:
        """Version 5 kept each observation's JSON zlib-compressed: a dictionary is trained on
        the first ones and every one compressed anew (about a minute for each million
        observations, once), to about a quarter of the size."""
        log.info("upgrading %s to state version 6: observations' JSON compressed anew", self.path)
        self._db.execute(DICTIONARIES_TABLE)
        self._train_dictionary()
        rows = self._db.execute('SELECT "id", raw FROM observations')
        while chunk := rows.fetchmany(1_000):
            self._db.executemany(
                'UPDATE observations SET raw = ? WHERE "id" = ?',
                [(self._codec.compress(self._codec.decompress(raw)), oid) for oid, raw in chunk],
            )

    def _train_dictionary(self) -> bool:
        """Train a dictionary on the first observations stored, to compress from now on
        (inside the caller's transaction). A harvest too small or too uniform to train one
        keeps plain zstandard frames and tries again at twice the size."""
        count = self.observation_count()
        self._train_at = max(count, rawjson.TRAIN_AT) * 2
        rows = self._db.execute('SELECT raw FROM observations ORDER BY "id" LIMIT ?', (2 * rawjson.TRAIN_AT,))
        data = rawjson.train([self._codec.decompress(raw) for (raw,) in rows])
        if data is None:
            return False
        dict_id = self._codec.add(data)
        self._db.execute("INSERT OR REPLACE INTO dictionaries VALUES (?, ?)", (dict_id, data))
        return True

    def _time_to_train(self, saved: int) -> bool:
        return saved > 0 and not self._codec.trained and self.observation_count() >= self._train_at

    def _compress_what_is_stored(self) -> None:
        """The few observations stored before the dictionary, compressed anew with it; taken
        out and put back whole, so their pages are filled again rather than left with holes."""
        columns = ", ".join(f'"{c}"' for c in (*SQL_COLUMNS, "raw"))
        rows = self._db.execute(f"SELECT {columns} FROM observations").fetchall()
        self._db.execute("DELETE FROM observations")
        self._db.executemany(
            f"INSERT INTO observations ({columns}) VALUES ({', '.join('?' * (len(SQL_COLUMNS) + 1))})",
            [(*row[:-1], self._codec.compress(self._codec.decompress(row[-1]))) for row in rows],
        )

    def _give_back_space(self) -> None:
        """After an upgrade that rewrote the observations, return the freed pages to the
        file system; a disk too full to rebuild the file keeps it as it is, whole."""
        try:
            self._db.execute("VACUUM")
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the file shrinks only now
        except sqlite3.OperationalError as exc:
            log.warning("%s keeps its size after the upgrade (%s)", self.path, exc)

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
        """Refuse to mix two different harvests in one folder; say what differs. A state that
        holds nothing yet (left by a run refused before its first page) takes the new one."""
        stored = self.meta("fingerprint")
        if stored is None or self.holds_nothing():
            self.set_meta("fingerprint", json.dumps(fingerprint, sort_keys=True))
            return
        before = json.loads(stored)
        # A setting an older version did not record (the API URL, say) is taken as it is now.
        if unrecorded := [k for k in fingerprint if k not in before]:
            before.update({k: fingerprint[k] for k in unrecorded})
            self.set_meta("fingerprint", json.dumps(before, sort_keys=True))
        differs = [k for k in fingerprint if before[k] != fingerprint[k]]
        if differs:
            what = "; ".join(f"{{{k}}} was {before.get(k)} and is now {fingerprint[k]}" for k in differs)
            raise SettingError(
                "out",
                f"{self.path.parent} holds a harvest made with other settings ({what}): "
                "run the same command as before, or harvest into a new {out} folder",
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

    def end_range(self, cursor: Cursor) -> None:
        """A range confirmed paged to its end (a count above its last id was 0), or given up."""
        self._db.execute(
            "UPDATE cursors SET done = 1 WHERE stream = ? AND lo = ?", (cursor.stream, cursor.lo)
        )

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
        paged: Iterable[int] = (),
    ) -> Counter[PhotoStatus]:
        """Commit one page atomically; returns how its photo rows changed, by status (pending:
        files to fetch; skipped: finished by rule; less the rows it dropped). ``paged``: the
        ids the page returned that are not stored (malformed): the query returned them all."""
        columns = ", ".join(f'"{c}"' for c in (*SQL_COLUMNS, "raw"))
        marks = ", ".join("?" * (len(SQL_COLUMNS) + 1))
        updates = ", ".join(f'"{c}" = excluded."{c}"' for c in (*SQL_COLUMNS[1:], "raw"))
        # Outcomes waiting in the batch are written first: a page may replace their rows.
        self._write_done()
        with self._transaction():
            self._db.executemany(
                f"INSERT INTO observations ({columns}) VALUES ({marks}) "
                f'ON CONFLICT ("id") DO UPDATE SET {updates}',
                [(*row, self._codec.compress(raw)) for row, raw in zip(rows, raws, strict=True)],
            )
            added = self._put_photos([row[0] for row in rows], photos)
            self._db.execute(
                "UPDATE cursors SET last_id = ?, done = ? WHERE stream = ? AND lo = ?",
                (last_id, int(done), cursor.stream, cursor.lo),
            )
            n = self._stream_number(cursor.stream)
            self._db.executemany(
                "INSERT OR IGNORE INTO paged (stream, id) VALUES (?, ?)",
                [(n, oid) for oid in (*(row[0] for row in rows), *paged)],
            )
            if self._time_to_train(len(rows)) and self._train_dictionary():
                self._compress_what_is_stored()
        return added

    def _put_photos(self, observation_ids: list[int], photos: Iterable[PhotoFile]) -> Counter[PhotoStatus]:
        """Make the photo rows of these observations what a fresh harvest would write from
        ``photos``; returns how the rows changed, by status (new ones less dropped ones).

        A row whose file is unchanged (same URL and path) keeps its outcome, so a file done is
        not fetched again, and takes the new licence, attribution and position. Any other row
        is replaced by a new one, queued anew, and a row of these observations no longer
        asked for is deleted. The file a dropped row had is deleted before the commit: it no
        longer belongs (a photo removed, hidden, or under a licence not asked for) or comes
        again from a new URL. Should the commit fail, the page is paged again and the same
        rows are dropped again.
        """
        wanted: dict[tuple[int, str], PhotoFile] = {}
        for p in photos:
            wanted.setdefault((p.photo_id, p.size), p)  # a photo listed twice: its first listing
        stored = self._stored_photos(observation_ids, {photo_id for photo_id, _ in wanted})
        page = set(observation_ids)
        kept: dict[tuple[int, str], int] = {}  # key -> seq of a row that keeps its outcome
        dropped: list[_StoredPhoto] = []
        for key, row in stored.items():
            incoming = wanted.get(key)
            if incoming is not None and row.holds(incoming):
                kept[key] = row.seq
            elif incoming is not None or row.observation_id in page:
                dropped.append(row)  # another photo shares the id: it keeps its rows
        self._delete_files(row.path for row in dropped if row.path)
        self._db.executemany("DELETE FROM photos WHERE seq = ?", [(row.seq,) for row in dropped])
        self._db.executemany(
            "UPDATE photos SET observation_id = ?, position = ?, api_order = ?, license_code = ?,"
            " attribution = ? WHERE seq = ?",
            [
                (p.observation_id, p.position, p.api_order, p.license_code, p.attribution, kept[key])
                for key, p in wanted.items()
                if key in kept
            ],
        )
        new = [p for key, p in wanted.items() if key not in kept]
        hosts = [host_of(p.url) if p.path else None for p in new]  # only files to fetch have one
        self._db.executemany(
            f"INSERT INTO photos ({PHOTO_COLUMNS_SQL}) VALUES ({', '.join('?' * 13)})",
            [
                (
                    p.photo_id,
                    p.size,
                    p.observation_id,
                    p.position,
                    p.api_order,
                    p.url,
                    host,
                    p.path,
                    p.status,
                    p.reason,
                    p.license_code,
                    p.attribution,
                    p.max_bytes,
                )
                for p, host in zip(new, hosts, strict=True)
            ],
        )
        if self._hosts is not None:
            self._hosts.update(host for host in hosts if host)
        changes = Counter(p.status for p in new)
        changes.subtract(row.status for row in dropped)
        return changes

    def put_photo_rows(self, observation_ids: list[int], photos: Iterable[PhotoFile]) -> Counter[PhotoStatus]:
        """Make the photo rows of these stored observations those of ``photos`` (as a page
        would, in one transaction): a photo stage run on a folder paged without photos."""
        self._write_done()
        with self._transaction():
            return self._put_photos(observation_ids, photos)

    def _stored_photos(
        self, observation_ids: list[int], photo_ids: set[int]
    ) -> dict[tuple[int, str], _StoredPhoto]:
        """The rows of these observations and of these photos, by (photo id, size)."""
        found: dict[tuple[int, str], _StoredPhoto] = {}
        for column, values in (("observation_id", observation_ids), ("photo_id", sorted(photo_ids))):
            for start in range(0, len(values), _IN_LIST):
                chunk = values[start : start + _IN_LIST]
                rows = self._db.execute(
                    "SELECT photo_id, size, seq, observation_id, url, path, reason, status FROM photos"
                    f" WHERE {column} IN ({','.join('?' * len(chunk))})",
                    chunk,
                )
                for photo_id, size, seq, observation_id, url, path, reason, status in rows:
                    stored = _StoredPhoto(seq, observation_id, url, path, reason, PhotoStatus(status))
                    found[(photo_id, size)] = stored
        return found

    def _delete_files(self, paths: Iterable[str]) -> None:
        """Delete photo files of the output folder (or the store's, see ``remove_files``) by
        the paths the state holds; a path that is not one the harvest builds
        (photos/<n>/<n>/<id>_<size>.<ext>) is left alone."""
        out = self.path.parent
        ours = [path for path in paths if is_photo_path(path)]
        if self.remove_files is not None and ours:
            self.remove_files(ours)
            return
        for path in ours:
            (out / path).unlink(missing_ok=True)

    def paging_done(self, streams: Iterable[str]) -> bool:
        """Whether each of these streams has been paged to its end and reconciled once (even
        if observations were left unfound: running again looks for those, see unfound())."""
        for stream in streams:
            row = self._db.execute("SELECT reconciled FROM streams WHERE stream = ?", (stream,)).fetchone()
            if not row or not row[0]:
                return False
        return True

    # -- reconciliation ---------------------------------------------------------------------
    def _stream_number(self, stream: str) -> int:
        n = self._streams.get(stream)
        if n is None:
            self._db.execute("INSERT OR IGNORE INTO streams (stream) VALUES (?)", (stream,))
            n = self._db.execute("SELECT n FROM streams WHERE stream = ?", (stream,)).fetchone()[0]
            self._streams[stream] = n
        return n

    def unfound(self, stream: str) -> int | None:
        """What the stream's last reconciliation could not find: 0 when it is complete, None
        when it was never reconciled (or is being reconciled again)."""
        row = self._db.execute("SELECT unfound FROM streams WHERE stream = ?", (stream,)).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def set_unfound(self, stream: str, unfound: int) -> None:
        """Record a reconciliation's verdict; its counts are spent."""
        n = self._stream_number(stream)
        with self._transaction():
            self._db.execute("UPDATE streams SET reconciled = 1, unfound = ? WHERE n = ?", (unfound, n))
            self._db.execute("DELETE FROM counts WHERE stream = ?", (n,))

    def paged_count(self, stream: str, lo: int, hi: int | None) -> int:
        """Observations the stream's pages returned with ids in (lo, hi)."""
        n = self._stream_number(stream)
        top = hi if hi is not None else 1 << 62
        sql = "SELECT COUNT(*) FROM paged WHERE stream = ? AND id > ? AND id < ?"
        return int(self._db.execute(sql, (n, lo, top)).fetchone()[0])

    def paged_max(self, stream: str, lo: int) -> int | None:
        """The largest id above ``lo`` the stream's pages returned."""
        n = self._stream_number(stream)
        top = self._db.execute("SELECT MAX(id) FROM paged WHERE stream = ? AND id > ?", (n, lo)).fetchone()[0]
        return None if top is None else int(top)

    def paged_id_at(self, stream: str, lo: int, hi: int, rank: int) -> int:
        """The id of rank ``rank`` (from 0, ascending) among the stream's ids in (lo, hi)."""
        n = self._stream_number(stream)
        sql = "SELECT id FROM paged WHERE stream = ? AND id > ? AND id < ? ORDER BY id LIMIT 1 OFFSET ?"
        return int(self._db.execute(sql, (n, lo, hi, rank)).fetchone()[0])

    def cached_count(self, stream: str, lo: int, hi: int | None) -> int | None:
        key = (self._stream_number(stream), lo, _NO_END if hi is None else hi)
        sql = "SELECT total FROM counts WHERE stream = ? AND lo = ? AND hi = ?"
        row = self._db.execute(sql, key).fetchone()
        return None if row is None else int(row[0])

    def cache_count(self, stream: str, lo: int, hi: int | None, total: int) -> None:
        n = self._stream_number(stream)
        self._db.execute(
            "INSERT OR REPLACE INTO counts VALUES (?, ?, ?, ?)", (n, lo, _NO_END if hi is None else hi, total)
        )

    def reopen(self, stream: str, spans: Iterable[tuple[int, int | None]]) -> None:
        """Page these id spans of a stream again, as its ranges from now on (the ranges done
        hold nothing more to page); the counts that located them are spent, so the next
        reconciliation asks afresh."""
        n = self._stream_number(stream)
        with self._transaction():
            self._db.execute("DELETE FROM cursors WHERE stream = ? AND done = 1", (stream,))
            self._db.executemany(
                "INSERT INTO cursors (stream, lo, hi, last_id) VALUES (?, ?, ?, ?)",
                [(stream, lo, hi, lo) for lo, hi in spans],
            )
            self._db.execute("DELETE FROM counts WHERE stream = ?", (n,))

    def forget_streams(self, streams: Iterable[str]) -> None:
        """Drop what these streams paged and counted: an --update's query is done once its run
        completes, and a later update that asks the same query (two runs begun within the
        same second compute the same ``updated_since``) must page it afresh, not find it done."""
        keys = [(key,) for key in streams]
        with self._transaction():
            for table in ("paged", "counts"):
                sql = f"DELETE FROM {table} WHERE stream IN (SELECT n FROM streams WHERE stream = ?)"
                self._db.executemany(sql, keys)
            self._db.executemany("DELETE FROM streams WHERE stream = ?", keys)
            self._db.executemany("DELETE FROM cursors WHERE stream = ?", keys)
        for (key,) in keys:
            self._streams.pop(key, None)

    def holds_nothing(self) -> bool:
        """No observation and no range paged to its end: nothing a run would want to keep."""
        return not self._db.execute(
            "SELECT EXISTS (SELECT 1 FROM observations) OR EXISTS (SELECT 1 FROM cursors WHERE done = 1)"
        ).fetchone()[0]

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)

    # -- photos -----------------------------------------------------------------------------
    def retry_failed(self) -> None:
        """A new run gives photos that failed for good last time one more chance."""
        self._db.execute(
            "UPDATE photos SET status = ?, reason = NULL WHERE status = ?",
            (PhotoStatus.PENDING, PhotoStatus.FAILED),
        )

    def forget_done(self) -> int:
        """Every file done pending again (the store that held them is gone); how many."""
        self._write_done()
        with self._transaction():
            changed = self._db.execute(
                "UPDATE photos SET status = ?, bytes = NULL, reason = NULL WHERE status = ?",
                (PhotoStatus.PENDING, PhotoStatus.DONE),
            ).rowcount
        self._hosts = None
        return changed

    def photo_hosts(self) -> set[str]:
        """The hosts that files to fetch are on (of this run's pages, or left by an earlier run)."""
        if self._hosts is None:
            rows = self._db.execute(
                "SELECT DISTINCT host FROM photos WHERE status IN (?, ?) AND host IS NOT NULL",
                (PhotoStatus.PENDING, PhotoStatus.FAILED),
            )
            self._hosts = {host for (host,) in rows}
        return set(self._hosts)

    def pending_photos(self, host: str, after_seq: int, limit: int) -> list[PhotoJob]:
        """The next files to fetch from ``host``, in queue order."""
        self._write_done()
        rows = self._db.execute(
            "SELECT seq, url, host, path, max_bytes FROM photos"
            " WHERE status = ? AND host = ? AND seq > ?"
            " ORDER BY seq LIMIT ?",
            (PhotoStatus.PENDING, host, after_seq, limit),
        ).fetchall()
        return [PhotoJob(*row) for row in rows]

    def pending_by_photo(self, chunk: int = 10_000) -> Iterator[tuple[int, PhotoJob]]:
        """Every file to fetch, with its photo id, sorted by photo id (a cluster's manifest)."""
        self._write_done()
        cur = self._db.execute(
            "SELECT photo_id, seq, url, host, path, max_bytes FROM photos"
            " WHERE status = 'pending' AND host IS NOT NULL ORDER BY photo_id, seq"
        )
        while rows := cur.fetchmany(chunk):
            yield from ((photo_id, PhotoJob(*job)) for photo_id, *job in rows)

    def finish_photo(self, seq: int, status: PhotoStatus, nbytes: int | None, reason: str | None) -> None:
        """Record a photo's outcome. Files done are written in batches (a statement each cost
        the event loop more than the download): a crash loses at most a batch, and the next
        run finds those files on disk and fetches none of them again."""
        if status is PhotoStatus.DONE:
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
                    f"UPDATE photos SET status = '{PhotoStatus.DONE}', bytes = ?, reason = NULL"
                    " WHERE seq = ?",
                    self._done,
                )
            self._done.clear()

    def pending_by_host(self) -> dict[str, int]:
        """Files left to fetch on each host (those done since the last batch still count)."""
        rows = self._db.execute(
            "SELECT host, COUNT(*) FROM photos WHERE status = ? AND host IS NOT NULL GROUP BY host",
            (PhotoStatus.PENDING,),
        )
        return dict(rows.fetchall())

    def photo_counts(self) -> dict[str, int]:
        self._write_done()
        rows = self._db.execute("SELECT status, COUNT(*) FROM photos GROUP BY status").fetchall()
        return {PhotoStatus(status): count for status, count in rows}

    def bytes_done(self) -> int:
        self._write_done()
        sql = "SELECT TOTAL(bytes) FROM photos WHERE status = ?"
        return int(self._db.execute(sql, (PhotoStatus.DONE,)).fetchone()[0])

    def failed_photos(self, limit: int = 10) -> list[tuple[int, str, str]]:
        self._write_done()
        return self._db.execute(
            "SELECT photo_id, size, reason FROM photos WHERE status = ? ORDER BY seq LIMIT ?",
            (PhotoStatus.FAILED, limit),
        ).fetchall()

    def record_rejected(self, rejected: Sequence[Rejected], fitting: Sequence[int]) -> None:
        """Keep what a page skipped, replacing what earlier pages said of the same
        observations (one fixed since is no longer counted); idempotent, so a page asked
        again counts nothing twice."""
        if not rejected and not fitting:
            return
        marks = ",".join("?" * len(fitting))
        with self._transaction():
            self._db.execute(f"DELETE FROM rejected WHERE observation_id IN ({marks})", list(fitting))
            self._db.executemany(
                "INSERT OR REPLACE INTO rejected VALUES (?, ?, ?, ?)",
                [(r.kind, r.key, r.observation_id, r.reason) for r in rejected],
            )

    def rejected_counts(self) -> dict[str, int]:
        """Observations and photos skipped as malformed, by kind and reason."""
        rows = self._db.execute("SELECT kind, reason, COUNT(*) FROM rejected GROUP BY 1, 2 ORDER BY 3 DESC")
        return {f"{kind}: {reason}": count for kind, reason, count in rows}

    def observation_count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM observations").fetchone()[0])

    # -- export: typed reads in chunks (memory stays flat at any harvest size) --------------
    def observation_rows(self, chunk: int = EXPORT_CHUNK) -> Iterator[list[tuple[Any, ...]]]:
        """Every observation's row (records.COLUMNS' values in their order), by id, in lists
        of at most ``chunk`` rows."""
        columns = ", ".join(f'"{c}"' for c in SQL_COLUMNS)
        yield from self._chunks(f'SELECT {columns} FROM observations ORDER BY "id"', chunk)

    def photo_rows(self, chunk: int = EXPORT_CHUNK) -> Iterator[list[tuple[Any, ...]]]:
        """Every photo file's row (records.PHOTO_COLUMNS' values in their order), in the
        exports' order (records.PHOTO_ORDER), in lists of at most ``chunk`` rows."""
        sql = f"SELECT {', '.join(PHOTO_COLUMNS)} FROM photos ORDER BY {_PHOTO_ORDER}"
        yield from self._chunks(sql, chunk)

    def files_done(self, chunk: int = EXPORT_CHUNK) -> Iterator[FileDone]:
        """The photo files on disk, in the exports' order (records.PHOTO_ORDER)."""
        sql = (
            "SELECT observation_id, photo_id, url, path, license_code FROM photos"
            f" WHERE status = '{PhotoStatus.DONE}' ORDER BY {_PHOTO_ORDER}"
        )
        for rows in self._chunks(sql, chunk):
            yield from map(FileDone._make, rows)

    def observations_per_place(self, places: Iterable[int]) -> dict[int, int]:
        """Observations in each of these places (one may count in several)."""
        counts = dict.fromkeys(places, 0)
        rows = self._db.execute("SELECT place_ids, COUNT(*) FROM observations GROUP BY 1")
        for joined, count in rows:
            for place in (joined or "").split(";"):
                if place.isdigit() and int(place) in counts:
                    counts[int(place)] += count
        return counts

    def coverage(self) -> Coverage:
        """The observations' bounding box and range of dates (None where there are none)."""
        row = self._db.execute(
            "SELECT MIN(latitude), MAX(latitude), MIN(longitude), MAX(longitude),"
            " MIN(observed_on), MAX(observed_on) FROM observations"
        ).fetchone()
        return Coverage(*row)

    def observations_json(self) -> Iterator[tuple[int, bytes]]:
        """(id, JSON as the API sent it) of each stored observation, in id order."""
        for oid, blob in self._db.execute('SELECT "id", raw FROM observations ORDER BY "id"'):
            yield oid, self._codec.decompress(blob)

    def raw_observation_batches(self, size: int) -> Iterator[list[dict[str, Any]]]:
        """The stored observations in id order, ``size`` at a time, each batch read by a
        query of its own (the state may be written between two batches)."""
        last = -1
        while rows := self._db.execute(
            'SELECT "id", raw FROM observations WHERE "id" > ? ORDER BY "id" LIMIT ?', (last, size)
        ).fetchall():
            last = rows[-1][0]
            yield [msgspec.json.decode(self._codec.decompress(raw)) for _, raw in rows]

    def raw_observations(self) -> Iterator[dict[str, Any]]:
        """Each observation as the API sent it, by id."""
        for _, raw in self.observations_json():
            yield msgspec.json.decode(raw)

    # -- photo files of one size (the WebDataset's samples, the report's grid) ---------------
    def photo_sizes(self) -> list[str]:
        """The sizes the photo rows ask for, smallest first."""
        rows = self._db.execute("SELECT DISTINCT size FROM photos").fetchall()
        return sorted((size for (size,) in rows), key=lambda size: SIZES.index(size) if size in SIZES else 99)

    def files_of_size(self, size: str, limit: int | None = None) -> Iterator[SizedFile]:
        """The photo files of ``size`` on disk, in the exports' photo order; the first
        ``limit`` of them, or all."""
        self._write_done()
        sql = (
            "SELECT observation_id, photo_id, path, license_code, attribution, url FROM photos"
            f" WHERE status = 'done' AND size = ? ORDER BY {_PHOTO_ORDER} LIMIT ?"
        )
        cursor = self._db.execute(sql, (size, -1 if limit is None else limit))
        while rows := cursor.fetchmany(_IN_LIST):
            yield from map(SizedFile._make, rows)

    # -- the report's figures ------------------------------------------------------------------
    def observation_counts(self, column: str, limit: int | None = None) -> list[tuple[Any, int]]:
        """Observations by the value of one of the observations table's columns, most first."""
        if column not in SQL_COLUMNS:
            raise ValueError(f"no observations column {column!r}")
        sql = f'SELECT "{column}", COUNT(*) FROM observations GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT ?'
        return self._db.execute(sql, (-1 if limit is None else limit,)).fetchall()

    def observations_per_month(self) -> list[tuple[str, int]]:
        """Observations by the month (YYYY-MM) of observed_on, oldest first."""
        sql = (
            "SELECT substr(observed_on, 1, 7), COUNT(*) FROM observations"
            " WHERE observed_on GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]*' GROUP BY 1 ORDER BY 1"
        )
        return self._db.execute(sql).fetchall()

    def points(self, limit: int) -> list[tuple[float, float]]:
        """(longitude, latitude) of at most ``limit`` observations with public coordinates."""
        sql = (
            "SELECT longitude, latitude FROM observations WHERE latitude BETWEEN -90 AND 90"
            ' AND longitude BETWEEN -180 AND 180 ORDER BY "id" LIMIT ?'
        )
        return self._db.execute(sql, (limit,)).fetchall()

    # -- taxonomy (the taxa table) ------------------------------------------------------------
    def taxon_ids(self) -> set[int]:
        """The taxa named or asked for already."""
        return {taxon_id for (taxon_id,) in self._db.execute("SELECT id FROM taxa")}

    def observations_of_new_taxa(self) -> Iterator[dict[str, Any]]:
        """One observation (as the API sent it) of each taxon observed whose ancestry is not
        in the taxa table yet: what names its higher taxa. One pass over the table's columns,
        and only these observations decompressed."""
        known = {tid for (tid,) in self._db.execute("SELECT id FROM taxa WHERE ancestor_ids IS NOT NULL")}
        rows = self._db.execute(
            'SELECT taxon_id, MIN("id") FROM observations WHERE taxon_id IS NOT NULL GROUP BY taxon_id'
        )
        wanted = [oid for taxon_id, oid in rows.fetchall() if taxon_id not in known]
        for start in range(0, len(wanted), _IN_LIST):
            chunk = wanted[start : start + _IN_LIST]
            marks = ",".join("?" * len(chunk))
            for (raw,) in self._db.execute(f'SELECT raw FROM observations WHERE "id" IN ({marks})', chunk):
                yield msgspec.json.decode(self._codec.decompress(raw))

    def save_taxa(self, taxa: Iterable[TaxonRecord]) -> None:
        """Name these taxa (one with no rank: asked, and not known), in one transaction."""
        rows = [
            (t.id, t.rank, t.name, t.preferred_common_name, ",".join(map(str, t.ancestor_ids or [])) or None)
            for t in taxa
        ]
        with self._transaction():
            self._db.executemany("INSERT OR REPLACE INTO taxa VALUES (?, ?, ?, ?, ?)", rows)

    def taxa(self) -> dict[int, TaxonRecord]:
        """Every taxon named so far, by id (a few per species harvested: held in memory)."""
        rows = self._db.execute("SELECT id, rank, name, common_name, ancestor_ids FROM taxa")
        return {
            taxon_id: TaxonRecord(
                taxon_id, rank, name, common, [int(a) for a in ancestors.split(",")] if ancestors else None
            )
            for taxon_id, rank, name, common, ancestors in rows
        }

    def _chunks(self, sql: str, chunk: int) -> Iterator[list[tuple[Any, ...]]]:
        self._write_done()
        cursor = self._db.execute(sql)
        while rows := cursor.fetchmany(chunk):
            yield rows


@dataclass(frozen=True)
class StoredHarvest:
    """What a harvest's state holds, read without a write (what a dry run starts from)."""

    meta: dict[str, str]
    observations: int
    files_left: int  # pending, or failed and to be tried again
    paged: bool  # every range paged to its end
    fetched: set[tuple[int, str]]  # (photo id, size) of the files finished
    taxa: set[int]  # taxa named (or asked for) already
    done: int = 0  # photo files done (in the store the meta names)


def read_stored(path: Path) -> StoredHarvest:
    """Read a state file opened read-only: nothing is written, not even a schema upgrade."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            return StoredHarvest(
                meta=dict(db.execute("SELECT key, value FROM meta").fetchall()),
                observations=db.execute("SELECT COUNT(*) FROM observations").fetchone()[0],
                files_left=db.execute(
                    "SELECT COUNT(*) FROM photos WHERE status IN (?, ?)",
                    (PhotoStatus.PENDING, PhotoStatus.FAILED),
                ).fetchone()[0],
                paged=all(done for (done,) in db.execute("SELECT done FROM cursors")),
                fetched=set(
                    db.execute(
                        "SELECT photo_id, size FROM photos WHERE status != ?", (PhotoStatus.PENDING,)
                    ).fetchall()
                ),
                taxa=_named_taxa(db),
                done=db.execute(
                    "SELECT COUNT(*) FROM photos WHERE status = ?", (PhotoStatus.DONE,)
                ).fetchone()[0],
            )
    except sqlite3.Error as exc:
        raise UsageError(f"{path} is not a readable harvest state ({exc})") from exc


def _named_taxa(db: sqlite3.Connection) -> set[int]:
    try:
        return {taxon_id for (taxon_id,) in db.execute("SELECT id FROM taxa")}
    except sqlite3.OperationalError:  # a state written before the taxa table
        return set()


def read_meta(path: Path, key: str) -> str | None:
    """One meta value of the state at ``path``, read only (no lock taken, nothing upgraded)."""
    try:
        with contextlib.closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as db:
            row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    except sqlite3.Error as exc:
        raise state_error(exc, path) from None
    return row[0] if row else None


def state_error(exc: sqlite3.Error, path: Path) -> HarvestError:
    """What an error of the state database means for the user, in one line: the disk is
    full or a write was refused (exit 6: nothing is damaged, the same command goes on), or the
    file is damaged or unusable (exit 2), left as it is."""
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    if code == sqlite3.SQLITE_FULL or (code == sqlite3.SQLITE_IOERR and _disk_is_full(path)):
        return DiskFullError(f"no space left in {path.parent}: free some and run the same command again")
    if code == sqlite3.SQLITE_IOERR:  # a write refused: a file-size limit, a quota, the device
        return DiskFullError(
            f"could not write {path} ({exc}); nothing is damaged, the unfinished write was rolled "
            "back: free space (or lift a file-size limit, ulimit -f, or quota) and run the same command again"
        )
    if code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB) or type(exc) is sqlite3.DatabaseError:
        return UsageError(
            f"{path} is damaged, not a readable harvest state ({exc}); it is left as it is: "
            "restore a copy of it, or move it away to harvest again from the start"
        )
    return UsageError(f"{path} cannot be used ({exc}); it is left as it is")


def _disk_is_full(path: Path) -> bool:
    """SQLite reports a failed write of its shared-memory file as an I/O error."""
    try:
        return shutil.disk_usage(path.parent).free < 1024 * 1024
    except OSError as exc:
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)


class _Transaction:
    """BEGIN IMMEDIATE .. COMMIT, rolled back on any error (autocommit mode elsewhere)."""

    def __init__(self, db: sqlite3.Connection):
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *_: object) -> None:
        self._db.execute("ROLLBACK" if exc_type else "COMMIT")
