"""Photo URL rules and the file layout: what a user finds on disk comes only from integer ids."""

from collections import Counter

import pytest

from inat_async.photos import photo_files, photo_path, size_url

HOSTS = frozenset({"static.inaturalist.org", "inaturalist-open-data.s3.amazonaws.com"})


@pytest.mark.parametrize(
    ("square", "size", "url", "ext"),
    [
        (
            "https://static.inaturalist.org/photos/92152429/square.jpg?1598551272",
            "medium",
            "https://static.inaturalist.org/photos/92152429/medium.jpg",
            "jpg",
        ),
        (
            "https://inaturalist-open-data.s3.amazonaws.com/photos/1/square.JPG",
            "original",
            "https://inaturalist-open-data.s3.amazonaws.com/photos/1/original.JPG",
            "jpg",
        ),
        (
            "https://static.inaturalist.org/photos/7/square.jpeg",
            "large",
            "https://static.inaturalist.org/photos/7/large.jpeg",
            "jpeg",
        ),
        (
            "https://static.inaturalist.org/photos/7/square.png",
            "square",
            "https://static.inaturalist.org/photos/7/square.png",
            "png",
        ),
    ],
)
def test_size_url_swaps_only_the_size_word(square, size, url, ext):
    assert size_url(square, size) == (url, ext)


@pytest.mark.parametrize(
    "bad",
    [
        "https://x.org/photos/1/square.exe",
        "https://x.org/photos/1/square.",
        "ftp://x/photos/1/square.jpg",
        "https://x.org/photos/1/medium.jpg",
        "not a url",
    ],
)
def test_size_url_refuses_what_is_not_a_photo_url(bad):
    with pytest.raises(ValueError):
        size_url(bad, "medium")


@pytest.mark.slow
def test_layout_keeps_folders_small_at_millions_of_photos():
    ids = range(100_000_000, 100_000_000 + 2_000_000, 7)
    leaves = Counter(photo_path(i, "medium", "jpg").rsplit("/", 1)[0] for i in ids)
    assert max(leaves.values()) * 6 <= 10_000  # six sizes of each photo in one leaf
    middles = Counter(leaf.rsplit("/", 1)[0] for leaf in leaves)
    assert max(middles.values()) <= 1000
    assert photo_path(92152429, "medium", "jpg") == "photos/092/152/92152429_medium.jpg"


def _obs(photos):
    return {"id": 5, "photos": photos}


def test_untrusted_photo_data_never_steers_a_path():
    obs = _obs(
        [
            {"id": 1, "url": "https://static.inaturalist.org/photos/1/square.jpg"},
            {"id": "../../etc", "url": "https://static.inaturalist.org/photos/2/square.jpg"},
            {"id": 3, "url": "https://evil.example/photos/3/square.jpg"},
            {"id": 4, "url": "https://static.inaturalist.org/photos/../../4/square.jpg"},
            {"id": 6, "url": "https://www.inaturalist.org/assets/copyright-infringement-square.png"},
            {"id": 7, "url": "https://static.inaturalist.org/photos/7/square.php"},
        ]
    )
    files = list(photo_files(obs, ["medium"], all_photos=True, allowed_hosts=HOSTS))
    by_id = {f.photo_id: f for f in files}
    assert set(by_id) == {1, 3, 4, 6, 7}  # the non-integer id is dropped
    assert by_id[1].status == "pending" and by_id[1].path == "photos/000/000/1_medium.jpg"
    assert by_id[3].status == "skipped" and "host" in by_id[3].reason
    assert by_id[4].path == "photos/000/000/4_medium.jpg"  # the URL's ".." is not in the path
    assert by_id[6].status == "skipped" and "placeholder" in by_id[6].reason
    assert by_id[7].status == "skipped" and "extension" in by_id[7].reason
    for f in files:
        assert f.path is None or (".." not in f.path and f.path.startswith("photos/"))


def _listed(*positions):
    """An observation whose API lists photos 2001, 2002, ... in that order, with these
    observation_photos positions (None: the API gives null)."""
    ids = [2001 + i for i in range(len(positions))]
    obs = _obs([{"id": i, "url": f"https://static.inaturalist.org/photos/{i}/square.jpg"} for i in ids])
    links = zip(ids, positions, strict=True)
    obs["observation_photos"] = [{"position": p, "photo": {"id": i}} for i, p in links]
    return obs


@pytest.mark.parametrize(
    "positions",
    [
        (5, None),  # the example: today 2002 comes first, with a made-up position 1
        (4, None, None),  # two nulls after a positioned photo
        (None, None),
        (1, 0),  # positions that disagree with the list: the API's order still rules
    ],
)
def test_the_first_photo_is_the_one_the_api_lists_first_with_its_own_position(positions):
    obs = _listed(*positions)
    first = list(photo_files(obs, ["square", "original"], all_photos=False, allowed_hosts=HOSTS))
    assert [(f.photo_id, f.size, f.position) for f in first] == [
        (2001, "square", positions[0]),
        (2001, "original", positions[0]),
    ]
    every = list(photo_files(obs, ["square"], all_photos=True, allowed_hosts=HOSTS))
    assert [(f.photo_id, f.position, f.api_order) for f in every] == [
        (2001 + i, p, i) for i, p in enumerate(positions)
    ]


def test_positions_are_read_from_photo_id_as_newer_answers_give_it():
    obs = _listed(3, 7)
    obs["observation_photos"] = [{"position": 3, "photo_id": 2001}, {"position": 7, "photo_id": 2002}]
    every = list(photo_files(obs, ["square"], all_photos=True, allowed_hosts=HOSTS))
    assert [(f.photo_id, f.position) for f in every] == [(2001, 3), (2002, 7)]
