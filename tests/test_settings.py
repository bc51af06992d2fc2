"""One checked Settings for the library and the CLI: every bad value is refused by both, before
any request, with the same message naming the setting as the caller wrote it (the keyword from
Python, the flag from the command line); the CLI's defaults are the Settings' own."""

from __future__ import annotations

import math
import socket
import zipfile
from dataclasses import fields

import pandas as pd
import pytest
from helpers import api_requests, error_line, expected_ids, local, run_cli

import inat_async
from inat_async import Budgets, HarvestOptions, SettingError, Settings, UsageError, make_settings
from inat_async.cli import build_parser, flag_of, settings_from_args
from inat_async.config import FORMATS, setting_default
from inat_async.simulator import SimulatorThread, World

PLACE = 4321  # "4321" read letter by letter would be places 4, 3, 2 and 1


@pytest.fixture(scope="module")
def sim():
    world = World({PLACE: 12}, seed=21, photos=(1, 1), photo_scale=0.01)
    with SimulatorThread(world) as running:
        yield running


# (keyword, library value, CLI arguments, flag, problem as the library says it, as the CLI says
# it when it names another setting). A callable value is made inside the check: a Budgets
# refuses a bad value when it is made.
BAD = [
    ("per_page", 0, ["--per-page", "0"], "--per-page", "must be from 1 to 200", None),
    ("per_page", 201, ["--per-page", "201"], "--per-page", "must be from 1 to 200", None),
    ("formats", "parquet,xml", ["--format", "parquet,xml"], "--format",
     f"'xml' is not an export format; choose from {', '.join(FORMATS)}", None),
    ("formats", " ", ["--format", " "], "--format",
     f"give at least one; choose from {', '.join(FORMATS)}", None),
    ("photo_licenses", "CC-BY-4.0", ["--photo-license", "CC-BY-4.0"], "--photo-license",
     "'cc-by-4.0' is not a licence code; choose from cc0, cc-by, cc-by-nc, cc-by-sa, cc-by-nd, "
     "cc-by-nc-sa, cc-by-nc-nd, pd, gfdl, all-rights-reserved", None),
    ("ranges", 0, ["--ranges", "0"], "--ranges", "must be from 1 to 1,000", None),
    ("workers", 0, ["--workers", "0"], "--workers", "must be from 1 to 1,000", None),
    ("workers", -3, ["--workers", "-3"], "--workers", "must be from 1 to 1,000", None),
    # a huge count took the machine's memory (23.6 GB) or raised a MemoryError
    ("workers", 99999999999999999999, ["--workers", "99999999999999999999"], "--workers",
     "must be from 1 to 1,000", None),
    ("ranges", 100_000_000, ["--ranges", "100000000"], "--ranges", "must be from 1 to 1,000", None),
    ("shard_size", 10**9, ["--shard-size", str(10**9)], "--shard-size", "must be from 1 to 100,000", None),
    ("media_concurrency", lambda: Budgets(media_concurrency=10**6), ["--media-concurrency", str(10**6)],
     "--media-concurrency", "must be from 1 to 1,000", None),
    ("request_timeout", 0, ["--timeout", "0"], "--timeout", "must be positive", None),
    ("request_timeout", -5.0, ["--timeout", "-5"], "--timeout", "must be positive", None),
    ("request_timeout", math.nan, ["--timeout", "nan"], "--timeout", "must be a finite number", None),
    ("max_photo_bytes", 0, ["--max-photo-mb", "0"], "--max-photo-mb", "must be positive", None),
    ("backoff_initial", -1.0, ["--retry-wait", "-1"], "--retry-wait", "must not be negative", None),
    ("api_rpm", lambda: Budgets(api_rpm=0), ["--api-rpm", "0"], "--api-rpm",
     "must be from 1 to 1,000,000", None),
    ("media_gb_per_day", lambda: Budgets(media_gb_per_day=-1.0), ["--media-gb-per-day", "-1"],
     "--media-gb-per-day", "must be positive", None),
    ("media_concurrency", lambda: Budgets(media_concurrency=0), ["--media-concurrency", "0"],
     "--media-concurrency", "must be from 1 to 1,000", None),
    ("api_url", "ftp://x", ["--api-url", "ftp://x"], "--api-url", "'ftp://x' is not an http(s) URL", None),
    ("api_url", "http://", ["--api-url", "http://"], "--api-url", "'http://' is not an http(s) URL", None),
    ("sizes", "square,huge", ["--sizes", "square,huge"], "--sizes",
     "'huge' is not a photo size; choose from square, thumb, small, medium, large, original", None),
    ("filters", {"order": "asc"}, ["--param", "order=asc"], "--param",
     "order is set by the harvester's paging and cannot be changed", None),
    ("filters", {"id_above": 5}, ["--param", "id_above=5"], "--param",
     "id_above is set by the harvester's paging and cannot be changed", None),
    ("filters", {"place_id": 5}, ["--param", "place_id=5"], "--param",
     "give places with places", "give places with --place"),
    ("places", "12a", ["--place", "12a"], "--place",
     "'12a' is not a place id (a positive integer) or URL", None),
    ("places", [], [], "--place", "give at least one place id or URL", None),
    ("scheduler", "bogus://host:8786", ["--scheduler", "bogus://host:8786"], "--scheduler",
     "'bogus://host:8786' is not local, local:N or a scheduler address (tcp://host:8786)", None),
    ("scheduler", "local:0", ["--scheduler", "local:0"], "--scheduler",
     "local:0: the N of local:N worker processes is from 1 to 999", None),
    ("scheduler", "local:1000", ["--scheduler", "local:1000"], "--scheduler",
     "local:1000: the N of local:N worker processes is from 1 to 999", None),
    ("scheduler", "inproc://x", ["--scheduler", "inproc://x"], "--scheduler",
     "'inproc://x' is not local, local:N or a scheduler address (tcp://host:8786)", None),
    ("store", "nope://bucket/x", ["--store", "nope://bucket/x"], "--store",
     "nope:// is not a storage fsspec knows (s3://, gs://, az://, ...)", None),
    ("store", "s3://", ["--store", "s3://"], "--store",
     "s3:// names no bucket or place in it: s3://BUCKET/PREFIX", None),
    ("store", "https://example.org/x", ["--store", "https://example.org/x"], "--store",
     "https:// is read-only in fsspec: give a store that takes writes", None),
    ("webdataset_size", "huge", ["--webdataset-size", "huge"], "--webdataset-size",
     "must be one of square, thumb, small, medium, large, original", None),
]  # fmt: skip
IDS = [f"{case[0]}-{i}" for i, case in enumerate(BAD)]


def _library_call(sim, out, keyword, value):
    options = {"out": out, "api_url": sim.api_url, "limits": False}
    places = [PLACE]
    if callable(value):
        options["budgets"] = value()
    elif keyword == "places":
        places = value
    else:
        options[keyword] = value
    inat_async.harvest_blocking(places, **options)


@pytest.mark.parametrize(("keyword", "value", "args", "flag", "problem", "cli_problem"), BAD, ids=IDS)
def test_the_library_refuses_a_bad_setting_naming_its_keyword_before_any_request(
    sim, tmp_path, keyword, value, args, flag, problem, cli_problem
):
    sim.clear_log()
    out = tmp_path / "o"
    with pytest.raises(SettingError) as refused:
        _library_call(sim, out, keyword, value)
    assert refused.value.setting == keyword
    assert str(refused.value) == f"{keyword}: {problem}"
    assert isinstance(refused.value, UsageError) and refused.value.exit_code == 2
    assert sim.log == []
    assert not out.exists()


@pytest.mark.parametrize(("keyword", "value", "args", "flag", "problem", "cli_problem"), BAD, ids=IDS)
def test_the_cli_refuses_the_same_setting_in_one_line_naming_its_flag_before_any_request(
    sim, tmp_path, keyword, value, args, flag, problem, cli_problem
):
    sim.clear_log()
    out = tmp_path / "o"
    place = [] if keyword == "places" else ["--place", str(PLACE)]
    result = run_cli(tmp_path, *place, *local(sim, out), *args)  # the bad flag last: it wins
    assert result.returncode == 2, result.stderr
    assert error_line(result) == f"inat-async: error: {flag}: {cli_problem or problem}"
    assert sim.log == []
    assert not out.exists()


@pytest.mark.parametrize(
    ("keyword", "value", "problem"),
    [
        ("per_page", "200", "must be a whole number, not '200' (str)"),
        ("workers", 2.5, "must be a whole number, not 2.5 (float)"),
        ("request_timeout", "60", "must be a number, not '60' (str)"),
        ("update", "no", "must be True or False, not 'no' (str)"),
        ("limits", 0, "must be True or False, not 0 (int)"),
        ("out", 5, "must be a path, not 5 (int)"),
        ("filters", ["geo=true"], "must be a mapping of API parameters to values, not ['geo=true'] (list)"),
        (
            "filters",
            {"rank": ["species"]},
            "the value of rank must be a string or a number, not ['species'] (list)",
        ),
        ("budgets", {"api_rpm": 30}, "must be an inat_async.Budgets, not {'api_rpm': 30} (dict)"),
        ("formats", ["csv", 1], "must be a comma list or a list of names, not ['csv', 1] (list)"),
        ("sizes", None, "must be a comma list or a list of names, not None (NoneType)"),
        ("places", [3.5], "'3.5' is not a place id (a positive integer) or URL"),
    ],
)
def test_a_value_of_the_wrong_kind_from_python_is_refused_naming_its_keyword(
    sim, tmp_path, keyword, value, problem
):
    sim.clear_log()
    with pytest.raises(SettingError) as refused:
        _library_call(sim, tmp_path / "o", keyword, value)
    assert str(refused.value) == f"{keyword}: {problem}"
    assert sim.log == []


def test_all_photos_and_no_photos_exclude_each_other_in_the_library_too(sim, tmp_path):
    with pytest.raises(SettingError, match=r"^no_photos: cannot be combined with all_photos$"):
        inat_async.harvest_blocking([PLACE], out=tmp_path / "o", all_photos=True, no_photos=True)


def test_a_typo_in_a_keyword_is_a_type_error_naming_it_before_any_request(sim, tmp_path):
    sim.clear_log()
    with pytest.raises(TypeError, match="'per_pge'; did you mean 'per_page'"):
        inat_async.harvest_blocking([PLACE], out=tmp_path / "o", api_url=sim.api_url, per_pge=50)
    with pytest.raises(TypeError, match="'formts'"):
        make_settings([PLACE], formts="csv")
    assert sim.log == []
    assert not (tmp_path / "o").exists()


def test_formats_as_one_string_write_that_format_and_no_other(sim, tmp_path):
    # It used to loop over the letters of "parquet": dwca.zip written, no Parquet.
    out = tmp_path / "o"
    settings = make_settings([PLACE], out=out, api_url=sim.api_url, limits=False, no_photos=True)
    inat_async.harvest_blocking(settings, formats="parquet")
    assert (out / "observations.parquet").is_file()
    assert not (out / "dwca.zip").exists() and not (out / "observations.csv").exists()
    assert sorted(pd.read_parquet(out / "observations.parquet")["id"]) == expected_ids(sim.world, [PLACE])

    inat_async.export(out, formats="DwCA")
    with zipfile.ZipFile(out / "dwca.zip") as archive:
        assert "occurrence.txt" in archive.namelist()
    assert not (out / "observations.csv").exists()
    with pytest.raises(
        SettingError, match=rf"^formats: 'xml' is not an export format; choose from {', '.join(FORMATS)}$"
    ):
        inat_async.export(out, formats="xml")


def test_places_as_one_string_are_that_place_not_its_digits(sim, tmp_path):
    sim.clear_log()
    inat_async.harvest_blocking(
        str(PLACE), out=tmp_path / "o", api_url=sim.api_url, limits=False, no_photos=True
    )
    assert {r.query["place_id"] for r in api_requests(sim.log)} == {str(PLACE)}


def test_ready_settings_with_a_bad_option_are_refused_before_any_request(sim, tmp_path):
    sim.clear_log()
    settings = make_settings([PLACE], out=tmp_path / "o", api_url=sim.api_url, limits=False)
    with pytest.raises(SettingError, match=r"^ranges: must be from 1 to 1,000$"):
        inat_async.harvest_blocking(settings, ranges=0)
    assert sim.log == []


def test_an_output_folder_in_no_folder_is_named_by_keyword_or_flag(sim, tmp_path):
    out = tmp_path / "missing" / "o"
    with pytest.raises(SettingError, match=f"^out: the folder {tmp_path / 'missing'} does not exist$"):
        inat_async.harvest_blocking([PLACE], out=out, api_url=sim.api_url, limits=False)
    result = run_cli(tmp_path, "--place", str(PLACE), *local(sim, out))
    assert error_line(result) == f"inat-async: error: --out: the folder {tmp_path / 'missing'} does not exist"


def test_an_update_of_no_complete_harvest_names_update_by_keyword(sim, tmp_path):
    out = tmp_path / "o"
    with pytest.raises(SettingError) as refused:
        inat_async.harvest_blocking([PLACE], out=out, api_url=sim.api_url, limits=False, update=True)
    assert str(refused.value).startswith("update: ")
    assert "without update " in str(refused.value) and "--" not in str(refused.value)


def test_an_api_out_of_reach_names_api_url_by_keyword_in_the_library(tmp_path):
    with socket.socket() as closed:  # a port nothing listens on once closed
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}/v1"
    with pytest.raises(inat_async.HarvestError) as failed:
        inat_async.harvest_blocking(
            [PLACE], out=tmp_path / "o", api_url=url, limits=False, api_attempts=1, backoff_initial=0.01
        )
    assert str(failed.value).endswith("; check api_url and the network")
    assert failed.value.render(flag_of).endswith("; check --api-url and the network")  # the CLI's


def test_the_command_lines_defaults_are_the_settings_defaults(monkeypatch):
    monkeypatch.delenv("INAT_API_URL", raising=False)
    parser = build_parser()
    assert settings_from_args(parser.parse_args(["--place", "7"])) == make_settings([7]) == Settings((7,))
    # What --help shows (argparse's defaults) is read from Settings and Budgets.
    budgets = Budgets()
    shown = {
        "per_page": setting_default("per_page"),
        "workers": setting_default("workers"),
        "ranges": setting_default("ranges"),
        "timeout": setting_default("request_timeout"),
        "retry_wait": setting_default("backoff_initial"),
        "max_photo_mb": setting_default("max_photo_bytes") / 1e6,
        "out": str(setting_default("out")),
        "sizes": ",".join(setting_default("sizes")),
        "format": ",".join(setting_default("formats")),
        "api_url": setting_default("api_url"),
        **{
            f.name: getattr(budgets, f.name)
            for f in fields(Budgets)
            if f.name not in ("minute", "hour", "day")
        },
    }
    assert {dest: parser.get_default(dest) for dest in shown} == shown
    help_text = " ".join(parser.format_help().split())
    assert "(defaults: geo=true identified=true rank=species)" in help_text


def test_the_harvest_keywords_are_the_settings_fields():
    assert set(HarvestOptions.__annotations__) == {f.name for f in fields(Settings)} - {"places"}
