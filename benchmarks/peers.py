"""The tools measured, as command lines: the seed script, img2dataset, pyinaturalist, inat_async.

pyinaturalist is a library, so ``python -m benchmarks.peers pyinaturalist ...`` is the small
program a user would write with it: ``get_observations(place_id=..., page='all')`` with the
harvester's default filters, through a ``ClientSession`` that holds the same request budget.

``python -m benchmarks.peers probe ...`` is no tool but the harness's ceiling: a bare aiohttp
client that fetches the photo URLs with N requests in flight and throws the bodies away, or
with ``--out`` writes each to a file there (in the event loop: the cheapest way, not a safe one).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

HERE = Path(__file__).resolve().parent


def tool_version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def _python(*args: object) -> list[str]:
    return [sys.executable, *map(str, args)]


def seed_argv(api_url: str, place: int, out: Path) -> list[str]:
    return _python(HERE / "seed_script.py", f"--base-url={api_url}", f"--place={place}", f"--out={out}")


def img2dataset_argv(url_list: Path, out: Path, threads: int) -> list[str]:
    """Files as downloaded: no resizing. ``--resize_mode no`` alone still decodes and re-encodes
    every image with OpenCV (and so rejects the simulator's stand-in images, which are filler
    bytes behind a real header); ``--disable_all_reencoding`` writes the bytes as received."""
    main = "from img2dataset.main import main; main()"  # the img2dataset command, minus pyenv's shim
    flags = "--input_format=txt --output_format=files --processes_count=1 --resize_mode=no"
    return _python(
        "-c",
        main,
        f"--url_list={url_list}",
        f"--output_folder={out}",
        f"--thread_count={threads}",
        *flags.split(),
        "--disable_all_reencoding=True",
    )


def inat_async_argv(api_url: str, place: int, out: Path, *extra: str) -> list[str]:
    return _python(
        "-m", "inat_async", f"--place={place}", f"--api-url={api_url}", f"--out={out}", "-q", *extra
    )


def pyinaturalist_argv(api_url: str, place: int, per_minute: int, workdir: Path) -> list[str]:
    return _python(
        "-m",
        "benchmarks.peers",
        "pyinaturalist",
        f"--api-url={api_url}",
        f"--place={place}",
        f"--per-minute={per_minute}",
        f"--workdir={workdir}",
    )


def probe_argv(url_list: Path, concurrency: int, out: Path | None = None) -> list[str]:
    argv = ["-m", "benchmarks.peers", "probe", f"--url-list={url_list}", f"--concurrency={concurrency}"]
    return _python(*argv, *([f"--out={out}"] if out else []))


async def probe(url_list: Path, concurrency: int, out: Path | None) -> None:
    """Fetch every URL, ``concurrency`` at a time, and drop or write the bodies."""
    import aiohttp

    urls = url_list.read_text().split()
    urls.reverse()
    files = size = 0
    if out is not None:
        out.mkdir(parents=True)

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal files, size
        while urls:
            number, url = len(urls), urls.pop()
            async with session.get(url) as response:
                body = await response.read()
            if response.status == 200:
                files, size = files + 1, size + len(body)
                if out is not None:
                    extension = url.split("?")[0].rsplit(".", 1)[-1].lower()
                    (out / f"{number}.{extension}").write_bytes(body)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    print(json.dumps({"files": files, "bytes": size}))


def run_pyinaturalist(api_url: str, place: int, per_minute: int, workdir: Path) -> None:
    """Harvest a place's observations with pyinaturalist and save them as JSON lines."""
    import pyinaturalist.v1.observations as observations
    from pyinaturalist import ClientSession

    observations.API_V1 = api_url  # get_observations() builds its URL from this module global
    workdir.mkdir(parents=True, exist_ok=True)
    session = ClientSession(
        cache_file=str(workdir / "cache.sqlite"),
        ratelimit_path=str(workdir / "ratelimit.sqlite"),
        per_second=max(1, per_minute // 60),  # spread evenly, as inat_async does
        per_minute=per_minute,
        per_day=10**7,
    )
    start = time.monotonic()
    with session.cache_disabled():  # every page from the server, none from a cache
        response = observations.get_observations(
            place_id=place, geo=True, identified=True, rank="species", page="all", session=session
        )
    results = response["results"]
    with open(workdir / "observations.jsonl", "w") as f:
        for record in results:
            f.write(json.dumps(record, default=str) + "\n")
    print(json.dumps({"observations": len(results), "seconds": time.monotonic() - start}))


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.peers")
    p.add_argument("tool", choices=["pyinaturalist", "probe"])
    p.add_argument("--api-url", help="pyinaturalist: the API base URL")
    p.add_argument("--place", type=int, default=128892)
    p.add_argument("--per-minute", type=int, default=60, help="pyinaturalist: the request budget")
    p.add_argument("--workdir", type=Path, help="pyinaturalist: where its cache, limiter and output go")
    p.add_argument("--url-list", type=Path, help="probe: photo URLs, one a line")
    p.add_argument("--concurrency", type=int, default=16, help="probe: requests in flight")
    p.add_argument("--out", type=Path, help="probe: write the files into this new folder")
    args = p.parse_args()
    if args.tool == "probe":
        asyncio.run(probe(args.url_list, args.concurrency, args.out))
    else:
        run_pyinaturalist(args.api_url, args.place, args.per_minute, args.workdir)


if __name__ == "__main__":
    main()
