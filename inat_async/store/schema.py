"""The tables of OUT/harvest.sqlite, and the version of their layout.

store/state.py creates them, upgrades a state of an earlier version step by step (a comment
below names what each version added) and does every read and write.
"""

from __future__ import annotations

from inat_async.records import SQL_COLUMNS

# 2: photos.host, so each photo host is fed on its own.
# 3: photos.position as the API gives it (NULL when it gives none), photos.api_order (the
#    API's order of an observation's photos), and seq never reused (AUTOINCREMENT): a photo
#    row an update replaces is queued again after what a feeder has passed.
# 4: photos.max_bytes, the most a file of its size can hold (image.byte_cap).
# 5: streams, paged and counts, so a query's stored observations can be reconciled with the
#    API's count of them.
# 6: observations.raw a zstandard frame, with a dictionary trained on the harvest's first
#    observations (store/rawjson.py) kept in the dictionaries table.
SCHEMA_VERSION = 6

PHOTOS_TABLE = """
CREATE TABLE IF NOT EXISTS {name} (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- queue order
    photo_id INTEGER NOT NULL,
    size TEXT NOT NULL,
    observation_id INTEGER NOT NULL,
    position INTEGER,              -- observation_photos' position; NULL when the API gives none
    api_order INTEGER NOT NULL,    -- index in the API's photos list: the outputs' order
    url TEXT NOT NULL,
    host TEXT,                     -- the URL's host[:port], for files to fetch
    path TEXT,
    status TEXT NOT NULL,
    reason TEXT,
    bytes INTEGER,
    license_code TEXT,
    attribution TEXT,
    max_bytes INTEGER,             -- the most a file of its size can hold (image.byte_cap)
    UNIQUE (photo_id, size)
)
"""
# The columns a new photo row sets (seq is given, bytes come when its file is done).
PHOTO_COLUMNS_SQL = (
    "photo_id, size, observation_id, position, api_order, url, host, path, status, reason,"
    " license_code, attribution, max_bytes"
)

RECONCILE_TABLES = """
CREATE TABLE IF NOT EXISTS streams (
    n INTEGER PRIMARY KEY,
    stream TEXT NOT NULL UNIQUE,   -- as in cursors
    reconciled INTEGER NOT NULL DEFAULT 0,  -- paged to its end and reconciled at least once
    unfound INTEGER                -- counted by the API but not found at the last reconciliation
);
-- The ids each stream's pages returned: what is stored "for a query". Observations are stored
-- once however many queries return them, and their place_ids or fields may no longer match the
-- query (an --update stream returns only what changed), so membership is recorded, not derived.
CREATE TABLE IF NOT EXISTS paged (
    stream INTEGER NOT NULL,       -- streams.n
    id INTEGER NOT NULL,
    PRIMARY KEY (stream, id)
) WITHOUT ROWID;
-- per_page=0 counts of a reconciliation under way, so a resumed run does not ask them again.
CREATE TABLE IF NOT EXISTS counts (
    stream INTEGER NOT NULL,       -- streams.n
    lo INTEGER NOT NULL,           -- ids above this
    hi INTEGER NOT NULL,           -- and below this (-1: no end)
    total INTEGER NOT NULL,
    PRIMARY KEY (stream, lo, hi)
) WITHOUT ROWID;
"""

DICTIONARIES_TABLE = """
CREATE TABLE IF NOT EXISTS dictionaries (  -- zstandard dictionaries of observations.raw
    id INTEGER PRIMARY KEY,        -- the id a frame's header names
    data BLOB NOT NULL
)"""

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cursors (
    stream TEXT NOT NULL,          -- the query, less its paging parameters
    lo INTEGER NOT NULL,           -- the range starts above this id
    hi INTEGER,                    -- and ends below this one (NULL: no end)
    last_id INTEGER NOT NULL,      -- the largest id committed so far
    done INTEGER NOT NULL DEFAULT 0,
    total INTEGER,                 -- total_results of the range's first page
    PRIMARY KEY (stream, lo)
);
CREATE TABLE IF NOT EXISTS observations (
    {", ".join(f'"{c}"' for c in SQL_COLUMNS)},
    raw BLOB NOT NULL,             -- JSON as the API sent it, a zstandard frame (rawjson.py)
    PRIMARY KEY ("id")
);
{DICTIONARIES_TABLE};
{PHOTOS_TABLE.format(name="photos")};
CREATE INDEX IF NOT EXISTS photos_pending ON photos (status, host, seq);
CREATE INDEX IF NOT EXISTS photos_observation ON photos (observation_id);
CREATE TABLE IF NOT EXISTS rejected (  -- observations and photos skipped: they do not fit
    kind TEXT NOT NULL,            -- observation or photo
    key TEXT NOT NULL,             -- its id, or a digest when it has none
    observation_id INTEGER,
    reason TEXT NOT NULL,
    PRIMARY KEY (kind, key)
);
{RECONCILE_TABLES};
-- Taxa named by /v1/taxa (the ancestors of the observations' taxa) and the observations' own
-- taxa: the exports' classification, kept across runs so no taxon is asked twice.
CREATE TABLE IF NOT EXISTS taxa (
    id INTEGER PRIMARY KEY,
    rank TEXT,                     -- NULL: asked, and /v1/taxa does not know it
    name TEXT,
    common_name TEXT,
    ancestor_ids TEXT              -- "48460,1,...,id": from the root to the taxon itself
);"""
