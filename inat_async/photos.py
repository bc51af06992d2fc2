"""Photo files: which photos of an observation to fetch, their URLs per size, and where they go.

Everything here treats the API's data as untrusted: a file's name is built only from the
integer photo id, a known size word and a known extension, so no URL can steer a write.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import PurePosixPath
from urllib.parse import urlsplit, urlunsplit

from inat_async.image import byte_cap
from inat_async.model import PhotoStatus, field_of

EXTENSIONS = frozenset({"jpg", "jpeg", "png", "gif"})
ALL_RIGHTS_RESERVED = "all-rights-reserved"
PLACEHOLDER_MARKERS = ("/assets/", "attachment_defaults")
# {prefix}/photos/{id}/{size}.{ext}: the size word is the last path segment's stem.
_SQUARE = re.compile(r"/square\.([A-Za-z0-9]{1,10})$")


@dataclass(frozen=True)
class PhotoFile:
    """One size of one photo, as a row of the photos table."""

    observation_id: int
    photo_id: int
    position: int | None  # the API's observation_photos position; None when it gives none
    api_order: int  # the photo's index in the API's photos list: the outputs' order
    size: str
    url: str
    path: str | None
    status: PhotoStatus
    reason: str | None
    license_code: str | None
    attribution: str | None
    max_bytes: int | None = None  # files to fetch: the most a file of its size can hold


def photo_path(photo_id: int, size: str, ext: str) -> str:
    """Relative path: photos/<millions>/<thousands>/<id>_<size>.<ext>.

    A leaf folder holds ids of one thousand-block: at most 1,000 photos x 6 sizes files,
    and each level above at most 1,000 folders, at any harvest size.
    """
    millions, thousands = divmod(photo_id // 1000, 1000)
    return str(PurePosixPath("photos", f"{millions:03d}", f"{thousands:03d}", f"{photo_id}_{size}.{ext}"))


def size_url(square_url: str, size: str) -> tuple[str, str]:
    """The URL of ``size`` from the square URL, and the file extension (lowercased).

    The query (old cache-busters) is dropped and the extension kept as given, since
    ``medium.JPG`` exists as such. Raises ValueError for a URL that is not a photo's.
    """
    parts = urlsplit(square_url)
    match = _SQUARE.search(parts.path)
    if not match or parts.scheme not in ("http", "https"):
        raise ValueError("not an iNaturalist photo URL")
    ext = match.group(1)
    if ext.lower() not in EXTENSIONS:
        raise ValueError(f"unsupported extension {ext[:10]!r}")
    path = parts.path[: match.start()] + f"/{size}.{ext}"
    return urlunsplit((parts.scheme, parts.netloc, path, "", "")), ext.lower()


_PHOTO_PATH = re.compile(r"photos/[0-9]{3}/[0-9]{3}/[0-9]+_[a-z]+\.([a-z]+)")


def is_photo_path(path: str) -> bool:
    """Whether ``path`` is one :func:`photo_path` builds: relative, under photos/, no "..";
    so a file removed by its stored path is always one of the harvest's own."""
    match = _PHOTO_PATH.fullmatch(path)
    return match is not None and match.group(1) in EXTENSIONS


def is_placeholder(url: str) -> bool:
    return any(marker in url for marker in PLACEHOLDER_MARKERS)


def _integer(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _positions(observation: object) -> dict[int, int]:
    """Each photo's ``position`` from observation_photos (photo id from ``photo_id`` or
    ``photo.id``); a photo whose position is null or absent is not in the dict."""
    items = field_of(observation, "observation_photos")
    positions: dict[int, int] = {}
    for item in items if isinstance(items, list) else []:
        pid = _integer(field_of(item, "photo_id")) or _integer(field_of(field_of(item, "photo"), "id"))
        pos = field_of(item, "position")
        if pid is not None and isinstance(pos, int) and not isinstance(pos, bool):
            positions[pid] = pos
    return positions


def photos_in_order(observation: object) -> list[tuple[int | None, Mapping[str, object]]]:
    """(position, photo) pairs in the API's ``photos`` order, which is iNaturalist's own
    (positioned photos first): ``photos[0]`` is the first photo. The position is the API's
    value, None when it gives none; it never reorders the list. ``observation``: decoded as a
    dict or as its typed shape (model.Observation)."""
    positions = _positions(observation)
    listed = field_of(observation, "photos")
    photos = [p for p in (listed if isinstance(listed, list) else []) if isinstance(p, dict)]
    return [(positions.get(_integer(p.get("id")) or 0), p) for p in photos]


def photo_files(
    observation: object,
    sizes: Iterable[str],
    *,
    all_photos: bool,
    allowed_hosts: frozenset[str],
    licenses: Iterable[str] | None = None,
) -> Iterator[PhotoFile]:
    """The photo files one observation asks for, each already judged fetchable or skipped.

    ``licenses``: fetch only photos under one of these (their own licence, not the
    observation's; "all-rights-reserved" for none), compared without regard to case; the
    others are recorded as skipped.
    """
    obs_id = _integer(field_of(observation, "id"))
    if obs_id is None:
        return
    wanted = None if licenses is None else {code.lower() for code in licenses}
    chosen = photos_in_order(observation)
    for order, (position, photo) in enumerate(chosen if all_photos else chosen[:1]):
        photo_id = _integer(photo.get("id"))
        if photo_id is None:
            continue
        url = str(photo.get("url") or "")
        license_code = _text(photo.get("license_code"))
        # What every size of the photo shares; each file is this with its own size, URL, etc.
        shared = PhotoFile(
            observation_id=obs_id,
            photo_id=photo_id,
            position=position,
            api_order=order,
            size="",
            url=url[:2000],
            path=None,
            status=PhotoStatus.SKIPPED,
            reason=None,
            license_code=license_code,
            attribution=_text(photo.get("attribution")),
        )
        code = (license_code or ALL_RIGHTS_RESERVED).lower()
        for size in sizes:
            if wanted is not None and code not in wanted:
                yield replace(shared, size=size, reason=f"photo licence {code} not asked for")
            else:
                yield _judge(replace(shared, size=size), url, allowed_hosts, photo.get("original_dimensions"))


def _judge(file: PhotoFile, url: str, allowed_hosts: frozenset[str], dimensions: object) -> PhotoFile:
    """``file`` (skipped, its URL the square one) made fetchable, or skipped with why not;
    a file to fetch gets the most bytes its size can hold (from the original's dimensions)."""
    if is_placeholder(url):
        return replace(file, reason="placeholder (hidden or missing photo)")
    try:
        sized, ext = size_url(url, file.size)
    except ValueError as exc:
        return replace(file, reason=str(exc))
    if urlsplit(sized).hostname not in allowed_hosts:
        return replace(file, url=sized, reason="photo host not allowed")
    path = photo_path(file.photo_id, file.size, ext)
    cap = byte_cap(file.size, *_dimensions(dimensions))
    return replace(file, url=sized, path=path, status=PhotoStatus.PENDING, max_bytes=cap)


def _dimensions(value: object) -> tuple[int | None, int | None]:
    """An original's (width, height), checked already by the model, when the API gives them."""
    if not isinstance(value, Mapping):
        return None, None
    width, height = value.get("width"), value.get("height")
    return (width, height) if isinstance(width, int) and isinstance(height, int) else (None, None)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def host_of(url: str) -> str:
    """The host (and port) of a URL: the key of a photo host's queue, budget and stats."""
    return urlsplit(url).netloc
