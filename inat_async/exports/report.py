"""OUT/report.html: the harvest at a glance, one self-contained page written by every harvest.

The page needs nothing but itself: no script, no style sheet, font, map tile or image from
anywhere (the photos are embedded as data: URIs), so it opens offline and sends no request.
It shows summary.json's counts (observations, per place, photo files by status), the
observations per quality grade, licence and taxon (the 50 most observed), per month (bars
drawn in SVG), their public points on a map drawn in SVG (longitude and latitude, a
graticule; no coastline), and a grid of square photos with their attribution.

Photos in another store (--store) are not embedded: those of a folder are linked by their
path relative to OUT, those of an object store shown from their source URL (iNaturalist's
photo hosts: the one case where the page sends requests), with a caption naming the store.
"""

from __future__ import annotations

import base64
import html
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from inat_async.exports.summary import Summary
from inat_async.store.files import replacing
from inat_async.store.objects import local_folder, recorded_store
from inat_async.store.state import SizedFile, State

REPORT_FILE = "report.html"
TOP_TAXA = 50
GRID_PHOTOS = 48
MAX_POINTS = 20_000  # points drawn on the map: enough to show where, small enough to open fast
MAX_EMBEDDED_BYTES = 256_000  # a square photo is a few KB; a bigger file is left out
MEDIA_TYPES = {"jpg": "image/jpeg", "jpeg": "image/jpeg", "png": "image/png", "gif": "image/gif"}
_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; max-width: 1100px; }
h1 { font-size: 1.6em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: .5em 0; } td, th { padding: 2px 10px; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; } tr:nth-child(even) { background: #f4f4f4; }
.grid { display: flex; flex-wrap: wrap; gap: 8px; } figure { margin: 0; width: 120px; font-size: 11px; }
figure img { width: 120px; height: 120px; object-fit: cover; display: block; }
.columns { display: flex; flex-wrap: wrap; gap: 3em; }
"""


def write_report(state: State, summary: Summary) -> Path:
    """Write OUT/report.html from the state and this harvest's summary; return its path."""
    out = summary.out
    body = [
        f"<h1>iNaturalist harvest: {summary.observations:,} observations</h1>",
        _summary_tables(summary, recorded_store(state)),
        "<div class='columns'>",
        _count_table("Quality grade", "quality", state.observation_counts("quality_grade")),
        _count_table("Licence", "license", state.observation_counts("license_code")),
        "</div>",
        _count_table(
            f"Taxa (the {TOP_TAXA} most observed)", "taxon", state.observation_counts("taxon_name", TOP_TAXA)
        ),
        "<h2>Observations per month</h2>",
        _months_svg(state.observations_per_month()),
        "<h2>Where (public coordinates)</h2>",
        _map_svg(state.points(MAX_POINTS)),
        "<h2>Photos</h2>",
        _photo_grid(state, out, recorded_store(state)),
    ]
    page = (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>iNaturalist harvest: {summary.observations:,} observations</title>"
        f"<style>{_STYLE}</style></head>\n<body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
    target = out / REPORT_FILE
    with replacing(target) as part:
        part.write_text(page, encoding="utf-8")
    return target


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _summary_tables(summary: Summary, store: str | None) -> str:
    places = "".join(
        f"<tr><td>place {_e(place)}</td><td class='n' id='place-{_e(place)}'>{count:,}</td></tr>"
        for place, count in summary.per_place.items()
    )
    photos = "".join(
        f"<tr><td>{_e(status)}</td><td class='n' id='photos-{_e(status)}'>{count:,}</td></tr>"
        for status, count in sorted(summary.photos.items())
    )
    return (
        "<h2>Summary</h2><div class='columns'>"
        f"<table><tr><th>observations</th><td class='n' id='observations'>{summary.observations:,}</td></tr>"
        f"{places}</table>"
        f"<table><tr><th colspan='2'>photo files</th></tr>{photos}"
        f"<tr><td>MB {'on disk' if store is None else 'stored'}</td>"
        f"<td class='n' id='megabytes'>{summary.bytes_on_disk / 1e6:,.1f}</td></tr>"
        f"<tr><td>stored in</td><td id='store'>{_e(store or summary.out)}</td></tr>"
        "</table></div>"
    )


def _count_table(title: str, kind: str, counts: Sequence[tuple[object, int]]) -> str:
    rows = "".join(
        f"<tr><td>{_e(value if value not in (None, '') else '(none)')}</td>"
        f"<td class='n' data-{kind}='{_e(value or '')}'>{count:,}</td></tr>"
        for value, count in counts
    )
    return f"<div><h2>{_e(title)}</h2><table>{rows}</table></div>"


def _months_svg(months: Sequence[tuple[str, int]]) -> str:
    """Bars of observations per month (YYYY-MM), oldest first, each labelled."""
    if not months:
        return "<p>No observation has a date.</p>"
    width, height, bar = 900, 200, max(4.0, min(40.0, 860 / len(months)))
    top = max(count for _, count in months)
    parts = []
    for i, (month, count) in enumerate(months):
        h = 150 * count / top
        x = 30 + i * bar
        parts.append(
            f"<rect x='{x:.1f}' y='{170 - h:.1f}' width='{bar * 0.8:.1f}' height='{h:.1f}' fill='#4a7'>"
            f"<title>{_e(month)}: {count:,}</title></rect>"
        )
        if len(months) <= 24 or i % math.ceil(len(months) / 24) == 0:
            parts.append(f"<text x='{x:.1f}' y='185' font-size='9'>{_e(month)}</text>")
    svg_width = max(width, 60 + len(months) * bar)
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{svg_width:.0f}' height='{height}' "
        f"role='img' aria-label='observations per month'>{''.join(parts)}</svg>"
    )


def _map_svg(points: Sequence[tuple[float, float]]) -> str:
    """The points (longitude, latitude) over the area they cover, with a graticule."""
    if not points:
        return "<p>No observation has public coordinates.</p>"
    west, east = min(p[0] for p in points), max(p[0] for p in points)
    south, north = min(p[1] for p in points), max(p[1] for p in points)
    pad = max(east - west, north - south, 0.5) * 0.1
    west, east, south, north = west - pad, east + pad, south - pad, north + pad
    width = 800
    height = max(200, min(800, round(width * (north - south) / (east - west))))

    def x(lng: float) -> float:
        return (lng - west) / (east - west) * width

    def y(lat: float) -> float:
        return (north - lat) / (north - south) * height

    step = _grid_step(max(east - west, north - south))
    lines = []
    for lng in _ticks(west, east, step):
        lines.append(f"<line x1='{x(lng):.1f}' y1='0' x2='{x(lng):.1f}' y2='{height}' stroke='#ddd'/>")
        lines.append(f"<text x='{x(lng) + 2:.1f}' y='{height - 4}' font-size='10'>{lng:g}°</text>")
    for lat in _ticks(south, north, step):
        lines.append(f"<line x1='0' y1='{y(lat):.1f}' x2='{width}' y2='{y(lat):.1f}' stroke='#ddd'/>")
        lines.append(f"<text x='2' y='{y(lat) - 2:.1f}' font-size='10'>{lat:g}°</text>")
    dots = "".join(f"<circle cx='{x(lng):.1f}' cy='{y(lat):.1f}' r='2.5'/>" for lng, lat in points)
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' role='img' "
        f"aria-label='map of {len(points):,} observations' id='map'>"
        f"<rect width='{width}' height='{height}' fill='#eef4f8'/>{''.join(lines)}"
        f"<g fill='#c33' fill-opacity='0.7'>{dots}</g></svg>"
    )


def _grid_step(span: float) -> float:
    for step in (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 30, 60):
        if span / step <= 8:
            return step
    return 90


def _ticks(low: float, high: float, step: float) -> Iterable[float]:
    value = math.ceil(low / step) * step
    while value <= high:
        yield round(value, 6)
        value += step


def _photo_grid(state: State, out: Path, store: str | None) -> str:
    """Square photos with their credit: embedded from OUT, linked in another folder, shown
    from their source URL when they are in an object store."""
    folder = out if store is None else local_folder(store, out)
    figures = []
    for file in state.files_of_size("square", GRID_PHOTOS):
        source = _image_source(file, out, folder)
        if source is None:
            continue
        credit = file.attribution or "(no attribution given)"
        figures.append(
            f"<figure><img alt='photo {file.photo_id}' src='{_e(source)}'>"
            f"<figcaption>{_e(credit)} · observation {file.observation_id}</figcaption></figure>"
        )
    if not figures:
        return "<p>No square photo on disk (harvest with --sizes square to see some here).</p>"
    grid = f"<div class='grid' id='photos'>{''.join(figures)}</div>"
    if store is None:
        return grid
    shown = (
        "linked from that folder" if folder is not None else "shown from iNaturalist, where they came from"
    )
    return f"<p id='photos-store'>The photo files are in {_e(store)}: {shown}.</p>{grid}"


def _image_source(file: SizedFile, out: Path, folder: Path | None) -> str | None:
    """The img src of a photo: a data: URI from OUT, a path relative to OUT in another
    folder, or its source URL (an object store's files are not read for a page)."""
    if folder is None:
        return file.url if file.url and file.url.startswith(("https://", "http://")) else None
    path = folder / file.path
    if folder != out:
        return Path(os.path.relpath(path, out)).as_posix() if path.is_file() else None
    media = MEDIA_TYPES.get(path.suffix.lstrip(".").lower())
    try:
        data = path.read_bytes() if media and path.stat().st_size <= MAX_EMBEDDED_BYTES else None
    except OSError:
        data = None
    return f"data:{media};base64,{base64.b64encode(data).decode()}" if data is not None else None
