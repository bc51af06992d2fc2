"""Licence codes and places as people write them: any case, typos refused, place URLs with
comments, a byte-order mark, a trailing slash or a query."""

from __future__ import annotations

import pytest
from helpers import api_requests, error_line, local, read_observations, read_photos, run_cli, run_harvest

from inat_async.cli import main
from inat_async.config import PHOTO_LICENSES, make_settings, parse_places, read_places_file
from inat_async.errors import UsageError
from inat_async.simulator import SimulatorThread, World

PLACE = 128892
OTHER = 1001
NOWHERE = "http://127.0.0.1:9/v1"  # refused before any request


@pytest.fixture(scope="module")
def sim():
    world = World({PLACE: 60, OTHER: 30}, seed=43, photos=(1, 1), placeholder_rate=0.0, photo_scale=0.01)
    with SimulatorThread(world) as running:
        yield running


# -- licences -----------------------------------------------------------------------------------
def _licensed(out) -> dict[str, set[str]]:
    photos = read_photos(out)
    return {
        status: set(photos[photos.status == status].license_code.fillna("none"))
        for status in ("done", "skipped")
    }


def test_licence_codes_compare_without_regard_to_case_in_the_library(sim, tmp_path):
    run_harvest(
        [PLACE], out=tmp_path / "o", api_url=sim.api_url, sizes="square", photo_licenses=["CC-BY", "Cc0"]
    )
    licensed = _licensed(tmp_path / "o")
    assert licensed["done"] == {"cc-by", "cc0"}
    assert "cc-by" not in licensed["skipped"] and licensed["skipped"]


def test_licence_codes_compare_without_regard_to_case_on_the_command_line(sim, tmp_path):
    out = tmp_path / "o"
    args = ["--place", str(PLACE), "--sizes", "square", "--photo-license", "CC-BY-NC,All-Rights-Reserved"]
    result = run_cli(tmp_path, *args, *local(sim, out))
    assert result.returncode == 0, result.stderr
    assert _licensed(out)["done"] == {"cc-by-nc", "none"}


@pytest.mark.parametrize("code", ["cc-by-4.0", "cc-bync", "CC BY", "cc-by,"])
def test_an_unknown_licence_code_is_refused_with_the_known_ones(sim, tmp_path, code):
    sim.clear_log()
    args = ["--place", str(PLACE), "--photo-license", code]
    result = run_cli(tmp_path, *args, *local(sim, tmp_path / "o"))
    if code == "cc-by,":  # a trailing comma is only a trailing comma
        assert result.returncode == 0, result.stderr
        return
    assert result.returncode == 2, result.stderr
    line = error_line(result)
    assert repr(code.lower()) in line and ", ".join(PHOTO_LICENSES) in line
    assert sim.log == []
    assert not (tmp_path / "o").exists()


def test_the_library_refuses_an_unknown_licence_code_too():
    with pytest.raises(UsageError, match="choose from cc0, cc-by"):
        make_settings([PLACE], photo_licenses=["cc-by-4.0"])
    assert make_settings([PLACE], photo_licenses="CC0, cc-by").photo_licenses == ("cc0", "cc-by")


# -- places -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "line",
    [
        "https://www.inaturalist.org/places/128892   # a comment",
        "https://www.inaturalist.org/places/128892/",
        "https://www.inaturalist.org/places/128892?tab=observations#map",
        "http://inaturalist.ca/places/128892",
        "www.inaturalist.org/places/128892 #another",
        "  128892\t# tabs too",
    ],
)
def test_a_places_file_line_may_be_a_place_url_with_a_comment(tmp_path, line):
    path = tmp_path / "places.txt"
    path.write_text(f"# marine parks\n{line}\n\n1001 # and one more\n", encoding="utf-8")
    assert read_places_file(path) == ["128892", "1001"]


def test_a_byte_order_mark_is_ignored(tmp_path):
    path = tmp_path / "places.txt"
    path.write_bytes("\ufeff128892\r\nhttps://www.inaturalist.org/places/1001\r\n".encode())
    assert read_places_file(path) == ["128892", "1001"]


@pytest.mark.parametrize(
    ("value", "places"),
    [
        ("https://www.inaturalist.org/places/128892", (128892,)),
        ("https://www.inaturalist.org/places/128892/?locale=pt-BR,en", (128892,)),
        ("128892, 1001", (128892, 1001)),
    ],
)
def test_place_takes_a_place_url_as_the_file_does(value, places):
    assert parse_places([value]) == places


@pytest.mark.parametrize(
    "value", ["https://www.inaturalist.org/places/parque-marinho", "https://x.org/places/1,2", "places/0"]
)
def test_what_is_not_a_place_id_or_url_is_refused(value):
    with pytest.raises(UsageError, match="not a place id"):
        parse_places([value])


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("1,,2", "'1,,2' has an empty item: give ids between the commas"),
        ("128892,", "'128892,' has an empty item: give ids between the commas"),
        (
            "https://evil.example.com/places/128892",
            "'https://evil.example.com/places/128892' is not an iNaturalist place URL: "
            "evil.example.com is not inaturalist.org",
        ),
        (
            "https://inaturalist.org.evil.com/places/128892",
            "'https://inaturalist.org.evil.com/places/128892' is not an iNaturalist place URL: "
            "inaturalist.org.evil.com is not inaturalist.org",
        ),
    ],
)
def test_an_empty_item_or_a_place_url_of_another_host_is_refused(tmp_path, capsys, value, message):
    out = tmp_path / "o"
    status = main(["--place", value, "--out", str(out), "--api-url", NOWHERE])
    assert status == 2 and _one_line(capsys) == f"inat-async: error: --place: {message}"
    assert not out.exists()


@pytest.mark.parametrize(
    "value", ["https://es.inaturalist.org/places/128892", "https://www.inaturalist.org/es/places/128892"]
)
def test_a_place_url_of_any_inaturalist_subdomain_or_locale_is_taken(value):
    assert parse_places([value]) == (128892,)


def test_an_empty_places_file_is_named(tmp_path, capsys):
    empty, comments = tmp_path / "empty.txt", tmp_path / "comments.txt"
    empty.write_text("")
    comments.write_text("# marine parks, to come\n\n")
    for path in (empty, comments):
        status = main(["--places-file", str(path), "--out", str(tmp_path / "o"), "--api-url", NOWHERE])
        assert status == 2 and _one_line(capsys) == (
            f"inat-async: error: --places-file: {path} has no place id or URL (only blank lines or comments)"
        )


def _one_line(capsys: pytest.CaptureFixture[str]) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_places_given_as_urls_harvest_those_places(sim, tmp_path):
    places = tmp_path / "places.txt"
    places.write_bytes(b"\xef\xbb\xbfhttps://www.inaturalist.org/places/128892   # a comment\n")
    out = tmp_path / "o"
    sim.clear_log()
    args = [
        "--places-file",
        str(places),
        "--place",
        f"https://www.inaturalist.org/places/{OTHER}/",
        "--no-photos",
    ]
    result = run_cli(tmp_path, *args, *local(sim, out))
    assert result.returncode == 0, result.stderr
    assert {r.query["place_id"] for r in api_requests(sim.log)} == {f"{OTHER},{PLACE}"}
    assert sorted(read_observations(out)["id"]) == sim.world.matching_ids(
        {"place_id": f"{PLACE},{OTHER}", "geo": "true", "identified": "true", "rank": "species"}
    )
