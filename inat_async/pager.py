"""The producer: pages /v1/observations by id (keyset), committing each page to the state.

Never ``page=``: the API refuses results past 10,000. Pages are asked for in id order with
``id_above`` set to the largest id committed, until a page comes back empty.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any
from urllib.parse import urlencode

from .errors import ServerError
from .http import Http
from .photos import photo_files
from .progress import Progress
from .records import observation_row
from .settings import Settings
from .state import Cursor, State

log = logging.getLogger("inat_async")

# Many places go into one query (the API ORs a comma list), in chunks that keep URLs short.
PLACES_PER_QUERY = 100


def queries(settings: Settings) -> Iterator[tuple[str, dict[str, str]]]:
    """(stream key, filters) for each query the harvest pages; the key names its cursors."""
    places = settings.places
    for start in range(0, len(places), PLACES_PER_QUERY):
        params = {
            **settings.filters,
            "place_id": ",".join(map(str, places[start : start + PLACES_PER_QUERY])),
        }
        yield urlencode(sorted(params.items())), params


class Pager:
    """Pages every query of the harvest into the state; ``on_page`` is told of new photos."""

    def __init__(self, settings: Settings, state: State, http: Http, progress: Progress,
                 on_page: Callable[[], None]):  # fmt: skip
        self.settings = settings
        self.state = state
        self.http = http
        self.progress = progress
        self.on_page = on_page
        self.url = settings.api_url.rstrip("/") + "/observations"

    async def run(self) -> None:
        for key, params in queries(self.settings):
            cursors = self.state.cursors(key) or [self.state.add_cursor(key, 0, None)]
            for cursor in cursors:
                if cursor.total:
                    self.progress.expected += cursor.total
                await self._page_range(cursor, params)

    async def _page_range(self, cursor: Cursor, params: dict[str, str]) -> None:
        while not cursor.done:
            query = {**params, "order_by": "id", "order": "asc",
                     "per_page": str(self.settings.per_page), "id_above": str(cursor.last_id)}  # fmt: skip
            if cursor.hi is not None:
                query["id_below"] = str(cursor.hi)
            page = await self.http.get_json(self.url, query)
            if cursor.total is None and isinstance(page.get("total_results"), int):
                self.state.set_total(cursor, page["total_results"])
                cursor = replace(cursor, total=page["total_results"])
                self.progress.expected += cursor.total or 0
            cursor = self._save(cursor, page["results"])

    def _save(self, cursor: Cursor, results: list[Any]) -> Cursor:
        if not results:
            self.state.save_page(cursor, [], [], [], cursor.last_id, done=True)
            return replace(cursor, done=True)
        fresh = [o for o in results if _in_range(o, cursor)]
        if not fresh:
            raise ServerError(
                f"the API answered ids that are not above id_above={cursor.last_id}: "
                "it does not page like iNaturalist's"
            )
        if len(fresh) < len(results):
            log.warning("skipped %d malformed or out-of-range observations", len(results) - len(fresh))
        s = self.settings
        rows = [observation_row(o, s.places) for o in fresh]
        raws = [json.dumps(o, ensure_ascii=False, separators=(",", ":")).encode() for o in fresh]
        files = [] if s.no_photos else [
            f for o in fresh
            for f in photo_files(o, s.sizes, all_photos=s.all_photos, allowed_hosts=s.photo_hosts)
        ]  # fmt: skip
        last_id = max(o["id"] for o in fresh)
        added = self.state.save_page(cursor, rows, raws, files, last_id, done=False)
        self.progress.paged += len(fresh)
        self.progress.queued += added
        self.on_page()
        return replace(cursor, last_id=last_id)


def _in_range(obs: Any, cursor: Cursor) -> bool:
    if not isinstance(obs, dict):
        return False
    oid = obs.get("id")
    if not isinstance(oid, int) or isinstance(oid, bool):
        return False
    return oid > cursor.last_id and (cursor.hi is None or oid < cursor.hi)
