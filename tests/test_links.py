"""Nothing is written through a planted link, and nothing found on disk is trusted blindly
(issue 12 point 5)."""

from __future__ import annotations

import os

from helpers import expected_ids, local, read_photos, run_cli

from inat_async.photos import photo_path
from inat_async.simulator import World

WORLD = World({9901: 40}, seed=91, photo_scale=0.02, placeholder_rate=0.0, missing_size_rate=0.0)
PRECIOUS = b"a file of the user's, outside the output folder\n"


def _first_photos(world: World, count: int) -> list[str]:
    """The square file paths of the first photo of the first observations."""
    paths = []
    with_photos = [i for i in expected_ids(world, [9901]) if world.photo_ids(i)]
    for obs_id in with_photos[:count]:
        photo_id = world.photo_ids(obs_id)[0]
        info = world.photo_info(photo_id)
        assert info is not None
        paths.append(photo_path(photo_id, "square", info.ext.lower()))
    return paths


def _victims(tmp_path, names):
    victims = {}
    for name in names:
        victim = tmp_path / "outside" / name
        victim.parent.mkdir(exist_ok=True)
        victim.write_bytes(PRECIOUS)
        victims[name] = victim
    return victims


def _assert_byte_exact(out, world):
    photos = read_photos(out)
    done = photos[photos.status == "done"]
    assert len(done) == len(photos)
    for row in done.itertuples():
        path = out / row.path
        assert path.is_file() and not path.is_symlink()
        assert path.read_bytes() == world.photo_bytes(row.photo_id, row.size)


def test_links_planted_at_the_harvesters_own_names_are_never_written_through(tmp_path, shared_sim):
    """At the folder lock, a photo's temporary (the old predictable name), the CSV's
    temporary, and a photo's final name: the targets outside stay as they were."""
    out = tmp_path / "o"
    first, second = _first_photos(WORLD, 2)
    victims = _victims(tmp_path, ["lock", "part", "csv", "final"])
    plants = {
        ".lock": victims["lock"],
        f"{os.path.dirname(first)}/.{os.path.basename(first)}.part": victims["part"],
        ".observations.csv.part": victims["csv"],
        second: victims["final"],
    }
    for name, target in plants.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).symlink_to(target)
    result = run_cli(tmp_path, "--place", "9901", "--sizes", "square", *local(shared_sim, out))
    assert result.returncode == 0, result.stderr
    assert all(victim.read_bytes() == PRECIOUS for victim in victims.values())
    _assert_byte_exact(out, WORLD)  # the link at a final name replaced by the file itself


def test_a_photo_folder_linked_out_of_the_output_folder_is_refused(tmp_path, shared_sim):
    out = tmp_path / "o"
    (first,) = _first_photos(WORLD, 1)
    outside = tmp_path / "outside"
    outside.mkdir()
    folder = out / os.path.dirname(first)
    folder.parent.mkdir(parents=True)
    folder.symlink_to(outside)
    result = run_cli(tmp_path, "--place", "9901", "--sizes", "square", *local(shared_sim, out))
    assert result.returncode == 3, result.stderr
    assert list(outside.iterdir()) == []
    failed = read_photos(out).query("status == 'failed'")
    assert len(failed) and failed.reason.str.contains("leads out of the output folder").all()


def test_files_found_at_final_names_without_a_record_are_checked_before_they_count(tmp_path, shared_sim):
    """A 0-byte file, random bytes, a text file and a folder where photos go: the first three
    are fetched again; the folder is in the way, said so, and left alone."""
    out = tmp_path / "o"
    empty, noise, text, folder = _first_photos(WORLD, 4)
    for path in (empty, noise, text, folder):
        (out / path).parent.mkdir(parents=True, exist_ok=True)
    (out / empty).write_bytes(b"")
    (out / noise).write_bytes(os.urandom(3000))
    (out / text).write_text("<html>not a photo</html>")
    (out / folder).mkdir()
    result = run_cli(tmp_path, "--place", "9901", "--sizes", "square", *local(shared_sim, out))
    fetched = {r.path.split("/")[2] for r in shared_sim.log if r.host in ("open", "static")}
    assert result.returncode == 3, result.stderr
    photos = read_photos(out).set_index("path")
    for path in (empty, noise, text):
        assert photos.loc[path, "status"] == "done"
        photo_id = int(os.path.basename(path).split("_")[0])
        assert str(photo_id) in fetched
        assert (out / path).read_bytes() == WORLD.photo_bytes(photo_id, "square")
    assert photos.loc[folder, "status"] == "failed" and "folder is in the way" in photos.loc[folder, "reason"]
    assert (out / folder).is_dir()
