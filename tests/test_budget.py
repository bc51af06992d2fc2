"""The shared budget ledger: sliding windows, even spacing, shared between processes, persistent."""

import itertools
import multiprocessing
import time

import pytest

from inat_async.net.budget import GUARD, GUARD_SECONDS, Ledger, Window, margin
from inat_async.simulator import max_in_window


def test_reservations_are_spaced_evenly_and_never_exceed_a_window(tmp_path):
    ledger = Ledger(tmp_path / "b.sqlite")
    slots = [ledger.reserve("api h", [Window(10, 2.0, "10 a 2 s")], 0.2)[0] for _ in range(35)]
    gaps = [b - a for a, b in itertools.pairwise(slots)]
    assert min(gaps) >= 0.2 - 1e-9  # no burst at the top of a window
    assert max_in_window(slots, 2.0) <= 10
    span = 2.0 + max(2.0 * GUARD, GUARD_SECONDS)  # each window counted with its margin
    assert slots[-1] - slots[0] <= 3 * span + 4 * 0.2 + 0.1  # and no time wasted


def test_a_daily_window_survives_reopening_the_ledger(tmp_path):
    path = tmp_path / "b.sqlite"
    day = [Window(5, 30.0, "5 a day")]
    first = Ledger(path)
    booked = [first.reserve("api h", day, 0.0)[0] for _ in range(5)]
    first.close()
    again = Ledger(path)  # a restart: the same five are still in the window
    slot, reason, *_ = again.reserve("api h", day, 0.0)
    assert reason == "5 a day"
    assert slot >= booked[0] + 30.0


def _book(path, count, out):
    ledger = Ledger(path)
    for _ in range(count):
        out.put(ledger.reserve("api h", [Window(8, 1.0, "8 a s")], 1.0 / 8)[0])


@pytest.mark.slow
def test_two_processes_share_one_budget(tmp_path):
    path = tmp_path / "b.sqlite"
    Ledger(path).close()
    out = multiprocessing.get_context("spawn").Queue()
    procs = [
        multiprocessing.get_context("spawn").Process(target=_book, args=(path, 12, out)) for _ in range(2)
    ]
    for p in procs:
        p.start()
    slots = [out.get(timeout=60) for _ in range(24)]
    for p in procs:
        p.join()
    assert max_in_window(slots, 1.0) <= 8
    assert min(b - a for a, b in zip(sorted(slots), sorted(slots)[1:], strict=False)) >= 1.0 / 8 - 1e-9


def test_keys_are_counted_apart(tmp_path):
    ledger = Ledger(tmp_path / "b.sqlite")
    w = [Window(1, 60.0, "1 a minute")]
    now = time.time()
    assert ledger.reserve("api a", w, 0.0)[0] < now + 1
    assert ledger.reserve("api b", w, 0.0)[0] < now + 1
    assert ledger.reserve("api a", w, 0.0)[0] >= now + 60


def test_bytes_counted_from_their_answer_have_room_again_a_span_later_not_a_margin_more(tmp_path):
    """A request's slot is counted over its window plus a margin (arrivals may come closer
    than booked); bytes are settled after their answer, so they count over the span alone:
    a full hour of bytes frees its room an hour after it was settled, not an hour and a minute."""
    ledger = Ledger(tmp_path / "b.sqlite")
    hour = 3600.0
    for jitter, extra in ((False, 0.0), (True, margin(hour))):
        bytes_hour = [Window(5e9, hour, "5 GB of photos an hour", jitter=jitter)]
        row, _, _ = ledger.take(f"bytes {jitter}", bytes_hour, 4e9)
        assert row is not None
        ledger.settle(row, 5e9)  # the answer held more than booked: the window is full
        settled = time.time()
        row, wait, full = ledger.take(f"bytes {jitter}", bytes_hour, 1.0)
        assert row is None and full == "5 GB of photos an hour"
        assert hour + extra - 1 <= wait <= hour + extra + (time.time() - settled)


def test_closing_the_ledger_waits_for_a_booking_still_running_in_its_thread(tmp_path, monkeypatch):
    # A harvest ending at once (an IP block) cancels a booking awaited in a thread, which
    # goes on, then closes the ledger: closing the connection under it crashed the process
    # (a segmentation fault, exit -11, in about 1 run in 40 under load).
    import sqlite3
    import threading

    from inat_async.errors import HarvestError
    from inat_async.net import budget

    monkeypatch.setattr(budget, "_BUSY_SLICE", 30.0)  # SQLite itself waits for the file
    path = tmp_path / "b.sqlite"
    ledger = Ledger(path)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another program holds the file
    slots = []
    second = [Window(5, 1.0, "5 a s")]
    booking = threading.Thread(target=lambda: slots.append(ledger.reserve("api h", second, 0.0)))
    booking.start()
    deadline = time.monotonic() + 10
    while not ledger._lock.locked() and time.monotonic() < deadline:
        time.sleep(0.001)
    closing = threading.Thread(target=ledger.close)
    closing.start()
    closing.join(0.3)
    assert closing.is_alive()  # waiting for the booking
    other.execute("COMMIT")
    booking.join(10)
    closing.join(10)
    assert not closing.is_alive() and slots and slots[0].booked
    with pytest.raises(HarvestError, match="was closed"):
        ledger.reserve("api h", second, 0.0)
    assert sqlite3.connect(path).execute("SELECT COUNT(*) FROM spent").fetchone()[0] == 1
