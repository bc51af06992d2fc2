"""``python -m benchmarks.run [--quick]``: every benchmark, one after another, then RESULTS.md.

Each scenario starts the simulator in a process of its own (benchmarks/simhost.py) with
realistic latency and runs the tools, one at a time, as child processes on the same world:

1. photos: the seed script, img2dataset and inat_async fetch the same photo files
2. metadata: pyinaturalist and inat_async page a place under the same request budget
3. scale: inat_async metadata harvests of growing size (time and peak memory against N)
4. politeness: inat_async under a budget, against a simulator that counts violations
5. ranges: one cursor against parallel id ranges, at the same API latency and budget
6. pages: the page path alone (decode, check, rows, commit; then the exports), CPU per page
   and state bytes per observation, for this tree and the baseline commit, in one run
7. startup: from the command's start to its first API request, this tree and the baseline's
8. latency: realistic latency: photos at 100 ms each (against the seed script), and pages at
   1-3 s each under the default budget of 60 requests a minute
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from inat_async.simulator import max_in_window, violations

from . import measure, peers, profiler, report
from .simhost import SimHost

HERE = Path(__file__).resolve().parent
PLACE = 128892
SIZES = ["square", "medium", "original"]
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif")
SCENARIOS = ("photos", "metadata", "scale", "politeness", "ranges", "pages", "startup", "latency")
#: The tree the page path is compared with: main when issue 18 (performance) began.
BASELINE = "58f52b3"
FILTERS = "geo=true&identified=true&rank=species"
#: Offline, quiet children: no update check from albumentations (which img2dataset imports).
ENV = {"NO_ALBUMENTATIONS_UPDATE": "1", "WANDB_MODE": "disabled"}


@dataclass(frozen=True)
class Config:
    api_latency: float = 0.15
    photo_latency: float = 0.02
    photo_observations: int = 2_000
    #: inat_async's workers (16 is its default) = img2dataset's threads = the probe's requests
    concurrency: tuple[int, ...] = (16, 64)
    #: runs of each photo tool but the seed script (slow and steady); the median one counts
    repeats: int = 3
    meta_observations: int = 50_000
    meta_rpm: int = 600
    scale: tuple[int, ...] = (10_000, 100_000, 1_000_000)
    polite_observations: int = 12_000
    polite_rpm: int = 120
    polite_window_scale: float = 0.1  # a "minute" of 6 s
    polite_per_page: int = 20
    ranges_observations: int = 4_000
    ranges: tuple[int, ...] = (1, 4)
    page_observations: int = 11_000  # about 50 pages of 200 match
    page_runs: int = 3  # of each tree, alternating; the least CPU counts
    startup_runs: int = 7  # of each tree, alternating; the median counts
    slow_photo: float = 0.1  # seconds per photo answer in section 8
    slow_photo_observations: int = 2_000
    slow_seed_observations: int = 300  # the seed script's steady rate needs no more
    slow_workers: tuple[int, ...] = (64, 128)
    slow_api: tuple[float, float] = (1.0, 3.0)  # seconds per page in section 8, drawn evenly
    slow_meta_observations: int = 60_000  # about 270 pages: four and a half minutes at 60 a minute


QUICK = Config(
    photo_observations=500,
    repeats=3,  # one run of each is too noisy on a shared machine for the 0.9x ratio
    meta_observations=10_000,
    scale=(10_000, 100_000),
    polite_observations=5_000,
    ranges_observations=2_000,
    page_runs=2,
    startup_runs=5,
    slow_photo_observations=1_000,
    slow_seed_observations=100,
    slow_workers=(64, 128),
    slow_meta_observations=40_000,  # about 180 pages: start-up and the end weigh little
)


class Bench:
    """Runs the scenarios in a scratch folder; its logs/ holds each child's output meanwhile."""

    def __init__(self, cfg: Config, scratch: Path, profile: bool = True) -> None:
        self.cfg = cfg
        self.scratch = scratch
        self.out = scratch / "out"  # each run's output, removed after it is measured
        self.profile = profile
        self.logs = scratch / "logs"
        self.logs.mkdir()

    def _env(self, slug: str) -> dict[str, str]:
        # a budget file of its own: no other harvest's requests count against this one
        return {**ENV, "INAT_ASYNC_BUDGET_FILE": str(self.scratch / f"{slug}.budget.sqlite")}

    def _run(self, name: str, argv: list[str]) -> measure.Run:
        slug = name.replace(" ", "_").replace(",", "")
        print(f"  {name} ...", flush=True)
        run = measure.run(argv, env=self._env(slug), log=self.logs / f"{slug}.log")
        print(f"  {name}: {run.wall:.1f} s, exit status {run.status}", flush=True)
        return run

    def _sim(self, observations: int, **kwargs: Any) -> SimHost:
        cfg = self.cfg
        return SimHost(
            observations=observations,
            place=PLACE,
            api_latency=cfg.api_latency,
            photo_latency=cfg.photo_latency,
            **kwargs,
        )

    def _inat_async(self, sim: SimHost, *flags: str) -> list[str]:
        return peers.inat_async_argv(sim.api_url, PLACE, self.out, *flags)

    # ------------------------------------------------------------------ 1. photos

    def photos(self) -> dict[str, Any]:
        urls = self.scratch / "urls.txt"
        with self._sim(self.cfg.photo_observations) as sim:
            expected = sim.ask("urls", path=str(urls), sizes=SIZES)["count"]
            rows = [self._photo_run(sim, "seed script", 1, peers.seed_argv(sim.api_url, PLACE, self.out))]
            for repeat in range(self.cfg.repeats):  # interleaved: a busy moment hits every tool
                for w in self.cfg.concurrency:
                    for tool, argv in [
                        ("img2dataset", peers.img2dataset_argv(urls, self.out, w)),
                        ("inat_async", self._inat_async(sim, "--no-limits", f"--workers={w}")),
                        ("bare aiohttp", peers.probe_argv(urls, w)),
                        ("bare aiohttp + files", peers.probe_argv(urls, w, self.out)),
                    ]:
                        rows.append(self._photo_run(sim, tool, w, argv, repeat))
            top = max(self.cfg.concurrency)
            argv = self._inat_async(sim, "--no-limits", f"--workers={top}")
            profile = self._profile(f"inat_async at {top}", argv)
        return {
            "cores": os.cpu_count(),
            "observations": expected // len(SIZES),
            "files_expected": expected,
            "rows": rows,
            "profile": profile,
            "profile_workers": top,
        }

    def _photo_run(self, sim: SimHost, tool: str, w: int, argv: list[str], repeat: int = 0) -> dict[str, Any]:
        sim.ask("clear")
        before = sim.ask("stats")
        name = f"{tool} {w}" + (f" #{repeat + 1}" if self.cfg.repeats > 1 else "")
        run = self._run(tool if tool == "seed script" else name, argv)
        after = sim.ask("stats")
        if tool == "bare aiohttp":  # it writes nothing: it prints what it read
            read = json.loads(run.output.strip().splitlines()[-1]) if run.status == 0 else {}
            files, size = read.get("files", 0), read.get("bytes", 0)
        else:
            files, size = measure.files_under(self.out, IMAGE_SUFFIXES)
        shutil.rmtree(self.out, ignore_errors=True)
        return {
            **asdict(run),
            "tool": tool,
            "concurrency": w,
            "repeat": repeat,
            "files": files,
            "bytes": size,
            "server_cpu": after["cpu"] - before["cpu"],
            "photo_span": after["photo_span"],
        }

    def _profile(self, name: str, argv: list[str]) -> dict[str, float] | None:
        """One more run of ``argv``, under py-spy, when asked for and installed."""
        if not (self.profile and profiler.available()):
            return None
        print(f"  profiling {name} ...", flush=True)
        profile = profiler.profile(argv, self._env("profile"), self.scratch / "profile.txt")
        shutil.rmtree(self.out, ignore_errors=True)
        return profile

    # ------------------------------------------------------------------ 2. metadata

    def metadata(self) -> dict[str, Any]:
        rpm, pyi = self.cfg.meta_rpm, self.scratch / "pyinaturalist"
        rows = {}
        with self._sim(self.cfg.meta_observations) as sim:
            expected = sim.ask("count")["count"]
            inat_async = self._inat_async(sim, "--no-photos", "--api-rpm", str(rpm))
            runs = [
                ("pyinaturalist", peers.pyinaturalist_argv(sim.api_url, PLACE, rpm, pyi), pyi),
                ("inat_async", inat_async, self.out),
            ]
            for tool, argv, out in runs:
                sim.ask("clear")
                run = self._run(tool, argv)
                times = sim.ask("stats")["api_times"]
                count = _harvested(out) if out == self.out else _count_lines(out / "observations.jsonl")
                rows[tool] = {**asdict(run), "observations": count, **_rates(times, rpm, 60.0)}
                shutil.rmtree(out, ignore_errors=True)
            profile = self._profile("inat_async", inat_async)
        return {"observations": expected, "rows": rows, "profile": profile}

    # ------------------------------------------------------------------ 3. scale

    def scale(self) -> dict[str, Any]:
        rows = []
        for n in self.cfg.scale:
            with self._sim(n) as sim:
                expected = sim.ask("count")["count"]
                run = self._run(f"scale {n:,}", self._inat_async(sim, "--no-photos", "--no-limits"))
                requests = len(sim.ask("stats")["api_times"])
            state = self.out / "harvest.sqlite"
            state_mb = state.stat().st_size / 1e6 if state.exists() else 0.0
            rows.append(
                {
                    **asdict(run),
                    "n": n,
                    "expected": expected,
                    "observations": _harvested(self.out),
                    "requests": requests,
                    "state_mb": state_mb,
                }
            )
            shutil.rmtree(self.out, ignore_errors=True)
        return {"rows": rows}

    # ------------------------------------------------------------------ 4. politeness

    def politeness(self) -> dict[str, Any]:
        cfg = self.cfg
        window = 60.0 * cfg.polite_window_scale
        with self._sim(cfg.polite_observations, rate_limit=(cfg.polite_rpm, window)) as sim:
            flags = [
                "--no-photos",
                "--api-rpm",
                str(cfg.polite_rpm),
                "--per-page",
                str(cfg.polite_per_page),
                "--budget-window-scale",
                str(cfg.polite_window_scale),
            ]
            run = self._run("politeness", self._inat_async(sim, *flags))
            stats = sim.ask("stats")
        observations = _harvested(self.out)
        shutil.rmtree(self.out, ignore_errors=True)
        times = sorted(stats["api_times"])
        gaps = sorted(b - a for a, b in itertools.pairwise(times)) or [0.0]
        return {
            **asdict(run),
            **_rates(times, cfg.polite_rpm, window),
            "window": window,
            "observations": observations,
            "simulator_violations": stats["violations"],
            "spacing": window / cfg.polite_rpm,
            "min_gap": gaps[0],
            "gap_p01": gaps[len(gaps) // 100],
            "gap_median": gaps[len(gaps) // 2],
        }

    # ------------------------------------------------------------------ 5. ranges

    def ranges(self) -> dict[str, Any]:
        """The politeness budget again, paged by one cursor and by parallel id ranges."""
        cfg = self.cfg
        window = 60.0 * cfg.polite_window_scale
        rows = []
        for n in cfg.ranges:
            with self._sim(cfg.ranges_observations, rate_limit=(cfg.polite_rpm, window)) as sim:
                flags = ["--no-photos", "--api-rpm", str(cfg.polite_rpm), "--per-page",
                         str(cfg.polite_per_page), "--budget-window-scale", str(cfg.polite_window_scale),
                         "--ranges", str(n)]  # fmt: skip
                run = self._run(f"ranges {n}", self._inat_async(sim, *flags))
                stats = sim.ask("stats")
            rows.append({**asdict(run), **_rates(sorted(stats["api_times"]), cfg.polite_rpm, window),
                         "ranges": n, "observations": _harvested(self.out),
                         "simulator_violations": stats["violations"]})  # fmt: skip
            shutil.rmtree(self.out, ignore_errors=True)
        return {"rows": rows, "window": window}

    # ------------------------------------------------------------------ 6. pages

    def pages(self) -> dict[str, Any]:
        """The page path of this tree and of BASELINE's, on the same recorded pages."""
        recorded = self.scratch / "pages"
        recorded.mkdir()
        with SimHost(
            observations=self.cfg.page_observations, place=PLACE, api_latency=0, photo_latency=0
        ) as sim:
            count = _record_pages(sim.api_url, recorded)
        trees = {"baseline": self._baseline(), "this tree": HERE.parent}
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
        for repeat in range(self.cfg.page_runs):
            for name, tree in trees.items():
                out = self.scratch / f"pages-{name.replace(' ', '_')}-{repeat}"
                argv = [sys.executable, str(HERE / "pagepath.py"), f"--pages={recorded}", f"--out={out}",
                        f"--place={PLACE}"]  # fmt: skip
                env = {**os.environ, "PYTHONPATH": str(tree)}
                print(f"  page path, {name} #{repeat + 1} ...", flush=True)
                done = subprocess.run(argv, env=env, cwd=tree, capture_output=True, text=True, check=True)
                runs[name].append(json.loads(done.stdout.strip().splitlines()[-1]))
                shutil.rmtree(out, ignore_errors=True)
        best = {name: min(r, key=lambda m: sum(m["cpu_ms_per_page"].values())) for name, r in runs.items()}
        return {"baseline": BASELINE, "pages": count, "runs": runs, "best": best}

    def _baseline(self) -> Path:
        folder = self.scratch / "baseline"
        return folder if folder.exists() else _archive(BASELINE, folder)

    # ------------------------------------------------------------------ 7. startup

    def startup(self) -> dict[str, Any]:
        """Seconds from a command's start to its first API request (the simulator's arrival
        time), for this tree and the baseline's; and two floors: Python alone, and Python
        importing aiohttp, which every harvest needs before its first request."""
        trees = {"baseline": self._baseline(), "this tree": HERE.parent}
        firsts: dict[str, list[float]] = {name: [] for name in trees}
        # Compiled modules cached as an installed package has them (PYTHONDONTWRITEBYTECODE
        # would compile every module at every start), in the scratch folder; the first run of
        # each tree writes them and does not count.
        cached = {"PYTHONDONTWRITEBYTECODE": "", "PYTHONPYCACHEPREFIX": str(self.scratch / "pycache")}
        with SimHost(observations=300, place=PLACE, api_latency=0, photo_latency=0) as sim:
            for repeat in range(-1, self.cfg.startup_runs):
                for name, tree in trees.items():
                    sim.ask("clear")
                    slug = f"startup {name} {repeat}".replace(" ", "_")
                    argv = self._inat_async(sim, "--no-photos", "--no-limits")
                    env = {**self._env(slug), **cached}
                    run = measure.run(argv, env=env, log=self.logs / f"{slug}.log", cwd=tree)
                    times = sim.ask("stats")["api_times"]
                    if repeat >= 0:
                        firsts[name].append(min(times) - run.start if times else float("nan"))
                    shutil.rmtree(self.out, ignore_errors=True)
        floors = {}
        for name, code in (("python alone", "pass"), ("python importing aiohttp", "import aiohttp")):
            runs = [
                measure.run([sys.executable, "-c", code], env=cached) for _ in range(self.cfg.startup_runs)
            ]
            floors[name] = sorted(run.wall for run in runs)[len(runs) // 2]
        print(f"  first request after: { ({k: sorted(v) for k, v in firsts.items()}) }", flush=True)
        return {
            "baseline": BASELINE,
            "firsts": firsts,
            "floors": floors,
            "imports": _import_profile(self.scratch / "pycache"),
        }

    # ------------------------------------------------------------------ 8. latency

    def latency(self) -> dict[str, Any]:
        cfg = self.cfg
        with SimHost(
            observations=cfg.slow_seed_observations, place=PLACE, api_latency=cfg.api_latency,
            photo_latency=cfg.slow_photo,
        ) as sim:  # fmt: skip
            seed = self._photo_run(sim, "seed script", 1, peers.seed_argv(sim.api_url, PLACE, self.out))
        photos = [seed]
        with SimHost(
            observations=cfg.slow_photo_observations, place=PLACE, api_latency=cfg.api_latency,
            photo_latency=cfg.slow_photo,
        ) as sim:  # fmt: skip
            for w in cfg.slow_workers:
                argv = self._inat_async(sim, "--no-limits", f"--workers={w}")
                photos.append(self._photo_run(sim, "inat_async", w, argv))
        return {"photos": photos, "metadata": self.slow_metadata()}

    def slow_metadata(self) -> dict[str, Any]:
        """Pages at 1-3 s under the default budget: the share of 60 a minute used from the
        first request to the last, and over the whole run (start-up and the end included)."""
        cfg = self.cfg
        low, high = cfg.slow_api
        with SimHost(
            observations=cfg.slow_meta_observations, place=PLACE, api_latency=low, api_latency_max=high,
            photo_latency=0,
        ) as sim:  # fmt: skip
            expected = sim.ask("count")["count"]
            run = self._run("metadata at 1-3 s a page", self._inat_async(sim, "--no-photos"))
            times = sorted(sim.ask("stats")["api_times"])
        whole = len(times) / run.wall * 60.0 if run.wall > 0 else 0.0
        metadata = {**asdict(run), **_rates(times, 60, 60.0), "expected": expected,
                    "observations": _harvested(self.out), "whole_run_per_window": whole,
                    "whole_run_share": whole / 60.0}  # fmt: skip
        shutil.rmtree(self.out, ignore_errors=True)
        return metadata


def _import_profile(pycache: Path) -> dict[str, float]:
    """Seconds of the harvest's imports by top-level package (python -X importtime, the
    least of three runs): where start-up goes."""
    best: dict[str, float] = {}
    code = "import inat_async.cli, inat_async.api"
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "", "PYTHONPYCACHEPREFIX": str(pycache)}
    for _ in range(4):  # the first writes the compiled modules
        err = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True,
                             cwd=HERE.parent, env=env).stderr  # fmt: skip
        spent: dict[str, float] = {}
        for line in err.splitlines():
            if not line.startswith("import time:") or "self [us]" in line:
                continue
            own, _, name = (part.strip() for part in line.removeprefix("import time:").split("|"))
            top = name.split(".")[0]
            spent[top] = spent.get(top, 0.0) + int(own) / 1e6
        for top, seconds in spent.items():
            best[top] = min(best.get(top, seconds), seconds)
    return dict(sorted(best.items(), key=lambda kv: -kv[1]))


def _record_pages(api_url: str, folder: Path) -> int:
    """The query's pages of 200, as the API sends them, one file each; returns their count."""
    last, n = 0, 0
    while True:
        url = f"{api_url}/observations?{FILTERS}&place_id={PLACE}&order_by=id&order=asc&per_page=200"
        with urllib.request.urlopen(f"{url}&id_above={last}") as answer:
            body = answer.read()
        results = json.loads(body)["results"]
        if not results:
            return n
        last = results[-1]["id"]
        (folder / f"{n:05d}.json").write_bytes(body)
        n += 1


def _archive(commit: str, folder: Path) -> Path:
    """The package of ``commit`` unpacked into ``folder`` (git archive): a tree to import."""
    folder.mkdir()
    archive = subprocess.run(
        ["git", "archive", commit, "inat_async"], cwd=HERE.parent, capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return folder


def _rates(times: list[float], budget: int, window: float) -> dict[str, Any]:
    """Requests, their rate against the budget, and sliding-window violations, from arrivals."""
    n = len(times)
    span = times[-1] - times[0] if n > 1 else 0.0
    per_window = (n - 1) / span * window if span > 0 else 0.0
    return {
        "requests": n,
        "span": span,
        "per_window": per_window,
        "budget_share": per_window / budget,
        "max_in_window": max_in_window(times, window),
        "violations": violations(times, budget, window),
    }


def _count_lines(path: Path) -> int:
    if not path.exists():
        return 0
    with open(path, "rb") as f:
        return sum(1 for _ in f)


def _harvested(out: Path) -> int:
    """Observations in a harvest's state database."""
    state = out / "harvest.sqlite"
    if not state.exists():
        return 0
    with sqlite3.connect(state) as db:
        return db.execute("SELECT count(*) FROM observations").fetchone()[0]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smaller runs: a few minutes, scale stops at 100,000")
    p.add_argument("--only", nargs="+", choices=SCENARIOS, help="run only these (RESULTS.md shows only them)")
    p.add_argument(
        "--no-profile", action="store_true", help="skip the py-spy run even if py-spy is installed"
    )
    p.add_argument("--out", type=Path, default=HERE, help="where RESULTS.md, results.json and scale.png go")
    p.add_argument("--scale", type=int, nargs="+", metavar="N", help="the scale section's place sizes")
    p.add_argument("--scratch", type=Path, default=None, help="parent of the scratch folder (default: /tmp)")
    p.add_argument(
        "--from-json", type=Path, metavar="FILE", help="run nothing: RESULTS.md from a results.json"
    )
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.from_json:
        report.write(json.loads(args.from_json.read_text()), args.out)
        return 0
    cfg = QUICK if args.quick else Config()
    if args.scale:
        cfg = dataclasses.replace(cfg, scale=tuple(args.scale))
    results: dict[str, Any] = {"config": asdict(cfg), "quick": args.quick, "started": time.time(),
                               "machine": report.machine()}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="inat_bench_", dir=args.scratch) as scratch:
        bench = Bench(cfg, Path(scratch), profile=not args.no_profile)
        for name in args.only or SCENARIOS:
            print(f"{name}:", flush=True)
            start = time.monotonic()
            results[name] = getattr(bench, name)()
            results[name]["seconds"] = time.monotonic() - start
    results["seconds"] = time.time() - results["started"]
    (args.out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    report.write(results, args.out)
    print(f"wrote {args.out / 'RESULTS.md'} after {results['seconds'] / 60:.1f} min")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
