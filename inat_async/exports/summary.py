"""What a finished harvest holds: the summary the CLI prints, the library returns and
OUT/summary.json keeps."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from inat_async.model import PhotoStatus
from inat_async.store.files import replacing
from inat_async.store.state import State

SUMMARY_FILE = "summary.json"


@dataclass
class Summary:
    """Counts over the whole harvest folder, and what this run did and waited."""

    out: Path
    observations: int
    per_place: dict[int, int]
    photos: dict[str, int]  # photo files by status, plain strings: done, missing, skipped, failed, pending
    bytes_on_disk: int  # of the photo files done, in the store (OUT or ``store``); also "bytes_stored"
    api_requests: int  # this run
    api_requests_today: int | None  # by every harvest of this user in the last 24 h
    bytes_this_run: int  # fetched this run (not the files found already stored)
    elapsed: float  # seconds, this run
    seconds_waiting: float  # wall time this run during which a budget or Retry-After held work
    waiting: dict[str, float] = field(default_factory=dict)  # the same, for each budget
    retries: dict[str, int] = field(default_factory=dict)  # this run's retries, by reason
    failed_examples: list[tuple[int, str, str]] = field(default_factory=list)
    # Observations and photos skipped because they do not fit their shape: "kind: reason" -> count.
    rejected: dict[str, int] = field(default_factory=dict)
    # Observations the API counts for a query but that paging its id spans again did not
    # find, by query: the harvest is not complete, and the same command goes on looking.
    unfound: dict[str, int] = field(default_factory=dict)
    # Where the photo files are: the output folder, another folder or an object store's URL.
    store: str = ""
    files_fetched: int = 0  # photo files fetched and stored this run
    files_found: int = 0  # photo files this run found already stored whole (not fetched)
    bytes_found: int = 0

    def __post_init__(self) -> None:
        # Plain strings (a PhotoStatus key printed or written shows as the enum), in one order.
        self.photos = {str(status): count for status, count in sorted(self.photos.items())}

    @property
    def photos_failed(self) -> int:
        return self.photos.get(PhotoStatus.FAILED, 0)

    def to_json(self) -> str:
        data = asdict(self)
        data["out"] = str(self.out)
        data["failed_examples"] = [list(row) for row in self.failed_examples]
        data["bytes_stored"] = self.bytes_on_disk  # the name that holds for a bucket too
        return json.dumps(data, indent=2)

    def table(self) -> str:
        """A few lines for the terminal."""
        p = self.photos
        lines = [f"{self.observations:,} observations in {self.out}"]
        lines += [f"  place {place}: {count:,}" for place, count in self.per_place.items()]
        where = f" in {self.store}" if self.store and self.store != str(self.out) else ""
        lines.append(
            f"photo files{where}: {p.get(PhotoStatus.DONE, 0):,} done ({self.bytes_on_disk / 1e6:,.1f} MB), "
            f"{p.get(PhotoStatus.MISSING, 0):,} missing, {p.get(PhotoStatus.SKIPPED, 0):,} skipped, "
            f"{p.get(PhotoStatus.FAILED, 0):,} failed"
        )
        today = (
            f"; {self.api_requests_today:,} in the last 24 h" if self.api_requests_today is not None else ""
        )
        found = f", {self.files_found:,} found already stored" if self.files_found else ""
        lines.append(
            f"this run: {self.elapsed:,.0f} s, {_count(self.api_requests, 'API request')}{today}, "
            f"{_count(self.files_fetched, 'photo file')} fetched ({self.bytes_this_run / 1e6:,.1f} MB){found}"
        )
        if self.waiting:
            lines.append(f"  held by budgets for {self.seconds_waiting:,.0f} s of it:")
            lines += [f"    {seconds:>7,.0f} s  {budget}" for budget, seconds in self.waiting.items()]
        if self.retries:
            lines.append(f"  {sum(self.retries.values()):,} retries:")
            by_count = sorted(self.retries.items(), key=lambda item: -item[1])
            lines += [f"    {count:>7,}    {reason}" for reason, count in by_count]
        lines += [f"  failed: photo {pid} {size}: {reason}" for pid, size, reason in self.failed_examples]
        if self.rejected:
            lines.append(f"skipped as malformed ({sum(self.rejected.values()):,}, see summary.json):")
            lines += [f"  {count:,} {what}" for what, count in list(self.rejected.items())[:5]]
        if self.photos_failed:
            lines.append("failed photos are listed in photos.csv; the same command again retries them")
        for query, count in self.unfound.items():
            lines.append(
                f"INCOMPLETE: {count:,} observation(s) that the API counts for {query} could not be "
                "found, even paging their id spans again; the same command again goes on looking"
            )
        return "\n".join(lines)


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


def per_place(state: State, places: tuple[int, ...]) -> dict[int, int]:
    """Observations in each requested place (one may count in several), by place id: the
    same order whichever command or order of --place wrote it."""
    return state.observations_per_place(sorted(places))


def write_summary(summary: Summary) -> Path:
    target = summary.out / SUMMARY_FILE
    with replacing(target) as part:
        part.write_text(summary.to_json() + "\n", encoding="utf-8")
    return target
