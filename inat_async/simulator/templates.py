"""Templates cut from the recorded responses in ``fixtures/``.

The simulator invents observations by varying real ones, so its output keeps the real field set,
nesting and value styles. This module loads the copied fixture files once, trims the bulky nested
lists (identifications, non-owner ids, comments…) so that an invented observation serialises to
a few kilobytes like one in a real search page, and derives a small taxonomy (the templates' taxa,
their genera, and invented sister species) for the taxon filters.

Photo hosts inside template URLs are replaced by tokens (:data:`HOST_TOKENS`): the real hosts are
only known when a simulator serves them, and the tokens are swapped for them then.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from .text import EPITHETS

#: Host kind -> token standing for that host's base URL (scheme://host:port) inside JSON text.
HOST_TOKENS: dict[str, str] = {"open": "%%sim-open%%", "static": "%%sim-static%%", "assets": "%%sim-assets%%"}

#: The real hosts the tokens stand for; the default when rendering outside a server.
REAL_HOSTS: dict[str, str] = {
    "open": "https://inaturalist-open-data.s3.amazonaws.com",
    "static": "https://static.inaturalist.org",
    "assets": "https://www.inaturalist.org",
}

OBSERVATION_FILES: tuple[str, ...] = (
    "inocybe.txt",
    "coprinus.txt",
    "no_location.txt",
    "somion_unicolor.txt",
    "validae.txt",
    "euglena.txt",
    "get_observations_page1.json",
)

#: Top-level fields the world sets for every invented observation (dropped from the shells).
VARIABLE_FIELDS: frozenset[str] = frozenset(
    {
        "id",
        "uuid",
        "uri",
        "user",
        "taxon",
        "community_taxon_id",
        "ident_taxon_ids",
        "quality_grade",
        "license_code",
        "species_guess",
        "description",
        "location",
        "geojson",
        "geoprivacy",
        "obscured",
        "mappable",
        "positional_accuracy",
        "public_positional_accuracy",
        "place_ids",
        "observed_on",
        "observed_on_string",
        "observed_on_details",
        "time_observed_at",
        "created_at",
        "created_at_details",
        "updated_at",
        "time_zone_offset",
        "observed_time_zone",
        "created_time_zone",
        "photos",
        "observation_photos",
        "identifications",
        "identifications_count",
        "reviewed_by",
        "private_location",
    }
)

#: Bulky nested lists: emptied or cut to their first few entries.
_TRIM_TO: dict[str, int] = {
    "non_owner_ids": 0,
    "comments": 0,
    "project_observations": 0,
    "faves": 0,
    "votes": 0,
    "quality_metrics": 0,
    "annotations": 1,
    "ofvs": 2,
    "outlinks": 0,
}


@dataclass(frozen=True)
class Taxon:
    """One taxon of the simulated taxonomy; ``ancestor_ids`` includes the taxon itself."""

    id: int
    name: str
    rank: str
    rank_level: int
    ancestor_ids: tuple[int, ...]
    json: dict[str, Any]
    compact: dict[str, Any]  # without default_photo, as nested in identifications


@dataclass(frozen=True)
class ObservationTemplate:
    """The static part of one recorded observation, plus the shells of its nested objects."""

    name: str
    shell: dict[str, Any]
    identification: dict[str, Any]
    user: dict[str, Any]
    photo: dict[str, Any]
    observation_photo: dict[str, Any]
    place_guess: str | None


def _read(name: str) -> str:
    return resources.files(__package__).joinpath("fixtures").joinpath(name).read_text(encoding="utf-8")


def _tokenise(text: str) -> str:
    for kind, real in REAL_HOSTS.items():
        if kind != "assets":
            text = text.replace(real, HOST_TOKENS[kind])
    return text


def json_object(value: Any) -> dict[str, Any]:
    """A parsed JSON value that must be an object (``json.loads`` is typed Any)."""
    if not isinstance(value, dict):
        raise TypeError(f"expected a JSON object, got {type(value).__name__}")
    return value


def _trim_taxon(taxon: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in taxon.items() if k not in ("ancestors", "children", "conservation_statuses")}


def _template(name: str) -> ObservationTemplate:
    result = json.loads(_tokenise(_read(name)))["results"][0]
    shell = {k: v for k, v in result.items() if k not in VARIABLE_FIELDS}
    for key, keep in _TRIM_TO.items():
        if isinstance(shell.get(key), list):
            shell[key] = shell[key][:keep]
    shell["comments_count"] = len(shell.get("comments", []))
    shell["faves_count"] = len(shell.get("faves", []))
    shell["cached_votes_total"] = 0
    for ofv in shell.get("ofvs", []):
        ofv.pop("user", None)
    idents = result.get("identifications") or []
    ident = copy.deepcopy(idents[0]) if idents else {}
    for key in ("user", "taxon", "id", "uuid", "created_at", "created_at_details", "taxon_id"):
        ident.pop(key, None)
    for key in ("previous_observation_taxon", "previous_observation_taxon_id", "body"):
        if key in ident:
            ident[key] = None
    photo = dict(result["photos"][0]) if result["photos"] else {}
    obs_photo = dict(result["observation_photos"][0]) if result["observation_photos"] else {}
    obs_photo.pop("photo", None)
    return ObservationTemplate(
        name=name,
        shell=shell,
        identification=ident,
        user=dict(result["user"]),
        photo=photo,
        observation_photo=obs_photo,
        place_guess=result.get("place_guess"),
    )


@cache
def observation_templates() -> tuple[ObservationTemplate, ...]:
    """The trimmed templates, one per recorded observation (loaded once per process)."""
    return tuple(_template(name) for name in OBSERVATION_FILES)


def _derived(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    taxon = copy.deepcopy(base)
    taxon.update(changes)
    ancestors = taxon["ancestor_ids"]
    taxon["ancestry"] = "/".join(str(a) for a in ancestors[:-1])
    taxon["min_species_ancestry"] = ",".join(str(a) for a in ancestors)
    taxon["min_species_taxon_id"] = taxon["id"]
    taxon["parent_id"] = ancestors[-2] if len(ancestors) > 1 else None
    return taxon


@cache
def taxa() -> tuple[Taxon, ...]:
    """The simulated taxonomy: template taxa, their genera and invented species, by id."""
    found: dict[int, dict[str, Any]] = {}
    for name in OBSERVATION_FILES:
        taxon = json.loads(_tokenise(_read(name)))["results"][0]["taxon"]
        taxon = _trim_taxon(taxon)
        found[taxon["id"]] = taxon
    genera: dict[int, dict[str, Any]] = {}
    for taxon in list(found.values()):
        if taxon["rank"] == "genus":
            genera[taxon["id"]] = taxon
        elif taxon["rank"] == "species":
            genus_id = taxon["ancestor_ids"][-2]
            if genus_id not in found:
                genus = _derived(
                    taxon,
                    id=genus_id,
                    name=taxon["name"].split()[0],
                    rank="genus",
                    rank_level=20,
                    ancestor_ids=taxon["ancestor_ids"][:-1],
                    preferred_common_name=None,
                    wikipedia_url=None,
                )
                found[genus_id] = genus
                genera[genus_id] = genus
    next_id = 5_000_001
    for genus in sorted(genera.values(), key=lambda t: t["id"]):
        for epithet in EPITHETS[:3]:
            species = _derived(
                genus,
                id=next_id,
                name=f"{genus['name']} {epithet}",
                rank="species",
                rank_level=10,
                ancestor_ids=[*genus["ancestor_ids"], next_id],
                preferred_common_name=None,
                wikipedia_url=None,
                observations_count=100 + next_id % 5000,
            )
            found[next_id] = species
            next_id += 1
    return tuple(
        Taxon(
            id=t["id"],
            name=t["name"],
            rank=t["rank"],
            rank_level=int(t["rank_level"]),
            ancestor_ids=tuple(t["ancestor_ids"]),
            json=t,
            compact={k: v for k, v in t.items() if k != "default_photo"},
        )
        for t in sorted(found.values(), key=lambda t: t["id"])
    )


#: The root of iNaturalist's tree, first of every taxon's ancestor_ids (as /v1/taxa/48460 gives it).
LIFE: dict[str, Any] = {
    "id": 48460,
    "rank": "stateofmatter",
    "rank_level": 100,
    "name": "Life",
    "ancestor_ids": [48460],
    "is_active": True,
    "parent_id": None,
    "ancestry": None,
    "preferred_common_name": "Life",
}


@cache
def taxa_by_id() -> dict[int, dict[str, Any]]:
    """Every taxon /v1/taxa knows, by id, as it answers: the simulated taxonomy's taxa (each
    with its ``ancestors``, as the API adds them) and their higher taxa, as the recorded
    identifications list them."""
    known: dict[int, dict[str, Any]] = {LIFE["id"]: LIFE}
    for name in OBSERVATION_FILES:
        result = json.loads(_tokenise(_read(name)))["results"][0]
        for ident in result.get("identifications") or []:
            for ancestor in (ident.get("taxon") or {}).get("ancestors") or []:
                known.setdefault(ancestor["id"], _trim_taxon(ancestor))
    for taxon in taxa():
        ancestors = [known[a] for a in taxon.ancestor_ids[1:-1] if a in known]  # not Life, as the API
        known[taxon.id] = {**taxon.json, "ancestors": ancestors}
    return known


def _yaml_single_quoted(text: str, start: int) -> str:
    """Read a YAML single-quoted scalar starting at ``text[start] == "'"`` (folds line breaks)."""
    out: list[str] = []
    i = start + 1
    while True:
        ch = text[i]
        if ch == "'":
            if text[i + 1 : i + 2] == "'":
                out.append("'")
                i += 2
                continue
            break
        if ch == "\n":
            while out and out[-1] in " \t":
                out.pop()
            j = i + 1
            while text[j] in " \t":
                j += 1
            out.append(" ")
            i = j
            continue
        out.append(ch)
        i += 1
    return "".join(out)


@cache
def result_window_body() -> bytes:
    """The recorded body of the HTTP 403 answered when page * per_page passes 10,000."""
    text = _read("occ_inat_no_more_than_10K.yml")
    response = text.index("response:")
    body = text.index("body:", response)
    quote = text.index("string: '", body) + len("string: ")
    value = _yaml_single_quoted(text, quote)
    json.loads(value)  # must be valid JSON
    return value.encode("utf-8")


@cache
def empty_page() -> dict[str, Any]:
    """The recorded empty results page (its shape: total_results, page, per_page, results)."""
    return json_object(json.loads(_read("get_nonexistent_observation.json")))
