"""A harvest from iNaturalist's open-data dumps: the selection in place of the pager.

The dump is read once (sources.opendata, in a thread: the event loop only waits), its
selection is committed to the state in pages through ``State.save_page`` as the pager
commits API pages, and the cursor of the one stream "opendata" is marked done with the last
page: a run killed before that selects again (the same rows, stored once), one killed after
goes straight to the photos. The photo stage (here or on a Dask cluster, into the run's
store), exports and summary are those of any harvest.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import math
import threading
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from rich.console import Console

from inat_async.config import Settings
from inat_async.errors import SettingError, UsageError
from inat_async.exports.summary import Summary
from inat_async.model import PhotoStatus, check_observations, check_taxa
from inat_async.net.http import Http
from inat_async.net.politeness import Politeness
from inat_async.photos import PhotoFile, host_of
from inat_async.pipeline.harvest import PhotoStage, polite_http, progress_from, run_state, write_outputs
from inat_async.pipeline.pager import files_of
from inat_async.pipeline.photostage import host_of_base, run_stage, selection_settings
from inat_async.pipeline.progress import Progress
from inat_async.records import observation_row
from inat_async.sources import opendata as source
from inat_async.store.state import State

log = logging.getLogger("inat_async")
STREAM = "opendata"
#: Observations committed in one transaction.
PAGE = 500
#: Observations asked of the API in one request with --hydrate (its most).
HYDRATE_PAGE = 200


@dataclass(frozen=True)
class DumpHarvest:
    """An open-data harvest: the photo and politeness settings of any harvest (``settings``;
    its places are the --place, or none) and what to select from which dump."""

    settings: Settings
    dump: str = source.DEFAULT_DUMP
    storage_options: dict[str, Any] = field(default_factory=dict)
    place: int | None = None
    polygon: dict[str, Any] | None = None  # GeoJSON geometry from --polygon
    bbox: tuple[float, float, float, float] | None = None
    taxon: int | None = None
    grades: tuple[str, ...] | None = None
    observed_from: str | None = None
    observed_to: str | None = None
    photo_base: str = source.PHOTO_BASE
    hydrate: bool = False

    def fingerprint(self) -> dict[str, object]:
        """What makes two runs the same harvest (compared on resume, named in the exports)."""
        s = self.settings
        return {
            "source": "opendata",
            "dump": self.dump.rstrip("/"),
            "places": [self.place] if self.place is not None else [],
            "filters": {
                key: value
                for key, value in {
                    "polygon": json.dumps(self.polygon, sort_keys=True) if self.polygon else None,
                    "bbox": ",".join(map(str, self.bbox)) if self.bbox else None,
                    "taxon_id": str(self.taxon) if self.taxon is not None else None,
                    "quality_grade": ",".join(self.grades) if self.grades else None,
                    "d1": self.observed_from,
                    "d2": self.observed_to,
                }.items()
                if value is not None
            },
            "sizes": sorted(s.sizes),
            "all_photos": s.all_photos,
            "no_photos": s.no_photos,
            "photo_licenses": sorted(s.photo_licenses) if s.photo_licenses else None,
            "photo_base": self.photo_base.rstrip("/"),
            "hydrate": self.hydrate,
        }


async def run_opendata(
    job: DumpHarvest, console: Console | None = None, photo_stage: PhotoStage | None = None
) -> Summary:
    """Select from the dump (or continue a selection's photos), download, export, summarise.
    ``photo_stage``: fetch the photos with it (a Dask cluster's) instead of in this process."""
    settings = job.settings
    with run_state(settings, job.fingerprint()) as state:
        state.set_meta("api_url", job.dump)  # named as the source by later exports
        cursor = state.add_cursor(STREAM, 0, None)
        progress = progress_from(state, settings)
        async with polite_http(settings, progress) as (politeness, http):
            if not cursor.done:
                query = await _query(job, state, http)
                selected = await _select(job, query)
                state.save_taxa(check_taxa(source.taxon_records(selected)))  # the classification
                await _commit(job, state, http, selected, progress)
            progress.paging_finished()
            await run_stage(settings, state, http, progress, console, photo_stage)
            today = politeness.api_requests_today(host_of(settings.api_url))
        log.info("selection and downloads finished: %s", progress.line())
        return write_outputs(settings, state, progress, politeness.clock, http, today, source=job.dump)


async def _query(job: DumpHarvest, state: State | None, http: Http) -> source.DumpQuery:
    boundary = None
    if job.place is not None:
        boundary = await place_boundary(job.place, state, http, job.settings.api_url)
    elif job.polygon is not None:
        boundary = geometry(job.polygon, "polygon")
    s = job.settings
    return source.DumpQuery(
        boundary=boundary,
        bbox=job.bbox,
        taxon=job.taxon,
        grades=job.grades,
        licenses=s.photo_licenses,
        observed_from=job.observed_from,
        observed_to=job.observed_to,
    )


async def place_boundary(place: int, state: State | None, http: Http, api_url: str) -> Any:
    """The place's boundary from ``/v1/places/{id}`` (its geometry_geojson), asked once:
    kept in the state, so a resumed run asks nothing (a dry run has no state)."""
    key = f"opendata_place_{place}"
    stored = state.meta(key) if state is not None else None
    if stored is None:
        page = await http.get_json(f"{api_url.rstrip('/')}/places/{place}", {})
        results = page.get("results") or []
        first = results[0] if results and isinstance(results[0], dict) else {}
        shape = first.get("geometry_geojson")
        if not isinstance(shape, dict):
            raise UsageError(f"place {place} has no boundary (geometry_geojson) at {api_url}")
        geometry(shape, "place")  # checked before it is kept
        stored = json.dumps(shape)
        if state is not None:
            state.set_meta(key, stored)
    return geometry(json.loads(stored), "place")


def geometry(shape: Any, setting: str) -> Any:
    """A GeoJSON Polygon or MultiPolygon (a Feature's, or a FeatureCollection's first) as a
    valid shapely geometry, prepared for many point tests."""
    import shapely
    from shapely.geometry import shape as to_shape

    if isinstance(shape, dict) and shape.get("type") == "FeatureCollection":
        features = shape.get("features") or [None]
        shape = features[0]
    if isinstance(shape, dict) and shape.get("type") == "Feature":
        shape = shape.get("geometry")
    if not isinstance(shape, dict) or shape.get("type") not in ("Polygon", "MultiPolygon"):
        raise SettingError(setting, "must be a GeoJSON Polygon or MultiPolygon")
    try:
        geom = to_shape(shape)
    except (ValueError, TypeError, AttributeError, IndexError, shapely.errors.ShapelyError) as exc:
        raise SettingError(setting, f"is not a usable GeoJSON polygon ({str(exc)[:100]})") from None
    if geom.is_empty:
        raise SettingError(setting, "is an empty polygon")
    geom = shapely.make_valid(geom)
    shapely.prepare(geom)
    return geom


class _Stopped(Exception):
    """The run was cancelled (Ctrl-C, SIGTERM) while the selection's thread was reading."""


async def _select(job: DumpHarvest, query: source.DumpQuery) -> source.Selection:
    """The selection, read in a thread, saying every few seconds how far it has read; a
    cancelled run stops it at its next block (a thread cannot be cancelled, and the event
    loop would wait for it to read the whole dump)."""
    dump = source.open_dump(job.dump, job.storage_options)
    stop = threading.Event()
    read: dict[str, int] = {}
    said = [time.monotonic()]

    def rows_read(table: str, rows: int) -> None:
        if stop.is_set():
            raise _Stopped
        read[table] = read.get(table, 0) + rows
        if time.monotonic() - said[0] >= job.settings.progress_interval:
            said[0] = time.monotonic()
            log.info("reading the dump: %s rows of %s.csv.gz so far", f"{read[table]:,}", table)

    def work() -> source.Selection:
        selection = source.select(dump, query, rows_read)
        log.info(
            "read %s from %s: %s observations selected",
            ", ".join(f"{n:,} {t}" for t, n in selection.rows_read.items()) or "nothing",
            job.dump,
            f"{len(selection.observations):,}",
        )
        return selection

    try:
        return await asyncio.to_thread(work)
    except asyncio.CancelledError:
        stop.set()
        raise


async def _commit(
    job: DumpHarvest, state: State, http: Http, selection: source.Selection, progress: Progress
) -> None:
    """The selection into the state, a page at a time (with --hydrate, each page's API
    records first), from where the cursor says an earlier run stopped (the selection's order
    is the dump's, the same each time); the cursor done with the last page. Observations are
    shaped a page at a time, so only the selection's rows are held, not their API form."""
    s = job.settings
    places = (job.place,) if job.place is not None else ()
    cursor = state.add_cursor(STREAM, 0, None)
    size = HYDRATE_PAGE if job.hydrate else PAGE
    total = len(selection.observations)
    shaped = source.api_observations(
        selection, photo_base=job.photo_base, places=places, start=cursor.last_id
    )
    for start in range(cursor.last_id, total, size) or range(cursor.last_id, cursor.last_id + 1):
        page = list(itertools.islice(shaped, size))
        if job.hydrate and page:
            page = await hydrate(page, http, s.api_url)
        checked = check_observations(page)
        rows = [observation_row(fit.data, places) for fit in checked.fits]
        photos = [file for fit in checked.fits for file in _photo_files(job, fit.data)]
        end = min(start + size, total)
        changes = state.save_page(cursor, rows, [fit.raw for fit in checked.fits], photos, end, end >= total)
        state.record_rejected(checked.rejected, [fit.id for fit in checked.fits])
        progress.page_saved(len(rows), changes)
    state.end_range(cursor)


def _photo_files(job: DumpHarvest, observation: dict[str, Any]) -> list[PhotoFile]:
    """The photo files an observation asks for, judged as a harvest judges them; the photo
    base is the user's own choice of host."""
    return files_of(observation, job.settings, host_of_base(job.photo_base))


async def hydrate(page: list[dict[str, Any]], http: Http, api_url: str) -> list[dict[str, Any]]:
    """The page's observations as the API has them now (``/v1/observations?uuid=...``, one
    request of up to 200, in the API budget), with every API field; their photos stay the
    dump's selection. One the API no longer gives (deleted, made private) stays the dump's."""
    uuids = [obs["uuid"] for obs in page]
    answer = await http.get_json(
        f"{api_url.rstrip('/')}/observations", {"uuid": ",".join(uuids), "per_page": str(len(uuids))}
    )
    found = {
        r["uuid"]: r for r in answer["results"] if isinstance(r, dict) and isinstance(r.get("uuid"), str)
    }
    full = []
    for obs in page:
        record = found.get(obs["uuid"])
        if record is None or type(record.get("id")) is not int:
            full.append(obs)
            continue
        listed = record.get("place_ids")
        places: list[Any] = listed if isinstance(listed, list) else []
        full.append(
            {
                **record,
                "photos": obs["photos"],
                "observation_photos": obs["observation_photos"],
                "place_ids": sorted({*places, *obs["place_ids"]}, key=str),
                "anomaly_score": obs["anomaly_score"],
            }
        )
    return full


async def dry_run(job: DumpHarvest) -> str:
    """What the command would select and fetch, read from the dump, with nothing written:
    observations, photo files, and with --hydrate the API requests and their time under the
    API budget (a --place's boundary is asked, one request)."""
    s = job.settings
    politeness = Politeness(s, on_wait=lambda _what: None)
    politeness.open()
    try:
        async with Http(s, politeness) as http:
            selection = await _select(job, await _query(job, None, http))
    finally:
        politeness.close()
    selected = len(selection.observations)
    shaped = source.api_observations(selection, photo_base=job.photo_base)
    files = sum(file.status is PhotoStatus.PENDING for obs in shaped for file in _photo_files(job, obs))
    lines = [f"{selected:,} observations selected from {job.dump}", f"{files:,} photo files to fetch"]
    if job.hydrate:
        requests = math.ceil(selected / HYDRATE_PAGE)
        seconds = 0.0
        if s.limits:  # a minute's budget at a time, and a whole day for each day's budget spent
            b = s.budgets
            seconds = max(requests / b.api_rpm * b.minute, (requests // b.api_daily) * b.day)
        lines.append(
            f"--hydrate: {requests:,} API request{'' if requests == 1 else 's'} "
            f"({HYDRATE_PAGE} observations each), "
            f"about {seconds:,.0f} s under the API budget"
        )
    return "\n".join(lines)


# -- the options, checked --------------------------------------------------------------------
def parse_bbox(text: str | None) -> tuple[float, float, float, float] | None:
    """'WEST,SOUTH,EAST,NORTH' in degrees."""
    if text is None:
        return None
    try:
        west, south, east, north = (float(part) for part in text.split(","))
    except ValueError:
        raise SettingError("bbox", f"{text[:80]!r} is not WEST,SOUTH,EAST,NORTH in degrees") from None
    if -180 <= east < west <= 180 and -90 <= south < north <= 90:  # across the antimeridian
        raise SettingError(
            "bbox",
            f"crosses the antimeridian (WEST {west:g} > EAST {east:g}): select its two halves in two "
            f"runs into two folders ({west:g},{south:g},180,{north:g} and "
            f"-180,{south:g},{east:g},{north:g}), or give --polygon a GeoJSON MultiPolygon of the two boxes",
        )
    if not (-180 <= west < east <= 180 and -90 <= south < north <= 90):
        raise SettingError("bbox", "needs -180 <= WEST < EAST <= 180 and -90 <= SOUTH < NORTH <= 90")
    return west, south, east, north


def parse_date(name: str, text: str | None) -> str | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text.strip()).isoformat()
    except ValueError:
        raise SettingError(name, f"{text[:40]!r} is not a date (YYYY-MM-DD)") from None


def _dates(observed_from: str | None, observed_to: str | None) -> dict[str, str | None]:
    """--observed-from and --observed-to, the first not after the second (else nothing matches)."""
    first, last = parse_date("observed_from", observed_from), parse_date("observed_to", observed_to)
    if first is not None and last is not None and first > last:
        raise SettingError("observed_to", f"{last} is before {{observed_from}} {first}: nothing can match")
    return {"observed_from": first, "observed_to": last}


def parse_grades(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    grades = tuple(dict.fromkeys(g.strip().lower() for g in text.split(",") if g.strip()))
    unknown = [g for g in grades if g not in source.QUALITY_GRADES]
    if unknown or not grades:
        raise SettingError("quality_grade", f"choose from {', '.join(source.QUALITY_GRADES)}")
    return grades


def parse_storage_options(items: list[str]) -> dict[str, Any]:
    """KEY=VALUE pairs (--dump-storage-option) for the dump's file system; true/false and
    numbers as such."""
    options: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise SettingError("dump_storage_option", f"{item!r} is not KEY=VALUE")
        try:
            options[key.strip()] = json.loads(text)
        except ValueError:
            options[key.strip()] = text
    return options


def read_polygon(path: Path | None) -> dict[str, Any] | None:
    """A GeoJSON file's Polygon or MultiPolygon (a geometry, a Feature or a FeatureCollection)."""
    if path is None:
        return None
    try:
        shape = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise SettingError("polygon", f"cannot read {path} as GeoJSON ({str(exc)[:100]})") from None
    geometry(shape, "polygon")
    if isinstance(shape, dict) and shape.get("type") == "FeatureCollection":
        shape = (shape.get("features") or [None])[0]
    if isinstance(shape, dict) and shape.get("type") == "Feature":
        shape = shape.get("geometry")
    return shape  # type: ignore[no-any-return]


def job_from_args(args: Any, budgets: Any, photo_store: dict[str, Any]) -> DumpHarvest:
    """The command line's options (cli._opendata_parser) as a checked :class:`DumpHarvest`;
    ``photo_store``: the settings of where and how the photos are fetched (--store,
    --storage-option, --scheduler, ...)."""
    stores = (photo_store.get("store"), photo_store.get("export_store"))
    if photo_store.get("storage_options") and stores == (None, None):
        raise SettingError(  # the dump's options had this name once: say which is which
            "storage_options",
            "sets an option of the photo {store}, and none is given; "
            "an option of the dump's file system is --dump-storage-option",
        )
    if args.place is not None and args.place < 1:
        raise SettingError("place", "must be a positive place id")
    if args.place is not None and args.polygon is not None:
        raise SettingError("polygon", "cannot be combined with {place}: give one boundary")
    settings = selection_settings(
        [args.place] if args.place is not None else [],
        out=args.out,
        api_url=args.api_url,
        sizes=args.sizes,
        all_photos=args.all_photos,
        no_photos=args.no_photos,
        photo_licenses=args.photo_license,
        formats=args.format,
        workers=args.workers,
        limits=not args.no_limits,
        budgets=budgets,
        budget_file=args.budget_file,
        **photo_store,
    )
    return DumpHarvest(
        settings=settings,
        dump=args.dump or source.DEFAULT_DUMP,
        storage_options=parse_storage_options(args.dump_storage_option),
        place=args.place,
        polygon=read_polygon(args.polygon),
        bbox=parse_bbox(args.bbox),
        taxon=args.taxon,
        grades=parse_grades(args.quality_grade),
        **_dates(args.observed_from, args.observed_to),
        photo_base=args.photo_base or source.PHOTO_BASE,
        hydrate=args.hydrate,
    )
