"""The simulator in a process of its own, steered over stdin/stdout with one JSON object a line.

``python -m inat_async.simulator`` serves a world but cannot tell another process what it saw
(request log, sliding-window violations) nor the photo URLs of its world, so the benchmarks run
:class:`~inat_async.simulator.SimulatorThread` here instead. The main thread only blocks on
stdin, so the serving thread has the process (and its GIL) to itself.

Started by :class:`SimHost`; on start it prints ``{"api_url": ..., "hosts": ...}``, then answers:

- ``{"cmd": "urls", "path": P, "sizes": [...]}``: writes the URLs of each matching
  observation's first photo in those sizes, one a line: the files every tool fetches
- ``{"cmd": "count"}``: how many observations match the default filters
- ``{"cmd": "stats"}``: API request arrival times (``time.monotonic``, comparable across
  processes on Linux), seconds from the first photo request to the last, the simulator's
  violation count and the CPU seconds this process has used
- ``{"cmd": "clear"}``: forget the log
- ``{"cmd": "quit"}`` or end of input: stop
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from typing import Any

from inat_async.simulator import RateLimit, SimulatorThread, World

#: The harvester's and the seed script's default filters.
FILTERS = {"geo": "true", "identified": "true", "rank": "species"}


def world(observations: int, place: int, seed: int) -> World:
    """Every observation has a photo and every file exists, so all tools fetch the same files
    (the seed script crashes on an observation without photos or on a 404)."""
    return World({place: observations}, seed=seed, photos=(1, 4), placeholder_rate=0.0, missing_size_rate=0.0)


def photo_urls(w: World, hosts: dict[str, str], place: int, sizes: list[str]) -> list[str]:
    urls = []
    for obs_id in w.matching_ids({**FILTERS, "place_id": str(place)}):
        square = w.observation_json(obs_id, hosts)["photos"][0]["url"]
        urls += [square.replace("square", size) for size in sizes]
    return urls


def stats(sim: SimulatorThread) -> dict[str, Any]:
    log = sim.log
    photos = [r.time for r in log if r.host in ("open", "static")]
    return {
        "api_times": [r.time for r in log if r.host == "api"],
        "photo_span": photos[-1] - photos[0] if len(photos) > 1 else 0.0,
        "photo_first": photos[0] if photos else None,
        "photo_last": photos[-1] if photos else None,
        "violations": sim.violations,
        "cpu": sum(os.times()[:2]),
    }


def serve(args: argparse.Namespace) -> None:
    w = world(args.observations, args.place, args.seed)
    limit = RateLimit(args.rate_limit, args.rate_window, enforce=False) if args.rate_limit else None
    kwargs = {"api_latency": args.api_latency, "photo_latency": args.photo_latency, "api_limit": limit}
    if args.api_latency_max is not None:  # each answer's latency drawn between the two
        kwargs["api_latency_max"] = args.api_latency_max
    with SimulatorThread(w, **kwargs) as sim:
        _send({"api_url": sim.api_url, "hosts": sim.hosts})
        for line in sys.stdin:
            command = json.loads(line)
            cmd = command["cmd"]
            if cmd == "quit":
                break
            if cmd == "urls":
                urls = photo_urls(w, sim.hosts, args.place, command["sizes"])
                with open(command["path"], "w") as f:
                    f.write("".join(url + "\n" for url in urls))
                _send({"count": len(urls)})
            elif cmd == "count":
                _send({"count": w.count({**FILTERS, "place_id": str(args.place)})})
            elif cmd == "stats":
                _send(stats(sim))
            elif cmd == "clear":
                sim.clear_log()
                _send({})


def _send(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


class SimHost:
    """``with SimHost(observations=...) as sim:`` starts this module in a child process."""

    def __init__(
        self,
        *,
        observations: int,
        place: int,
        seed: int = 1,
        api_latency: float = 0.15,
        photo_latency: float = 0.02,
        rate_limit: tuple[int, float] | None = None,
        api_latency_max: float | None = None,
    ) -> None:
        self.argv = [sys.executable, "-m", "benchmarks.simhost", f"--observations={observations}",
                     f"--place={place}", f"--seed={seed}", f"--api-latency={api_latency}",
                     f"--photo-latency={photo_latency}"]  # fmt: skip
        if rate_limit is not None:
            self.argv += [f"--rate-limit={rate_limit[0]}", f"--rate-window={rate_limit[1]}"]
        if api_latency_max is not None:
            self.argv.append(f"--api-latency-max={api_latency_max}")

    def __enter__(self) -> SimHost:
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        hello = self._read()
        self.api_url: str = hello["api_url"]
        return self

    def ask(self, cmd: str, **kwargs: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"cmd": cmd, **kwargs}) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"simulator process ended (status {self.proc.wait()})")
        return json.loads(line)

    def __exit__(self, *exc: object) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()  # end of input: it stops
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.simhost")
    p.add_argument("--observations", type=int, required=True)
    p.add_argument("--place", type=int, default=128892)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--api-latency", type=float, default=0.15)
    p.add_argument("--photo-latency", type=float, default=0.02)
    p.add_argument("--api-latency-max", type=float, default=None, help="API latency drawn up to this")
    p.add_argument("--rate-limit", type=int, default=0, help="count (never refuse) past N API requests")
    p.add_argument("--rate-window", type=float, default=60.0, help="... in any window of this many seconds")
    serve(p.parse_args())


if __name__ == "__main__":
    main()
