"""The driver's view of running cluster tasks (cluster/live.py): each task's latest report
shown on top of the tables of the tasks ended, never counted twice."""

from inat_async.cluster.live import LiveProgress, TaskReport
from inat_async.model import PhotoStatus
from inat_async.net.politeness import WaitClock
from inat_async.pipeline.progress import FOUND_STORED, Progress

DONE, FAILED = PhotoStatus.DONE, PhotoStatus.FAILED


def _reports(*outcomes: tuple[str, str, int, str | None]) -> list[dict]:
    """What a task sends after each of ``outcomes`` (host, status, bytes, reason)."""
    sent: list[dict] = []
    report = TaskReport(sent.append, WaitClock())
    for host, status, nbytes, reason in outcomes:
        report.count(host, status, nbytes, reason)
        report.send()
    return sent


def test_a_running_tasks_reports_are_shown_then_replaced_by_its_table_and_late_ones_ignored():
    progress = Progress()
    live = LiveProgress(progress, WaitClock(), threads=2)
    sent = _reports(("a", DONE, 100, None), ("a", DONE, 50, FOUND_STORED), ("b", FAILED, 0, "HTTP 500"))
    live.on_event((0.0, {"key": "t1", **sent[0]}))
    live.on_event((0.0, {"key": "t1", **sent[2]}))  # a running total: the one before is replaced
    assert (progress.done, progress.found, progress.failed, progress.bytes) == (1, 1, 1, 100)
    live.on_event((0.0, {"key": "t1", **sent[1]}))  # late, and older: the totals go back to it
    assert (progress.done, progress.found, progress.failed) == (1, 1, 0)
    live.ended("t1")  # its table comes: what it reported is taken back ...
    assert (progress.outcomes.total(), progress.bytes, progress.found_bytes) == (0, 0, 0)
    progress.finished(DONE, 100, "a")  # ... and its rows counted in their place
    live.on_event((0.0, {"key": "t1", **sent[2]}))  # a report after its table: ignored
    assert (progress.done, progress.failed, progress.fetched["a"]) == (1, 0, 1)


def test_the_workers_waits_are_added_to_the_drivers_clock_as_their_mean_over_the_threads():
    clock = WaitClock()
    live = LiveProgress(Progress(), clock, threads=2)
    budget = "8 photo requests a minute to a"
    live.on_event((0.0, {"key": "t1", "tally": [], "held": {budget: 4.0, WaitClock.ANY: 4.0}}))
    live.on_event((0.0, {"key": "t1", "tally": [], "held": {budget: 6.0, WaitClock.ANY: 6.0}}))
    live.on_event((0.0, {"key": "t2", "tally": [], "held": {budget: 2.0, WaitClock.ANY: 2.0}}))
    live.ended("t1")  # a task ended or given up: its waits were real, they stay
    assert clock.by_budget() == {budget: 4.0} and clock.total == 4.0
