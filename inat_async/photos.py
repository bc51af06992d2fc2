"""Photo files: which photos of an observation to fetch, their URLs per size, and where they go.

Everything here treats the API's data as untrusted: a file's name is built only from the
integer photo id, a known size word and a known extension, so no URL can steer a write.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import urlsplit, urlunsplit

EXTENSIONS = frozenset({"jpg", "jpeg", "png", "gif"})
ALL_RIGHTS_RESERVED = "all-rights-reserved"
PLACEHOLDER_MARKERS = ("/assets/", "attachment_defaults")
# {prefix}/photos/{id}/{size}.{ext}: the size word is the last path segment's stem.
_SQUARE = re.compile(r"/square\.([A-Za-z0-9]{1,10})$")
# A JPEG, PNG or GIF file starts with one of these.
SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a")


@dataclass(frozen=True)
class PhotoFile:
    """One size of one photo, as a row of the photos table."""

    observation_id: int
    photo_id: int
    position: int
    size: str
    url: str
    path: str | None
    status: str  # pending, done, missing, skipped, failed
    reason: str | None
    license_code: str | None
    attribution: str | None


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


def is_placeholder(url: str) -> bool:
    return any(marker in url for marker in PLACEHOLDER_MARKERS)


def _integer(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _photos_in_order(observation: Mapping[str, object]) -> list[tuple[int, Mapping[str, object]]]:
    """(position, photo) pairs, positions from observation_photos when the API gives them."""
    positions: dict[int, int] = {}
    for item in observation.get("observation_photos") or []:
        if isinstance(item, dict) and isinstance(item.get("photo"), dict):
            pid, pos = _integer(item["photo"].get("id")), item.get("position")
            if pid is not None and isinstance(pos, int):
                positions[pid] = pos
    photos = [p for p in observation.get("photos") or [] if isinstance(p, dict)]
    ordered = [(positions.get(_integer(p.get("id")) or 0, i), p) for i, p in enumerate(photos)]
    return sorted(ordered, key=lambda pair: pair[0])


def photo_files(
    observation: Mapping[str, object],
    sizes: Iterable[str],
    *,
    all_photos: bool,
    allowed_hosts: frozenset[str],
    licenses: Iterable[str] | None = None,
) -> Iterator[PhotoFile]:
    """The photo files one observation asks for, each already judged fetchable or skipped.

    ``licenses``: fetch only photos under one of these (their own licence, not the
    observation's; "all-rights-reserved" for none); the others are recorded as skipped.
    """
    obs_id = _integer(observation.get("id"))
    if obs_id is None:
        return
    chosen = _photos_in_order(observation)
    for index, (position, photo) in enumerate(chosen if all_photos else chosen[:1]):
        photo_id = _integer(photo.get("id"))
        if photo_id is None:
            continue
        url = str(photo.get("url") or "")
        common = {
            "observation_id": obs_id,
            "photo_id": photo_id,
            "position": position if all_photos else index,
            "license_code": _text(photo.get("license_code")),
            "attribution": _text(photo.get("attribution")),
        }
        code = common["license_code"] or ALL_RIGHTS_RESERVED
        for size in sizes:
            if licenses is not None and code not in licenses:
                yield PhotoFile(
                    **common,
                    size=size,
                    url=url[:2000],
                    path=None,
                    status="skipped",
                    reason=f"photo licence {code} not asked for",
                )
            else:
                yield _judge(url, size, allowed_hosts, common)


def _judge(url: str, size: str, allowed_hosts: frozenset[str], common: dict) -> PhotoFile:
    if is_placeholder(url):
        return PhotoFile(
            **common,
            size=size,
            url=url,
            path=None,
            status="skipped",
            reason="placeholder (hidden or missing photo)",
        )
    try:
        sized, ext = size_url(url, size)
    except ValueError as exc:
        return PhotoFile(**common, size=size, url=url[:2000], path=None, status="skipped", reason=str(exc))
    if urlsplit(sized).hostname not in allowed_hosts:
        return PhotoFile(
            **common, size=size, url=sized, path=None, status="skipped", reason="photo host not allowed"
        )
    path = photo_path(common["photo_id"], size, ext)
    return PhotoFile(**common, size=size, url=sized, path=path, status="pending", reason=None)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def looks_like_image(head: bytes) -> bool:
    return head.startswith(SIGNATURES)
