"""The observation columns of observations.csv, taken from an API observation."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

# The seed script's ten columns, in its order, then ours.
SEED_COLUMNS = (
    "id",
    "taxon.name",
    "quality_grade",
    "time_observed_at",
    "species_guess",
    "license_code",
    "observed_on",
    "community_taxon_id",
    "Longitude",
    "Latitude",
)
EXTRA_COLUMNS = (
    "place_ids",
    "taxon.id",
    "taxon.rank",
    "user.login",
    "uri",
    "obscured",
    "positional_accuracy",
    "public_positional_accuracy",
    "geoprivacy",
    "created_at",
    "updated_at",
    "photo_count",
)
COLUMNS = SEED_COLUMNS + EXTRA_COLUMNS
# SQLite column names: the CSV names with dots made safe.
SQL_COLUMNS = tuple(name.replace(".", "_").lower() for name in COLUMNS)
# photos.csv's columns, in its order (the photos table's names).
PHOTO_COLUMNS = (
    "observation_id",
    "photo_id",
    "position",
    "size",
    "url",
    "path",
    "status",
    "bytes",
    "license_code",
    "attribution",
    "reason",
)
# The photo rows' order in every export (State.photo_rows, State.files_done): by
# observation, in the API's order of its photos, each photo's sizes smallest first.


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _number(value: Any) -> int | float | None:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def _lat_lng(location: Any) -> tuple[float | None, float | None]:
    """The seed splits the public "lat,lng" string; a malformed one gives no coordinates."""
    if not isinstance(location, str) or location.count(",") != 1:
        return None, None
    try:
        lat, lng = (float(part) for part in location.split(","))
    except ValueError:
        return None, None
    return lat, lng


def _object(value: Any) -> Mapping[str, Any]:
    """A nested JSON object, or an empty one when the field is missing or not an object."""
    return value if isinstance(value, dict) else {}


def observation_row(obs: Mapping[str, Any], requested_places: Iterable[int]) -> tuple[Any, ...]:
    """One observations table row, in SQL_COLUMNS order."""
    taxon = _object(obs.get("taxon"))
    user = _object(obs.get("user"))
    lat, lng = _lat_lng(obs.get("location"))
    own = {p for p in obs.get("place_ids") or [] if isinstance(p, int)}
    places = ";".join(str(p) for p in requested_places if p in own)
    obscured = obs.get("obscured")
    return (
        obs["id"],
        _text(taxon.get("name")),
        _text(obs.get("quality_grade")),
        _text(obs.get("time_observed_at")),
        _text(obs.get("species_guess")),
        _text(obs.get("license_code")),
        _text(obs.get("observed_on")),
        _number(obs.get("community_taxon_id")),
        lng,
        lat,
        places,
        _number(taxon.get("id")),
        _text(taxon.get("rank")),
        _text(user.get("login")),
        _text(obs.get("uri")),
        ("true" if obscured else "false") if isinstance(obscured, bool) else None,
        _number(obs.get("positional_accuracy")),
        _number(obs.get("public_positional_accuracy")),
        _text(obs.get("geoprivacy")),
        _text(obs.get("created_at")),
        _text(obs.get("updated_at")),
        len([p for p in obs.get("photos") or [] if isinstance(p, dict)]),
    )
