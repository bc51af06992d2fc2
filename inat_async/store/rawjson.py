"""Each observation's JSON, as the API sent it, kept small: a zstandard frame per observation,
compressed with a dictionary trained on the harvest's own first observations.

Observations of one harvest share most of their keys and many values (taxa, users, licences,
URL prefixes), which a frame of one observation cannot exploit on its own: with a dictionary
trained on a thousand of them a frame is about a quarter of its zlib size, and compressing
and reading it back costs a tenth of zlib's CPU. A frame's header names its dictionary, so
frames written before the dictionary existed (and zlib blobs of state version 5, while they
are upgraded) are read as well.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence

import zstandard

#: Observations stored before a dictionary is trained from them.
TRAIN_AT = 1_000
#: The dictionary's size: larger ones gained nothing on recorded pages.
DICT_SIZE = 64 * 1024
#: zstandard's level: higher ones save a few percent for several times the CPU.
LEVEL = 3
#: The trainer's segment and d-mer sizes, fixed: its search for the best (the default) took
#: four times the CPU and gained nothing on recorded pages.
_SEGMENT, _DMER = 2048, 8
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class RawCodec:
    """Compresses and reads back observations' JSON with the dictionaries a state holds."""

    def __init__(self, dictionaries: Iterable[bytes] = ()) -> None:
        self._readers: dict[int, zstandard.ZstdDecompressor] = {0: zstandard.ZstdDecompressor()}
        self._writer = zstandard.ZstdCompressor(level=LEVEL)
        for data in dictionaries:
            self.add(data)

    @property
    def trained(self) -> bool:
        return len(self._readers) > 1

    def add(self, data: bytes) -> int:
        """Use a dictionary (the newest one added compresses); returns its id."""
        zdict = zstandard.ZstdCompressionDict(data)
        self._readers[zdict.dict_id()] = zstandard.ZstdDecompressor(dict_data=zdict)
        self._writer = zstandard.ZstdCompressor(level=LEVEL, dict_data=zdict)
        return int(zdict.dict_id())

    def compress(self, raw: bytes) -> bytes:
        return self._writer.compress(raw)

    def decompress(self, blob: bytes) -> bytes:
        if not blob.startswith(_ZSTD_MAGIC):
            return zlib.decompress(blob)  # state version 5, until upgraded
        dict_id = zstandard.get_frame_parameters(blob).dict_id
        reader = self._readers.get(dict_id)
        if reader is None:
            raise ValueError(f"an observation compressed with dictionary {dict_id}, which the state lacks")
        return reader.decompress(blob)


def train(samples: Sequence[bytes]) -> bytes | None:
    """A dictionary trained on observations' JSON; None when they are too few or too alike
    to train one (zstandard then refuses)."""
    try:
        return zstandard.train_dictionary(DICT_SIZE, list(samples), k=_SEGMENT, d=_DMER).as_bytes()
    except zstandard.ZstdError:
        return None
