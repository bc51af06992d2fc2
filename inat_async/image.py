"""What a photo file is judged by: its first bytes, and how large its size can make it.

A body is an image when it starts with an image signature, whatever its Content-Type says
(S3 serves objects stored without a type as ``binary/octet-stream``); an HTML, XML or JSON
body is a proxy's or host's error page, whatever it is labelled.
"""

from __future__ import annotations

import math

# The first bytes of the image formats photo hosts serve.
_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a")
#: Bytes enough to tell an image (a WebP file: RIFF, its length, WEBP).
HEAD = 16
#: The longest edge of each size iNaturalist serves; an original is at most 2048 px unless
#: the API's original_dimensions say otherwise.
MAX_EDGE = {"square": 75, "thumb": 100, "small": 240, "medium": 500, "large": 1024, "original": 2048}
# At most: 6 bytes a pixel (a 16-bit RGB PNG stored uncompressed; a JPEG takes far less),
# plus 2 MB of metadata (EXIF, ICC profile, XMP, thumbnails).
_BYTES_PER_PIXEL = 6
_METADATA = 2_000_000


def is_image(head: bytes) -> bool:
    """Whether a body starting with ``head`` is a JPEG, PNG, GIF or WebP file."""
    return head.startswith(_SIGNATURES) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")


def what_came(head: bytes, content_type: str | None) -> str:
    """A body that is not an image, in a few words for photos.csv's reason."""
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    label = f" ({content_type.split(';')[0].strip()})" if content_type else " (no Content-Type)"
    if text.startswith((b"<!doctype html", b"<html", b"<head", b"<body")):
        kind = "an HTML page"
    elif text.startswith(b"<?xml") or text.startswith(b"<"):
        kind = "XML"
    elif text.startswith((b"{", b"[")):
        kind = "JSON"
    elif not head:
        kind = "an empty body"
    else:
        kind = f"not an image (starts {head[:8].hex()})"
    return f"answer is {kind}, not an image{label}"


def byte_cap(size: str, width: int | None = None, height: int | None = None) -> int:
    """The most bytes a file of ``size`` can hold: from the size's pixels, and from the
    original's dimensions when the API gives them."""
    edge = MAX_EDGE[size]
    if not (width and height):
        return edge * edge * _BYTES_PER_PIXEL + _METADATA
    if size == "square":
        pixels = min(edge, width, height) ** 2
    else:
        scale = 1.0 if size == "original" else min(1.0, edge / max(width, height))
        pixels = math.ceil(width * scale) * math.ceil(height * scale)
    return pixels * _BYTES_PER_PIXEL + _METADATA
