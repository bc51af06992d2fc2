"""Observations rendered as the API's JSON: the shared parts (taxon, user, template)
serialised once and spliced in, so a page of 200 renders in milliseconds."""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from .common import (
    _DIMENSIONS,
    _LICENSE_JSON,
    _PH_OLD_URL,
    _PH_PLACEHOLDER,
    _PH_PLACEHOLDER_KIND,
    _PLACEHOLDERS,
    _T0,
    EXTENSIONS,
    LICENSES,
    QUALITY_GRADES,
    TAXA_PER_REQUEST,
    Page,
    _attribution,
    _dumps,
    _mix,
    _moment,
    _offset,
    _splice,
    _User,
    _uuid,
    render_hosts,
)
from .generation import Generation
from .templates import HOST_TOKENS, Taxon, json_object, taxa_by_id
from .text import LOGIN_PARTS, NAMES


class Rendering(Generation):
    """The JSON of observations, users and photos, derived from (seed, id) and the templates."""

    def _user(self, index: int) -> _User:
        user = self._users.get(index)
        if user is not None:
            return user
        r = random.Random(_mix(self.seed, index, 2))
        parts = r.sample(LOGIN_PARTS, r.randint(1, 3))
        login = "_".join(parts) + (str(r.randint(1, 999)) if r.random() < 0.5 else "")
        name = r.choice(NAMES)
        user_id = 1_000 + index * 7 + r.randint(0, 6)
        icon = f"{HOST_TOKENS['static']}/attachments/users/icons/{user_id}/thumb.jpg"
        fields = {
            **self._templates[0].user,
            "id": user_id,
            "login": login,
            "login_autocomplete": login,
            "login_exact": login,
            "name": name,
            "name_autocomplete": name,
            "icon": icon,
            "icon_url": icon.replace("thumb.jpg", "medium.jpg"),
            "observations_count": r.randint(1, 20_000),
            "identifications_count": r.randint(0, 50_000),
            "species_count": r.randint(1, 3_000),
            "created_at": _moment(_T0 - r.randint(0, 300_000_000), 0)[0],
        }
        user = _User(user_id, name or login, _dumps(fields))
        self._users[index] = user
        return user

    def photo_dimensions(self, photo_id: int) -> tuple[int, int]:
        """``original_dimensions`` (width, height) of a photo."""
        return _DIMENSIONS[_mix(self.seed, photo_id, 3) % len(_DIMENSIONS)]

    def _photo_text(self, j: int, t_index: int, name: str, created: int) -> tuple[int, str]:
        """Id and JSON text of one photo object (as in ``photos[]``)."""
        ph = self._photos
        photo_id = int(ph.ids[j])
        flags = int(ph.flags[j])
        lic = int(ph.license[j])
        if flags & _PH_PLACEHOLDER:
            path = _PLACEHOLDERS[1 if flags & _PH_PLACEHOLDER_KIND else 0].format(size="square")
            url = HOST_TOKENS["assets"] + path
        else:
            host = "static" if lic == 0 else "open"
            url = f"{HOST_TOKENS[host]}/photos/{photo_id}/square.{EXTENSIONS[int(ph.ext[j])]}"
            if flags & _PH_OLD_URL:
                url += f"?{created}"
        width, height = self.photo_dimensions(photo_id)
        attribution = self._attributions.get((name, lic))
        if self._photo_attributions and photo_id in self._photo_attributions:
            attribution = _dumps(self._photo_attributions[photo_id])
        elif attribution is None:
            attribution = _dumps(_attribution(name, LICENSES[lic]))
            self._attributions[(name, lic)] = attribution
        tail = self._photo_tails[t_index][1 if flags & _PH_PLACEHOLDER else 0]
        text = (
            f'{{"id":{photo_id},"license_code":{_LICENSE_JSON[lic]},"url":"{url}",'
            f'"attribution":{attribution},'
            f'"original_dimensions":{{"width":{width},"height":{height}}}{tail}}}'
        )
        return photo_id, text

    def _observation_text(self, pos: int) -> str:
        """The JSON text of one observation, with host tokens in its URLs.

        Shared parts (taxon, user, template remainder) are serialised once and spliced in, so
        a page of 200 renders in a few milliseconds even in a world of a million observations.
        Its values are drawn from one generator seeded by (seed, id), in a fixed order: the
        helpers below are called in that order.
        """
        cols = self._cols
        obs_id = int(cols.ids[pos])
        r = random.Random(_mix(self.seed, obs_id, 4))
        t_index = r.randrange(len(self._templates))
        user = self._user(r.randrange(self._user_pool))
        taxon_k = int(cols.taxon[pos])
        created = int(cols.created[pos])
        created_at = _moment(created, self._place_meta[int(cols.place[pos])][4])
        head = _dumps(self._observation_fields(pos, r, user, created, created_at))
        identifications, taxon_text = self._identifications(obs_id, r, t_index, user, taxon_k, created_at)
        photos, links = self._photo_parts(pos, r, t_index, user, created)
        text = _splice(
            head,
            f'"taxon":{taxon_text}',
            f'"user":{user.text}',
            f'"identifications":{identifications}',
            f'"photos":[{",".join(photos)}]',
            f'"observation_photos":[{",".join(links)}]',
            self._shells[t_index],
        )
        return self._overridden(obs_id, text)

    def _observation_fields(
        self, pos: int, r: random.Random, user: _User, created: int, created_at: tuple[str, dict[str, Any]]
    ) -> dict[str, Any]:
        """The observation's own fields (not its taxon, user, identifications or photos)."""
        cols = self._cols
        obs_id = int(cols.ids[pos])
        place_k = int(cols.place[pos])
        lat0, lng0, radius, tz_name, minutes, ancestors = self._place_meta[place_k]
        places = [*ancestors, self.place_ids[place_k]]
        if cols.in_next[pos]:
            places.append(self.place_ids[place_k + 1])
        taxon_k = int(cols.taxon[pos])
        taxon = self.taxa[taxon_k] if taxon_k >= 0 else None
        created_iso, created_details = created_at
        observed_iso, observed_details = _moment(created - r.randint(0, 400 * 86_400), minutes)
        geo = bool(cols.geo[pos])
        whereabouts = _whereabouts(r, geo, lat0, lng0, radius)
        guess = self._guess(r, taxon)
        description = r.choice(self._texts) if r.random() < 0.3 else None
        time_observed = None if r.random() < 0.15 else observed_iso
        return {
            "id": obs_id,
            "uuid": _uuid(r),
            "quality_grade": QUALITY_GRADES[int(cols.quality[pos])],
            "species_guess": guess,
            "description": description,
            "community_taxon_id": (taxon.id if taxon is not None and r.random() < 0.8 else None),
            "ident_taxon_ids": list(taxon.ancestor_ids) if taxon is not None else [],
            "identifications_count": 0,
            "license_code": LICENSES[int(cols.license[pos])],
            **whereabouts,
            "place_ids": sorted(places),
            "observed_on": observed_details["date"],
            "observed_on_string": (
                observed_details["date"] if time_observed is None else time_observed.replace("T", " ")
            ),
            "observed_on_details": observed_details,
            "time_observed_at": time_observed,
            "created_at": created_iso,
            "created_at_details": created_details,
            "updated_at": _moment(int(cols.updated[pos]), minutes)[0],
            "time_zone_offset": _offset(minutes),
            "observed_time_zone": tz_name,
            "created_time_zone": tz_name,
            "uri": f"https://www.inaturalist.org/observations/{obs_id}",
            "reviewed_by": [user.id],
        }

    def _guess(self, r: random.Random, taxon: Taxon | None) -> str | None:
        """species_guess: the taxon's name mostly, else some hard text, or none."""
        roll = r.random()
        if taxon is not None and roll < 0.55:
            return taxon.json.get("preferred_common_name") or taxon.name
        return r.choice(self._texts) if roll < 0.9 else None

    def _identifications(
        self,
        obs_id: int,
        r: random.Random,
        t_index: int,
        user: _User,
        taxon_k: int,
        created_at: tuple[str, dict[str, Any]],
    ) -> tuple[str, str]:
        """(the identifications list, the taxon) as JSON text: one current identification
        of the observation's taxon by its observer, or none for an observation without one."""
        if taxon_k < 0:
            return "[]", "null"
        created_iso, created_details = created_at
        ident_head = _dumps(
            {
                "id": 400_000_000 + obs_id,
                "uuid": _uuid(r),
                "created_at": created_iso,
                "created_at_details": created_details,
                "taxon_id": self.taxa[taxon_k].id,
                "current": True,
            }
        )
        identification = _splice(
            ident_head,
            self._ident_shells[t_index],
            f'"user":{user.text}',
            f'"taxon":{self._taxon_texts[taxon_k][1]}',
        )
        return f"[{identification}]", self._taxon_texts[taxon_k][0]

    def _photo_parts(
        self, pos: int, r: random.Random, t_index: int, user: _User, created: int
    ) -> tuple[list[str], list[str]]:
        """(the photos' JSON texts, the observation_photos' JSON texts linking to them)."""
        photos = [self._photo_text(j, t_index, user.name, created) for j in self._photo_rows(pos)]
        with_photo_id = "photo_id" in self._templates[t_index].observation_photo
        edited = self._photo_positions
        links = [
            f'{{"id":{photo_id - 30_000_000},'
            f'"position":{_dumps(edited.get(photo_id, position)) if edited else position},'
            f'"uuid":"{_uuid(r)}",'
            + (f'"photo_id":{photo_id},' if with_photo_id else "")
            + f'"photo":{text}}}'
            for position, (photo_id, text) in enumerate(photos)
        ]
        return [text for _, text in photos], links

    def _overridden(self, obs_id: int, text: str) -> str:
        """The text with the fields a test edited (World.edit) put over it."""
        overrides = self._overrides.get(obs_id)
        if not overrides:
            return text
        merged = json.loads(text)
        merged.update(overrides)
        return _dumps(merged)

    def render_results_bytes(
        self, ids: Iterable[int], hosts: Mapping[str, str] | None = None, *, only_id: bool = False
    ) -> bytes:
        """The UTF-8 JSON of a ``results`` list for these ids (compact, like the API)."""
        if only_id:
            return _dumps([{"id": int(i)} for i in ids]).encode()
        with self._lock:
            items = [self._observation_text(self._position(int(i))).encode() for i in ids]
        return render_hosts(b"[" + b",".join(items) + b"]", hosts)

    def render_results(
        self, ids: Iterable[int], hosts: Mapping[str, str] | None = None, *, only_id: bool = False
    ) -> str:
        """The JSON text of a ``results`` list for these ids (compact, like the API)."""
        return self.render_results_bytes(ids, hosts, only_id=only_id).decode()

    def render_page(self, page: Page, hosts: Mapping[str, str] | None, *, only_id: bool) -> bytes:
        """The full response body for a :class:`Page`."""
        results = self.render_results_bytes(page.ids, hosts, only_id=only_id)
        head = (
            f'{{"total_results":{page.total_results},"page":{page.page},"per_page":{page.per_page},"results":'
        )
        return head.encode() + results + b"}"

    def render_taxa(self, ids: Iterable[int], hosts: Mapping[str, str] | None = None) -> bytes:
        """The body of /v1/taxa/{ids}: the taxa known among ``ids`` (at most TAXA_PER_REQUEST,
        the first ones, as the API says), in the order asked; unknown ids are left out."""
        known = taxa_by_id()
        found = [known[i] for i in list(dict.fromkeys(ids))[:TAXA_PER_REQUEST] if i in known]
        body = _dumps({"total_results": len(found), "page": 1, "per_page": len(found), "results": found})
        return render_hosts(body.encode(), hosts)

    def observation_json(self, obs_id: int, hosts: Mapping[str, str] | None = None) -> dict[str, Any]:
        """One observation exactly as the server would send it (hosts default to the real ones)."""
        return json_object(json.loads(self.render_results([obs_id], hosts))[0])

    def observations(self, hosts: Mapping[str, str] | None = None) -> Iterator[dict[str, Any]]:
        """Every observation as served, in id order (ground truth for small worlds)."""
        ids = self.ids
        for start in range(0, len(ids), 200):
            yield from json.loads(self.render_results(ids[start : start + 200], hosts))


def _whereabouts(r: random.Random, geo: bool, lat0: float, lng0: float, radius: float) -> dict[str, Any]:
    """Where an observation is and how much of it is public: a point in its place's square,
    obscured sometimes, or none at all when it is private (not geo)."""
    obscured = geo and r.random() < 0.08
    accuracy = r.choice((None, 5, 8, 12, 20, 65, 500))
    lat, lng = lat0 + r.uniform(-1, 1) * radius, lng0 + r.uniform(-1, 1) * radius
    if geo:
        location: str | None = f"{lat:.10f},{lng:.10f}"
        geojson: dict[str, Any] | None = {"type": "Point", "coordinates": [lng, lat]}
        public_accuracy = r.randint(20_000, 30_000) if obscured else accuracy
        geoprivacy = "obscured" if obscured and r.random() < 0.7 else None
    else:
        location = geojson = public_accuracy = None
        geoprivacy = "private"
    return {
        "location": location,
        "geojson": geojson,
        "geoprivacy": geoprivacy,
        "obscured": obscured,
        "mappable": geo,
        "positional_accuracy": accuracy,
        "public_positional_accuracy": public_accuracy,
    }
