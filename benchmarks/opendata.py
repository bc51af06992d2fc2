"""Selecting from an open-data dump: inat_async's streaming selection against loading the
tables into SQLite as people do today (pyinaturalist-convert's open-data loader), on a
synthetic dump in the real layout (gzip, tab-separated, no quoting).

    python -m benchmarks.opendata --observations 10000000 --dir /tmp/odp-bench
    python -m benchmarks.opendata --observations 1000000 --dir /tmp/odp-small   # memory flat?

Each run is a child process measured by benchmarks.measure (wall, CPU, peak RSS). The
selection: a polygon covering about 1% of the dump's points, a taxon with about a quarter
of the taxa below it, photos under cc0 or cc-by. The baseline gunzips the four tables
(pyinaturalist-convert's loader reads plain CSV), loads them with ``load_odp_*`` and answers
the same query in SQL (the box of the polygon, the taxon through ``ancestor_ids LIKE``, the
licence), which still leaves the point-in-polygon test to do. Figures go to
``benchmarks/OPENDATA.md`` (``--report``) and are printed.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.measure import Run, run

CHUNK = 1_000_000
LICENSES = ("CC-BY-NC", "CC-BY", "CC0", "CC-BY-SA", "CC-BY-NC-SA", "CC-BY-ND", "CC-BY-NC-ND")
LICENSE_P = (0.55, 0.2, 0.1, 0.05, 0.05, 0.03, 0.02)
GRADES = ("research", "needs_id", "casual")
TAXA = 20_000
OBSERVERS = 200_000
# The query: a diamond of about 1% of the area the points are spread over, one kingdom.
AREA = (-10.0, 35.0, 10.0, 55.0)  # west, south, east, north the points lie in
POLYGON = {
    "type": "Polygon",
    "coordinates": [[[-1.0, 45.0], [0.0, 44.0], [1.0, 45.0], [0.0, 46.0], [-1.0, 45.0]]],
}
TAXON = 2  # the second of four kingdoms
LICENSE_QUERY = "cc0,cc-by"


# -- a synthetic dump --------------------------------------------------------------------------
def _uuids(rng: np.random.Generator, n: int) -> Any:
    """``n`` random version-4 UUIDs as a pyarrow string array, built without a Python loop."""
    import pyarrow as pa

    digits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    nibbles = rng.integers(0, 16, size=(n, 32), dtype=np.uint8)
    nibbles[:, 12] = 4
    text = np.full((n, 36), ord("-"), dtype=np.uint8)
    slots = [*range(0, 8), *range(9, 13), *range(14, 18), *range(19, 23), *range(24, 36)]
    text[:, slots] = digits[nibbles]
    offsets = np.arange(0, 36 * (n + 1), 36, dtype=np.int32)
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(text.tobytes())])


def _write(path: Path, tables: Any) -> None:
    """Tables as one gzip TSV with a header and no quoting, as the real dump is (gzip level 1:
    pyarrow's own gzip stream compresses ten times slower)."""
    import pyarrow as pa
    from pyarrow import csv

    with gzip.open(path, "wb", compresslevel=1) as file:
        header = False
        for table in tables:
            if not header:  # the header as the dump has it (pyarrow's would be quoted)
                file.write(("\t".join(table.column_names) + "\n").encode())
                header = True
            sink = pa.BufferOutputStream()
            options = csv.WriteOptions(delimiter="\t", quoting_style="none", include_header=False)
            csv.write_csv(table, sink, write_options=options)
            file.write(sink.getvalue())


def _taxa() -> dict[str, Any]:
    """A tree: a root (1), four kingdoms (2-5), then genera and species below them."""
    ids = np.arange(1, TAXA + 1)
    parent = np.zeros(TAXA, dtype=np.int64)
    parent[1:5] = 1
    parent[5:] = 2 + (ids[5:] % 4)  # each taxon under a kingdom...
    deeper = ids > 1000
    parent[deeper] = 6 + (ids[deeper] % 994)  # ...and most under a genus of that kingdom's line
    ancestry = []
    for k in range(TAXA):
        chain, node = [], int(parent[k])
        while node:
            chain.append(str(node))
            node = int(parent[node - 1]) if node > 1 else 0
        ancestry.append("/".join(reversed(chain)))
    names = [f"Taxon {i} \"{'ab'[i % 2]}'" for i in ids]  # quotes, unbalanced, as real names have
    rank = np.where(ids <= 5, "kingdom", np.where(ids <= 1000, "genus", "species"))
    level = np.where(ids <= 1000, 20, 10).tolist()
    return {"taxon_id": ids.tolist(), "ancestry": ancestry, "rank_level": level,
            "rank": rank.tolist(), "name": names, "active": ["true"] * TAXA}  # fmt: skip


def generate(folder: Path, observations: int, photos_per: float, seed: int = 1) -> dict[str, int]:
    """Write a dump of ``observations`` rows and about ``photos_per`` photos each."""
    import pyarrow as pa

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    counts = {"observations": 0, "photos": 0}
    photo_chunks: list[Any] = []
    next_photo = 1

    def observation_tables() -> Any:
        nonlocal next_photo
        for start in range(0, observations, CHUNK):
            n = min(CHUNK, observations - start)
            uuid = _uuids(rng, n)
            lat = rng.uniform(AREA[1], AREA[3], n).round(6)
            lng = rng.uniform(AREA[0], AREA[2], n).round(6)
            private = rng.random(n) < 0.05
            table = pa.table(
                {
                    "observation_uuid": uuid,
                    "observer_id": rng.integers(1, OBSERVERS + 1, n),
                    "latitude": pa.array(lat, mask=private),
                    "longitude": pa.array(lng, mask=private),
                    "positional_accuracy": pa.array(rng.integers(1, 500, n), mask=rng.random(n) < 0.3),
                    "taxon_id": pa.array(rng.integers(6, TAXA + 1, n), mask=rng.random(n) < 0.03),
                    "quality_grade": pa.array(np.array(GRADES)[rng.choice(3, n, p=(0.6, 0.35, 0.05))]),
                    "observed_on": pa.array(
                        (
                            np.datetime64("2008-01-01") + rng.integers(0, 6000, n).astype("timedelta64[D]")
                        ).astype(str)
                    ),
                    "anomaly_score": rng.uniform(0, 3, n).round(4),
                }
            )
            counts["observations"] += n
            per = rng.poisson(photos_per, n)  # some 0: observations without a photo
            owners = np.repeat(np.arange(n), per)
            m = len(owners)
            position = np.arange(m) - np.repeat(np.cumsum(per) - per, per)
            photo = pa.table(
                {
                    "photo_uuid": _uuids(rng, m),
                    "photo_id": np.arange(next_photo, next_photo + m),
                    "observation_uuid": uuid.take(pa.array(owners)),
                    "observer_id": table.column("observer_id").take(pa.array(owners)),
                    "extension": pa.array(
                        np.array(["jpeg", "jpg", "png"])[rng.choice(3, m, p=(0.8, 0.15, 0.05))]
                    ),
                    "license": pa.array(np.array(LICENSES)[rng.choice(len(LICENSES), m, p=LICENSE_P)]),
                    "width": rng.integers(300, 2049, m),
                    "height": rng.integers(300, 2049, m),
                    "position": position,
                }
            )
            next_photo += m
            counts["photos"] += m
            photo_chunks.append(photo)
            yield table

    _write(folder / "observations.csv.gz", observation_tables())

    def photo_tables() -> Any:
        while photo_chunks:
            yield photo_chunks.pop(0)

    _write(folder / "photos.csv.gz", photo_tables())
    _write_text(folder / "taxa.csv.gz", _taxa())
    ids = range(1, OBSERVERS + 1)
    observers = {"observer_id": ids, "login": [f"user{i}" for i in ids],
                 "name": [f"Name {i} O'Neil \"{i % 7}" if i % 3 else "" for i in ids]}  # fmt: skip
    _write_text(folder / "observers.csv.gz", observers)
    return counts


def _write_text(path: Path, columns: dict[str, Any]) -> None:
    """A small table with quotes in its values (which pyarrow's writer refuses unquoted)."""
    with gzip.open(path, "wt", encoding="utf-8", newline="\n") as file:
        file.write("\t".join(columns) + "\n")
        for row in zip(*columns.values(), strict=True):
            file.write("\t".join(str(v) for v in row) + "\n")


# -- the two ways ------------------------------------------------------------------------------
def select_child(folder: Path) -> None:
    """In a child: inat_async's selection; prints its counts as JSON."""
    from inat_async.pipeline.opendata import geometry
    from inat_async.sources import opendata as source

    query = source.DumpQuery(
        boundary=geometry(POLYGON, "polygon"), taxon=TAXON, licenses=tuple(LICENSE_QUERY.split(","))
    )
    start = time.monotonic()
    selection = source.select(source.open_dump(str(folder)), query)
    shaped = sum(1 for _ in source.api_observations(selection))  # made as a harvest makes them
    print(json.dumps({"selected": shaped, "rows_read": selection.rows_read,
                      "seconds": time.monotonic() - start}))  # fmt: skip


def sqlite_child(folder: Path, work: Path) -> None:
    """In a child: gunzip, pyinaturalist-convert's loaders into SQLite, then the query in SQL."""
    from pyinaturalist_convert import odp

    times: dict[str, float] = {}
    work.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    for name in ("observations", "photos", "taxa", "observers"):
        with gzip.open(folder / f"{name}.csv.gz", "rb") as src, open(work / f"{name}.csv", "wb") as dst:
            shutil.copyfileobj(src, dst, 8 << 20)
    times["gunzip"] = time.monotonic() - start
    db = work / "odp.db"
    db.unlink(missing_ok=True)
    start = time.monotonic()
    odp.load_odp_observations(work / "observations.csv", db)
    odp.load_odp_photos(work / "photos.csv", db)
    odp.load_odp_taxa(work / "taxa.csv", db)
    odp.load_odp_users(work / "observers.csv", db)
    times["load"] = time.monotonic() - start
    import sqlite3

    west, south, east, north = -1.0, 44.0, 1.0, 46.0
    start = time.monotonic()
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT COUNT(DISTINCT o.uuid) FROM observation o JOIN taxon t ON t.id = o.taxon_id"
            " JOIN photo p ON p.observation_uuid = o.uuid"
            " WHERE o.longitude BETWEEN ? AND ? AND o.latitude BETWEEN ? AND ?"
            " AND (t.id = ? OR '/' || t.ancestor_ids || '/' LIKE ?) AND lower(p.license) IN ('cc0', 'cc-by')",
            (west, east, south, north, TAXON, f"%/{TAXON}/%"),
        ).fetchone()
    times["query"] = time.monotonic() - start
    times["db_mb"] = db.stat().st_size / 1e6
    print(json.dumps({"in_box": rows[0], **times}))


def _measure(argv: list[str], log: Path) -> tuple[Run, dict[str, Any]]:
    """Run a child; its figures are the JSON object its output ends with."""
    result = run(argv, log=log)
    text = result.output.rstrip()
    decoder = json.JSONDecoder()
    start = text.find('{"')
    while start != -1:  # the object that ends the output (progress bars may precede it)
        try:
            figures, end = decoder.raw_decode(text, start)
            if end == len(text):
                return result, figures
        except ValueError:
            pass
        start = text.find('{"', start + 1)
    return result, {"error": text[-300:]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--observations", type=int, default=10_000_000)
    p.add_argument("--photos-per", type=float, default=1.5)
    p.add_argument("--dir", type=Path, default=Path("/tmp/odp-bench"))
    p.add_argument("--no-sqlite", action="store_true", help="skip the SQLite baseline")
    p.add_argument("--no-select", action="store_true", help="skip inat_async's selection")
    p.add_argument("--report", type=Path, default=None, help="append the figures to this Markdown file")
    p.add_argument("--child", choices=("generate", "select", "sqlite"), help=argparse.SUPPRESS)
    args = p.parse_args()
    dump = args.dir / "dump"
    if args.child == "generate":
        counts = generate(dump, args.observations, args.photos_per)
        return print(json.dumps({"asked": args.observations, **counts}))
    if args.child == "select":
        return select_child(dump)
    if args.child == "sqlite":
        return sqlite_child(dump, args.dir / "sqlite")
    marker = dump / "counts.json"
    if not marker.exists() or json.loads(marker.read_text())["asked"] != args.observations:
        start = time.monotonic()
        counts = generate(dump, args.observations, args.photos_per)
        marker.write_text(json.dumps({"asked": args.observations, **counts}))
        print(f"generated {counts} in {time.monotonic() - start:.0f} s")
    counts = json.loads(marker.read_text())
    size = sum(f.stat().st_size for f in dump.glob("*.csv.gz")) / 1e6
    me = [
        sys.executable,
        "-m",
        "benchmarks.opendata",
        "--dir",
        str(args.dir),
        "--observations",
        str(args.observations),
    ]
    rows = counts["observations"] + counts["photos"]
    lines = [
        f"### {counts['observations']:,} observations, {counts['photos']:,} photos ({size:,.0f} MB of gzip)",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores (shared with other work); Python "
        f"{platform.python_version()}.",
        "",
        "| way | wall s | CPU s | rows/s of wall | rows/s of CPU | peak RSS MB | selected |",
        "|---|---|---|---|---|---|---|",
    ]
    if not args.no_select:
        ours, ours_out = _measure([*me, "--child", "select"], args.dir / "select.log")
        lines.append(
            f"| inat_async selection (pyarrow blocks + shapely) | {ours.wall:.1f} | {ours.cpu:.1f} | "
            f"{rows / ours.wall:,.0f} | {rows / ours.cpu:,.0f} | {ours.maxrss_mb:,.0f} | "
            f"{ours_out.get('selected')} |"
        )
    if not args.no_sqlite:
        theirs, out = _measure([*me, "--child", "sqlite"], args.dir / "sqlite.log")
        lines.append(
            f"| gunzip + pyinaturalist-convert load_odp_* into SQLite + SQL query | {theirs.wall:.1f} | "
            f"{theirs.cpu:.1f} | {rows / theirs.wall:,.0f} | {rows / theirs.cpu:,.0f} | "
            f"{theirs.maxrss_mb:,.0f} | {out.get('in_box')} (box, before the polygon) |"
        )
        lines += ["", f"SQLite parts: {json.dumps(out)}"]
        shutil.rmtree(args.dir / "sqlite", ignore_errors=True)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.report is not None:
        with open(args.report, "a", encoding="utf-8") as report:
            report.write(text + "\n")


if __name__ == "__main__":
    main()
