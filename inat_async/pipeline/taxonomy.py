"""The taxonomy stage: the names of every observation's higher taxa, from /v1/taxa.

An observation carries its taxon's ``ancestor_ids`` but not their names or ranks. Once paging
is done, the ids not yet in the state's taxa table are asked from ``/v1/taxa/{ids}``, at most
30 a request (the API's maximum), one request at a time through the harvest's Http (so within
its API budget), and each answer is committed at once: the table is kept across runs, so a
resumed or later harvest asks only for taxa it has never seen. An id the API does not return
is recorded as unknown and not asked again. The exports read the table (exports/taxonomy.py).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable

from inat_async.errors import ServerError
from inat_async.model import TaxonRecord, check_taxa, usable_id
from inat_async.net.http import Http
from inat_async.store.state import State

log = logging.getLogger("inat_async")

TAXA_PER_REQUEST = 30


def observed_taxa(observations: Iterable[dict[str, object]]) -> dict[int, TaxonRecord]:
    """The observations' own taxa (which carry their ancestor_ids), by id."""
    found: dict[int, TaxonRecord] = {}
    for obs in observations:
        for taxon in check_taxa([obs.get("taxon")]):
            found[taxon.id] = taxon
    return found


def missing_ancestors(taxa: Iterable[TaxonRecord], known: set[int]) -> list[int]:
    """The ancestor ids of ``taxa`` not in ``known``, in ascending order."""
    wanted = {a for t in taxa for a in (t.ancestor_ids or [])}
    return sorted(wanted - known)


def requests_for(missing: int) -> int:
    """/v1/taxa requests that name ``missing`` taxa."""
    return math.ceil(missing / TAXA_PER_REQUEST)


async def resolve_taxonomy(state: State, http: Http, api_url: str) -> int:
    """Name the higher taxa of every observation not named yet; return the requests made.

    A request that keeps failing ends the stage with a warning, not the harvest: its
    observations are stored already, and the same command again names what is left."""
    leaves = observed_taxa(state.observations_of_new_taxa())
    state.save_taxa(leaves.values())
    missing = missing_ancestors(state.taxa().values(), state.taxon_ids())
    if not missing:
        return 0
    log.info("taxonomy: naming %d higher taxa in %d requests", len(missing), requests_for(len(missing)))
    made = 0
    for start in range(0, len(missing), TAXA_PER_REQUEST):
        batch = missing[start : start + TAXA_PER_REQUEST]
        url = f"{api_url.rstrip('/')}/taxa/{','.join(map(str, batch))}"
        try:
            page = await http.get_json(url, {})
        except ServerError as exc:
            log.warning("taxonomy left incomplete (%s); the same command again goes on", exc)
            break
        made += 1
        state.save_taxa(_answered(batch, page["results"]))
    return made


def _answered(asked: Iterable[int], results: list[object]) -> list[TaxonRecord]:
    """The taxa a page names, and those asked that it does not return (unknown to the API);
    one returned in a shape that does not fit is neither, so a later run asks again."""
    named = check_taxa(results)
    returned = {usable_id(item) for item in results}
    unknown = [TaxonRecord(taxon_id) for taxon_id in asked if taxon_id not in returned]
    return [*named, *unknown]
