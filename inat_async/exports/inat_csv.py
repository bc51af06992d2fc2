"""OUT/inat_export.csv: the observations as iNaturalist's own web export writes them.

The columns, their order and their value formats are those of the CSV that
https://www.inaturalist.org/observations/export produces, so that scripts written for it (R
users of rinat, pyinaturalist-convert's ``read_csv_export``) load this file unchanged: times as
``2019-08-14 00:02:39 UTC``, licences as ``CC-BY-NC``, booleans as ``true``/``false``,
``image_url`` the medium size of the first photo, public coordinates only (the private ones
are the observer's alone). One difference: ``time_zone`` is the IANA name the API gives
(``America/Chicago``) where the web export writes Ruby on Rails' (``Central Time (US &
Canada)``). Quoting is minimal, as the web export's.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from inat_async.exports.taxonomy import NAMED_RANKS, Lineages
from inat_async.photos import photos_in_order, size_url
from inat_async.records import _lat_lng
from inat_async.store.files import replacing
from inat_async.store.state import State

INAT_CSV_FILE = "inat_export.csv"

Value = Callable[[Mapping[str, Any]], str]


def write_inat_csv(state: State, out: Path) -> Path:
    target = out / INAT_CSV_FILE
    with replacing(target) as part, open(part, "w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow([*COLUMNS, *TAXON_COLUMNS])
        lineages = Lineages.of_state(state)
        for obs in state.raw_observations():
            names = lineages.of(_of("taxon", "id")(obs)).names
            row = [value(obs) for value in COLUMNS.values()] + [
                names.get(r, "") for r in TAXON_COLUMNS.values()
            ]
            writer.writerow([_clean(value) for value in row])
    return target


# -- value formats --------------------------------------------------------------------------------
def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _whole(value: Any) -> str:
    """An integer as text; an accuracy sent as 12.0 is 12; anything else empty."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        return ""
    return str(round(value))


def _coordinate(value: float | None) -> str:
    return "" if value is None else repr(value)


def _flag(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else ""


def utc_time(value: Any) -> str:
    """An API time with an offset as the web export's UTC time, ``2019-08-14 00:02:39 UTC``."""
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return ""
    if moment is None or moment.tzinfo is None:
        return ""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def license_name(code: Any) -> str:
    """The web export's licence: the API's code in capitals (cc-by-nc -> CC-BY-NC)."""
    return code.strip().upper() if isinstance(code, str) else ""


def image_url(obs: Mapping[str, Any]) -> str:
    """The medium size of the first photo, with the query the API gave (a cache-buster)."""
    for _, photo in photos_in_order(obs)[:1]:
        url = _text(photo.get("url"))
        try:
            medium, _ = size_url(url.split("?")[0], "medium")
        except ValueError:
            return ""
        query = url.partition("?")[2]
        return f"{medium}?{query}" if query else medium
    return ""


def _sound_url(obs: Mapping[str, Any]) -> str:
    sounds = obs.get("sounds")
    first = sounds[0] if isinstance(sounds, list) and sounds else None
    return _text(first.get("file_url")) if isinstance(first, Mapping) else ""


def _tags(obs: Mapping[str, Any]) -> str:
    tags = obs.get("tags")
    return ", ".join(t for t in tags if isinstance(t, str)) if isinstance(tags, list) else ""


def _of(key: str, field: str) -> Callable[[Mapping[str, Any]], Any]:
    """A field of a nested object (taxon, user), None when it is missing."""

    def value(obs: Mapping[str, Any]) -> Any:
        nested = obs.get(key)
        return nested.get(field) if isinstance(nested, Mapping) else None

    return value


def _clean(value: str) -> str:
    return value.replace("\x00", "")  # no CSV reader carries NUL


# The web export's columns, in its order, each with the function that gives its value.
COLUMNS: dict[str, Value] = {
    "id": lambda o: _whole(o.get("id")),
    "uuid": lambda o: _text(o.get("uuid")),
    "observed_on_string": lambda o: _text(o.get("observed_on_string")),
    "observed_on": lambda o: _text(o.get("observed_on")),
    "time_observed_at": lambda o: utc_time(o.get("time_observed_at")),
    "time_zone": lambda o: _text(o.get("observed_time_zone")),
    "user_id": lambda o: _whole(_of("user", "id")(o)),
    "user_login": lambda o: _text(_of("user", "login")(o)),
    "user_name": lambda o: _text(_of("user", "name")(o)),
    "created_at": lambda o: utc_time(o.get("created_at")),
    "updated_at": lambda o: utc_time(o.get("updated_at")),
    "quality_grade": lambda o: _text(o.get("quality_grade")),
    "license": lambda o: license_name(o.get("license_code")),
    "url": lambda o: _text(o.get("uri")),
    "image_url": image_url,
    "sound_url": _sound_url,
    "tag_list": _tags,
    "description": lambda o: _text(o.get("description")),
    "num_identification_agreements": lambda o: _whole(o.get("num_identification_agreements")),
    "num_identification_disagreements": lambda o: _whole(o.get("num_identification_disagreements")),
    "captive_cultivated": lambda o: _flag(o.get("captive")),
    "oauth_application_id": lambda o: _whole(o.get("oauth_application_id")),
    "place_guess": lambda o: _text(o.get("place_guess")),
    "latitude": lambda o: _coordinate(_lat_lng(o.get("location"))[0]),
    "longitude": lambda o: _coordinate(_lat_lng(o.get("location"))[1]),
    "positional_accuracy": lambda o: _whole(o.get("positional_accuracy")),
    "public_positional_accuracy": lambda o: _whole(o.get("public_positional_accuracy")),
    "geoprivacy": lambda o: _text(o.get("geoprivacy")),
    "taxon_geoprivacy": lambda o: _text(o.get("taxon_geoprivacy")),
    "coordinates_obscured": lambda o: _flag(o.get("obscured")),
    "positioning_method": lambda o: _text(o.get("positioning_method")),
    "positioning_device": lambda o: _text(o.get("positioning_device")),
    "species_guess": lambda o: _text(o.get("species_guess")),
    "scientific_name": lambda o: _text(_of("taxon", "name")(o)),
    "common_name": lambda o: _text(_of("taxon", "preferred_common_name")(o)),
    "iconic_taxon_name": lambda o: _text(_of("taxon", "iconic_taxon_name")(o)),
    "taxon_id": lambda o: _whole(_of("taxon", "id")(o)),
}
# The web export's taxonomy columns ("taxon extras") that the harvest names, by rank.
TAXON_COLUMNS = {f"taxon_{rank}_name": rank for rank in NAMED_RANKS}
