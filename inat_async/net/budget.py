"""Politeness budgets counted over sliding windows, shared by every harvest of this user.

iNaturalist asks for at most 60 API requests a minute and 10,000 a day, and may block an IP
that downloads more than 5 GB of media in an hour or 24 GB in a day. Those are limits per IP,
so the counters live in one small SQLite file per user (not per harvest): two harvests at once
share them, and a restart the next morning remembers what was used.

A request reserves a time slot in a transaction: the slot is no earlier than the last one
plus the even spacing interval, and no window (minute, day) would then hold more than its
limit. Reservations are spread evenly, never bursting at the top of a window.
"""

from __future__ import annotations

import logging
import math
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, TypeAlias, TypeVar

from inat_async.errors import DiskFullError, HarvestError, UsageError
from inat_async.net.pace import duration

log = logging.getLogger("inat_async")
T = TypeVar("T")
#: What :meth:`Ledger.take` answers: the row booked (or None), the wait for room, the full window.
Taken: TypeAlias = tuple[int | None, float, str | None]

# Network delays can bring two requests closer at the server than they were sent (the first
# delayed, the last not), and clients have seen 429 at exactly 60 requests a minute: each
# request is counted over its window's span plus a margin, a second of a minute (1/60 of the
# span, so --budget-window-scale scales it with the window: 61 s for the API's minute, and
# 60 requests then take at least 61 s), and at least GUARD_SECONDS, since the delays of a busy
# machine or network do not shrink with a scaled window (at load 20 on 2 cores, a loopback
# server saw arrivals up to 0.48 s later than they were sent, and 0.1 s let one exceed a 6 s
# window). At 60 a minute and 1 s of margin, 8 ranges with answers of 1 to 3 s sent 61
# requests in one minute of arrivals with 0.6 s; none with 1 s (benchmarks, section 8).
GUARD = 1 / 60
GUARD_SECONDS = 0.5


def margin(span: float) -> float:
    """How much longer than ``span`` a window is counted: the margin for network jitter."""
    return max(span * GUARD, GUARD_SECONDS)


#: A booking further ahead than a booker may book (its ``lead``) by more than this was made
#: by a clock ahead of this one (the clock went back, or a harvest ran with its clock ahead).
FUTURE_SKEW = 5.0
#: How long SQLite itself retries a busy file before the ledger says what it waits for.
_BUSY_SLICE = 1.0


@dataclass(frozen=True)
class Window:
    """At most ``limit`` units in any ``span`` seconds; ``name`` is what a waiting user reads.

    ``jitter``: whether what it counts is booked before it reaches the server (a request's
    slot), so network delays can bring two closer there than booked: each is then counted
    over the span plus :func:`margin`. Not so for amounts counted from their answer (bytes:
    booked before the request and settled, or recorded, when it answers, after it arrived):
    the server cannot have seen one later than it is counted."""

    limit: float
    span: float
    name: str
    jitter: bool = True

    @property
    def counted(self) -> float:
        """Seconds over which each booking counts: the span, plus the margin for jitter."""
        return self.span + margin(self.span) if self.jitter else self.span


class Slot(NamedTuple):
    """When a request may go, which window set that (None: only the even spacing), whether
    it was booked (a slot further ahead than the lead is not: ask again nearer), and how
    long from the booking until then: a wait is taken from one reading of the wall clock,
    so a clock that jumps between two readings cannot stretch it."""

    time: float
    reason: str | None
    booked: bool = True
    wait: float = 0.0


def default_budget_file() -> Path:
    env = os.environ.get("INAT_ASYNC_BUDGET_FILE")
    if env:
        return Path(env)
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache, "inat_async", "budget.sqlite")


class Ledger:
    """The shared record of what was spent: rows of (key, time, amount), time in Unix seconds.

    ``lead``: no slot is booked further ahead than this, so a booking further ahead (by more
    than FUTURE_SKEW) can only come from a clock ahead of ours: it is counted as made now,
    with a warning, instead of holding every harvest back until that clock's time.
    ``busy_wait``: how long to wait for a file another program holds, saying so, before
    giving up with one line.
    """

    def __init__(
        self, path: Path, keep: float = 2 * 86400.0, lead: float = math.inf, busy_wait: float = 30.0
    ):
        self.path = path
        self.lead = lead
        self.busy_wait = busy_wait
        # Callers run in worker threads (asyncio.to_thread): one at a time on the connection.
        self._lock = threading.Lock()
        self._closed = False
        self._db = self._call(self._open, keep)

    def _open(self, keep: float) -> sqlite3.Connection:
        if self.path.is_dir():
            raise UsageError(
                f"the budget file {self.path} is a folder: remove it, or give another with {{budget_file}}"
            )
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(
                f"the budget file's folder {self.path.parent} cannot be made ({exc.strerror})"
            ) from None
        db = sqlite3.connect(self.path, isolation_level=None, timeout=_BUSY_SLICE, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS spent (key TEXT NOT NULL, t REAL NOT NULL, amount REAL NOT NULL)"
            )
            db.execute("CREATE INDEX IF NOT EXISTS spent_key_t ON spent (key, t)")
            now = time.time()
            db.execute("DELETE FROM spent WHERE t < ?", (now - keep,))
            self._bring_back(db, now, None)
        except BaseException:
            db.close()
            raise
        return db

    def close(self) -> None:
        """Close the file once no call is using it. A call whose caller was cancelled (a
        harvest ending on an IP block) goes on in its thread: closing the connection under it
        crashed the process with a segmentation fault, so this waits for it to end."""
        with self._lock:
            self._closed = True
            self._db.close()

    def _call(self, work: Callable[..., T], *args: object) -> T:
        """Run ``work`` on the file: while another program holds it, wait (saying what for)
        up to ``busy_wait``; any other error of the file becomes one line naming it."""
        started = time.monotonic()
        told = False
        while True:
            try:
                with self._lock:
                    if self._closed:  # a call that went on after its harvest ended
                        raise HarvestError(f"the budget file {self.path} was closed")
                    return work(*args)
            except sqlite3.Error as exc:
                if not _busy(exc):
                    raise budget_error(exc, self.path) from None
                waited = time.monotonic() - started
                if waited >= self.busy_wait:
                    raise UsageError(
                        f"the budget file {self.path} stayed locked by another program for {waited:.0f} s: "
                        "end or resume that program (a harvest stopped with Ctrl-Z: fg), then run again"
                    ) from None
                if not told:
                    told = True
                    log.warning(
                        "waiting for the budget file %s, locked by another program (a harvest stopped "
                        "with Ctrl-Z?), for at most %.0f s",
                        self.path,
                        self.busy_wait,
                    )
                time.sleep(min(0.2, self.busy_wait))

    def reserve(self, key: str, windows: Sequence[Window], interval: float, amount: float = 1.0) -> Slot:
        """Book ``amount`` at the earliest allowed time, unless that is further ahead than
        the lead: then nothing is booked, and the caller asks again nearer to it."""
        return self._call(self._reserve, key, windows, interval, amount)

    def _reserve(self, key: str, windows: Sequence[Window], interval: float, amount: float) -> Slot:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            now = time.time()
            self._bring_back(self._db, now, key)
            last = self._db.execute("SELECT MAX(t) FROM spent WHERE key = ?", (key,)).fetchone()[0]
            slot = now if last is None else max(now, last + interval)
            reason = None
            for _ in range(len(windows) * 4):
                moved = False
                for window in windows:
                    earliest = self._earliest(key, window, amount, slot)
                    if earliest > slot:
                        slot, reason, moved = earliest, window.name, True
                if not moved:
                    break
            booked = slot <= now + self.lead
            if booked:
                self._db.execute("INSERT INTO spent VALUES (?, ?, ?)", (key, slot, amount))
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return Slot(slot, reason, booked, slot - now)

    def _bring_back(self, db: sqlite3.Connection, now: float, key: str | None) -> None:
        """Bookings from the future, beyond what any booker may book ahead, counted as made
        now (they still count in every window), with a warning."""
        horizon = now + (self.lead if math.isfinite(self.lead) else 86400.0) + FUTURE_SKEW
        where, args = ("key = ? AND t > ?", (key, horizon)) if key else ("t > ?", (horizon,))
        ahead = db.execute(f"SELECT COUNT(*), MAX(t) FROM spent WHERE {where}", args).fetchone()
        if ahead[0]:
            db.execute(f"UPDATE spent SET t = ? WHERE {where}", (now, *args))
            log.warning(
                "the budget file %s held %d booking(s) up to %s ahead of this clock (the clock went "
                "back, or a harvest ran with its clock ahead): counted as made now",
                self.path,
                ahead[0],
                duration(ahead[1] - now),
            )

    def take(self, key: str, windows: Sequence[Window], amount: float) -> Taken:
        """Book ``amount`` now if every window has room for it: (its row, 0, None); else
        nothing is booked and (None, seconds until there is room, the window that is full).
        Bytes are booked so before a request, at a size expected, and settled after."""
        return self._call(self._take, key, windows, amount)

    def _take(self, key: str, windows: Sequence[Window], amount: float) -> Taken:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            now = time.time()
            self._bring_back(self._db, now, key)
            wait, reason = max(
                ((self._earliest(key, w, amount, now) - now, w.name) for w in windows),
                key=lambda item: item[0],
                default=(0.0, None),
            )
            row = None
            if wait <= 0:
                row = self._db.execute("INSERT INTO spent VALUES (?, ?, ?)", (key, now, amount)).lastrowid
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return row, max(0.0, wait), None if row is not None else reason

    def settle(self, row: int, amount: float) -> None:
        """A booking made before its request (:meth:`take`) set to what was really spent,
        and counted from now if later: the request reached its server somewhere between."""
        self._call(
            self._db.execute,
            "UPDATE spent SET amount = ?, t = MAX(t, ?) WHERE rowid = ?",
            (amount, time.time(), row),
        )

    def record(self, key: str, amount: float) -> None:
        """Book what was spent now, when the amount is known only after the fact (bytes)."""
        self._call(self._db.execute, "INSERT INTO spent VALUES (?, ?, ?)", (key, time.time(), amount))

    def postpone(self, key: str, slot: float, actual: float) -> None:
        """A request meant for ``slot`` went at ``actual`` (a busy machine): book it then,
        so the slots reserved after it keep their distance from when it really went."""
        self._call(self._db.execute, "UPDATE spent SET t = ? WHERE key = ? AND t = ?", (actual, key, slot))

    def wait_for_room(self, key: str, window: Window) -> float:
        """Seconds until the window next has room for more (0 if it has): amounts known only
        after the fact (bytes) are checked before a request and booked when it answers."""
        return self._call(self._wait_for_room, key, window)

    def _wait_for_room(self, key: str, window: Window) -> float:
        now = time.time()
        self._bring_back(self._db, now, key)
        return self._earliest(key, window, 0.0, now) - now

    def used(self, key: str, span: float) -> float:
        row = self._call(
            lambda: self._db.execute(
                "SELECT TOTAL(amount) FROM spent WHERE key = ? AND t > ?", (key, time.time() - span)
            ).fetchone()
        )
        return float(row[0])

    def _earliest(self, key: str, window: Window, amount: float, slot: float) -> float:
        """The earliest time >= slot at which the window has room for ``amount`` more."""
        span = window.counted
        rows = self._db.execute(
            "SELECT t, amount FROM spent WHERE key = ? AND t > ? ORDER BY t", (key, slot - span)
        ).fetchall()
        excess = sum(a for _, a in rows) + amount - window.limit
        if amount == 0 and excess == 0:
            excess = 1  # a full window has no room even for what is not yet known
        for t, spent in rows:
            if excess <= 0:
                break
            excess -= spent
            slot = max(slot, t + span)
        return slot


def _busy(exc: sqlite3.Error) -> bool:
    return (getattr(exc, "sqlite_errorcode", 0) & 0xFF) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def budget_error(exc: sqlite3.Error, path: Path) -> HarvestError:
    """An error of the budget file, in one line that names it and the remedy."""
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    if code == sqlite3.SQLITE_FULL:
        return DiskFullError(
            f"no space left for the budget file {path}: free some and run the same command again"
        )
    if code == sqlite3.SQLITE_CANTOPEN:
        return UsageError(f"the budget file {path} cannot be opened ({exc}): give another, {{budget_file}}")
    return UsageError(
        f"the budget file {path} is damaged ({exc}). It holds only the counters of what harvests spent "
        "in the last two days, so it may be removed (rm it and run again; budgets then count from zero)"
    )
