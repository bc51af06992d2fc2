"""Tests of the offline iNaturalist simulator, over real loopback sockets."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from email.utils import parsedate_to_datetime
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest

from inat_async.simulator import FAULT_KINDS, Faults, RateLimit, Simulator, SimulatorThread, World
from inat_async.simulator.images import SIZES
from inat_async.simulator.templates import result_window_body
from inat_async.simulator.text import TRICKY_NA

PLACES = {128892: 400, 1001: 250, 1002: 150}
DEFAULT_FILTERS = {"geo": "true", "identified": "true", "rank": "species"}
SIGNATURES = {
    "jpg": b"\xff\xd8\xff\xe0",
    "jpeg": b"\xff\xd8\xff\xe0",
    "png": b"\x89PNG\r\n\x1a\n",
    "gif": b"GIF89a",
}


@pytest.fixture(scope="module")
def world() -> World:
    return World(PLACES, seed=7)


def run(coro_fn: Callable[..., Any], world: World, **kwargs: Any) -> Any:
    """Run ``coro_fn(sim, session)`` against a fresh simulator of ``world``."""

    async def main() -> Any:
        async with Simulator(world, **kwargs) as sim, aiohttp.ClientSession() as session:
            return await coro_fn(sim, session)

    return asyncio.run(main())


async def get(
    session: aiohttp.ClientSession, url: str, params: Mapping[str, str] | None = None
) -> tuple[int, Mapping[str, str], bytes]:
    async with session.get(url, params=params) as response:
        return response.status, response.headers, await response.read()


async def get_json(
    session: aiohttp.ClientSession, url: str, params: Mapping[str, str] | None = None
) -> tuple[int, Any]:
    status, headers, body = await get(session, url, params)
    assert headers["Content-Type"] == "application/json; charset=utf-8"
    return status, json.loads(body)


async def keyset(sim: Simulator, session: aiohttp.ClientSession, params: dict[str, str]) -> list:
    """All results of a query by id_above paging, as a harvester does it."""
    results: list[dict[str, Any]] = []
    last = 0
    while True:
        query = {**params, "order_by": "id", "order": "asc", "per_page": "200", "id_above": str(last)}
        status, page = await get_json(session, sim.api_url + "/observations", query)
        assert status == 200
        if not page["results"]:
            return results
        results.extend(page["results"])
        last = page["results"][-1]["id"]


async def raw_get(url: str) -> tuple[bytes, bytes, Exception | None]:
    """GET over a bare socket: the head, the body bytes received, and how reading ended."""
    parsed = urlsplit(url)
    reader, writer = await asyncio.open_connection(parsed.hostname, parsed.port)
    target = parsed.path + (f"?{parsed.query}" if parsed.query else "")
    writer.write(f"GET {target} HTTP/1.1\r\nHost: {parsed.netloc}\r\n\r\n".encode())
    data, error = b"", None
    try:
        while chunk := await reader.read(65536):
            data += chunk
    except ConnectionResetError as exc:
        error = exc
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return head, body, error


def matches(obs: dict[str, Any], params: Mapping[str, str]) -> bool:
    """The filters, read off the served JSON (an independent check of the world's arrays)."""

    def flag(name: str) -> bool:
        return params[name].lower() == "true"

    def values(name: str) -> set[str] | None:
        return set(params[name].lower().split(",")) if name in params else None

    taxon = obs["taxon"]
    checks = []
    if "place_id" in params:
        checks.append(bool({int(p) for p in params["place_id"].split(",")} & set(obs["place_ids"])))
    if "geo" in params:
        checks.append((obs["location"] is not None) == flag("geo"))
    if "identified" in params:
        checks.append((taxon is not None) == flag("identified"))
    if (ranks := values("rank")) is not None:
        checks.append(taxon is not None and taxon["rank"] in ranks)
    if "taxon_id" in params:
        wanted = {int(t) for t in params["taxon_id"].split(",")}
        checks.append(taxon is not None and bool(wanted & set(taxon["ancestor_ids"])))
    if (grades := values("quality_grade")) is not None:
        checks.append(obs["quality_grade"] in grades)
    if (licenses := values("license")) is not None:
        checks.append((obs["license_code"] or "") in licenses)
    if (photo_licenses := values("photo_license")) is not None:
        checks.append(any((p["license_code"] or "") in photo_licenses for p in obs["photos"]))
    if "photos" in params:
        checks.append(bool(obs["photos"]) == flag("photos"))
    if "updated_since" in params:
        since = datetime.fromisoformat(params["updated_since"])
        checks.append(datetime.fromisoformat(obs["updated_at"]) >= since)
    return all(checks)


# ---------------------------------------------------------------------- the world


def test_fixtures_are_small_and_documented() -> None:
    folder = resources.files("inat_async.simulator").joinpath("fixtures")
    files = [f for f in folder.iterdir() if f.name != "SOURCES.md"]
    sources = folder.joinpath("SOURCES.md").read_text(encoding="utf-8")
    assert files
    for f in files:
        assert f"`{f.name}`" in sources
    assert sum(len(f.read_bytes()) for f in files) < 1_000_000
    assert json.loads(result_window_body()) == {
        "error": "Result window is too large, page * per_page must be less than or equal to 10000",
        "status": 403,
    }


def test_world_is_deterministic(world: World) -> None:
    twin = World(PLACES, seed=7)
    other = World(PLACES, seed=8)
    assert twin.ids == world.ids
    first = world.ids[5]
    assert twin.observation_json(first) == world.observation_json(first)
    assert other.ids != world.ids
    photo = next(p for i in world.ids for p in world.photo_ids(i))
    assert twin.photo_bytes(photo, "small") == world.photo_bytes(photo, "small")


def test_world_shape(world: World) -> None:
    observations = list(world.observations())
    ids = [o["id"] for o in observations]
    assert len(ids) == len(world) == sum(PLACES.values())
    assert ids == sorted(ids) and ids[0] >= 10_000_000
    assert any(b - a > 1 for a, b in itertools.pairwise(ids))  # gaps
    sizes = [len(json.dumps(o, ensure_ascii=False)) for o in observations]
    print(f"observation JSON: min {min(sizes)} mean {sum(sizes) / len(sizes):.0f} max {max(sizes)}")
    assert 3_000 <= sum(sizes) / len(sizes) <= 10_000

    photo_ids = [p["id"] for o in observations for p in o["photos"]]
    assert len(photo_ids) == len(set(photo_ids)) == world.photo_count
    assert any(not o["photos"] for o in observations)
    for o in observations:
        assert [op["position"] for op in o["observation_photos"]] == list(range(len(o["photos"])))
        assert [op["photo"] for op in o["observation_photos"]] == o["photos"]
        assert set(o["place_ids"]) & {6712, 97394, 1, 59613, 66741, 82256, 97389, 7953}
        assert o["uri"].endswith(f"/observations/{o['id']}")
        assert o["user"]["login"] and len(o["uuid"]) == 36
        for p in o["photos"]:
            url = p["url"]
            assert "/square." in url or "-square.png" in url or "/square.png" in url
            if "/assets/" in url or "/attachment_defaults/" in url:
                continue
            ext = url.rsplit(".", 1)[1].split("?")[0]
            assert ext in ("jpg", "jpeg", "png", "gif", "JPG", "JPEG")
            if p["license_code"] is None:
                assert url.startswith("https://static.inaturalist.org/photos/")
                assert p["attribution"].endswith("all rights reserved")
            else:
                assert url.startswith("https://inaturalist-open-data.s3.amazonaws.com/photos/")
    seen = {
        "private": any(o["location"] is None and o["geojson"] is None for o in observations),
        "no taxon": any(o["taxon"] is None for o in observations),
        "genus": any(o["taxon"] and o["taxon"]["rank"] == "genus" for o in observations),
        "obscured": any(o["obscured"] for o in observations),
        "no time": any(o["time_observed_at"] is None for o in observations),
        "arr": any(o["license_code"] is None for o in observations),
        "no community": any(o["community_taxon_id"] is None for o in observations),
        "old url": any("?" in p["url"] for o in observations for p in o["photos"]),
        "placeholder": any("/assets/" in p["url"] for o in observations for p in o["photos"]),
        "upper ext": any(p["url"].endswith((".JPG", ".JPEG")) for o in observations for p in o["photos"]),
        "casual": any(o["quality_grade"] == "casual" for o in observations),
    }
    assert all(seen.values()), seen
    guesses = [o["species_guess"] for o in observations]
    assert None in guesses
    text = "".join(g for g in guesses if g)
    for hard in (",", '"', "\t", "\n", "\r\n", "🍄", "毒", "ع", "è"):
        assert hard in text, hard
    assert any(g and g != g.strip() for g in guesses)
    assert not set(guesses) & set(TRICKY_NA)
    failing = sum(not matches(o, DEFAULT_FILTERS) for o in observations)
    assert 0.03 * len(ids) < failing < 0.25 * len(ids)


def test_world_places_overlap(world: World) -> None:
    first = set(world.place_members(128892))
    second = set(world.place_members(1001))
    third = set(world.place_members(1002))
    assert len(first) == 400
    assert 0.1 * 400 < len(first & second) < 0.3 * 400
    assert len(second) == 250 + len(first & second)
    assert not first & third


def test_tricky_na_option() -> None:
    tricky = World({5: 400}, seed=1, tricky_na=True)
    guesses = {o["species_guess"] for o in tricky.observations()}
    assert guesses & set(TRICKY_NA)


def test_world_mutations() -> None:
    w = World({1: 50, 2: 50}, seed=3)
    before = time.time()
    new = w.add_observations(2, 5)
    assert len(new) == 5 and min(new) > max(w.ids[:100])
    assert set(new) <= set(w.place_members(2))
    since = datetime.fromtimestamp(int(before)).astimezone().isoformat()
    assert set(w.matching_ids({"updated_since": since})) == set(new)
    target = w.ids[3]
    w.edit(target, quality_grade="casual", species_guess='edited, "quoted"', location=None)
    obs = w.observation_json(target)
    assert obs["species_guess"] == 'edited, "quoted"' and obs["location"] is None
    assert target in w.matching_ids({"updated_since": since, "quality_grade": "casual"})
    assert target not in w.matching_ids({"geo": "true"})
    w.edit(target, taxon_id=None)
    assert w.observation_json(target)["taxon"] is None
    assert target in w.matching_ids({"identified": "false"})


# ---------------------------------------------------------------------- the API


def test_paging_rules(world: World) -> None:
    async def check(sim: Simulator, s: aiohttp.ClientSession) -> None:
        url = sim.api_url + "/observations"
        status, page = await get_json(s, url)
        assert status == 200 and page["per_page"] == 30 and len(page["results"]) == 30
        assert page["total_results"] == len(world) and page["page"] == 1
        created = [datetime.fromisoformat(o["created_at"]) for o in page["results"]]
        assert created == sorted(created, reverse=True)

        _, page = await get_json(s, url, {"per_page": "500"})
        assert page["per_page"] == 200 and len(page["results"]) == 200

        _, page = await get_json(s, url, {"per_page": "0", "place_id": "1001"})
        assert page["results"] == [] and page["total_results"] == len(world.place_members(1001))

        status, _, body = await get(s, url, {"per_page": "200", "page": "51"})
        assert status == 403 and body == result_window_body()
        status, _, body = await get(s, url, {"per_page": "100", "page": "101"})
        assert status == 403
        status, page = await get_json(s, url, {"per_page": "200", "page": "50"})
        assert status == 200 and page["results"] == []

        ids = world.ids
        _, page = await get_json(
            s, url, {"order_by": "id", "order": "asc", "id_above": str(ids[10]), "per_page": "5"}
        )
        assert [o["id"] for o in page["results"]] == ids[11:16]
        _, page = await get_json(s, url, {"order_by": "id", "id_below": str(ids[10]), "per_page": "5"})
        assert [o["id"] for o in page["results"]] == ids[9:4:-1]
        _, page = await get_json(s, url, {"order_by": "id", "id_above": str(ids[3]), "id_below": str(ids[6])})
        assert [o["id"] for o in page["results"]] == [ids[5], ids[4]]
        _, page = await get_json(s, url, {"order_by": "id", "order": "asc", "page": "2", "per_page": "7"})
        assert [o["id"] for o in page["results"]] == ids[7:14]

        _, asc = await get_json(s, url, {"order_by": "updated_at", "order": "asc", "per_page": "50"})
        times = [datetime.fromisoformat(o["updated_at"]) for o in asc["results"]]
        assert times == sorted(times)

        _, page = await get_json(s, url, {"only_id": "true", "per_page": "3", "order_by": "id"})
        assert page["results"] == [{"id": i} for i in ids[:-4:-1]]

        status, page = await get_json(s, url, {"place_id": "999999"})
        assert status == 422 and page == {"error": "Unknown place_id 999999", "status": 422}
        status, page = await get_json(s, url, {"place_id": "abc"})
        assert status == 422 and page["status"] == 422
        status, page = await get_json(s, url, {"place_id": "999999,1001", "per_page": "0"})
        assert status == 200 and page["total_results"] == len(world.place_members(1001))
        status, page = await get_json(s, url, {"place_id": "999998,999999"})
        assert status == 200 and page["total_results"] == 0 and page["results"] == []
        status, page = await get_json(s, url, {"taxon_id": "1"})
        assert status == 422 and page == {"error": "Unknown taxon_id 1", "status": 422}
        status, page = await get_json(s, url, {"no_such_param": "x", "per_page": "0"})
        assert status == 200 and page["total_results"] == len(world)

        status, _, _ = await get(s, sim.api_url + "/nothing")
        assert status == 404

    run(check, world)


QUERIES = [
    {"place_id": "128892", **DEFAULT_FILTERS},
    {"place_id": "1001,1002", "quality_grade": "research,needs_id"},
    {"taxon_id": "47393,58679", "photos": "true"},
    {"license": "cc0,cc-by", "geo": "TRUE"},
    {"photo_license": "cc-by-nc", "identified": "false"},
    {"rank": "genus,section"},
    {"updated_since": "2020-06-01T00:00:00+02:00", "place_id": "1002"},
    {"photos": "false"},
]


@pytest.mark.parametrize("params", QUERIES, ids=[",".join(q) for q in QUERIES])
def test_keyset_paging_returns_exactly_the_matching_ids(world: World, params: dict) -> None:
    async def check(sim: Simulator, s: aiohttp.ClientSession) -> None:
        results = await keyset(sim, s, params)
        ids = [o["id"] for o in results]
        assert ids == world.matching_ids(params)
        assert ids, "query should match something"
        expected = [o["id"] for o in world.observations() if matches(o, params)]
        assert ids == expected
        _, page = await get_json(s, sim.api_url + "/observations", {**params, "per_page": "1"})
        assert page["total_results"] == len(ids)

    run(check, world)


# ---------------------------------------------------------------------- photos


def test_photo_files(world: World) -> None:
    async def check(sim: Simulator, s: aiohttp.ClientSession) -> None:
        _, page = await get_json(s, sim.api_url + "/observations", {"per_page": "200"})
        photos = [p for o in page["results"] for p in o["photos"]]
        real = [p for p in photos if "/photos/" in p["url"]]
        placeholders = [p for p in photos if "/photos/" not in p["url"]]
        exts_seen = set()
        for photo in real[:40]:
            base = photo["url"].split("?")[0]
            ext = base.rsplit(".", 1)[1]
            lengths = []
            for size in ("square", "thumb", "small", "medium", "large", "original"):
                url = base.replace("/square.", f"/{size}.")
                status, headers, body = await get(s, url)
                expected = world.photo_status(photo["id"], size)
                assert status == expected, (url, status)
                if status != 200:
                    continue
                exts_seen.add(ext.lower())
                assert int(headers["Content-Length"]) == len(body)
                assert body.startswith(SIGNATURES[ext.lower()])
                assert body == world.photo_bytes(photo["id"], size)
                if ext.lower() in ("jpg", "jpeg"):
                    assert body.endswith(b"\xff\xd9")
                    assert headers["Content-Type"] == "image/jpeg"
                lengths.append(len(body))
            assert lengths == sorted(lengths)
        assert exts_seen >= {"jpg", "jpeg"}

        # a placeholder is a small PNG on the API host
        assert placeholders or world.placeholder_rate == 0
        for photo in placeholders:
            status, headers, body = await get(s, photo["url"])
            assert status == 200 and body.startswith(SIGNATURES["png"])
            status, _, _ = await get(s, photo["url"].replace("square", "medium"))
            assert status == 200

        # wrong host (a licence change moved it), wrong extension, unknown id
        photo = next(p for p in real if p["license_code"] is not None)
        moved = photo["url"].replace(sim.hosts["open"], sim.hosts["static"]).split("?")[0]
        assert (await get(s, moved))[0] == 403
        wrong_ext = photo["url"].split("?")[0].rsplit(".", 1)[0] + ".tiff"
        assert (await get(s, wrong_ext))[0] == 404
        assert (await get(s, sim.hosts["open"] + "/photos/1/square.jpg"))[0] == 404

        # a byte range, as a resuming downloader asks
        url = real[0]["url"].split("?")[0]
        status, _, whole = await get(s, url)
        async with s.get(url, headers={"Range": "bytes=10-"}) as response:
            assert response.status == 206
            assert await response.read() == whole[10:]

    run(check, world, photo_limit=None)


def test_missing_sizes_answer_404_and_403() -> None:
    w = World({3: 120}, seed=2, missing_size_rate=0.3, placeholder_rate=0.0)
    pairs = [(p, size) for i in w.ids for p in w.photo_ids(i) for size in ("small", "large")]
    statuses = {w.photo_status(p, size) for p, size in pairs}
    assert statuses == {200, 403, 404}

    async def check(sim: Simulator, s: aiohttp.ClientSession) -> None:
        seen = set()
        for photo_id, size in pairs[:60]:
            info = w.photo_info(photo_id)
            assert info is not None
            url = f"{sim.hosts[info.host]}/photos/{photo_id}/{size}.{info.ext}"
            status, _, _ = await get(s, url)
            assert status == w.photo_status(photo_id, size)
            assert (status == 200) == (w.photo_bytes(photo_id, size) is not None)
            seen.add(status)
        assert seen == {200, 403, 404}

    run(check, w)


# ---------------------------------------------------------------------- misbehaviour


def test_each_fault_kind_is_observable(world: World) -> None:
    async def check(sim: Simulator, s: aiohttp.ClientSession) -> None:
        url = sim.api_url + "/observations"
        faults = Faults(slow_delay=0.3, retry_after=2)
        sim.faults = faults
        faults.inject("api", *FAULT_KINDS)
        expected = {"500": 500, "502": 502, "503": 503, "504": 504, "429": 429}
        for kind in FAULT_KINDS:
            started = time.monotonic()
            try:
                async with s.get(url, params={"per_page": "50"}) as r:
                    status, headers = r.status, r.headers
                    body = await r.read()
                error = None
            except aiohttp.ClientPayloadError as exc:
                error = exc
            elapsed = time.monotonic() - started
            if kind in expected:
                assert status == expected[kind] and error is None
            if kind == "500":
                assert json.loads(body)["error"].startswith("Elasticsearch error")
            if kind in ("503", "429"):
                assert headers["Retry-After"] == "2"
            if kind == "429-no-retry-after":
                assert status == 429 and "Retry-After" not in headers
            if kind in ("reset", "truncated"):
                assert error is not None, kind
            if kind == "stall":  # half the body, then nothing for slow_delay, then a close
                assert error is not None and elapsed >= 0.3
            if kind == "slow":
                assert status == 200 and elapsed >= 0.3
            if kind == "html":
                assert status == 200 and headers["Content-Type"].startswith("text/html")
                assert body.lstrip().startswith(b"<!DOCTYPE html>")
        assert [r.fault for r in sim.log] == list(FAULT_KINDS)
        # on the wire: a reset is an RST after part of the body, truncated a clean close
        for kind in ("reset", "truncated"):
            faults.inject("api", kind)
            head, body, error = await raw_get(url + "?per_page=50")
            assert head.startswith(b"HTTP/1.1 200")
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            assert 0 < len(body) < length
            assert isinstance(error, ConnectionResetError) == (kind == "reset"), (kind, error)
        # transient: without scripted faults the same request succeeds
        status, _, _ = await get(s, url)
        assert status == 200

        # photo faults are separate from API faults
        _, page = await get_json(s, url, {"per_page": "50"})
        photo = next(p["url"] for o in page["results"] for p in o["photos"] if "/photos/" in p["url"])
        faults.inject("photo", "500", "html", "truncated")
        assert (await get(s, photo))[0] == 500
        status, headers, _ = await get(s, photo)
        assert status == 200 and headers["Content-Type"].startswith("text/html")
        with pytest.raises(aiohttp.ClientPayloadError):
            await get(s, photo)
        status, headers, body = await get(s, photo)
        assert status == 200 and int(headers["Content-Length"]) == len(body)

        # random faults at a rate: some fail, retries get through
        sim.faults = Faults(api={"500": 0.3, "503": 0.2}, seed=5)
        statuses = [(await get(s, url, {"per_page": "1"}))[0] for _ in range(60)]
        assert statuses.count(200) > 10 and {500, 503} <= set(statuses)

    run(check, world)


def test_rate_limit(world: World) -> None:
    async def check(sim: Simulator, s: aiohttp.ClientSession) -> None:
        url = sim.api_url + "/observations"
        params = {"per_page": "0"}
        sim.api_limit = RateLimit(3, 0.5, retry_after=2)
        statuses = [(await get(s, url, params))[0] for _ in range(5)]
        assert statuses == [200, 200, 200, 429, 429]
        assert sim.violations == 2
        assert [r.retry_after for r in sim.log[-2:]] == ["2", "2"]
        await asyncio.sleep(0.55)
        assert (await get(s, url, params))[0] == 200

        sim.api_limit = RateLimit(1, 5.0, retry_after="http-date")
        await get(s, url, params)
        status, headers, _ = await get(s, url, params)
        assert status == 429
        when = parsedate_to_datetime(headers["Retry-After"])
        assert 0 < when.timestamp() - time.time() < 10

        sim.api_limit = RateLimit(1, 5.0, retry_after=None)
        status, headers, _ = await get(s, url, params)
        assert status == 429 and "Retry-After" not in headers

        before = sim.violations
        sim.api_limit = RateLimit(1, 5.0, enforce=False)
        assert (await get(s, url, params))[0] == 200
        assert sim.violations == before + 1

        # photo limits count each photo host separately, and not the API
        sim.api_limit = None
        sim.photo_limit = RateLimit(2, 5.0, retry_after=1.5)
        info = [world.photo_info(p) for i in world.ids for p in world.photo_ids(i)]
        open_photo = next(p for p in info if p and p.host == "open")
        static_photo = next(p for p in info if p and p.host == "static")
        for photo in (open_photo, static_photo):
            url = f"{sim.hosts[photo.host]}/photos/{photo.id}/thumb.{photo.ext}"
            statuses = [(await get(s, url))[0] for _ in range(3)]
            assert statuses[2] == 429 and 429 not in statuses[:2]
            assert sim.log[-1].retry_after == "1.5"
        assert (await get(s, sim.api_url + "/observations", params))[0] == 200

    run(check, world)


def test_blocked_and_latency(world: World) -> None:
    async def check(sim: Simulator, s: aiohttp.ClientSession) -> None:
        url = sim.api_url + "/observations"
        started = time.monotonic()
        assert (await get(s, url, {"per_page": "1"}))[0] == 200
        assert time.monotonic() - started >= 0.2
        sim.api_latency = 0.0
        sim.blocked = True
        for target in (url, sim.hosts["open"] + "/photos/1/square.jpg"):
            status, headers, body = await get(s, target)
            assert status == 403 and headers["Content-Type"].startswith("text/html")
            assert b"This IP has been blocked" in body
        sim.blocked = False
        assert (await get(s, url, {"per_page": "1"}))[0] == 200

    run(check, world, api_latency=0.2)


def test_simulator_thread(world: World) -> None:
    with SimulatorThread(world, api_limit=RateLimit(100, 60)) as sim:
        assert sim.api_url.startswith("http://127.0.0.1:") and sim.api_url.endswith("/v1")

        async def fetch() -> list[int]:
            async with aiohttp.ClientSession() as s:
                out = [(await get(s, sim.api_url + "/observations", {"per_page": "2"}))[0]]
                sim.blocked = True
                out.append((await get(s, sim.api_url + "/observations"))[0])
                sim.blocked = False
                return out

        assert asyncio.run(fetch()) == [200, 403]
        log = sim.log
        assert [r.status for r in log] == [200, 403] and log[0].query == {"per_page": "2"}
        assert log[0].time <= log[1].time <= time.monotonic()
        log.clear()
        assert len(sim.log) == 2


@pytest.mark.slow
def test_command_line() -> None:
    bad = subprocess.run(
        [sys.executable, "-m", "inat_async.simulator", "--places", "x"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1

    proc = subprocess.Popen(
        [sys.executable, "-m", "inat_async.simulator", "--observations", "300",
         "--places", "128892,1001", "--api-latency", "0", "--photo-latency", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(4)]
        api_url = next(line.split()[-1] for line in lines if line.startswith("API URL"))
        assert any(f"--api-url {api_url}" in line for line in lines)

        async def fetch() -> Any:
            async with aiohttp.ClientSession() as s:
                return await get_json(s, api_url + "/observations", {"place_id": "1001"})

        status, page = asyncio.run(fetch())
        assert status == 200 and page["total_results"] >= 150
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=15)
    assert proc.returncode == 0


# ---------------------------------------------------------------------- scale


def test_a_million_observations() -> None:
    started = time.perf_counter()
    big = World({128892: 600_000, 1001: 300_000, 1002: 100_000}, seed=1)
    built = time.perf_counter() - started
    assert len(big) == 1_000_000
    ids = big.ids
    hosts = {"open": "http://o", "static": "http://s", "assets": "http://a"}
    timings = []
    for k in range(5):
        params = {
            "place_id": "1001",
            **DEFAULT_FILTERS,
            "order_by": "id",
            "order": "asc",
            "per_page": "200",
            "id_above": str(ids[400_000 + 1000 * k]),
        }
        started = time.perf_counter()
        page = big.search(params)
        body = big.render_page(page, hosts, only_id=False)
        timings.append(time.perf_counter() - started)
        assert len(page.ids) == 200 and page.ids[0] > ids[400_000 + 1000 * k]
        assert len(json.loads(body)["results"]) == 200
    print(f"1M world: build {built:.2f}s, filtered page of 200: "
          f"{', '.join(f'{t * 1000:.0f}ms' for t in timings)}")  # fmt: skip
    assert built < 30
    assert min(timings) < 1.0


@pytest.mark.slow
def test_an_offline_harvest_gives_images_that_open_at_their_sizes(tmp_path, start_simulator) -> None:
    """Every photo file of a harvest from the simulator is a JPEG, PNG or GIF that Pillow
    opens, of the dimensions of its size, and can be thumbnailed: offline harvests can be
    looked at and trained on."""
    from PIL import Image

    from inat_async import harvest_blocking
    from inat_async.simulator.images import rendition_dimensions

    world = World({7101: 120}, seed=71, photo_scale=0.02)
    out = tmp_path / "o"
    sim = start_simulator(world)
    summary = harvest_blocking(
        [7101], out=out, api_url=sim.api_url, limits=False, sizes=list(SIZES), all_photos=True
    )
    formats = {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG", "gif": "GIF"}
    seen = set()
    for path in (out / "photos").rglob("*.*"):
        photo_id, size = path.stem.split("_")
        info = world.photo_info(int(photo_id))
        assert info is not None
        with Image.open(path) as image:
            assert image.size == rendition_dimensions(size, info.width, info.height), path
            assert image.format == formats[info.ext.lower()]
            image.thumbnail((32, 32))  # decodes it (a JPEG at an eighth of its size)
            seen.add(image.format)
        assert path.read_bytes() == world.photo_bytes(int(photo_id), size)
    assert seen == {"JPEG", "PNG", "GIF"} and summary.photos["done"] > 500


def test_images_are_padded_to_the_length_of_their_photo() -> None:
    world = World({7102: 50}, seed=72, photo_scale=1.0)
    photos = [p for o in world.ids for p in world.photo_ids(o)]
    whole = [p for p in photos if all(world.photo_bytes(p, size) for size in SIZES)][:20]
    for photo in whole:
        lengths = [len(world.photo_bytes(photo, size) or b"") for size in SIZES]
        assert lengths == sorted(lengths) and lengths[-1] > 200_000  # grows with the size, as real ones


def test_places_lie_where_they_are() -> None:
    world = World({128892: 300, 7103: 300}, seed=73)
    lat, lng, radius = world.place_area(128892)
    assert abs(lat - 38.45) < 0.1 and abs(lng + 9.0) < 0.1  # off Arrábida, Portugal
    assert radius <= 0.1
    for observation in world.observations():
        if observation["location"] is None:
            continue
        place = 128892 if 128892 in observation["place_ids"] else 7103
        olat, olng = map(float, observation["location"].split(","))
        clat, clng, r = world.place_area(place)
        assert abs(olat - clat) <= r and abs(olng - clng) <= r
        if place == 128892:
            assert observation["observed_time_zone"] == "Europe/Lisbon"


def test_the_readme_says_how_much_the_offline_demo_downloads() -> None:
    from inat_async.simulator.__main__ import build_parser, command_world

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    serve = re.search(r"^python -m inat_async\.simulator (.+)$", readme, re.M)
    said = re.search(r"downloads about ([\d,]+) MB\s+into `demo/` \(about ([\d,]+) photo files", readme)
    assert serve and said
    args = build_parser().parse_args(serve.group(1).split())
    world = command_world(args.observations, args.places, args.seed)
    sizes = [len(data) for o in world.matching_ids({**DEFAULT_FILTERS, "place_id": "128892"})
             if (photos := world.photo_ids(o)) for size in ("square", "medium", "original")
             if (data := world.photo_bytes(photos[0], size))]  # fmt: skip
    megabytes, files = (int(group.replace(",", "")) for group in said.groups())
    assert abs(sum(sizes) / 1e6 - megabytes) < 0.05 * megabytes
    assert abs(len(sizes) - files) < 0.05 * files
    assert sum(sizes) < 500e6  # a demo, not a download
