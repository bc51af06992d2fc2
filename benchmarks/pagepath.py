"""The page path on its own: CPU per page of 200 observations and state bytes per observation,
for this tree and an earlier one, in one run (``benchmarks.run`` section "pages").

Run as a script by path with ``PYTHONPATH`` set to a tree's root, so the ``inat_async`` it
measures is that tree's; it imports nothing from ``benchmarks``. It takes recorded API pages
(JSON bodies, one file each) and does what the pager does with each, stage by stage, timing
the CPU of each: decode the page, check its observations, build their rows, commit the page
(``State.save_page``). Then it writes the CSV and Darwin Core exports from the state, timed
too, and reports the state's size. It prints one JSON object.
"""

from __future__ import annotations

import argparse
import inspect
import json
import time
from pathlib import Path
from typing import Any

STAGES = ("decode", "check", "rows", "save")


class _Clock:
    """CPU seconds by stage."""

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(STAGES, 0.0)
        self._last = 0.0

    def start(self) -> None:
        self._last = time.process_time()

    def lap(self, stage: str) -> None:
        now = time.process_time()
        self.seconds[stage] += now - self._last
        self._last = now


def measure(pages: list[bytes], out: Path, places: list[int], repeats: int) -> dict[str, Any]:
    from inat_async.exports import write_exports
    from inat_async.model import check_observations, decode_page
    from inat_async.records import observation_row
    from inat_async.store.state import State

    raw = "raw_results" in inspect.signature(decode_page).parameters  # the page's JSON kept as sent
    clock = _Clock()
    out.mkdir(parents=True)
    state = State(out / "harvest.sqlite")
    cursor = state.add_cursor("bench", 0, None)
    observations = 0
    for body in pages:
        clock.start()
        page = decode_page(body, raw_results=True) if raw else decode_page(body)
        clock.lap("decode")
        checked = check_observations(page["results"])
        clock.lap("check")
        rows = [observation_row(getattr(f, "shape", None) or f.data, places) for f in checked.fits]
        clock.lap("rows")
        state.save_page(cursor, rows, [f.raw for f in checked.fits], [], checked.ids[-1], False)
        clock.lap("save")
        observations += len(checked.fits)
    cpu = clock.seconds
    exports = []
    for _ in range(repeats):  # the exports read the state only: the best of a few runs
        start = time.process_time()
        write_exports(state, out, ("csv", "dwca"))
        exports.append(time.process_time() - start)
    state.close()
    return {
        "pages": len(pages),
        "observations": observations,
        "cpu_ms_per_page": {stage: cpu[stage] / len(pages) * 1000 for stage in STAGES},
        "state_bytes": (out / "harvest.sqlite").stat().st_size,
        "export_cpu": min(exports),
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--pages", type=Path, required=True, help="a folder of API page bodies, one a file")
    p.add_argument("--out", type=Path, required=True, help="a new folder for the state and exports")
    p.add_argument("--place", type=int, required=True)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    pages = [path.read_bytes() for path in sorted(args.pages.iterdir())]
    print(json.dumps(measure(pages, args.out, [args.place], args.repeats)))


if __name__ == "__main__":
    main()
