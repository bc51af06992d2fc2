"""The API's answers, checked where they enter: typed shapes (msgspec Structs) of a page, an
observation and a photo.

A page that does not fit (not JSON, nested past the decoder's depth, ``results`` not a list,
``total_results`` out of range) is a server error: retried, then the harvest stops with one
line. An observation or a photo that does not fit is skipped with its reason, and the rest of
the page is kept: a value that fits its shape can go into SQLite, a CSV or a file name
without a TypeError or an OverflowError.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from typing import Annotated, Any

import msgspec

from inat_async.errors import TransientError

# SQLite holds signed 64-bit integers.
_INT64 = 2**63 - 1
Id = Annotated[int, msgspec.Meta(ge=1, le=_INT64)]
Count = Annotated[int, msgspec.Meta(ge=0, le=_INT64)]
SmallInt = Annotated[int, msgspec.Meta(ge=-(2**31), le=2**31)]
Pixels = Annotated[int, msgspec.Meta(ge=1, le=1_000_000)]
# Metres of accuracy and the like: any finite number a CSV or SQLite carries as it is (an
# integer stays one, as the outputs write it).
Number = (
    Annotated[int, msgspec.Meta(ge=-(10**15), le=10**15)] | Annotated[float, msgspec.Meta(ge=-1e15, le=1e15)]
)


class _Page(msgspec.Struct):
    results: list[Any]
    total_results: Count | None = None


class _RawPage(msgspec.Struct):
    # Each observation's JSON as it came, checked and decoded one by one into its shape:
    # no dict is built for the fields nothing reads, and the JSON is stored as sent.
    results: list[msgspec.Raw]
    total_results: Count | None = None


class _Error(msgspec.Struct):
    error: Any = None


class Taxon(msgspec.Struct):
    id: Id | None = None
    name: str | None = None
    rank: str | None = None


class User(msgspec.Struct):
    id: Id | None = None
    login: str | None = None
    name: str | None = None


class _PhotoRef(msgspec.Struct):
    id: Id | None = None


class _ObservationPhoto(msgspec.Struct):
    photo: _PhotoRef | None = None
    position: SmallInt | None = None
    photo_id: Any = None  # some answers name the photo here; used only when a valid id


class _Dimensions(msgspec.Struct):
    width: Pixels | None = None
    height: Pixels | None = None


class _Photo(msgspec.Struct):
    id: Id
    url: str | None = None
    license_code: str | None = None
    attribution: str | None = None
    original_dimensions: _Dimensions | None = None


class Observation(msgspec.Struct):
    """The fields the harvester reads (records, photos, Darwin Core), each with its type."""

    id: Id
    taxon: Taxon | None = None
    user: User | None = None
    location: str | None = None
    place_ids: list[Id] | None = None
    quality_grade: str | None = None
    time_observed_at: str | None = None
    observed_on: str | None = None
    species_guess: str | None = None
    license_code: str | None = None
    community_taxon_id: Id | None = None
    uri: str | None = None
    obscured: bool | None = None
    positional_accuracy: Number | None = None
    public_positional_accuracy: Number | None = None
    geoprivacy: str | None = None
    taxon_geoprivacy: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    description: str | None = None
    photos: list[Any] | None = None  # each checked on its own: a bad photo skips only itself
    observation_photos: list[_ObservationPhoto] | None = None


_OBSERVATION = msgspec.json.Decoder(Observation)
_ANY = msgspec.json.Decoder()


class _IdOnly(msgspec.Struct):
    id: Any = None


def decode_page(body: bytes | bytearray, *, error: bool = False, raw_results: bool = False) -> dict[str, Any]:
    """An API answer's JSON as ``{"total_results": ..., "results": [...]}`` (or, with
    ``error``, ``{"error": ...}`` of an error answer); TransientError when it does not fit.
    ``raw_results``: each result is its JSON as sent (``msgspec.Raw``), which
    :func:`check_observations` decodes into its shape."""
    try:
        if error:
            return {"error": msgspec.json.decode(body, type=_Error).error}
        page = msgspec.json.decode(body, type=_RawPage if raw_results else _Page)
    except RecursionError:
        raise TransientError("the answer is JSON nested deeper than any observations page") from None
    except msgspec.ValidationError as exc:
        raise TransientError(f"the answer is JSON but not an observations page ({exc})") from None
    except msgspec.DecodeError:
        # An HTML error page with status 200 happens behind proxies: worth another try.
        start = " ".join(bytes(body[:80]).decode("utf-8", "replace").split())
        raise TransientError(f"the answer is not JSON (it starts {start!r})") from None
    return {"total_results": page.total_results, "results": page.results}


def field_of(value: object, name: str) -> Any:
    """A field of an observation, or of an object in it, whether decoded as a dict or as its
    typed shape; None when it has none (or is neither)."""
    if type(value) is dict:
        return value.get(name)
    return getattr(value, name, None) if isinstance(value, msgspec.Struct) else None


class PhotoStatus(StrEnum):
    """Where a photo file stands, as harvest.sqlite and photos.csv store it."""

    PENDING = "pending"  # to fetch
    DONE = "done"  # complete under its final name
    MISSING = "missing"  # the server has no file of this size (403, 404)
    SKIPPED = "skipped"  # not fetched by choice: placeholder, licence, host, extension
    FAILED = "failed"  # tried and failed; the next run tries again


#: The outcomes a photo file can have; PENDING is none.
FINISHED = (PhotoStatus.DONE, PhotoStatus.MISSING, PhotoStatus.SKIPPED, PhotoStatus.FAILED)


@dataclass(frozen=True)
class Rejected:
    """An observation or photo skipped because it does not fit its shape."""

    kind: str  # "observation" or "photo"
    key: str  # its id, or a digest of it when it has no usable id
    observation_id: int | None
    reason: str


@dataclass(frozen=True)
class Fit:
    """An observation that fits: its typed shape, and its JSON to store, as the API sent it
    (less its photos that do not fit)."""

    shape: Observation
    raw: bytes

    @property
    def id(self) -> int:
        return self.shape.id

    @cached_property
    def data(self) -> dict[str, Any]:
        """The whole observation as a dict (every field, not only the shape's)."""
        decoded: dict[str, Any] = _ANY.decode(self.raw)
        return decoded


@dataclass
class Checked:
    """A page's observations checked: those that fit, every id to page past (an observation
    skipped still moves the cursor), and what was skipped."""

    fits: list[Fit] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)


def check_observations(results: list[Any]) -> Checked:
    """Each result (its JSON as sent, or already decoded) checked against its shape."""
    checked = Checked()
    for item in results:
        raw = bytes(item) if isinstance(item, msgspec.Raw) else None
        try:
            shape = _OBSERVATION.decode(raw) if raw is not None else msgspec.convert(item, Observation)
        except (msgspec.ValidationError, RecursionError) as exc:
            obs_id = usable_id(item)
            if obs_id is not None:
                checked.ids.append(obs_id)
            key = str(obs_id) if obs_id is not None else _digest(item)
            checked.rejected.append(Rejected("observation", key, obs_id, _reason(exc)))
            continue
        checked.ids.append(shape.id)
        checked.fits.append(_fit(raw, item, shape, checked.rejected))
    return checked


def _fit(raw: bytes | None, item: Any, shape: Observation, rejected: list[Rejected]) -> Fit:
    photos = []
    for position, photo in enumerate(shape.photos or []):
        try:
            msgspec.convert(photo, _Photo)
        except msgspec.ValidationError as exc:
            rejected.append(Rejected("photo", f"{shape.id}/{position}", shape.id, _reason(exc)))
            continue
        photos.append(photo)
    every_photo_fits = len(photos) == len(shape.photos or [])
    if raw is not None and every_photo_fits:
        return Fit(shape, raw)  # the common case: kept byte for byte
    data = _ANY.decode(raw) if raw is not None else item
    if not every_photo_fits:
        data = {**data, "photos": photos}
        shape.photos = photos
    return Fit(shape, msgspec.json.encode(data))


def usable_id(item: Any) -> int | None:
    """An observation's id, when it is one that paging and SQLite can use."""
    if isinstance(item, msgspec.Raw):
        try:
            oid = msgspec.json.decode(item, type=_IdOnly).id
        except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
            return None
    else:
        oid = item.get("id") if isinstance(item, dict) else None
    return oid if type(oid) is int and 1 <= oid <= _INT64 else None


def _digest(item: Any) -> str:
    try:
        if isinstance(item, msgspec.Raw):  # as the decoded item was digested before
            item = _ANY.decode(item)
        text = msgspec.json.encode(item)
    except (TypeError, RecursionError, msgspec.DecodeError):
        text = repr(type(item)).encode()
    return "sha1:" + hashlib.sha1(text).hexdigest()[:16]


def _reason(exc: Exception) -> str:
    if isinstance(exc, RecursionError):
        return "nested too deep"
    # "Expected `int <= 9223372036854775807`, got `int` - at `$.id`": what, then where.
    return str(exc).replace("`", "")[:200]


# -- /v1/taxa/{ids} ----------------------------------------------------------------------------
Name = Annotated[str, msgspec.Meta(max_length=300)]


class TaxonRecord(msgspec.Struct, frozen=True):
    """A taxon as /v1/taxa gives it, the fields the exports use; ``ancestor_ids`` runs from
    the root of the tree to the taxon itself. A taxon the API does not know has no rank."""

    id: Id
    rank: Annotated[str, msgspec.Meta(max_length=40)] | None = None
    name: Name | None = None
    preferred_common_name: Name | None = None
    ancestor_ids: Annotated[list[Id], msgspec.Meta(max_length=100)] | None = None


def check_taxa(results: list[Any]) -> list[TaxonRecord]:
    """The taxa of a /v1/taxa page that fit; one that does not is left out (and is asked
    again by a later run)."""
    taxa = []
    for item in results:
        try:
            taxa.append(msgspec.convert(item, TaxonRecord))
        except (msgspec.ValidationError, RecursionError):
            continue
    return taxa
