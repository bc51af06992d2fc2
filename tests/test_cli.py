"""What a user sees at the command line: options, bad input, exit statuses, folders."""

from __future__ import annotations

import os
import re
import zipfile
from pathlib import Path

import pytest
from helpers import (
    ROOT,
    error_line,
    expected_ids,
    local,
    photo_requests,
    read_observations,
    read_photos,
    run_cli,
)

from inat_async.simulator import SimulatorThread, World


@pytest.fixture(scope="module")
def sim():
    world = World({2001: 300, 2002: 200}, seed=3, photo_scale=0.02)
    with SimulatorThread(world) as running:
        yield running


def _one_line_error(result, *words):
    assert result.returncode == 2, (result.stdout, result.stderr)
    line = error_line(result)
    for word in words:
        assert word in line


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--place", "12a"], ["'12a'", "place"]),
        (["--place", "1,-3"], ["'-3'"]),
        (["--place", "1", "--sizes", "square,huge"], ["'huge'", "square, thumb"]),
        (["--place", "1", "--param", "rank"], ["KEY=VALUE"]),
        (["--place", "1", "--param", "page=3"], ["page"]),
        (["--place", "1", "--workers", "0"], ["--workers"]),
        (["--place", "1", "--workers", "many"], ["--workers"]),
        ([], ["--place"]),
        (["--place", "1", "--api-url", "ftp://x"], ["--api-url"]),
        (["--place", "1", "--log-file", "/nonexistent/dir/x.log"], ["--log-file: cannot write to", "x.log"]),
        (["--place", "1", "--log-file", "/"], ["--log-file: cannot write to /"]),
    ],
)
def test_bad_input_is_one_line_and_exit_2_before_any_request(sim, tmp_path, args, words):
    sim.clear_log()
    api = [] if "--api-url" in args else ["--api-url", sim.api_url]
    result = run_cli(tmp_path, *args, *api, "--out", str(tmp_path / "o"))
    _one_line_error(result, *words)
    assert sim.log == []
    assert not (tmp_path / "o").exists()


def test_unwritable_out_is_refused_before_any_request(sim, tmp_path):
    locked = tmp_path / "ro"
    locked.mkdir(mode=0o500)
    # root writes anywhere a mode allows; /proc refuses everyone.
    parent = Path("/proc") if os.geteuid() == 0 else locked
    sim.clear_log()
    result = run_cli(tmp_path, "--place", "2001", "--api-url", sim.api_url, "--out", str(parent / "x"))
    _one_line_error(result, "cannot write")
    assert sim.log == []


def test_out_that_is_a_file_or_has_no_parent_is_refused(sim, tmp_path):
    (tmp_path / "file").write_text("not a folder")
    sim.clear_log()
    for out, words in (
        (tmp_path / "file", ["is a file"]),
        (tmp_path / "file" / "sub", [f"{tmp_path / 'file'} is a file"]),  # not "does not exist"
        (Path("/etc/passwd"), ["/etc/passwd is a file"]),
        (tmp_path / "no" / "such" / "dir", ["does not exist"]),
    ):
        _one_line_error(
            run_cli(tmp_path, "--place", "2001", "--api-url", sim.api_url, "--out", str(out)), *words
        )
    assert sim.log == []


def test_unknown_place_is_the_apis_422_in_one_line(sim, tmp_path):
    result = run_cli(tmp_path, "--place", "999999", *local(sim, tmp_path / "o"))
    _one_line_error(result, "Unknown place_id 999999")


def test_params_add_override_and_drop_filters(sim, tmp_path):
    out = tmp_path / "o"
    result = run_cli(
        tmp_path,
        "--place",
        "2001",
        "--param",
        "rank=",
        "--param",
        "quality_grade=needs_id,casual",
        "--no-photos",
        *local(sim, out),
    )
    assert result.returncode == 0, result.stderr
    want = expected_ids(sim.world, [2001], rank="", quality_grade="needs_id,casual")
    assert sorted(read_observations(out)["id"]) == want
    assert len(want) > len(expected_ids(sim.world, [2001], quality_grade="needs_id,casual"))  # genus too
    assert not (out / "photos").exists() and len(read_photos(out)) == 0


@pytest.mark.slow
def test_all_photos_fetches_every_photo_in_position_order(sim, tmp_path):
    out = tmp_path / "o"
    sim.clear_log()
    result = run_cli(tmp_path, "--place", "2002", "--all-photos", "--sizes", "thumb,large", *local(sim, out))
    assert result.returncode == 0, result.stderr
    photos = read_photos(out)
    want = {
        (o, p, s)
        for o in expected_ids(sim.world, [2002])
        for p in sim.world.photo_ids(o)
        for s in ("thumb", "large")
    }
    assert set(zip(photos.observation_id, photos.photo_id, photos["size"], strict=True)) == want
    assert any(len(sim.world.photo_ids(o)) > 1 for o, _, _ in want)
    for row in photos[photos.status == "done"].itertuples():
        assert (out / row.path).read_bytes() == sim.world.photo_bytes(row.photo_id, row.size)
        assert sim.world.photo_ids(row.observation_id)[row.position] == row.photo_id
    assert {r.path.rsplit("/", 1)[1].split(".")[0] for r in photo_requests(sim.log)} <= {"thumb", "large"}


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_outputs_and_photo_files_get_the_mode_the_users_umask_gives(sim, tmp_path, umask):
    """Written under a temporary name (mkstemp makes it 0600) and renamed: each output must
    still be readable as the umask allows, by a group or a web server, like any new file."""
    out = tmp_path / "o"
    previous = os.umask(umask)
    try:
        result = run_cli(tmp_path, "--place", "2002", "--sizes", "square", "--format", "csv,parquet",
                         *local(sim, out))  # fmt: skip
    finally:
        os.umask(previous)
    assert result.returncode == 0, result.stderr
    photo = next(p for p in (out / "photos").rglob("*") if p.is_file())
    written = [photo, *(out / name for name in ("observations.csv", "photos.csv", "summary.json",
                                                "report.html", "observations.parquet"))]  # fmt: skip
    assert {path.name: oct(path.stat().st_mode & 0o777) for path in written} == {
        path.name: oct(0o666 & ~umask) for path in written
    }


@pytest.mark.slow
def test_a_folder_harvested_with_other_settings_is_refused_with_what_differs(sim, tmp_path):
    out = tmp_path / "o"
    base = ["--place", "2002", "--no-photos", *local(sim, out)]
    assert run_cli(tmp_path, *base).returncode == 0
    before = (out / "observations.csv").read_bytes()
    result = run_cli(tmp_path, *base, "--param", "quality_grade=research")
    _one_line_error(result, "--param was", "quality_grade")
    assert (out / "observations.csv").read_bytes() == before


def _option_blocks(help_text: str) -> dict[str, str]:
    """Each option's help, by option, from argparse's output."""
    blocks: dict[str, str] = {}
    for block in re.split(r"\n(?=  -)", help_text):
        if match := re.match(r"\s+(?:-\w, )?(--[\w-]+)", block):
            blocks[match.group(1)] = " ".join(block.split())
    return blocks


def test_help_says_each_real_default_once_and_lists_the_export_command(tmp_path):
    result = run_cli(tmp_path, "--help")
    assert result.returncode == 0
    blocks = _option_blocks(result.stdout)
    assert len(blocks) > 25
    for option, text in blocks.items():
        assert "(default: [])" not in text and "None" not in text and "False" not in text, text
        assert text.lower().count("default") <= 1, option
    assert "(default: 16)" in blocks["--workers"] and "(default: 4)" in blocks["--media-gb-per-hour"]
    assert "~/.cache/inat_async/budget.sqlite" in blocks["--budget-file"]
    assert re.search(r"^  export OUT .*harvest folder", result.stdout, re.M)
    assert "inat-async export OUT" in result.stdout.split("\n\n")[0]  # in the usage too


def test_export_help_is_plain_text(tmp_path):
    result = run_cli(tmp_path, "export", "--help")
    assert result.returncode == 0
    assert "``" not in result.stdout and "None" not in result.stdout
    assert "--format LIST" in result.stdout and "(default: csv)" in result.stdout


def test_timeout_is_described_as_the_readme_describes_it(tmp_path):
    readme = (ROOT / "README.md").read_text()
    row = re.search(r"^\| `--timeout S` \| (\S+) \| (.+) \|$", readme, re.M)
    assert row is not None
    default, meaning = row.groups()
    text = _option_blocks(run_cli(tmp_path, "--help").stdout)["--timeout"]
    assert f"{meaning} (default: {default})" in text


@pytest.mark.slow
def test_the_api_url_belongs_to_the_harvest(sim, tmp_path, start_simulator):
    """Recorded with the harvest: named by a later export, and another one refused."""
    out = tmp_path / "o"
    base = ["--place", "2002", "--no-photos", "--no-limits", "--out", str(out)]
    assert run_cli(tmp_path, *base, "--api-url", sim.api_url, "--format", "csv").returncode == 0
    assert run_cli(tmp_path, "export", str(out), "--format", "dwca").returncode == 0
    with zipfile.ZipFile(out / "dwca.zip") as archive:
        eml = archive.read("eml.xml").decode()
    assert sim.api_url in eml and "unrecorded" not in eml
    other = start_simulator(sim.world)
    result = run_cli(tmp_path, *base, "--api-url", other.api_url)
    assert other.log == []
    _one_line_error(result, "api_url", sim.api_url, other.api_url, "new --out folder")
    again = run_cli(tmp_path, *base, "--api-url", sim.api_url + "/")  # the same URL
    assert again.returncode == 0, again.stderr


def test_help_lists_every_option_with_its_default(tmp_path):
    result = run_cli(tmp_path, "--help")
    assert result.returncode == 0
    for option in (
        "--place",
        "--param",
        "--sizes",
        "--all-photos",
        "--no-photos",
        "--out",
        "--api-url",
        "--workers",
        "--api-rpm",
        "--media-rpm",
        "--no-limits",
    ):
        assert option in result.stdout
    assert "square,medium,original" in result.stdout and "inat_harvest" in result.stdout


def test_console_script_and_module_run_the_same_cli(tmp_path):
    import shutil

    script = shutil.which("inat-async")
    if script is None:
        pytest.skip("package not installed with its console script")
    import subprocess

    result = subprocess.run([script, "--version"], capture_output=True, text=True)
    assert result.stdout.strip() == run_cli(tmp_path, "--version").stdout.strip()


def test_the_readme_recipes_that_share_a_folder_ask_for_the_same_harvest():
    """A recipe run after another into the same folder is refused when it asks for another
    harvest: the README gives each harvest an --out of its own."""
    from inat_async.cli import build_parser
    from inat_async.config import parse_places

    readme = (ROOT / "README.md").read_text()
    block = readme.split("## Recipes", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = [line for line in block.replace("\\\n", " ").splitlines() if line.startswith("python -m")]
    assert len(commands) >= 6
    harvests: dict[str, set[tuple]] = {}
    for command in commands:
        args = build_parser().parse_args(command.split()[3:])
        what = (parse_places(args.place), str(args.places_file), tuple(args.param), args.sizes,
                args.all_photos, args.no_photos, str(args.photo_license).lower(), args.api_url)  # fmt: skip
        harvests.setdefault(args.out, set()).add(what)
    assert all(len(kinds) == 1 for kinds in harvests.values()), harvests


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (
            ["photos", "OUT", "--ranges", "0"],
            "unrecognized arguments: --ranges 0 (see inat-async photos --help)",
        ),
        (
            ["photos", "OUT", "--api-rpm", "5"],
            "unrecognized arguments: --api-rpm 5 (see inat-async photos --help)",
        ),
        (["opendata", "--bbox"], "expected one argument (see inat-async opendata --help)"),
    ],
)
def test_a_command_refuses_what_it_does_not_use_and_points_to_its_own_help(tmp_path, args, said):
    """The photos command pages nothing: no --ranges, no API budget; each command's error
    names its own --help."""
    result = run_cli(tmp_path, *[str(tmp_path) if a == "OUT" else a for a in args])
    assert result.returncode == 2 and said in result.stderr, result.stderr
    helped = run_cli(tmp_path, "photos", "--help")
    assert (
        "--ranges" not in helped.stdout
        and "--api-rpm" not in helped.stdout
        and "--media-rpm" in helped.stdout
    )
