"""``python -m inat_async.simulator``: serve a simulated iNaturalist on 127.0.0.1 until Ctrl-C.

Lets users try the harvester offline: it prints the API URL and a harvester command line
pointing at it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from .dump import write_dump
from .faults import Faults, RateLimit
from .server import Simulator
from .world import World


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr, then exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _places(text: str) -> list[int]:
    try:
        places = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of place ids: {text!r}") from None
    if not places or any(p <= 0 for p in places) or len(set(places)) != len(places):
        raise argparse.ArgumentTypeError(f"need distinct positive place ids: {text!r}")
    return places


def _rate(text: str) -> tuple[int, float]:
    count, sep, window = text.partition("/")
    try:
        parsed = int(count), float(window)
    except ValueError:
        parsed = (0, 0.0)
    if not sep or parsed[0] < 1 or parsed[1] <= 0:
        raise argparse.ArgumentTypeError(f"expected REQUESTS/SECONDS such as 60/60, got {text!r}")
    return parsed


def _number(kind: type[int] | type[float], high: float | None = None) -> Callable[[str], float]:
    """A parser for a number >= 0 (and <= ``high``)."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value < 0 or (high is not None and value > high):
            bound = f" and <= {high:g}" if high is not None else ""
            raise argparse.ArgumentTypeError(f"must be >= 0{bound}: {text!r}")
        return value

    return parse


def _retry_after(text: str) -> float | str | None:
    if text in ("none", "http-date", "auto"):
        return None if text == "none" else text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected none, auto, http-date or seconds") from None


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = _Parser(
        prog="python -m inat_async.simulator",
        description="Serve a simulated iNaturalist API and photo hosts on 127.0.0.1.",
    )
    parser.add_argument(
        "--observations",
        type=_number(int),
        default=2_000,
        help="observations in total, spread evenly over the places (default 2000)",
    )
    parser.add_argument(
        "--places", type=_places, default=[128892], help="comma-separated place ids (default 128892)"
    )
    parser.add_argument(
        "--port",
        type=_number(int),
        default=0,
        help="API port; photo hosts on port+1 and port+2 (default: any free)",
    )
    parser.add_argument("--seed", type=int, default=0, help="world and fault seed (default 0)")
    parser.add_argument(
        "--api-latency",
        type=_number(float),
        default=0.15,
        help="seconds added to each API answer (default 0.15)",
    )
    parser.add_argument(
        "--photo-latency",
        type=_number(float),
        default=0.02,
        help="seconds added to each photo answer (default 0.02)",
    )
    parser.add_argument(
        "--fault-rate",
        type=_number(float, 1.0),
        default=0.0,
        help="probability of a random fault per request (default 0)",
    )
    parser.add_argument(
        "--rate-limit",
        type=_rate,
        default=None,
        metavar="N/SECONDS",
        help="answer 429 past N API requests in any SECONDS window, e.g. 60/60",
    )
    parser.add_argument(
        "--retry-after",
        type=_retry_after,
        default=None,
        help="Retry-After of rate-limit 429s: none, auto, http-date or seconds",
    )
    parser.add_argument(
        "--dump",
        type=Path,
        default=None,
        metavar="DIR",
        help="also write the world as an open-data dump into DIR (for inat-async opendata)",
    )
    return parser


def command_world(observations: int, places: list[int], seed: int) -> World:
    """The world the command serves: ``observations`` spread evenly over ``places``."""
    share, extra = divmod(observations, len(places))
    return World({place: share + (1 if k < extra else 0) for k, place in enumerate(places)}, seed=seed)


async def _serve(args: argparse.Namespace) -> None:
    world = command_world(args.observations, args.places, args.seed)
    faults = Faults.uniform(args.fault_rate, seed=args.seed) if args.fault_rate else None
    limit = None
    if args.rate_limit is not None:
        limit = RateLimit(args.rate_limit[0], args.rate_limit[1], retry_after=args.retry_after)
    sim = Simulator(
        world,
        api_latency=args.api_latency,
        photo_latency=args.photo_latency,
        faults=faults,
        api_limit=limit,
        port=args.port,
    )
    if args.dump is not None:
        write_dump(world, args.dump)
    async with sim:
        print(f"iNaturalist simulator: {len(world)} observations in places {args.places}")
        print(f"API URL: {sim.api_url}")
        print(f"photo hosts: open {sim.hosts['open']}, static {sim.hosts['static']}")
        example = f"--place {args.places[0]} --api-url {sim.api_url} --no-limits --out demo"
        print(f"try: python -m inat_async {example}")
        if args.dump is not None:
            print(
                f"open-data dump in {args.dump}; try: python -m inat_async opendata --dump {args.dump} "
                f"--place {args.places[0]} --api-url {sim.api_url} --photo-base {sim.hosts['open']} "
                "--no-limits --out demo_opendata"
            )
        print("Ctrl-C to stop.", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            # also when started in the background, where SIGINT is ignored by default
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(signum, stop.set)
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    """Run the simulator until interrupted; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        asyncio.run(_serve(args))
    except KeyboardInterrupt:
        return 0
    except OSError as exc:
        print(f"python -m inat_async.simulator: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
