"""The photo stage on a Dask LocalCluster (issue 15): files/s with 1, 2 and 4 worker processes,
and the share of a binding byte budget used, against the simulator on 127.0.0.1.

    python -m benchmarks.cluster            # about 5 minutes on 2 cores
    python -m benchmarks.cluster --quick    # smaller

A folder is paged once with --no-photos; each run copies it and runs
``inat-async photos OUT --scheduler local:N`` as a user does (a LocalCluster of its own), with
``photo_latency`` seconds added to every photo answer (a far photo host). Files/s is counted
from the simulator's log (first photo request to last): the cluster's start is not in it. The
byte budget run sets --media-gb-per-hour on a scaled hour; its answers that bring a host's
sliding hour over it are counted by the simulator's rule (violations), and the share of the
limit used is the bytes served in each full sliding window of that hour. Figures go to
benchmarks/cluster.json and are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from inat_async.simulator import ByteLimit, SimulatorThread, World, byte_violations

ROOT = Path(__file__).resolve().parents[1]


def _cli(tmp: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INAT_")}
    env["INAT_ASYNC_BUDGET_FILE"] = str(tmp / "budget.sqlite")
    env["PYTHONPATH"] = str(ROOT)
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "inat_async", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp,
        timeout=1800,
    )
    if result.returncode != 0:
        raise SystemExit(f"inat-async {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return result, time.monotonic() - started


def _served(
    sim: SimulatorThread, world: World, since: int, host: str | None = None
) -> list[tuple[float, int]]:
    """(arrival, bytes) of every photo answered 200 since log entry ``since`` (on ``host``)."""
    out = []
    for r in sim.log[since:]:
        if r.host in ("open", "static") and r.status == 200 and host in (None, r.host):
            _, _, photo_id, name = r.path.split("/")
            data = world.photo_bytes(int(photo_id), name.split(".")[0])
            out.append((r.time, len(data or b"")))
    return out


def _max_in_window(served: list[tuple[float, int]], span: float) -> int:
    """The most bytes whose requests arrived within any sliding ``span`` seconds."""
    best, first, total = 0, 0, 0
    for t, n in served:
        total += n
        while served[first][0] <= t - span:
            total -= served[first][1]
            first += 1
        best = max(best, total)
    return best


def files_per_second(
    sim: SimulatorThread, world: World, tmp: Path, paged: Path, workers: int, shard: int
) -> dict[str, Any]:
    out = tmp / f"w{workers}"
    shutil.copytree(paged, out)
    since = len(sim.log)
    _, wall = _cli(tmp, "photos", str(out), "--scheduler", f"local:{workers}", "--no-limits",
                   "--workers", "16", "--shard-files", str(shard))  # fmt: skip
    served = _served(sim, world, since)
    span = served[-1][0] - served[0][0]
    return {"workers": workers, "files": len(served), "seconds": round(span, 2),
            "files_per_s": round(len(served) / span, 1), "wall_s": round(wall, 1)}  # fmt: skip


def byte_budget(
    sim: SimulatorThread, world: World, tmp: Path, paged: Path, hour: float, limit: int
) -> dict[str, Any]:
    out = tmp / "budget"
    shutil.copytree(paged, out)
    since = len(sim.log)
    _cli(tmp, "photos", str(out), "--scheduler", "local:2", "--workers", "8", "--shard-files", "100",
         "--sizes", "medium", "--budget-window-scale", str(hour / 3600), "--media-gb-per-hour",
         str(limit / 1e9), "--media-rpm", "1000000")  # fmt: skip
    # By the simulator's rule, over this run's answers on each photo host (its live count
    # would hold the bytes of the runs just before, made with the limits lifted).
    answers = [r for r in sim.log[since:] if r.host in ("open", "static")]
    violations = sum(
        byte_violations([(r.time, r.nbytes) for r in answers if r.host == host], ByteLimit(limit, hour))
        for host in ("open", "static")
    )
    served = _served(sim, world, since, "open")  # the bucket holds most files: its budget binds
    span = served[-1][0] - served[0][0]
    worst = _max_in_window(served, hour)
    # The share used: bytes in each full window (one starting at each request, ending before
    # the last) against the limit; the run's last window is only partly needed.
    full = [_window_bytes(served, start, hour) for start, _ in served if start + hour <= served[-1][0]]
    return {
        "files": len(served), "bytes": sum(n for _, n in served), "seconds": round(span, 2),
        "limit_per_window": limit, "max_in_any_window": worst, "over_limit_bytes": max(0, worst - limit),
        "violations": violations, "biggest_file": max(n for _, n in served),
        "share_used": round(sum(full) / (len(full) * limit), 3) if full else None,
    }  # fmt: skip


def _window_bytes(served: list[tuple[float, int]], start: float, span: float) -> int:
    return sum(n for t, n in served if start <= t < start + span)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--budget-only", action="store_true", help="the byte budget run alone")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "cluster.json")
    args = parser.parse_args()
    observations = 300 if args.quick else 800
    world = World({4001: observations}, seed=11, photos=(1, 3), placeholder_rate=0.0, missing_size_rate=0.0,
                  photo_scale=0.05)  # fmt: skip
    results: dict[str, Any] = {"observations": observations, "photo_latency_s": 0.05, "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory() as name, SimulatorThread(world, photo_latency=0.05) as sim:
        tmp = Path(name)
        _cli(
            tmp,
            "--place",
            "4001",
            "--no-photos",
            "--api-url",
            sim.api_url,
            "--no-limits",
            "--out",
            str(tmp / "paged"),
        )
        counts = () if args.budget_only else (1, 2, 4)
        results["scaling"] = [files_per_second(sim, world, tmp, tmp / "paged", n, 100) for n in counts]
        for row in results["scaling"]:
            n, files, per_s = row["workers"], row["files"], row["files_per_s"]
            print(f"{n} worker process(es): {files} files, {per_s} files/s (wall {row['wall_s']} s)")
        # Bytes per host in any sliding minute: binds (about 3.5 KB/s), three windows' worth.
        # The ledger counts each window half a second longer (a margin for the network's
        # delays) and jitter on a loaded machine costs some more: a window short next to
        # them could not be used to 95%.
        hour, limit = 60.0, 700 * observations
        results["byte_budget"] = byte_budget(sim, world, tmp, tmp / "paged", hour, limit)
        results["byte_budget_window_s"] = hour
        print(f"byte budget on the bucket, 2 workers: {results['byte_budget']}")
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
