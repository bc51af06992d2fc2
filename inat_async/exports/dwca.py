"""OUT/dwca.zip: the harvest as a Darwin Core Archive, modelled on GBIF's iNaturalist dataset.

GBIF's "iNaturalist Research-grade Observations" (DOI 10.15468/ab3s5x) is the model: an
occurrence core keyed by the observation id, a GBIF Simple Multimedia extension for the photos,
meta.xml and eml.xml. The terms and their values follow iNaturalist's own Darwin Core export
(eventDate with time and offset, licences as Creative Commons URLs, informationWithheld for
obscured coordinates, quality_grade as identificationVerificationStatus). Unlike GBIF's copy the
archive holds every observation of the harvest, whatever its grade or licence. As in GBIF's copy
the multimedia extension has one row per photo (one with a file on disk), whatever the sizes
harvested: its dcterms:identifier is the URL of its largest size harvested, and dcterms:source
lists the files of its sizes on disk, "|"-separated (GBIF's separator of several values).

The data files are UTF-8, tab-separated, one record a line; a value holding a tab, a line break
or a double quote is enclosed in double quotes with inner quotes doubled (fieldsEnclosedBy in
meta.xml), so free text such as descriptions survives unchanged. Each member is streamed into
the zip (observations in id order, never all in memory) under a temporary name, then renamed.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import time
import uuid
import zipfile
from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import astuple, dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit
from xml.etree import ElementTree as ET

from inat_async.config import SIZES
from inat_async.exports.taxonomy import NO_LINEAGE, RANKS, Lineage, Lineages
from inat_async.records import _lat_lng
from inat_async.store.files import replacing
from inat_async.store.state import FileDone, State

DWC = "http://rs.tdwg.org/dwc/terms/"
DC = "http://purl.org/dc/terms/"
OCCURRENCE_ROW_TYPE = DWC + "Occurrence"
MULTIMEDIA_ROW_TYPE = "http://rs.gbif.org/terms/1.0/Multimedia"
SITE = "https://www.inaturalist.org"
FETCH_ROWS = 2_000

# (header, term URI) of each data column after the id/coreid column, in file order.
OCCURRENCE_TERMS: tuple[tuple[str, str], ...] = (
    ("occurrenceID", DWC + "occurrenceID"),
    ("basisOfRecord", DWC + "basisOfRecord"),
    ("institutionCode", DWC + "institutionCode"),
    ("collectionCode", DWC + "collectionCode"),
    ("datasetName", DWC + "datasetName"),
    ("catalogNumber", DWC + "catalogNumber"),
    ("references", DC + "references"),
    ("modified", DC + "modified"),
    ("license", DC + "license"),
    ("rightsHolder", DC + "rightsHolder"),
    ("recordedBy", DWC + "recordedBy"),
    ("recordedByID", DWC + "recordedByID"),
    ("inaturalistLogin", "http://xmlns.com/foaf/0.1/nick"),
    ("eventDate", DWC + "eventDate"),
    ("decimalLatitude", DWC + "decimalLatitude"),
    ("decimalLongitude", DWC + "decimalLongitude"),
    ("coordinateUncertaintyInMeters", DWC + "coordinateUncertaintyInMeters"),
    ("geodeticDatum", DWC + "geodeticDatum"),
    ("informationWithheld", DWC + "informationWithheld"),
    ("taxonID", DWC + "taxonID"),
    ("scientificName", DWC + "scientificName"),
    ("taxonRank", DWC + "taxonRank"),
    ("kingdom", DWC + "kingdom"),
    ("phylum", DWC + "phylum"),
    ("class", DWC + "class"),
    ("order", DWC + "order"),
    ("family", DWC + "family"),
    ("genus", DWC + "genus"),
    ("higherClassification", DWC + "higherClassification"),
    ("vernacularName", DWC + "vernacularName"),
    ("identificationVerificationStatus", DWC + "identificationVerificationStatus"),
    ("occurrenceRemarks", DWC + "occurrenceRemarks"),
)
MULTIMEDIA_TERMS: tuple[tuple[str, str], ...] = (
    ("type", DC + "type"),
    ("format", DC + "format"),
    ("identifier", DC + "identifier"),
    ("references", DC + "references"),
    ("created", DC + "created"),
    ("creator", DC + "creator"),
    ("publisher", DC + "publisher"),
    ("license", DC + "license"),
    ("rightsHolder", DC + "rightsHolder"),
    ("source", DC + "source"),  # the local files of its sizes, relative to the folder of dwca.zip
)
#: Between the values of one field that holds several (the files of a photo's sizes).
SEPARATOR = "|"
# iNaturalist's licence codes (lowercase) as the URLs its own Darwin Core export gives.
LICENSE_URLS = {
    "cc0": "http://creativecommons.org/publicdomain/zero/1.0/",
    "pd": "http://creativecommons.org/publicdomain/mark/1.0/",
    "gfdl": "http://www.gnu.org/copyleft/fdl.html",
    **{
        f"cc-{kind}": f"http://creativecommons.org/licenses/{kind}/4.0/"
        for kind in ("by", "by-nc", "by-sa", "by-nd", "by-nc-sa", "by-nc-nd")
    },
}
MEDIA_TYPES = {"jpg": "image/jpeg", "jpeg": "image/jpeg", "png": "image/png", "gif": "image/gif"}
_NEEDS_QUOTES = frozenset('\t\n\r"')


def write_dwca(state: State, out: Path, *, api_url: str | None = None) -> Path:
    """Write OUT/dwca.zip from the harvest state; return its path.

    ``api_url`` names the API the harvest came from in eml.xml (else the state's ``api_url``
    meta, if a harvest recorded one).
    """
    target = out / "dwca.zip"
    with (
        replacing(target) as part,
        zipfile.ZipFile(part, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive,
    ):
        name = dataset_title(state)
        observations = _write_member(
            archive, "occurrence.txt", OCCURRENCE_TERMS, "id", _occurrence_rows(state, name)
        )
        photos = _write_member(archive, "multimedia.txt", MULTIMEDIA_TERMS, "coreid", _multimedia_rows(state))
        archive.writestr("meta.xml", _meta_xml())
        api_url = api_url or state.meta("api_url")
        archive.writestr("eml.xml", _eml_xml(state, api_url, _Counts(observations, photos)))
    return target


# -- data files -----------------------------------------------------------------------------------
def _write_member(
    archive: zipfile.ZipFile,
    name: str,
    terms: Sequence[tuple[str, str]],
    key: str,
    rows: Iterable[Sequence[str]],
) -> int:
    """Stream a header line and ``rows`` into the archive member ``name``; return the row count."""
    count = 0
    member = archive.open(_member(name), "w", force_zip64=True)  # size unknown: may pass 4 GiB
    with io.TextIOWrapper(member, encoding="utf-8", newline="") as text:
        text.write(_line([key, *(header for header, _ in terms)]))
        for row in rows:
            text.write(_line(row))
            count += 1
    return count


def _member(name: str) -> zipfile.ZipInfo:
    """A deflated zip member stamped now (ZipFile.open would stamp a bare name 1980-01-01)."""
    info = zipfile.ZipInfo(name, date_time=time.localtime()[:6])
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def _line(values: Sequence[str]) -> str:
    return "\t".join(_field(value) for value in values) + "\n"


def _field(value: str) -> str:
    """A value as meta.xml declares it: enclosed in double quotes (inner ones doubled) only
    when it holds a tab, a line break or a quote. NUL, which no text reader accepts, is dropped."""
    value = value.replace("\x00", "")
    if _NEEDS_QUOTES.isdisjoint(value):
        return value
    return '"' + value.replace('"', '""') + '"'


def _occurrence_rows(state: State, dataset: str) -> Iterator[list[str]]:
    lineages = Lineages.of_state(state)
    for obs in state.raw_observations():
        yield occurrence_row(obs, dataset, lineages.of(_mapping(obs.get("taxon")).get("id")))


def occurrence_row(obs: Mapping[str, Any], dataset: str, lineage: Lineage = NO_LINEAGE) -> list[str]:
    """One occurrence.txt row (the id, then OCCURRENCE_TERMS' values) of an API observation;
    ``dataset`` is the archive's name, the datasetName of every row; ``lineage`` its taxon's
    classification (exports/taxonomy.py)."""
    taxon = _mapping(obs.get("taxon"))
    user = _mapping(obs.get("user"))
    lat, lng = _lat_lng(obs.get("location"))
    uri = _text(obs.get("uri"))
    user_id = _whole(user.get("id"))
    values = {
        "occurrenceID": uri,
        "basisOfRecord": "HumanObservation",
        "institutionCode": "iNaturalist",
        "collectionCode": "Observations",
        "datasetName": dataset,
        "catalogNumber": _number(obs.get("id")),
        "references": uri,
        "modified": _text(obs.get("updated_at")),
        "license": license_url(obs.get("license_code")),
        "rightsHolder": person(user),
        "recordedBy": person(user),
        "recordedByID": f"{_site(uri)}/people/{user_id}" if user_id else "",
        "inaturalistLogin": _text(user.get("login")),
        "eventDate": event_date(obs),
        "decimalLatitude": _number(lat),
        "decimalLongitude": _number(lng),
        "coordinateUncertaintyInMeters": _number(obs.get("public_positional_accuracy")),
        "geodeticDatum": "WGS84" if lat is not None else "",
        "informationWithheld": information_withheld(obs),
        "taxonID": _number(taxon.get("id")),
        "scientificName": _text(taxon.get("name")),
        "taxonRank": _text(taxon.get("rank")),
        **{rank: lineage.names.get(rank, "") for rank in RANKS},
        "higherClassification": lineage.higher_classification,
        "vernacularName": _text(taxon.get("preferred_common_name")),
        "identificationVerificationStatus": _text(obs.get("quality_grade")),
        "occurrenceRemarks": _text(obs.get("description")),
    }
    return [_number(obs.get("id")), *(values[header] for header, _ in OCCURRENCE_TERMS)]


@dataclass(frozen=True)
class _Observer:
    """What a photo row needs from its observation: who took it, when, and the site's address."""

    name: str
    created: str
    site: str


def _observers(state: State) -> Generator[tuple[int, _Observer], None, None]:
    for obs in state.raw_observations():
        uri = _text(obs.get("uri"))
        yield obs["id"], _Observer(person(_mapping(obs.get("user"))), event_date(obs), _site(uri))


def _multimedia_rows(state: State) -> Iterator[list[str]]:
    """One row per photo with a file on disk, in the CSV's order, joined by id order to its
    observation; the files of its sizes (smallest first) come in consecutive rows."""
    with contextlib.closing(_observers(state)) as observers:
        current: tuple[int, _Observer] | None = next(observers, None)
        for (observation_id, _), files in itertools.groupby(state.files_done(FETCH_ROWS), key=_photo_key):
            while current is not None and current[0] < observation_id:
                current = next(observers, None)
            found = current[1] if current is not None and current[0] == observation_id else None
            yield _multimedia_row(list(files), found)


def _photo_key(row: FileDone) -> tuple[int, int]:
    return row.observation_id, row.photo_id


def _multimedia_row(files: list[FileDone], observer: _Observer | None) -> list[str]:
    """One multimedia.txt row (the core id, then MULTIMEDIA_TERMS' values) of a photo, from
    its files' rows (observation_id, photo_id, url, path, license_code), smallest size first."""
    observation_id, photo_id, url, path, license_code = files[-1]  # the largest size harvested
    name = observer.name if observer else ""
    ext = PurePosixPath(path).suffix.lstrip(".").lower()
    values = {
        "type": "StillImage",
        "format": MEDIA_TYPES.get(ext, ""),
        "identifier": url,
        "references": f"{observer.site if observer else SITE}/photos/{photo_id}",
        "created": observer.created if observer else "",
        "creator": name,
        "publisher": "iNaturalist",
        "license": license_url(license_code),
        "rightsHolder": name,
        "source": SEPARATOR.join(row.path for row in files),
    }
    return [str(observation_id), *(values[header] for header, _ in MULTIMEDIA_TERMS)]


# -- values ---------------------------------------------------------------------------------------
def license_url(code: Any) -> str:
    """The licence URL of an iNaturalist licence code; empty for none (all rights reserved)."""
    if not isinstance(code, str) or not code.strip():
        return ""
    return LICENSE_URLS.get(code.strip().lower(), code.strip())


def dataset_title(state: State) -> str:
    """The archive's name: its EML title, and every occurrence's datasetName."""
    settings = json.loads(state.meta("fingerprint") or "{}")
    places = ", ".join(str(p) for p in settings.get("places", [])) or "unknown"
    return f"iNaturalist observations of places {places}"


def person(user: Mapping[str, Any]) -> str:
    """The observer as iNaturalist's export names them: the display name, else the login."""
    return (_text(user.get("name")) or "").strip() or _text(user.get("login"))


def event_date(obs: Mapping[str, Any]) -> str:
    """time_observed_at (ISO 8601 with the observer's offset) when known, else observed_on."""
    moment = _text(obs.get("time_observed_at"))
    if moment:
        with contextlib.suppress(ValueError):
            if datetime.fromisoformat(moment).tzinfo is not None:
                return moment
    return _text(obs.get("observed_on"))


def information_withheld(obs: Mapping[str, Any]) -> str:
    """Why the public point is vaguer than the observer's, in iNaturalist's export's words."""
    accuracy = _whole(obs.get("public_positional_accuracy"))
    increased = f"Coordinate uncertainty increased to {accuracy}m" if accuracy else "Coordinates obscured"
    if obs.get("geoprivacy") == "private":
        return "Coordinates hidden at the request of the observer"
    if obs.get("geoprivacy") == "obscured":
        return f"{increased} at the request of the observer"
    if obs.get("obscured") is True or obs.get("taxon_geoprivacy") in ("obscured", "private"):
        return f"{increased} to protect threatened taxon"
    return ""


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _whole(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        return None
    return round(value)


def _number(value: Any) -> str:
    """A number as text (floats at full precision, 12.0 as 12), empty when not a number."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        return ""
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _site(uri: str) -> str:
    """The site an observation URI lives on (https://www.inaturalist.org by default)."""
    parts = urlsplit(uri)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme in ("http", "https") and parts.netloc else SITE


# -- meta.xml and eml.xml -------------------------------------------------------------------------
def _xml_document(root: ET.Element) -> bytes:
    """``root`` as a UTF-8 XML file with its declaration, ending in a newline.

    What ``ET.tostring(root, encoding="utf-8", xml_declaration=True)`` does, written out so the
    result is typed as bytes (typeshed types ``tostring`` with any encoding but "unicode" as Any)."""
    out = io.BytesIO()
    ET.ElementTree(root).write(out, encoding="utf-8", xml_declaration=True)
    return out.getvalue() + b"\n"


def _meta_xml() -> bytes:
    """The archive descriptor: file layout, escaping rules and each column's term."""
    root = ET.Element("archive", xmlns="http://rs.tdwg.org/dwc/text/", metadata="eml.xml")
    _section(root, "core", OCCURRENCE_ROW_TYPE, "occurrence.txt", "id", OCCURRENCE_TERMS)
    _section(root, "extension", MULTIMEDIA_ROW_TYPE, "multimedia.txt", "coreid", MULTIMEDIA_TERMS)
    ET.indent(root)
    return _xml_document(root)


def _section(
    root: ET.Element, tag: str, row_type: str, location: str, key: str, terms: Sequence[tuple[str, str]]
) -> None:
    section = ET.SubElement(
        root,
        tag,
        encoding="UTF-8",
        fieldsTerminatedBy="\\t",
        linesTerminatedBy="\\n",
        fieldsEnclosedBy='"',
        ignoreHeaderLines="1",
        rowType=row_type,
    )
    ET.SubElement(ET.SubElement(section, "files"), "location").text = location
    ET.SubElement(section, key, index="0")
    for index, (_, term) in enumerate(terms, start=1):
        ET.SubElement(section, "field", index=str(index), term=term)


@dataclass(frozen=True)
class _Counts:
    """How many rows the archive's data files hold."""

    observations: int
    photos: int


def _eml_xml(state: State, api_url: str | None, counts: _Counts) -> bytes:
    """Dataset metadata (EML, GBIF profile): what was harvested, from where, when, and rights."""
    settings = json.loads(state.meta("fingerprint") or "{}")
    places = ", ".join(str(p) for p in settings.get("places", [])) or "unknown"
    now = datetime.now(UTC)
    eml = ET.Element(
        "eml:eml",
        {
            "xmlns:eml": "eml://ecoinformatics.org/eml-2.1.1",
            "xmlns:dc": "http://purl.org/dc/terms/",
            "xmlns:xsi": "http://www.w3.org/2001/XMLSchema-instance",
            "xsi:schemaLocation": "eml://ecoinformatics.org/eml-2.1.1 "
            "http://rs.gbif.org/schema/eml-gbif-profile/1.1/eml.xsd",
            "packageId": str(uuid.uuid4()),
            "system": "http://gbif.org",
            "scope": "system",
            "xml:lang": "en",
        },
    )
    dataset = ET.SubElement(eml, "dataset")
    ET.SubElement(dataset, "title", {"xml:lang": "en"}).text = dataset_title(state)
    for role in ("creator", "metadataProvider"):
        _party(dataset, role)
    ET.SubElement(dataset, "pubDate").text = now.date().isoformat()
    ET.SubElement(dataset, "language").text = "en"
    _paras(dataset, "abstract", _abstract(settings, api_url, counts, state.meta("completed_at"), now))
    _paras(dataset, "intellectualRights", _rights())
    _coverage(dataset, state, places)
    _party(dataset, "contact")
    methods = ET.SubElement(dataset, "methods")
    _paras(ET.SubElement(methods, "methodStep"), "description", _method(settings, api_url))
    ET.indent(eml)
    return _xml_document(eml)


def _party(parent: ET.Element, role: str) -> None:
    party = ET.SubElement(parent, role)
    ET.SubElement(party, "organizationName").text = "iNaturalist observers (harvested with inat_async)"
    ET.SubElement(party, "onlineUrl").text = SITE


def _paras(parent: ET.Element, tag: str, paragraphs: Iterable[str]) -> None:
    element = ET.SubElement(parent, tag)
    for paragraph in paragraphs:
        ET.SubElement(element, "para").text = paragraph


def _abstract(
    settings: Mapping[str, Any], api_url: str | None, counts: _Counts, completed: str | None, now: datetime
) -> list[str]:
    places = ", ".join(map(str, settings.get("places", [])))
    status = f"harvest completed {completed}" if completed else "harvest not complete"
    return [
        f"{counts.observations} observations of iNaturalist places {places}"
        f" and {counts.photos} of their photos, harvested with inat_async from the iNaturalist API"
        f" at {api_url or 'an unrecorded URL'}; {status};"
        f" archive written {now.isoformat(timespec='seconds')}.",
        "Modelled on GBIF's iNaturalist Research-grade Observations dataset (doi:10.15468/ab3s5x),"
        " but holding every observation the harvest's query returned, of any quality grade"
        " (identificationVerificationStatus) and licence. Coordinates are the public ones: obscured"
        " points are marked in informationWithheld. Each multimedia row is one photo with a file on"
        " disk: its dcterms:identifier is the URL of its largest size harvested, its dcterms:source"
        " the files of its sizes, |-separated, relative to the folder holding this archive.",
    ]


def _rights() -> list[str]:
    return [
        "Each record keeps its own licence: an occurrence's dcterms:license is its observation's"
        " licence and a multimedia row's is its photo's, as the observer chose them on iNaturalist;"
        " the rightsHolder is the observer. An empty licence means the observer reserved all rights."
        " Use, cite and attribute each record under its own licence."
    ]


def _method(settings: Mapping[str, Any], api_url: str | None) -> list[str]:
    filters = settings.get("filters") or {}
    query = "&".join(f"{k}={v}" for k, v in filters.items()) or "none"
    photos = (
        "none"
        if settings.get("no_photos")
        else (
            f"{'all photos' if settings.get('all_photos') else 'the first photo'} of each observation,"
            f" sizes {', '.join(_in_size_order(settings.get('sizes', []))) or 'unknown'}"
        )
    )
    return [
        f"API: {api_url or 'not recorded'} (GET /observations, paged by id)",
        f"Places: {', '.join(map(str, settings.get('places', []))) or 'unknown'}",
        f"Filters: {query}",
        f"Photos: {photos}",
    ]


def _in_size_order(sizes: Iterable[str]) -> list[str]:
    return sorted(sizes, key=lambda size: SIZES.index(size) if size in SIZES else len(SIZES))


def _coverage(dataset: ET.Element, state: State, places: str) -> None:
    """The observations' bounding box and date range, when there are any."""
    south, north, west, east, first, last = astuple(state.coverage())
    if south is None and first is None:
        return
    coverage = ET.SubElement(dataset, "coverage")
    if south is not None:
        geographic = ET.SubElement(coverage, "geographicCoverage")
        ET.SubElement(geographic, "geographicDescription").text = f"iNaturalist places {places}"
        box = ET.SubElement(geographic, "boundingCoordinates")
        bounds = {"west": west, "east": east, "north": north, "south": south}
        for side, value in bounds.items():
            ET.SubElement(box, f"{side}BoundingCoordinate").text = str(value)
    if first is not None:
        temporal = ET.SubElement(ET.SubElement(coverage, "temporalCoverage"), "rangeOfDates")
        ET.SubElement(ET.SubElement(temporal, "beginDate"), "calendarDate").text = first
        ET.SubElement(ET.SubElement(temporal, "endDate"), "calendarDate").text = last
