"""OUT/webdataset/: the photos of one size as WebDataset shards, for training models.

Each sample is one photo file of ``--webdataset-size`` on disk: ``<key>.<ext>`` (the image as
fetched) and ``<key>.json`` (observation id, photo id, taxon id, name, rank and its
classification, licence, attribution, coordinates), keyed ``<observation id>_<photo id>``;
samples follow the exports' photo order. Shards are ``shard-000000.tar``, ... of
``--shard-size`` samples (the last one may hold fewer), and ``index.parquet`` lists each
sample's shard, key and label (the taxon id) with its name.

A complete shard is not written again while its samples stay as they are: a later run keeps
the complete shards its index lists (when their files are still there, the shard size is the
same and each of their samples is still one of today's with the same json, which the index's
digest of it tells), and puts the samples they do not hold (photos finished since, those of the
last, incomplete shard and those of a shard that had a photo removed, relicensed or otherwise
changed by an --update) into new shards after them. So no sample of a photo no longer done or
selected survives, and every json is today's. Every file is written under a temporary name and
renamed into place.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from inat_async.errors import SettingError, UsageError
from inat_async.exports.taxonomy import RANKS, Lineages
from inat_async.records import _lat_lng
from inat_async.store.files import replacing
from inat_async.store.objects import recorded_store
from inat_async.store.state import State

FOLDER = "webdataset"
INDEX = "index.parquet"
COLUMNS = ("shard", "key", "label", "name", "digest")
IndexRow = tuple[str, int | None, str | None, str]  # key, label, name, digest
MISSING_PYARROW = "WebDataset needs pyarrow for its index: pip install 'inat_async[webdataset]'"


@dataclass(frozen=True)
class Sample:
    key: str
    path: str  # the image, relative to the output folder
    meta: dict[str, Any]  # the json member

    @property
    def text(self) -> bytes:
        return json.dumps(self.meta, ensure_ascii=False, sort_keys=True).encode()

    @property
    def digest(self) -> str:
        """What a kept shard's sample is compared by: its json and its image's path."""
        return hashlib.sha256(self.text + b"\0" + self.path.encode()).hexdigest()[:32]

    @property
    def ext(self) -> str:
        return PurePosixPath(self.path).suffix.lstrip(".").lower()


def write_webdataset(state: State, out: Path, size: str, shard_size: int) -> Path:
    """Write the shards not complete yet and the index; return the folder."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise UsageError(MISSING_PYARROW) from None
    _check_files_of(state, out, size)
    folder = out / FOLDER
    folder.mkdir(exist_ok=True)
    kept = _unchanged(_complete_shards(folder, shard_size, size), state, out, size)
    held = {row[0] for keys in kept.values() for row in keys}
    rows = [(shard, *row) for shard, keys in kept.items() for row in keys]
    batch: list[Sample] = []
    numbers = _free_numbers(set(kept))
    for sample in _samples(state, out, size):
        if sample.key in held:
            continue
        batch.append(sample)
        if len(batch) == shard_size:
            rows += _write_shard(folder, out, next(numbers), batch)
            batch = []
    if batch:
        rows += _write_shard(folder, out, next(numbers), batch)
    rows.sort(key=lambda row: row[0])
    table = pa.table(
        {name: [row[i] for row in rows] for i, name in enumerate(COLUMNS)},
        schema=pa.schema(
            [
                ("shard", pa.int64()),
                ("key", pa.string()),
                ("label", pa.int64()),
                ("name", pa.string()),
                ("digest", pa.string()),
            ],
            metadata={"inat_async.shard_size": str(shard_size), "inat_async.size": size},
        ),
    )
    with replacing(folder / INDEX) as part:
        pq.write_table(table, part)
    _remove_unlisted_shards(folder, {row[0] for row in rows})
    return folder


def _check_files_of(state: State, out: Path, size: str) -> None:
    """Refuse a size the harvest has no files of, and files that are not in ``out`` (a
    harvest whose photos went to a --store): either would write an empty dataset."""
    sizes = state.photo_sizes()
    if sizes and size not in sizes:
        raise SettingError(
            "webdataset_size", f"this harvest has no {size} files; its sizes: {', '.join(sizes)}"
        )
    first = next(state.files_of_size(size, limit=1), None)
    store = recorded_store(state)
    if first is not None and store is not None:
        raise UsageError(
            f"the {size} files of {out} are in {store} (its --store), not in it: "
            "the WebDataset is written from files in the output folder"
        )
    if first is not None and not (out / first.path).is_file():
        raise UsageError(
            f"the {size} files of {out} are not in it (stored elsewhere with --store?): "
            f"the WebDataset is written from files in the output folder"
        )


def _remove_unlisted_shards(folder: Path, listed: set[int]) -> None:
    """Shards of an earlier index the new one does not list (another size, or an incomplete
    last shard written again under another number): a reader of the folder must not take them."""
    for shard in folder.glob("shard-*.tar"):
        number = shard.stem.removeprefix("shard-")
        if number.isdigit() and shard.name == shard_name(int(number)) and int(number) not in listed:
            shard.unlink()


def shard_name(number: int) -> str:
    return f"shard-{number:06d}.tar"


def _free_numbers(taken: set[int]) -> Iterator[int]:
    number = 0
    while True:
        if number not in taken:
            yield number
        number += 1


def _unchanged(
    shards: dict[int, list[IndexRow]], state: State, out: Path, size: str
) -> dict[int, list[IndexRow]]:
    """The complete shards each of whose samples is one of today's with the same digest: a
    shard holding a photo removed, no longer selected or changed (licence, attribution,
    taxon...) is not kept, and its other samples go into new shards."""
    if not shards:
        return {}
    listed = {row[0]: row[3] for keys in shards.values() for row in keys}
    same = {s.key for s in _samples(state, out, size) if listed.get(s.key) == s.digest}
    return {shard: keys for shard, keys in shards.items() if all(row[0] in same for row in keys)}


def _complete_shards(folder: Path, shard_size: int, size: str) -> dict[int, list[IndexRow]]:
    """The shards an earlier run completed: (key, label, name, digest) of each, by shard number;
    none when there is no index, it was written with another shard size or photo size, or
    before the index had digests."""
    import pyarrow.parquet as pq

    index = folder / INDEX
    if not index.is_file():
        return {}
    try:
        table = pq.read_table(index)
    except (OSError, ValueError):  # damaged: every shard is written again
        return {}
    written = table.schema.metadata or {}
    if written.get(b"inat_async.shard_size") != str(shard_size).encode():
        return {}
    if written.get(b"inat_async.size") != size.encode():
        return {}
    if "digest" not in table.column_names:
        return {}
    shards: dict[int, list[IndexRow]] = {}
    for shard, *row in zip(*(table.column(c).to_pylist() for c in COLUMNS), strict=True):
        shards.setdefault(shard, []).append((row[0], row[1], row[2], row[3]))
    return {
        shard: keys
        for shard, keys in shards.items()
        if len(keys) == shard_size and (folder / shard_name(shard)).is_file()
    }


def _write_shard(folder: Path, out: Path, number: int, samples: list[Sample]) -> list[tuple[Any, ...]]:
    """One tar of samples, each its image then its json; return its index rows."""
    with (
        replacing(folder / shard_name(number)) as part,
        tarfile.open(part, "w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for sample in samples:
            image = out / sample.path
            _add(tar, f"{sample.key}.{sample.ext}", image.read_bytes(), image.stat().st_mtime)
            _add(tar, f"{sample.key}.json", sample.text, image.stat().st_mtime)
    return [(number, s.key, s.meta["taxon_id"], s.meta["scientific_name"], s.digest) for s in samples]


def _add(tar: tarfile.TarFile, name: str, data: bytes, mtime: float) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = int(mtime)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def _samples(state: State, out: Path, size: str) -> Iterator[Sample]:
    """The photo files of ``size`` on disk with their observation, in the exports' order
    (by observation id): a merge of the two ordered streams."""
    lineages = Lineages.of_state(state)
    observations = state.raw_observations()
    current: Mapping[str, Any] | None = next(observations, None)
    for file in state.files_of_size(size):
        while current is not None and current["id"] < file.observation_id:
            current = next(observations, None)
        if current is None or current["id"] != file.observation_id or not (out / file.path).is_file():
            continue
        yield Sample(f"{file.observation_id}_{file.photo_id}", file.path, _meta(current, file, lineages))


def _meta(obs: Mapping[str, Any], file: Any, lineages: Lineages) -> dict[str, Any]:
    found = obs.get("taxon")
    taxon: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    lineage = lineages.of(taxon.get("id"))
    lat, lng = _lat_lng(obs.get("location"))
    return {
        "observation_id": obs["id"],
        "photo_id": file.photo_id,
        "taxon_id": taxon.get("id") if isinstance(taxon.get("id"), int) else None,
        "scientific_name": taxon.get("name") if isinstance(taxon.get("name"), str) else None,
        "rank": taxon.get("rank") if isinstance(taxon.get("rank"), str) else None,
        "common_name": lineage.common_name or _text(taxon.get("preferred_common_name")),
        "ranks": {rank: lineage.names.get(rank) for rank in RANKS},
        "license_code": file.license_code,
        "attribution": file.attribution,
        "latitude": lat,
        "longitude": lng,
        "quality_grade": obs.get("quality_grade") if isinstance(obs.get("quality_grade"), str) else None,
        "observed_on": obs.get("observed_on") if isinstance(obs.get("observed_on"), str) else None,
    }


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None
