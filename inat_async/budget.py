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

import os
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

# Network delays can bring two requests a hair closer at the server than they were sent;
# each window is counted a little longer than it is to keep a margin: 1% of it, and at least
# GUARD_SECONDS, since the delays of a busy machine or network do not shrink with the window.
GUARD = 0.01
GUARD_SECONDS = 0.1


@dataclass(frozen=True)
class Window:
    """At most ``limit`` units in any ``span`` seconds; ``name`` is what a waiting user reads."""

    limit: float
    span: float
    name: str


def default_budget_file() -> Path:
    env = os.environ.get("INAT_ASYNC_BUDGET_FILE")
    if env:
        return Path(env)
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache, "inat_async", "budget.sqlite")


class Ledger:
    """The shared record of what was spent: rows of (key, time, amount), time in Unix seconds."""

    def __init__(self, path: Path, keep: float = 2 * 86400.0):
        path.parent.mkdir(parents=True, exist_ok=True)
        # Callers run in worker threads (asyncio.to_thread): one at a time on the connection.
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, isolation_level=None, timeout=60, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS spent (key TEXT NOT NULL, t REAL NOT NULL, amount REAL NOT NULL)"
        )
        self._db.execute("CREATE INDEX IF NOT EXISTS spent_key_t ON spent (key, t)")
        self._db.execute("DELETE FROM spent WHERE t < ?", (time.time() - keep,))

    def close(self) -> None:
        self._db.close()

    def reserve(
        self, key: str, windows: Sequence[Window], interval: float, amount: float = 1.0
    ) -> tuple[float, str | None]:
        """Book ``amount`` at the earliest allowed time; returns (that time, the window that
        set it or None when only the even spacing did)."""
        with self._lock:
            return self._reserve(key, windows, interval, amount)

    def _reserve(
        self, key: str, windows: Sequence[Window], interval: float, amount: float
    ) -> tuple[float, str | None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            last = self._db.execute("SELECT MAX(t) FROM spent WHERE key = ?", (key,)).fetchone()[0]
            slot = time.time() if last is None else max(time.time(), last + interval)
            reason = None
            for _ in range(len(windows) * 4):
                moved = False
                for window in windows:
                    earliest = self._earliest(key, window, amount, slot)
                    if earliest > slot:
                        slot, reason, moved = earliest, window.name, True
                if not moved:
                    break
            self._db.execute("INSERT INTO spent VALUES (?, ?, ?)", (key, slot, amount))
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return slot, reason

    def record(self, key: str, amount: float) -> None:
        """Book what was spent now, when the amount is known only after the fact (bytes)."""
        with self._lock:
            self._db.execute("INSERT INTO spent VALUES (?, ?, ?)", (key, time.time(), amount))

    def postpone(self, key: str, slot: float, actual: float) -> None:
        """A request meant for ``slot`` went at ``actual`` (a busy machine): book it then,
        so the slots reserved after it keep their distance from when it really went."""
        with self._lock:
            self._db.execute("UPDATE spent SET t = ? WHERE key = ? AND t = ?", (actual, key, slot))

    def room_at(self, key: str, window: Window) -> float:
        """When the window next has room for more (now, if it has): amounts known only after
        the fact (bytes) are checked before a request and booked when it answers."""
        with self._lock:
            return self._earliest(key, window, 0.0, time.time())

    def used(self, key: str, span: float) -> float:
        with self._lock:
            row = self._db.execute(
                "SELECT TOTAL(amount) FROM spent WHERE key = ? AND t > ?", (key, time.time() - span)
            ).fetchone()
        return row[0]

    def _earliest(self, key: str, window: Window, amount: float, slot: float) -> float:
        """The earliest time >= slot at which the window has room for ``amount`` more."""
        span = window.span + max(window.span * GUARD, GUARD_SECONDS)
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
