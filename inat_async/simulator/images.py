"""Deterministic stand-in image files.

The simulated photo hosts must answer plausible bytes fast and without storing anything: each
file is a slice of one pool of random bytes, at an offset set by its key, wrapped in a real
signature for its extension (JPEG SOI/JFIF/SOF0 … EOI, PNG signature + IHDR + IDAT + IEND with valid CRCs,
GIF89a header … trailer), so type sniffing and "is it really an image" checks behave as on real
files. Lengths vary per photo and grow with the size name like real iNaturalist renditions.
"""

from __future__ import annotations

import random
import struct
import zlib

#: Size names, smallest first, and the longest edge of each rendition.
SIZES: tuple[str, ...] = ("square", "thumb", "small", "medium", "large", "original")
MAX_EDGE: dict[str, int] = {
    "square": 75,
    "thumb": 100,
    "small": 240,
    "medium": 500,
    "large": 1024,
    "original": 2048,
}

#: (min, max) byte length per size before ``photo_scale``.
SIZE_BYTES: dict[str, tuple[int, int]] = {
    "square": (2_000, 4_000),
    "thumb": (3_000, 6_000),
    "small": (10_000, 20_000),
    "medium": (30_000, 80_000),
    "large": (100_000, 250_000),
    "original": (250_000, 700_000),
}

CONTENT_TYPES: dict[str, str] = {
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "png": "image/png",
    "gif": "image/gif",
}


def content_type(ext: str) -> str:
    """MIME type for a file extension in any case."""
    return CONTENT_TYPES.get(ext.lower(), "application/octet-stream")


def rendition_dimensions(size: str, width: int, height: int) -> tuple[int, int]:
    """Pixel size of a rendition: square is cropped, others fit the edge and are never enlarged."""
    edge = MAX_EDGE[size]
    if size == "square":
        return min(edge, width, height), min(edge, width, height)
    longest = max(width, height)
    if longest <= edge:
        return width, height
    factor = edge / longest
    return max(1, round(width * factor)), max(1, round(height * factor))


def byte_length(size: str, fraction: float, scale: float) -> int:
    """File length for a size, ``fraction`` in [0, 1) placing the photo within the size's range."""
    low, high = SIZE_BYTES[size]
    return max(96, int((low + fraction * (high - low)) * scale))


#: Random bytes that every file takes its filler from (twice over, so any slice up to its
#: length is contiguous): slicing costs a copy, drawing fresh random bytes cost the photo
#: hosts half their time in the benchmarks.
_POOL_BYTES = 4 * 1024 * 1024
_POOL = random.Random(0x1A7).randbytes(_POOL_BYTES) * 2


def _filler(key: int, length: int) -> bytes:
    # Files of nearby keys overlap in the pool (one is another shifted): no matter for a
    # stand-in, since each file's bytes are still fixed by its key.
    if length > _POOL_BYTES:  # larger than any real photo: rare, so drawn afresh
        return random.Random(key).randbytes(length)
    start = key % _POOL_BYTES
    return _POOL[start : start + length]


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def _jpeg(filler: bytes, width: int, height: int, length: int) -> bytes:
    head = (
        b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
        + b"\xff\xc0\x00\x11\x08"
        + struct.pack(">HH", height, width)
        + b"\x03\x01\x22\x00\x02\x11\x01\x03\x11\x01"
    )
    tail = b"\xff\xd9"
    return head + filler[: length - len(head) - len(tail)] + tail


def _png(filler: bytes, width: int, height: int, length: int) -> bytes:
    head = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    tail = _png_chunk(b"IEND", b"")
    payload = length - len(head) - len(tail) - 12
    return head + _png_chunk(b"IDAT", filler[:payload]) + tail


def _gif(filler: bytes, width: int, height: int, length: int) -> bytes:
    head = b"GIF89a" + struct.pack("<HH", width, height) + b"\x00\x00\x00"
    tail = b";"
    return head + filler[: length - len(head) - len(tail)] + tail


def image_bytes(key: int, ext: str, width: int, height: int, length: int) -> bytes:
    """A file of exactly ``length`` bytes with the signature for ``ext``; same key, same bytes."""
    filler = _filler(key, length)
    kind = ext.lower()
    if kind == "png":
        return _png(filler, width, height, length)
    if kind == "gif":
        return _gif(filler, width, height, length)
    return _jpeg(filler, width, height, length)


def placeholder_png(name: str) -> bytes:
    """The stand-in for a placeholder image such as ``copyright-infringement-square.png``."""
    key = zlib.crc32(name.encode("utf-8"))
    return image_bytes(key, "png", 75, 75, 1_200 + key % 800)
