"""Each observation's classification for the exports, from the state's taxa table.

The taxonomy stage (pipeline/taxonomy.py) names the higher taxa of the observations' taxa;
here a taxon's ``ancestor_ids`` become its kingdom, phylum, class, order, family and genus
(name and id each), Darwin Core's ``higherClassification`` (the names from the kingdom down
to the parent, " | "-separated) and its vernacular name. A taxon not named (a harvest with
--no-taxonomy, or one the API does not know) has empty values.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from inat_async.model import TaxonRecord
from inat_async.store.state import State

RANKS = ("kingdom", "phylum", "class", "order", "family", "genus")
NAMED_RANKS = (*RANKS, "species")  # the ranks a Lineage names
LIFE = 48460  # the root of iNaturalist's tree: in every ancestry, in no classification
SEPARATOR = " | "  # between the names of higherClassification, as GBIF writes it


@dataclass(frozen=True)
class Lineage:
    """A taxon's place in the tree: the name and id at each of NAMED_RANKS it has, and the
    names of the path above it."""

    names: dict[str, str] = field(default_factory=dict)
    ids: dict[str, int] = field(default_factory=dict)
    higher: tuple[str, ...] = ()
    common_name: str | None = None

    @property
    def higher_classification(self) -> str:
        return SEPARATOR.join(self.higher)

    def columns(self) -> tuple[str | int | None, ...]:
        """TAXONOMY_COLUMNS' values: each rank's name and id, None where there is none."""
        return tuple(value for rank in RANKS for value in (self.names.get(rank), self.ids.get(rank)))


NO_LINEAGE = Lineage()


class Lineages:
    """Lineages by taxon id, each worked out once."""

    def __init__(self, taxa: Mapping[int, TaxonRecord]):
        self._taxa = taxa
        self._made: dict[int, Lineage] = {}

    @classmethod
    def of_state(cls, state: State) -> Lineages:
        return cls(state.taxa())

    def of(self, taxon_id: object) -> Lineage:
        """The lineage of a taxon id (anything else, or an unknown taxon: an empty one)."""
        if not isinstance(taxon_id, int) or isinstance(taxon_id, bool):
            return NO_LINEAGE
        made = self._made.get(taxon_id)
        if made is None:
            made = self._made[taxon_id] = self._lineage(taxon_id)
        return made

    def _lineage(self, taxon_id: int) -> Lineage:
        taxon = self._taxa.get(taxon_id)
        if taxon is None:
            return NO_LINEAGE
        names: dict[str, str] = {}
        ids: dict[str, int] = {}
        higher: list[str] = []
        for ancestor_id in taxon.ancestor_ids or [taxon_id]:
            ancestor = self._taxa.get(ancestor_id)
            if ancestor is None or ancestor.name is None:
                continue
            if ancestor.rank in NAMED_RANKS:
                names[ancestor.rank] = ancestor.name
                ids[ancestor.rank] = ancestor_id
            if ancestor_id not in (LIFE, taxon_id):
                higher.append(ancestor.name)
        return Lineage(names, ids, tuple(higher), taxon.preferred_common_name)


#: The classification columns of observations.csv and the Parquet file: the name and id of
#: each rank, after the record's own columns.
TAXONOMY_COLUMNS = tuple(column for rank in RANKS for column in (f"taxon.{rank}", f"taxon.{rank}_id"))
TAXONOMY_KINDS = {column: "int" if column.endswith("_id") else "text" for column in TAXONOMY_COLUMNS}


def with_taxonomy(
    chunks: Iterable[Sequence[Sequence[Any]]], lineages: Lineages, taxon_at: int
) -> Iterator[list[tuple[Any, ...]]]:
    """Chunks of rows, each with TAXONOMY_COLUMNS' values added for the taxon id at ``taxon_at``."""
    for rows in chunks:
        yield [(*row, *lineages.of(row[taxon_at]).columns()) for row in rows]
