"""Where a harvest stands: counters the stages update, shown live in a terminal (rich) or as a
log line every few seconds elsewhere (a file, a pipe, a scheduler's log).

The counts are of what the folder holds (a resumed harvest starts from what earlier runs
stored), and the time left is modelled from the budgets (see net/pace.py) and the rates seen
lately, since a harvest is held by its budgets more than by its network.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from inat_async.model import FINISHED, PhotoStatus
from inat_async.net.pace import Pace
from inat_async.net.waits import wait_set

if TYPE_CHECKING:
    from rich.console import Console  # a live display imports rich (pipeline/bars.py)

log = logging.getLogger("inat_async")

#: Rates are measured over this many seconds of samples, and only once this many have passed.
_RATE_WINDOW = 30.0
_RATE_MIN_SPAN = 5.0
#: A budget that held work this share of the last _HOLD_WINDOW seconds is said to hold it.
_HOLDS = 0.5
_HOLD_WINDOW = 10.0
#: The reason a photo stage gives with a DONE outcome for a file it found already stored whole
#: (a rerun, a task run again), not fetched: counted apart, never as bytes fetched. The state
#: keeps no reason for a file done.
FOUND_STORED = "found already stored"


@dataclass
class Progress:
    """Counters of one run; the stages add to them, the display reads them."""

    pace: Pace | None = None
    expected: int = 0  # total_results of the queries, as the API counted them
    stored_before: int = 0  # observations earlier runs stored (0 for an update)
    paged: int = 0  # observations paged this run
    pages: int = 0
    paging_done: bool = False
    rows_before: int = 0  # photo files earlier runs recorded
    finished_before: int = 0  # of which done, missing or skipped
    queued: int = 0  # photo files recorded this run, less those an update dropped
    finished_on_pages: int = 0  # of which finished as recorded (skipped), less those dropped
    outcomes: Counter[PhotoStatus] = field(default_factory=Counter)  # photo files finished this run
    bytes: int = 0  # fetched this run
    found: int = 0  # files done this run that were found already stored, not fetched
    found_bytes: int = 0
    pending: dict[str, int] | None = None  # files to fetch per host, as last read (None: not yet)
    fetched: Counter[str] = field(default_factory=Counter)  # files fetched and finished this run per host
    fetched_bytes: Counter[str] = field(default_factory=Counter)
    found_on: Counter[str] = field(default_factory=Counter)  # files found already stored per host
    waiting: str | None = None  # the budget the harvest waits on, while it waits
    retrying: str | None = None  # the reason of the last retry, while its backoff lasts
    retry_at: float = 0.0
    started: float = field(default_factory=time.monotonic)
    settled: tuple[int, int, int] | None = None  # (observations, files, finished) read at the end
    _samples: deque[tuple[float, int, Counter[str]]] = field(default_factory=deque)
    _held: Callable[[], dict[str, float]] | None = None  # seconds each budget held work so far
    _holds: deque[tuple[float, dict[str, float]]] = field(default_factory=deque)
    # fetched per host and files to fetch recorded, when pending was last read
    _at_read: tuple[Counter[str], int] = field(default_factory=lambda: (Counter(), 0))
    _found_at_read: Counter[str] = field(default_factory=Counter)

    # -- what the stages report ---------------------------------------------------------------
    def page_saved(self, observations: int, changes: Mapping[PhotoStatus, int]) -> None:
        """A page committed ``observations`` and changed photo rows by status: new ones (a
        skipped one finished at once) less those an update dropped."""
        self.paged += observations
        self.pages += 1
        self.queued += sum(changes.values())
        self.finished_on_pages += sum(n for status, n in changes.items() if status in FINISHED)

    def finished(
        self, status: PhotoStatus, nbytes: int | None, host: str = "", reason: str | None = None
    ) -> None:
        """A photo file's outcome; a file found already stored (``reason`` FOUND_STORED) is
        done but not fetched: its bytes are not this run's."""
        self.counted(status, host, 1, nbytes or 0, found=reason == FOUND_STORED)

    def counted(
        self, status: PhotoStatus, host: str, files: int, nbytes: int, *, found: bool = False
    ) -> None:
        """``files`` photo files of ``host`` finished with ``status``, ``nbytes`` in all (found
        already stored, or fetched); negative to take back what a cluster task reported
        before its outcome table came (see cluster/live.py)."""
        self.outcomes[status] += files
        if found:
            self.found += files
            self.found_bytes += nbytes
            self.found_on[host] += files
            return
        self.bytes += nbytes
        self.fetched[host] += files
        self.fetched_bytes[host] += nbytes

    def expect(self, observations: int) -> None:
        """The API counts ``observations`` more for the queries (a range's first page)."""
        self.expected += observations

    def paging_finished(self) -> None:
        self.paging_done = True

    def wait_on(self, what: str | None) -> None:
        """The budget the harvest waits on now; None once it no longer waits."""
        self.waiting = what

    def left_to_fetch(self, per_host: dict[str, int]) -> None:
        """Files to fetch on each host, as the state holds them now (read every few seconds:
        what is fetched and recorded after it is counted from the events, see _files_left)."""
        self.pending = per_host
        self._at_read = (Counter(self.fetched), self._to_fetch_recorded())
        self._found_at_read = Counter(self.found_on)

    def _to_fetch_recorded(self) -> int:
        return self.queued - self.finished_on_pages

    def _files_left(self, host: str, share: float) -> float:
        """Files ``host`` has to fetch now: as last read, plus its share of those pages
        recorded since, less those it fetched since."""
        fetched_then, recorded_then = self._at_read
        recorded = max(0, self._to_fetch_recorded() - recorded_then) * share
        fetched = self.fetched[host] - fetched_then[host] + self.found_on[host] - self._found_at_read[host]
        return max(0.0, (self.pending or {}).get(host, 0) + recorded - fetched)

    def watch_holds(self, held: Callable[[], dict[str, float]]) -> None:
        """Read from now on how long each budget has held work (WaitClock.so_far): short waits
        that add up (a photo host's rate pacing every request) are said as holding the run."""
        self._held = held

    def retried(self, reason: str, wait: float) -> None:
        self.retrying, self.retry_at = reason, time.monotonic() + wait

    def settle(self, observations: int, counts: Mapping[str, int]) -> None:
        """The final numbers, as the state holds them."""
        total = sum(counts.values())
        self.settled = (observations, total, total - counts.get(PhotoStatus.PENDING, 0))

    # -- what the display shows -------------------------------------------------------------
    @property
    def done(self) -> int:
        """Files fetched and stored this run (not those found already stored)."""
        return self.outcomes[PhotoStatus.DONE] - self.found

    @property
    def failed(self) -> int:
        return self.outcomes[PhotoStatus.FAILED]

    @property
    def observations(self) -> int:
        return self.settled[0] if self.settled else self.stored_before + self.paged

    @property
    def files(self) -> int:
        """Photo files finished: done, missing, skipped or failed."""
        if self.settled:
            return self.settled[2]
        fetched = self.outcomes.total()
        return self.finished_before + self.finished_on_pages + fetched

    @property
    def files_total(self) -> int:
        return self.settled[1] if self.settled else self.rows_before + self.queued

    def elapsed(self) -> float:
        return max(time.monotonic() - self.started, 1e-9)

    def retry_note(self) -> str | None:
        left = self.retry_at - time.monotonic()
        if self.retrying is None or left <= 0:
            return None
        # Tenths under ten seconds: a 0.2 s backoff said as "1 s" is five times too long.
        when = f"{left:.1f}" if left < 10 else f"{math.ceil(left)}"
        return f"retrying: {self.retrying}, next try in {when} s"

    def holding(self) -> str | None:
        """The budget that held work most of the last seconds, when it held it at least half
        of them (a rate that binds: its waits are each too short to be said)."""
        if len(self._holds) < 2 or self._holds[-1][0] - self._holds[0][0] < _RATE_MIN_SPAN / 2:
            return None
        (t0, before), (t1, now) = self._holds[0], self._holds[-1]
        shares = {budget: (s - before.get(budget, 0.0)) / (t1 - t0) for budget, s in now.items()}
        budget = max(shares, key=shares.__getitem__, default=None)
        return budget if budget is not None and shares[budget] >= _HOLDS else None

    def status(self) -> str:
        """What the harvest waits for, if it waits: a long wait, else a budget that paces it."""
        held = self.holding()
        waiting = self.waiting or (f"{held} (at that pace)" if held else None)
        notes = [self.retry_note(), f"waiting: {waiting}" if waiting else None]
        return " | ".join(n for n in notes if n)

    def line(self) -> str:
        total = f"/{self.expected:,}" if self.expected else ""
        left = self.time_left()
        eta = f" | {_clock(left)} left" if left is not None and not self.settled else ""
        said = self.status()
        status = f" | {said}" if said else ""
        return (
            f"observations {self.observations:,}{total} | photos {self.files:,}/{self.files_total:,}"
            f" ({self.failed:,} failed) | {self.bytes / 1e6:,.1f} MB{self.found_note()}"
            f" | {self.done / self.elapsed():,.1f} files/s | {self.elapsed():,.0f} s{eta}{status}"
        )

    def found_note(self) -> str:
        return f", {self.found:,} found already stored" if self.found else ""

    # -- time left ------------------------------------------------------------------------------
    def sample(self) -> None:
        """Note the counters now, for the rates of the last half minute."""
        now = time.monotonic()
        self._samples.append((now, self.pages, Counter(self.fetched)))
        while self._samples and self._samples[0][0] < now - _RATE_WINDOW:
            self._samples.popleft()
        if self._held is not None and not self.settled:
            self._holds.append((now, self._held()))
            while self._holds and self._holds[0][0] < now - _HOLD_WINDOW:
                self._holds.popleft()

    def rates(self) -> tuple[float | None, dict[str, float]]:
        """Pages a second and files a second per host, lately; None or absent until measured."""
        if len(self._samples) < 2 or self._samples[-1][0] - self._samples[0][0] < _RATE_MIN_SPAN:
            return None, {}
        (t0, pages0, fetched0), (t1, pages1, fetched1) = self._samples[0], self._samples[-1]
        span = t1 - t0
        files = {host: (n - fetched0[host]) / span for host, n in fetched1.items() if n > fetched0[host]}
        return ((pages1 - pages0) / span or None), files

    def _observations_left(self) -> int | None:
        if self.paging_done:
            return 0
        return max(0, self.expected - self.observations) if self.expected else None

    def paging_left(self) -> float | None:
        """Seconds until every page is in, at the API budget's pace (or the pace seen, if slower)."""
        left = self._observations_left()
        if left is None or self.pace is None:
            return None
        if left == 0:
            return 0.0
        requests = math.ceil(left / self.pace.per_page) + self.pace.ranges
        return self.pace.api_seconds(requests, self.rates()[0])

    def photos_left(self) -> float | None:
        """Seconds until every photo file is fetched: of the host with most left to fetch,
        counting the files of observations not yet paged."""
        left = self._observations_left()
        if self.pace is None or left is None or self.pending is None:
            return None  # 0 files left is not known before the state is read
        per_observation = self.queued / self.paged if self.paged else 0.0
        hosts = _shares(self.pending, self.fetched)
        _, rates = self.rates()
        mean_bytes = self.bytes / self.done if self.done else 0.0
        times = []
        for host, share in hosts.items():
            files = self._files_left(host, share) + left * per_observation * share
            host_mean = self.fetched_bytes[host] / self.fetched[host] if self.fetched[host] else mean_bytes
            times.append(self.pace.photo_seconds(files, files * host_mean, rates.get(host)))
        if any(t is None for t in times):
            return None
        return max((t for t in times if t is not None), default=0.0)

    def time_left(self) -> float | None:
        """Seconds until the harvest is done: photos cannot finish before the last page."""
        paging, photos = self.paging_left(), self.photos_left()
        if paging is None or photos is None:
            return None
        return max(paging, photos)


def _shares(pending: Mapping[str, int], fetched: Mapping[str, int]) -> dict[str, float]:
    """Each photo host's share of the files, from those it has left and those it fetched."""
    counts = {host: pending.get(host, 0) + fetched.get(host, 0) for host in {*pending, *fetched}}
    total = sum(counts.values())
    return {host: n / total for host, n in counts.items()} if total else {"": 1.0}


def _clock(seconds: float) -> str:
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:.1f} days"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


class Display:
    """The live display of a :class:`Progress` on a terminal."""

    def __init__(self, console: Console, photos: bool = True):
        # rich's progress bars imported only for a live display (not with -q or log lines).
        from inat_async.pipeline.bars import Bars

        self.bars = Bars(console)
        self.observations = self.bars.add_task("observations", total=None, count="", rate="", eta="")
        self.photos = self.bars.add_task("photos", total=None, visible=photos, count="", rate="", eta="")

    def show(self, p: Progress) -> None:
        """Set the bars from ``p``: counts of what is stored, rates and time left while live."""
        paging = p.paging_left()
        self.bars.update(
            self.observations,
            completed=p.observations,
            total=p.expected or None,
            count=f"{p.observations:,}/{p.expected:,}" if p.expected else f"{p.observations:,}",
            rate="" if p.paging_done else f"{p.paged / p.elapsed():,.0f}/s",
            eta="done" if p.paging_done else _clock(paging) if paging is not None else "",
        )
        photos_done = p.paging_done and p.files >= p.files_total
        left = p.time_left()
        # The bytes fetched, and the files found already stored (not fetched) as the log line says.
        fetched = f"{p.bytes / 1e6:,.0f} MB{p.found_note()}"
        self.bars.update(
            self.photos,
            completed=p.files,
            total=p.files_total or None,
            count=f"{p.files:,}/{p.files_total:,}",
            rate=fetched if photos_done else f"{_files_rate(p)} {fetched}",
            eta="done" if photos_done else _clock(left) if left is not None else "",
        )
        self.bars.status = p.status()
        self.bars.refresh()


def _files_rate(p: Progress) -> str:
    _, rates = p.rates()
    return f"{sum(rates.values()):,.0f}/s" if rates else f"{p.done / p.elapsed():,.0f}/s"


async def report(
    progress: Progress,
    interval: float,
    stop: asyncio.Event,
    console: Console | None,
    photos: bool = True,
    pending: Callable[[], dict[str, int]] | None = None,
) -> None:
    """Show ``progress`` until ``stop`` is set: live bars on ``console``, else log lines.
    ``pending`` reads the files left to fetch per host, for the time left."""
    tick, ticks_per_read = (0.25, 20) if console is not None else (min(interval, 1.0), 5)
    display = Display(console, photos) if console is not None else None
    last_line, count = time.monotonic(), 0
    with display.bars if display is not None else contextlib.nullcontext():
        while True:
            stopping = await _stopped(stop, tick)
            if pending is not None and count % ticks_per_read == 0:
                progress.left_to_fetch(pending())
            if count % max(1, round(1 / tick)) == 0:
                progress.sample()
            count += 1
            if display is not None:
                display.show(progress)
            elif time.monotonic() - last_line >= interval and not stopping:
                last_line = time.monotonic()
                log.info("%s", progress.line())
            if stopping:
                return


async def _stopped(stop: asyncio.Event, interval: float) -> bool:
    return await wait_set(stop, interval)
