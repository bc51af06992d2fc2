"""The observation columns of observations.csv, taken from an API observation."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from inat_async.model import Observation, Taxon, User

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


_NO_TAXON, _NO_USER = Taxon(), User()


def _lat_lng(location: Any) -> tuple[float | None, float | None]:
    """The seed splits the public "lat,lng" string; a malformed one gives no coordinates."""
    if not isinstance(location, str) or location.count(",") != 1:
        return None, None
    try:
        lat, lng = (float(part) for part in location.split(","))
    except ValueError:
        return None, None
    return lat, lng


def observation_row(obs: Observation | Mapping[str, Any], requested_places: Iterable[int]) -> tuple[Any, ...]:
    """One observations table row, in SQL_COLUMNS order, from an observation's typed shape
    (a dict is checked into one first: msgspec.ValidationError if it does not fit)."""
    if not isinstance(obs, Observation):
        obs = msgspec.convert(obs, Observation)
    taxon, user = obs.taxon or _NO_TAXON, obs.user or _NO_USER
    lat, lng = _lat_lng(obs.location)
    own = set(obs.place_ids or ())
    return (
        obs.id,
        taxon.name,
        obs.quality_grade,
        obs.time_observed_at,
        obs.species_guess,
        obs.license_code,
        obs.observed_on,
        obs.community_taxon_id,
        lng,
        lat,
        ";".join(str(p) for p in requested_places if p in own),
        taxon.id,
        taxon.rank,
        user.login,
        obs.uri,
        None if obs.obscured is None else ("true" if obs.obscured else "false"),
        obs.positional_accuracy,
        obs.public_positional_accuracy,
        obs.geoprivacy,
        obs.created_at,
        obs.updated_at,
        sum(isinstance(p, dict) for p in obs.photos or ()),
    )
