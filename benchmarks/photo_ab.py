"""inat_async's photo path against the bare aiohttp + files client, interleaved, on one world.

``python -m benchmarks.photo_ab --observations 3000 --runs 5 --workers 64`` starts the
simulator (benchmarks/simhost.py, 20 ms a photo), then runs inat_async ``--no-limits`` and
the bare client (``benchmarks.peers probe --out``) one after the other, ``--runs`` times
each, alternating, so a busy moment of a shared machine hits both. Prints each run and the
medians: files/s over the whole command, files/s while downloading (first photo request to
last, as the simulator saw them), CPU per 1,000 files, and their ratios. Runs longer than a
few seconds (3,000 observations make 9,000 files) keep fixed costs (start-up, paging,
exports) from deciding the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import measure, peers
from benchmarks.run import ENV, IMAGE_SUFFIXES, PLACE, SIZES
from benchmarks.simhost import SimHost


def _one(sim: SimHost, argv: list[str], out: Path, budget: Path) -> dict[str, Any]:
    sim.ask("clear")
    run = measure.run(argv, env={**ENV, "INAT_ASYNC_BUDGET_FILE": str(budget)}, log=out.parent / "run.log")
    stats = sim.ask("stats")
    files, _ = measure.files_under(out, IMAGE_SUFFIXES)
    shutil.rmtree(out, ignore_errors=True)
    span = stats["photo_span"] or run.wall
    return {
        "status": run.status,
        "files": files,
        "wall": run.wall,
        "fps": files / run.wall if run.wall else 0.0,
        "fps_downloading": files / span if span else 0.0,
        "cpu_per_1000": run.cpu / files * 1000 if files else 0.0,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.photo_ab", description=__doc__.splitlines()[0])
    p.add_argument("--observations", type=int, default=3000)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--workers", type=int, default=64)
    p.add_argument("--photo-latency", type=float, default=0.02)
    args = p.parse_args(argv)
    results: dict[str, list[dict[str, Any]]] = {"inat_async": [], "bare aiohttp + files": []}
    with tempfile.TemporaryDirectory(prefix="inat_ab_") as scratch_name:
        scratch = Path(scratch_name)
        out, urls = scratch / "out", scratch / "urls.txt"
        with SimHost(observations=args.observations, place=PLACE, api_latency=0.15,
                     photo_latency=args.photo_latency) as sim:  # fmt: skip
            sim.ask("urls", path=str(urls), sizes=SIZES)
            print(f"load {os.getloadavg()[:2]} at {time.strftime('%H:%M:%S')}", flush=True)
            for i in range(args.runs):
                for tool, command in [
                    ("inat_async", peers.inat_async_argv(sim.api_url, PLACE, out, "--no-limits",
                                                         f"--workers={args.workers}")),
                    ("bare aiohttp + files", peers.probe_argv(urls, args.workers, out)),
                ]:  # fmt: skip
                    row = _one(sim, command, out, scratch / f"{i}.budget.sqlite")
                    results[tool].append(row)
                    print(f"{tool} #{i + 1}: {json.dumps(row)}", flush=True)
            print(f"load {os.getloadavg()[:2]} at {time.strftime('%H:%M:%S')}", flush=True)
    keys = ("fps", "fps_downloading", "cpu_per_1000")
    medians = {tool: {k: statistics.median(r[k] for r in rs) for k in keys} for tool, rs in results.items()}
    mine, bare = medians["inat_async"], medians["bare aiohttp + files"]
    print(json.dumps(medians, indent=1))
    print(
        f"inat_async / bare + files, medians: files/s {mine['fps'] / bare['fps']:.2f}x, while downloading "
        f"{mine['fps_downloading'] / bare['fps_downloading']:.2f}x, CPU per file "
        f"{mine['cpu_per_1000'] / bare['cpu_per_1000']:.2f}x"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
