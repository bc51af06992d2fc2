"""Deterministic stand-in image files that are real images.

The simulated photo hosts must answer plausible files fast and without storing anything. Each
file is a decodable image of its rendition's dimensions (a baseline JPEG, a PNG or a GIF, as
its extension says) in one flat colour set by its key, so users and tests can open, thumbnail
and train on what an offline harvest gives. A flat image compresses to almost nothing and is
written here without an imaging library: its JPEG scan is the first block's bits and then
zeros, each size's images are cached (a few dozen colours). Each file is then padded to the length its
photo is given (a slice of one pool of random bytes in a JPEG comment, a private PNG chunk or
a GIF comment, all of which decoders skip), so lengths still vary per photo and grow with the
size name like real iNaturalist renditions.
"""

from __future__ import annotations

import functools
import itertools
import random
import struct
import zlib
from collections.abc import Callable

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


def colour(key: int) -> tuple[int, int, int]:
    """The flat colour of a photo: an earthy, leafy or watery tone set by its key."""
    return _COLOURS[key % len(_COLOURS)]


_TONES = ((96, 128, 64), (64, 96, 128), (140, 110, 80), (200, 180, 90), (60, 140, 120), (170, 80, 60))
#: Each tone in 8 shades: 48 colours in all, so that each size's few images can be cached.
_COLOURS = [
    (max(0, r + shade), max(0, g + shade), max(0, b + shade))
    for shade in range(-24, 24, 6)
    for r, g, b in _TONES
]


# -- JPEG: baseline, YCbCr 4:2:0, one flat colour ------------------------------------------------
# Every block of a flat image has only a DC coefficient, and after the first block of each
# component that coefficient repeats: a difference of 0 ("0" in the DC table) and an
# end-of-block ("0" in the AC table). So the scan is the first MCU's bits and then zeros.
_DC_CATEGORY_BITS = 5  # categories 1..8 coded as 10000..10111; category 0 as "0"
_JPEG_TABLES = (
    # quantisation: DC step 8, so a coefficient is (level - 128); the AC steps never matter
    b"\xff\xdb\x00\x43\x00"
    + bytes([8] + [1] * 63)
    # Huffman DC table 0: one code of length 1, eight of length 5; symbols: categories 0..8
    + b"\xff\xc4\x00\x1c\x00"
    + bytes([1, 0, 0, 0, 8] + [0] * 11)
    + bytes(range(9))
    # Huffman AC table 0: end-of-block only, one code of length 1
    + b"\xff\xc4\x00\x14\x10"
    + bytes([1] + [0] * 15)
    + b"\x00"
)
_JPEG_SOS = b"\xff\xda\x00\x0c\x03\x01\x00\x02\x00\x03\x00\x00\x3f\x00"


def _dc_bits(value: int) -> tuple[int, int]:
    """(bits, count) coding a DC difference with the table above."""
    if value == 0:
        return 0, 1
    category = abs(value).bit_length()
    extra = value if value > 0 else value + (1 << category) - 1
    code = 0b10000 | (category - 1)
    return (code << category) | extra, _DC_CATEGORY_BITS + category


def _jpeg_scan(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    r, g, b = rgb
    y = round(0.299 * r + 0.587 * g + 0.114 * b)
    cb = round(128 - 0.168736 * r - 0.331264 * g + 0.5 * b)
    cr = round(128 + 0.5 * r - 0.418688 * g - 0.081312 * b)
    bits, count = 0, 0
    # The first MCU: Y0 (its DC), Y1..Y3 (no change), Cb, Cr; each block then an end-of-block.
    for dc in (y - 128, 0, 0, 0, cb - 128, cr - 128):
        code, length = _dc_bits(dc)
        bits, count = (((bits << length) | code) << 1), count + length + 1
    mcus = -(-width // 16) * -(-height // 16)
    total = count + (mcus - 1) * 12  # every later MCU: six blocks of "0" "0"
    size = -(-total // 8)
    data = bytearray(size)
    head = (bits << (-count % 8)).to_bytes(-(-count // 8), "big")
    data[: len(head)] = head
    data[-1] |= (1 << (size * 8 - total)) - 1  # the last byte is padded with ones
    return bytes(data).replace(b"\xff", b"\xff\x00")


@functools.lru_cache(maxsize=4096)
def _jpeg(width: int, height: int, rgb: tuple[int, int, int]) -> tuple[bytes, bytes]:
    """(head, rest): padding goes between them, as comment segments."""
    frame = b"\xff\xc0\x00\x11\x08" + struct.pack(">HH", height, width)
    frame += b"\x03\x01\x22\x00\x02\x11\x00\x03\x11\x00"
    rest = _JPEG_TABLES + frame + _JPEG_SOS + _jpeg_scan(width, height, rgb) + b"\xff\xd9"
    return _JPEG_HEAD, rest


def _jpeg_padding(filler: bytes) -> bytes:
    """Comment segments of exactly ``len(filler)`` bytes: 4 of marker and length each."""
    segments = -(-len(filler) // (65535 + 2))
    if len(filler) < 4 * segments or not filler:
        return b""
    if segments == 1:  # the usual case, made quick: the simulator serves many a second
        return b"\xff\xfe" + (len(filler) - 2).to_bytes(2, "big") + filler[4:]
    parts = _split(filler[: len(filler) - 4 * segments], segments)
    return b"".join(b"\xff\xfe" + struct.pack(">H", len(part) + 2) + part for part in parts)


_JPEG_HEAD = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"


# -- PNG: one-bit palette, one colour ---------------------------------------------------------
@functools.lru_cache(maxsize=64)
def _png_pixels(width: int, height: int) -> bytes:
    """The IDAT chunk of an image of palette index 0 throughout (one filter byte a row)."""
    return _png_chunk(b"IDAT", zlib.compress(bytes((1 + (width + 7) // 8) * height), 9))


@functools.lru_cache(maxsize=1024)
def _png(width: int, height: int, rgb: tuple[int, int, int]) -> tuple[bytes, bytes]:
    header = _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 3, 0, 0, 0))
    head = b"\x89PNG\r\n\x1a\n" + header + _png_chunk(b"PLTE", bytes(rgb))
    return head, _png_pixels(width, height) + _png_chunk(b"IEND", b"")


def _png_padding(filler: bytes) -> bytes:
    """A private ancillary chunk ("inPd": its lower-case letters tell a decoder to skip it)."""
    return _png_chunk(b"inPd", filler[12:]) if len(filler) >= 12 else b""


# -- GIF: two colours, every pixel the first --------------------------------------------------
@functools.lru_cache(maxsize=64)
def _gif_pixels(width: int, height: int) -> bytes:
    """The image descriptor and LZW data of an image of colour index 0 throughout."""
    data = _lzw_zeros(width * height)
    blocks = b"".join(bytes([len(part)]) + part for part in _split(data, -(-len(data) // 255)))
    return b"\x2c\x00\x00\x00\x00" + struct.pack("<HH", width, height) + b"\x00\x02" + blocks + b"\x00"


def _lzw_zeros(pixels: int) -> bytes:
    """GIF's LZW (minimum code size 2) of ``pixels`` zeros: the table only ever learns longer
    runs of zeros, so the codes are worked out, not searched for."""
    clear, end, first = 4, 5, 6
    codes: list[tuple[int, int]] = [(clear, 3)]
    width, free, longest = 3, first, 1
    while pixels:
        run = min(longest, pixels)
        codes.append((0 if run == 1 else first + run - 2, width))
        pixels -= run
        if free < 4096:
            free, longest = free + 1, run + 1
            # A decoder learns each entry a code later, and widens its codes when its table
            # reaches 1 << width: one entry after this table does.
            if free == (1 << width) + 1 and width < 12:
                width += 1
        else:  # the table is full: start again
            codes.append((clear, width))
            width, free, longest = 3, first, 1
    codes.append((end, width))
    value, shift = 0, 0
    for code, bits in codes:
        value |= code << shift
        shift += bits
    return value.to_bytes(-(-shift // 8), "little")


@functools.lru_cache(maxsize=1024)
def _gif(width: int, height: int, rgb: tuple[int, int, int]) -> tuple[bytes, bytes]:
    head = b"GIF89a" + struct.pack("<HH", width, height) + b"\x80\x00\x00" + bytes(rgb) + b"\x00\x00\x00"
    return head, _gif_pixels(width, height) + b"\x3b"


def _gif_padding(filler: bytes) -> bytes:
    """A comment extension of exactly ``len(filler)`` bytes: 0x21 0xfe, sub-blocks of up to
    255 bytes each after its length byte, and 0x00."""
    content = len(filler) - 3
    blocks = -(-content // 256)
    if content < 2 * blocks or content <= 0:
        return b"\x21\xfe\x00" if content == 0 else b""
    parts = _split(filler[: content - blocks], blocks)
    return b"\x21\xfe" + b"".join(bytes([len(part)]) + part for part in parts) + b"\x00"


def _split(data: bytes, parts: int) -> list[bytes]:
    """``data`` in ``parts`` parts as even as can be."""
    step, extra = divmod(len(data), parts)
    cuts = [i * step + min(i, extra) for i in range(parts + 1)]
    return [data[a:b] for a, b in itertools.pairwise(cuts)]


#: An image of (width, height, colour) as the parts before and after its padding.
_Writer = Callable[[int, int, tuple[int, int, int]], tuple[bytes, bytes]]
_FORMATS: dict[str, tuple[_Writer, Callable[[bytes], bytes]]] = {
    "png": (_png, _png_padding),
    "gif": (_gif, _gif_padding),
}


def image_bytes(key: int, ext: str, width: int, height: int, length: int) -> bytes:
    """A decodable image of ``width`` x ``height`` in one colour, in the format ``ext`` names,
    padded to ``length`` bytes when it is shorter (a comment or an ancillary chunk, which
    decoders skip); same key, same bytes."""
    write, pad = _FORMATS.get(ext.lower(), (_jpeg, _jpeg_padding))
    head, rest = write(width, height, colour(key))
    return head + pad(_filler(key, max(0, length - len(head) - len(rest)))) + rest


def placeholder_png(name: str) -> bytes:
    """The stand-in for a placeholder image such as ``copyright-infringement-square.png``."""
    key = zlib.crc32(name.encode("utf-8"))
    return image_bytes(key, "png", 75, 75, 1_200 + key % 800)
