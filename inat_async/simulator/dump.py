"""A world as iNaturalist's open-data dump: the four tables in the real layout and quirks.

``observations.csv.gz``, ``photos.csv.gz``, ``taxa.csv.gz`` and ``observers.csv.gz``:
gzip, tab-separated, a header line, no quoting at all, with what the real ones hold that a
reader trips on: quote characters in names (single and double, unbalanced), observations
without a photo (none, or only unlicensed ones, which the dump leaves out), private
observations without coordinates, and photo rows listed twice. The photos listed are those
the world serves on its open-data host (an open licence, not hidden), so a dump's photo is
fetched from the simulator's "open" host as ``/photos/{photo_id}/{size}.{extension}``.

A place's boundary (``/v1/places/{id}``'s ``geometry_geojson``) is a diamond inscribed in
the square its observations lie in, so about half of them are inside it.
"""

from __future__ import annotations

import gzip
import random
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from inat_async.sources.opendata import LAYOUT

from .templates import taxa_by_id
from .world import World

TABLES = tuple(LAYOUT)


def write_dump(world: World, folder: Path, *, duplicate_every: int = 7) -> dict[str, int]:
    """Write the world's dump into ``folder``; returns the rows of each table."""
    folder.mkdir(parents=True, exist_ok=True)
    observations: list[Sequence[object]] = []
    photos: list[Sequence[object]] = []
    observers: dict[int, tuple[str, str]] = {}
    r = random.Random(world.seed)
    for obs in world.observations():
        user = obs["user"]
        observers[user["id"]] = (user["login"], _quoted(user.get("name") or "", user["login"], user["id"]))
        observations.append(_observation(obs, r))
        for position, photo in enumerate(obs.get("photos") or []):
            row = _photo(world, obs, photo, position, r)
            if row is None:
                continue
            photos.append(row)
            if len(photos) % duplicate_every == 0:
                photos.append(row)  # the dump lists some photos twice
    taxa = [_taxon(t.id, t.ancestor_ids, t.rank_level, t.rank, t.name) for t in world.taxa]
    # The real table lists every taxon: the higher ones (Life, kingdoms, .. genera) too.
    listed = {t.id for t in world.taxa}
    higher = sorted({a for t in world.taxa for a in t.ancestor_ids} - listed)
    known = taxa_by_id()
    taxa += [
        _taxon(a, known[a]["ancestor_ids"], known[a]["rank_level"], known[a]["rank"], known[a]["name"])
        for a in higher
        if a in known
    ]
    taxa.append((999_999_999, "48460", "100", "stateofmatter", "Unplaced \"taxon' of nowhere", "false"))
    tables: dict[str, Sequence[Sequence[object]]] = {
        "observations": observations,
        "photos": photos,
        "taxa": taxa,
        "observers": [(uid, login, name) for uid, (login, name) in sorted(observers.items())],
    }
    return {name: _write(folder / f"{name}.csv.gz", LAYOUT[name], rows) for name, rows in tables.items()}


def _quoted(name: str, login: str, user_id: int) -> str:
    """Some names get quotes, unbalanced, as real names and nicknames have them."""
    if user_id % 3 == 0:
        return f'{name or login} "{login[:6]}'
    if user_id % 3 == 1 and name:
        return f"{name}'s"
    return name


def _observation(obs: dict[str, Any], r: random.Random) -> tuple[object, ...]:
    location = obs.get("location")
    lat, lng = location.split(",") if isinstance(location, str) else ("", "")
    taxon = obs.get("taxon") or {}
    return (
        obs["uuid"],
        obs["user"]["id"],
        lat,
        lng,
        _blank(obs.get("positional_accuracy")),
        _blank(taxon.get("id")),
        obs.get("quality_grade") or "",
        obs.get("observed_on") or "",
        f"{r.uniform(0, 3):.4f}",
    )


def _photo(
    world: World, obs: dict[str, Any], photo: dict[str, Any], position: int, r: random.Random
) -> tuple[object, ...] | None:
    """A photo's row, for one the dump holds (open licence, on the open-data host)."""
    info = world.photo_info(int(photo["id"]))
    if info is None or info.host != "open" or info.license_code is None:
        return None
    code = info.license_code.upper()
    return (
        _uuid(r),
        info.id,
        obs["uuid"],
        obs["user"]["id"],
        info.ext,
        code,
        info.width,
        info.height,
        position,
    )


def _taxon(taxon_id: int, ancestors: Sequence[int], level: int, rank: str, name: str) -> tuple[object, ...]:
    above = "/".join(str(a) for a in ancestors if a != taxon_id)
    if rank == "species" and taxon_id % 2:
        name = f"{name} \"sp. A'"  # quotes as some real names have them
    return (taxon_id, above, level, rank, name, "true")


def _uuid(r: random.Random) -> str:
    h = f"{r.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"


def _blank(value: object) -> object:
    return "" if value is None else value


def _write(path: Path, columns: Sequence[str], rows: Iterable[Sequence[object]]) -> int:
    """A gzip TSV with no quoting: tabs and line ends inside a value become spaces."""
    count = 0
    with gzip.open(path, "wt", encoding="utf-8", newline="\n", compresslevel=6) as file:
        file.write("\t".join(columns) + "\n")
        for row in rows:
            file.write("\t".join(_clean(v) for v in row) + "\n")
            count += 1
    return count


def _clean(value: object) -> str:
    return str(value).replace("\t", " ").replace("\n", " ").replace("\r", " ")


def place_boundary(world: World, place_id: int) -> dict[str, Any]:
    """The place's ``geometry_geojson``: a diamond inscribed in its observations' square."""
    lat, lng, radius = world.place_area(place_id)
    ring = [
        [lng - radius, lat],
        [lng, lat - radius],
        [lng + radius, lat],
        [lng, lat + radius],
        [lng - radius, lat],
    ]
    return {"type": "Polygon", "coordinates": [ring]}


def place_record(world: World, place_id: int) -> dict[str, Any]:
    """``/v1/places/{id}``'s answer for a place of the world."""
    lat, lng, radius = world.place_area(place_id)
    box = [[lng - radius, lat - radius], [lng + radius, lat - radius], [lng + radius, lat + radius],
           [lng - radius, lat + radius], [lng - radius, lat - radius]]  # fmt: skip
    return {
        "total_results": 1,
        "page": 1,
        "per_page": 1,
        "results": [
            {
                "id": place_id,
                "name": f"Place {place_id}",
                "display_name": f"Place {place_id}",
                "place_type": 100,
                "admin_level": None,
                "geometry_geojson": place_boundary(world, place_id),
                "bounding_box_geojson": {"type": "Polygon", "coordinates": [box]},
                "location": f"{lat},{lng}",
            }
        ],
    }
