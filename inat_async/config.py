"""What one harvest is asked to do: the settings shared by the CLI and the library, each
default written once and every value checked when a :class:`Settings` or :class:`Budgets` is
made (``__post_init__``), so the library refuses what the CLI refuses, before any request.

A bad value raises :class:`SettingError` naming the setting by its keyword; the CLI prints
the same message with its flag instead.
"""

from __future__ import annotations

import difflib
import importlib.util
import math
import numbers
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields, replace
from functools import cached_property
from pathlib import Path
from typing import Any, TypedDict, Unpack
from urllib.parse import urlsplit

from inat_async.errors import SettingError
from inat_async.photos import ALL_RIGHTS_RESERVED

DEFAULT_API_URL = "https://api.inaturalist.org/v1"
REAL_API_HOST = "api.inaturalist.org"
SIZES = ("square", "thumb", "small", "medium", "large", "original")
DEFAULT_SIZES = ("square", "medium", "original")
# The exports a harvest can write (exports.WRITERS has a writer for each).
FORMATS = ("csv", "parquet", "dwca", "geoparquet", "geojson", "inat-csv", "webdataset")
# The seed's filters: observations with public coordinates, identified to species.
DEFAULT_FILTERS = {"geo": "true", "identified": "true", "rank": "species"}
# Paging is ours to control: a user's filter may not break the keyset cursor.
RESERVED_PARAMS = frozenset({"order", "order_by", "per_page", "page", "id_above", "id_below"})
# The photo hosts iNaturalist serves from; the API's own host is added at run time.
PHOTO_HOSTS = ("inaturalist-open-data.s3.amazonaws.com", "static.inaturalist.org")
# iNaturalist's licence codes (its API gives them lowercase), and ours for none.
LICENSE_CODES = (
    "cc0",
    "cc-by",
    "cc-by-nc",
    "cc-by-sa",
    "cc-by-nd",
    "cc-by-nc-sa",
    "cc-by-nc-nd",
    "pd",
    "gfdl",
)
PHOTO_LICENSES = (*LICENSE_CODES, ALL_RIGHTS_RESERVED)


# -- the checks: each returns a value in its one form or raises SettingError naming it ---------
def _kind(value: object) -> str:
    return f"{value!r:.60} ({type(value).__name__})"


#: The largest value of each count setting (Settings' and Budgets'): far above any use, far
#: below what would take the machine's memory or hammer a server.
COUNT_LIMITS = {
    "workers": 1000,
    "ranges": 1000,
    "per_page": 200,  # the API's own limit
    "shard_size": 100_000,
    "shard_files": 100_000,
    "api_attempts": 100,
    "photo_attempts": 100,
    "api_rpm": 1_000_000,
    "api_daily": 1_000_000_000,
    "media_rpm": 10_000_000,
    "media_concurrency": 1000,
}


def _whole_number(name: str, value: object, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise SettingError(name, f"must be a whole number, not {_kind(value)}")
    number = int(value)
    if high is not None and not 1 <= number <= high:
        raise SettingError(name, f"must be from 1 to {high:,}")
    if number < 1:
        raise SettingError(name, "must be positive")
    return number


def _number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise SettingError(name, f"must be a number, not {_kind(value)}")
    number = float(value)
    if not math.isfinite(number):
        raise SettingError(name, "must be a finite number")
    return number


def _positive_number(name: str, value: object) -> float:
    number = _number(name, value)
    if number <= 0:
        raise SettingError(name, "must be positive")
    return number


def _not_negative(name: str, value: object) -> float:
    number = _number(name, value)
    if number < 0:
        raise SettingError(name, "must not be negative")
    return number


def _yes_no(name: str, value: object) -> bool:
    if not isinstance(value, bool):  # "no" and 0 are refused: either would read as meant
        raise SettingError(name, f"must be True or False, not {_kind(value)}")
    return value


def _folder(name: str, value: object) -> Path:
    if not isinstance(value, str | os.PathLike) or not isinstance(os.fspath(value), str):
        raise SettingError(name, f"must be a path, not {_kind(value)}")
    if not str(value).strip():
        raise SettingError(name, "give a path")
    return Path(value)


def _optional_folder(name: str, value: object) -> Path | None:
    return None if value is None else _folder(name, value)


def _budgets(name: str, value: object) -> Budgets:
    if not isinstance(value, Budgets):
        raise SettingError(name, f"must be an inat_async.Budgets, not {_kind(value)}")
    return value


def parse_api_url(value: object, name: str = "api_url") -> str:
    """An http(s) URL with a host, or :class:`SettingError`."""
    if not isinstance(value, str):
        raise SettingError(name, f"must be an http(s) URL, not {_kind(value)}")
    try:
        parts = urlsplit(value)
        good = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
    except ValueError:  # a bad port or IPv6 literal
        good = False
    if not good or value != value.strip() or " " in value:
        raise SettingError(name, f"{value[:80]!r} is not an http(s) URL")
    return value


def _names(name: str, value: object) -> tuple[str, ...]:
    """Names from 'a,B' or a list of them (each may be a comma list too): stripped,
    lowercased, in order, once each. A str is one list, never a sequence of letters."""
    if isinstance(value, str):
        parts: list[object] = [value]
    elif isinstance(value, Iterable) and not isinstance(value, (Mapping, bytes)):
        parts = list(value)
    else:
        parts = [value]
    if not all(isinstance(part, str) for part in parts):
        raise SettingError(name, f"must be a comma list or a list of names, not {_kind(value)}")
    names = (n.strip().lower() for part in parts for n in str(part).split(","))
    return tuple(dict.fromkeys(n for n in names if n))


@dataclass(frozen=True)
class Budgets:
    """Politeness limits, each counted over a sliding window (see net/budget.py). Every one must
    be positive: the whole numbers are counts, the others GB or seconds."""

    api_rpm: int = 60
    api_daily: int = 10_000
    media_rpm: int = 600
    media_gb_per_hour: float = 4.0
    media_gb_per_day: float = 20.0
    media_concurrency: int = 8
    # Window lengths in seconds; tests shrink them to run in seconds.
    minute: float = 60.0
    hour: float = 3600.0
    day: float = 86400.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "int":
                value = _whole_number(f.name, value, COUNT_LIMITS[f.name])
            else:
                value = _positive_number(f.name, value)
            object.__setattr__(self, f.name, value)


def api_url_default() -> str:
    """The API URL of a harvest that names none, for the CLI and the library alike: the
    INAT_API_URL environment variable, else iNaturalist's."""
    return os.environ.get("INAT_API_URL", DEFAULT_API_URL)


@dataclass(frozen=True)
class Settings:
    """Everything a harvest needs. Making one checks every field and brings it to its one
    form (``places=[7]`` or ``"7,8"``, ``sizes="square,medium"``, ``formats="parquet"``, a
    str ``out``); a bad value raises :class:`SettingError`. :func:`make_settings` is the typed
    way to pass those looser forms."""

    places: tuple[int, ...]
    out: Path = Path("inat_harvest")
    api_url: str = field(default_factory=api_url_default)
    filters: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_FILTERS))
    sizes: tuple[str, ...] = DEFAULT_SIZES
    all_photos: bool = False
    no_photos: bool = False
    update: bool = False
    photo_licenses: tuple[str, ...] | None = None  # None: every licence
    formats: tuple[str, ...] = ("csv",)
    taxonomy: bool = True  # name each observation's higher taxa (/v1/taxa) for the exports
    shard_size: int = 1000  # samples per WebDataset shard
    webdataset_size: str = "medium"  # the photo size in WebDataset samples
    workers: int = 16
    limits: bool = True
    budgets: Budgets = Budgets()
    budget_file: Path | None = None
    budget_lock_wait: float = 30.0  # seconds to wait for a budget file another program holds
    per_page: int = 200
    ranges: int = 4
    max_photo_bytes: int = 64_000_000
    request_timeout: float = 60.0
    connect_timeout: float = 15.0  # used as at most request_timeout
    api_attempts: int = 8
    photo_attempts: int = 5
    backoff_initial: float = 1.0
    max_backoff: float = 300.0
    progress_interval: float = 5.0
    # Beyond one machine (see cluster/): where photo files go (an fsspec URL or a folder;
    # None: OUT), its fsspec options, the Dask scheduler of the photo stage ("local",
    # "local:N" or an address; None: this process), whose budgets are counted cluster-wide
    # ("cluster": one egress IP) or by each worker ("worker": an IP each), in tasks of
    # ``shard_files`` photo files.
    store: str | None = None
    storage_options: dict[str, str] = field(default_factory=dict)
    scheduler: str | None = None
    budget_scope: str = "cluster"
    shard_files: int = 2000
    # Seconds the cluster's driver waits for a Dask worker when the cluster has none (at the
    # start, or after its workers died), before it ends the run.
    worker_wait: float = 300.0
    # Where the exports, summary.json and report.html are copied once written in OUT (a
    # folder or an fsspec URL, with the same storage options; None: OUT alone).
    export_store: str | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            object.__setattr__(self, f.name, _CHECKS[f.name](f.name, getattr(self, f.name)))
        if self.all_photos and self.no_photos:
            raise SettingError("no_photos", "cannot be combined with {all_photos}")
        if "webdataset" in self.formats and (self.no_photos or self.webdataset_size not in self.sizes):
            raise SettingError(
                "webdataset_size", f"the WebDataset's size {self.webdataset_size} must be one of {{sizes}}"
            )
        if "webdataset" in self.formats and self.store is not None:
            raise SettingError(
                "store",
                "the WebDataset is written from photo files in the output folder: give {formats} without it",
            )
        if self.storage_options and self.store is None and self.export_store is None:
            raise SettingError("storage_options", "applies to a {store}: give one")
        # A connection is part of a request: it may not outwait the request.
        object.__setattr__(self, "connect_timeout", min(self.connect_timeout, self.request_timeout))

    def fingerprint(self) -> dict[str, object]:
        """What makes two runs the same harvest: stored in the state, compared on resume."""
        return {
            "places": sorted(self.places),
            "filters": dict(sorted(self.filters.items())),
            "sizes": sorted(self.sizes),
            "all_photos": self.all_photos,
            "no_photos": self.no_photos,
            "photo_licenses": sorted(self.photo_licenses) if self.photo_licenses else None,
            # The photo rows and cursors hold what this API answered: another one is another harvest.
            "api_url": self.api_url.rstrip("/"),
        }

    @cached_property  # asked once per observation paged
    def photo_hosts(self) -> frozenset[str]:
        return frozenset((*PHOTO_HOSTS, urlsplit(self.api_url).hostname or ""))


Places = int | str | Iterable[int | str]
PathArg = str | os.PathLike[str]


class HarvestOptions(TypedDict, total=False):
    """The keywords of :func:`inat_async.harvest` and :func:`make_settings`: the
    :class:`Settings` fields but ``places``, in the forms people write them."""

    out: PathArg
    api_url: str
    filters: Mapping[str, str | int | float | None]
    sizes: str | Iterable[str]
    all_photos: bool
    no_photos: bool
    update: bool
    photo_licenses: str | Iterable[str] | None
    formats: str | Iterable[str]
    taxonomy: bool
    shard_size: int
    webdataset_size: str
    workers: int
    limits: bool
    budgets: Budgets
    budget_file: PathArg | None
    budget_lock_wait: float
    per_page: int
    ranges: int
    max_photo_bytes: int
    request_timeout: float
    connect_timeout: float
    api_attempts: int
    photo_attempts: int
    backoff_initial: float
    max_backoff: float
    progress_interval: float
    store: str | os.PathLike[str] | None
    storage_options: Mapping[str, str]
    scheduler: str | None
    budget_scope: str
    shard_files: int
    worker_wait: float
    export_store: str | os.PathLike[str] | None


def make_settings(places: Places, **options: Unpack[HarvestOptions]) -> Settings:
    """Checked :class:`Settings` from ``places`` and keywords; a bad value raises
    :class:`SettingError` naming it, an unknown keyword a :class:`TypeError` naming it."""
    _refuse_unknown(options)
    return Settings(places, **options)  # type: ignore[arg-type]  # loose forms: __post_init__


def with_options(settings: Settings, **options: Unpack[HarvestOptions]) -> Settings:
    """``settings`` with some fields changed, checked as :func:`make_settings` checks them."""
    _refuse_unknown(options)
    return replace(settings, **options)  # type: ignore[arg-type]


def _refuse_unknown(options: Mapping[str, object]) -> None:
    known = HarvestOptions.__annotations__
    for name in options:
        if name not in known:
            close = difflib.get_close_matches(name, known, 1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise TypeError(f"unexpected keyword argument {name!r}{hint}")


def setting_default(name: str) -> Any:
    """The default of the :class:`Settings` field ``name``: the CLI's defaults come from here."""
    f = next(f for f in fields(Settings) if f.name == name)
    return f.default_factory() if f.default_factory is not MISSING else f.default


_ID = re.compile(r"[0-9]+")
# An iNaturalist place page (any of its network's sites, with or without the scheme), the id
# ending its path or followed by more of it, a query or a fragment.
_PLACE_URL = re.compile(
    r"(?:https?://)?([^/\s]+)(?:/[a-z]{2}(?:-[a-z0-9]{2,4})?)?/places/([0-9]+)(?:[/?#]\S*)?", re.IGNORECASE
)  # host, an optional locale (/es, /pt-BR), the id
# The iNaturalist Network's sites (any subdomain or locale of each): a place URL elsewhere is
# not iNaturalist's, whatever its path says.
INAT_SITES = (
    "inaturalist.org", "inaturalist.ca", "inaturalist.nz", "naturalista.mx", "inaturalist.ala.org.au",
    "biodiversity4all.org", "argentinat.org", "inaturalist.lu", "inaturalist.laji.fi", "naturalista.uy",
    "inaturalist.mma.gob.cl", "inaturalist.se",
)  # fmt: skip


def place_id(text: str) -> int | None:
    """The place id in '128892' or an iNaturalist place URL
    (https://www.inaturalist.org/places/128892), or None when ``text`` is neither (a place URL
    of another host included: see :func:`foreign_host`)."""
    text = text.strip()
    if match := _ID.fullmatch(text):
        number = int(match.group(0))
    elif (match := _PLACE_URL.fullmatch(text)) and _inat_host(match.group(1)):
        number = int(match.group(2))
    else:
        return None
    return number if number > 0 else None


def _inat_host(authority: str) -> bool:
    host = authority.rpartition("@")[2].partition(":")[0].lower().rstrip(".")
    return any(host == site or host.endswith("." + site) for site in INAT_SITES)


def not_a_place(text: str) -> str:
    """Why ``text`` is not a place: a place URL of another host is named as such."""
    text = text.strip()
    match = _PLACE_URL.fullmatch(text)
    if match is not None and not _inat_host(match.group(1)):
        host = match.group(1).rpartition("@")[2]
        return f"{text[:80]!r} is not an iNaturalist place URL: {host[:60]} is not inaturalist.org"
    return f"{text[:80]!r} is not a place id (a positive integer) or URL"


def parse_places(values: Places) -> tuple[int, ...]:
    """Place ids from one value or several, each an id, a comma list of ids or one place URL;
    order kept, duplicates dropped. A str is one value, never a sequence of digits."""
    if isinstance(values, str | int) or not isinstance(values, Iterable):
        values = [values]
    places: dict[int, None] = {}
    for value in values:
        text = str(value)
        parts = [text] if "/places/" in text else text.split(",")
        if len(parts) > 1 and not all(part.strip() for part in parts):
            raise SettingError("places", f"{text[:80]!r} has an empty item: give ids between the commas")
        for part in parts:
            if not part.strip():
                continue
            number = place_id(part)
            if number is None:
                raise SettingError("places", not_a_place(part))
            places[number] = None
    return tuple(places)


def _places(name: str, value: object) -> tuple[int, ...]:
    places = parse_places(value)  # type: ignore[arg-type]  # whatever it is, str() tells
    if not places:
        raise SettingError(name, "give at least one place id or URL")
    return places


_COMMENT = re.compile(r"(?:^|\s)#")


def read_places_file(path: Path) -> list[str]:
    """Place ids from a file: one id or iNaturalist place URL a line, blank lines and
    # comments (a whole line, or after the value) allowed, a UTF-8 byte-order mark ignored."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingError("places_file", f"cannot read {path} ({exc})") from None
    places = []
    for number, line in enumerate(text.splitlines(), 1):
        value = _COMMENT.split(line, maxsplit=1)[0].strip()
        if not value:
            continue
        place = place_id(value)
        if place is None:
            raise SettingError("places_file", f"line {number} of {path}: {not_a_place(value)}")
        places.append(str(place))
    if not places:
        raise SettingError("places_file", f"{path} has no place id or URL (only blank lines or comments)")
    return places


def _choices(setting: str, value: object, known: Sequence[str], what: str) -> tuple[str, ...]:
    """Names from 'a,B' or a list (see _names), each one of ``known``: one unknown (a typo would
    skip every photo or export) or none at all is refused, with the known ones listed."""
    names = _names(setting, value)
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        said = f"{unknown[0]!r} is not {what}" if unknown else "give at least one"
        raise SettingError(setting, f"{said}; choose from {', '.join(known)}")
    return names


def parse_licenses(value: str | Iterable[str]) -> tuple[str, ...]:
    """Photo licence codes from 'cc0,CC-BY' or a list, lowercased, of :data:`PHOTO_LICENSES`."""
    return _choices("photo_licenses", value, PHOTO_LICENSES, "a licence code")


def _licenses(name: str, value: object) -> tuple[str, ...] | None:
    return None if value is None else parse_licenses(value)  # type: ignore[arg-type]


def parse_sizes(value: str | Iterable[str]) -> tuple[str, ...]:
    """Photo sizes from 'square,medium' or a list; each must be one iNaturalist serves."""
    return _choices("sizes", value, SIZES, "a photo size")


def parse_one_size(value: object) -> str:
    """One photo size iNaturalist serves (the WebDataset samples' images)."""
    try:
        sizes = parse_sizes(value) if isinstance(value, str) else ()
    except SettingError:  # named as the caller wrote it, not as --sizes
        sizes = ()
    if len(sizes) != 1:
        raise SettingError("webdataset_size", f"must be one of {', '.join(SIZES)}")
    return sizes[0]


def parse_shard_size(value: object) -> int:
    return _count("shard_size", value)


def parse_formats(value: str | Iterable[str]) -> tuple[str, ...]:
    """Export formats from 'csv,parquet' or a list; each must be one of :data:`FORMATS`."""
    return _choices("formats", value, FORMATS, "an export format")


def _filters(name: str, value: object) -> dict[str, str]:
    """API filters as strings; None or '' drops one. Paging's own parameters and place_id
    (places have their own setting) are refused."""
    if not isinstance(value, Mapping):
        raise SettingError(name, f"must be a mapping of API parameters to values, not {_kind(value)}")
    filters = {}
    for key, raw in value.items():
        if not isinstance(key, str) or not key.strip():
            raise SettingError(name, f"{key!r} is not an API parameter name")
        key = key.strip()
        if key in RESERVED_PARAMS:
            raise SettingError(name, f"{key} is set by the harvester's paging and cannot be changed")
        if key == "place_id":
            raise SettingError(name, "give places with {places}")
        if isinstance(raw, bool):
            raw = str(raw).lower()  # the API's spelling
        if raw is not None and not isinstance(raw, str | int | float):
            raise SettingError(name, f"the value of {key} must be a string or a number, not {_kind(raw)}")
        text = "" if raw is None else str(raw).strip()
        if text:
            filters[key] = text
    return filters


def parse_params(values: Iterable[str]) -> dict[str, str]:
    """The default filters with each KEY=VALUE applied; an empty VALUE drops the filter.
    Which keys may be set is checked by :class:`Settings`."""
    filters = dict(DEFAULT_FILTERS)
    for item in values:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise SettingError("filters", f"{item!r} is not KEY=VALUE")
        filters[key] = value
    return filters


def _store(name: str, value: object) -> str | None:
    """A folder or an fsspec URL (``s3://bucket/prefix``); a URL needs the dask extra."""
    if value is None:
        return None
    if not isinstance(value, str | os.PathLike) or not isinstance(os.fspath(value), str):
        raise SettingError(name, f"must be a folder or a URL, not {_kind(value)}")
    text = os.fspath(value).strip()
    if not text:
        raise SettingError(name, "give a folder or a URL")
    scheme, _, rest = text.partition("://") if "://" in text else ("", "", text)
    if scheme in ("", "file"):
        _check_folder(name, Path(rest).expanduser())
        return text
    if not rest.strip("/"):
        raise SettingError(name, f"{text} names no bucket or place in it: {scheme}://BUCKET/PREFIX")
    if importlib.util.find_spec("fsspec") is None:
        raise SettingError(name, f"{scheme}:// needs fsspec: pip install 'inat_async[dask]'")
    _check_protocol(name, scheme)
    return text


def _check_folder(name: str, folder: Path) -> None:
    """A folder (or one to make): not a regular file, nor under one."""
    in_the_way = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None)
    if in_the_way is not None:
        raise SettingError(name, f"{in_the_way} is a file, not a folder")


#: fsspec's storages that cannot write a file (web servers, archives, git).
_READ_ONLY = ("http", "https", "tar", "github", "git", "libarchive")


def _check_protocol(name: str, scheme: str) -> None:
    """A storage fsspec knows whose library is installed (its class imported, nothing sent)."""
    import fsspec

    if scheme == "memory":  # nothing would be left of the files once the run ends
        raise SettingError(name, "memory:// keeps files in this process only: give a lasting store")
    if scheme in _READ_ONLY:  # each file would be fetched, then refused, five times over
        raise SettingError(name, f"{scheme}:// is read-only in fsspec: give a store that takes writes")
    try:
        fsspec.get_filesystem_class(scheme)
    except ValueError:
        raise SettingError(
            name, f"{scheme}:// is not a storage fsspec knows (s3://, gs://, az://, ...)"
        ) from None
    except ImportError as exc:
        raise SettingError(name, f"{scheme}:// needs a library that is not installed ({exc})") from None


def _storage_options(name: str, value: object) -> dict[str, str]:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) and k.strip() for k in value):
        raise SettingError(name, f"must be a mapping of option names to values, not {_kind(value)}")
    if not all(isinstance(v, str | int | float | bool) for v in value.values()):
        raise SettingError(name, "each value must be a string or a number")
    return {k.strip(): _storage_value(name, k.strip(), str(v)) for k, v in value.items()}


#: Storage options that are true or false (s3fs, gcsfs, adlfs and fsspec's own): given as a
#: word, "no" or "0" would read as true to the backend (a string that is not empty).
_BOOLEAN_OPTIONS = frozenset(
    {"anon", "use_ssl", "requester_pays", "version_aware", "cache_regions", "skip_instance_cache",
     "use_listings_cache", "auto_mkdir", "check_connection", "asynchronous"}
)  # fmt: skip
_TRUE, _FALSE = ("true", "yes", "1"), ("false", "no", "0")


def _storage_value(name: str, key: str, value: str) -> str:
    """A storage option's value: a boolean option's as "true" or "false" (the store reads
    them as booleans), refused when it is neither; any other as given."""
    if key not in _BOOLEAN_OPTIONS:
        return value
    word = value.strip().lower()
    if word not in _TRUE + _FALSE:
        raise SettingError(name, f"{key} takes true or false (or yes/no, 1/0), not {value!r}")
    return "true" if word in _TRUE else "false"


def parse_storage_options(values: Iterable[str]) -> dict[str, str]:
    """KEY=VALUE items (the CLI's --storage-option) as a mapping."""
    options = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SettingError("storage_options", f"{item!r} is not KEY=VALUE")
        options[key.strip()] = value
    return options


#: local, local:N, or an address in one of Dask's comm protocols that reach another process
#: (distributed.comm; inproc:// reaches only this one, which has no workers).
_SCHEDULER = re.compile(r"local(:[1-9][0-9]{0,2})?|(tcp|tls|ws|wss|ucx)://\S+")


def _scheduler(name: str, value: object) -> str | None:
    """None (this process), ``local``, ``local:N`` (N worker processes) or an address."""
    if value is None:
        return None
    if not isinstance(value, str) or not _SCHEDULER.fullmatch(value.strip()):
        if isinstance(value, str) and re.fullmatch(r"local:[0-9]+", value.strip()):
            raise SettingError(name, f"{value.strip()}: the N of local:N worker processes is from 1 to 999")
        raise SettingError(
            name, f"{value!r:.80} is not local, local:N or a scheduler address (tcp://host:8786)"
        )
    if importlib.util.find_spec("distributed") is None:
        raise SettingError(name, "needs Dask: pip install 'inat_async[dask]'")
    return value.strip()


def _budget_scope(name: str, value: object) -> str:
    if value not in ("cluster", "worker"):
        raise SettingError(name, f"must be cluster or worker, not {_kind(value)}")
    return str(value)


def _count(name: str, value: object) -> int:
    """A count with its upper bound (COUNT_LIMITS): a huge one would make the process take
    the machine's memory (a task, a range or a sample each) before it said anything."""
    return _whole_number(name, value, COUNT_LIMITS[name])


# Every Settings field's check, in one place; __post_init__ runs them in field order.
_CHECKS: dict[str, Callable[[str, Any], Any]] = {
    "places": _places,
    "out": _folder,
    "api_url": lambda name, value: parse_api_url(value, name),
    "filters": _filters,
    "sizes": lambda _, value: parse_sizes(value),
    "all_photos": _yes_no,
    "no_photos": _yes_no,
    "update": _yes_no,
    "photo_licenses": _licenses,
    "formats": lambda _, value: parse_formats(value),
    "taxonomy": _yes_no,
    "shard_size": lambda _, value: parse_shard_size(value),
    "webdataset_size": lambda _, value: parse_one_size(value),
    "workers": _count,
    "limits": _yes_no,
    "budgets": _budgets,
    "budget_file": _optional_folder,
    "budget_lock_wait": _not_negative,
    "per_page": _count,
    "ranges": _count,
    "max_photo_bytes": _whole_number,
    "request_timeout": _positive_number,
    "connect_timeout": _positive_number,
    "api_attempts": _count,
    "photo_attempts": _count,
    "backoff_initial": _not_negative,
    "max_backoff": _not_negative,
    "progress_interval": _positive_number,
    "store": _store,
    "storage_options": _storage_options,
    "scheduler": _scheduler,
    "budget_scope": _budget_scope,
    "export_store": _store,
    "shard_files": _count,
    "worker_wait": _positive_number,
}
