"""The fake dataset: taxa, users, observations and photos, generated from a seed.

The same species, counts, seed and options always give the same dataset, byte for byte.
Observation ids ascend with gaps and interleave across species, as real ids do; photo ids
are a separate, also gapped, sequence. Each species' first observations cycle through the
API's known quirks (see :data:`QUIRKS`) so that even a small dataset exercises all of them;
the rest are drawn at random with realistic proportions.

Photo paths keep the real shape ``/photos/<id>/<size>.<ext>`` under a prefix naming the
emulated host: ``/s3/...`` stands for inaturalist-open-data.s3.amazonaws.com (openly
licensed photos) and ``/static/...`` for static.inaturalist.org (the others). Placeholders
(hidden or flagged photos) live under ``/static/attachment_defaults/`` and ``/www/assets/``.
"""

from __future__ import annotations

import bisect
import itertools
import random
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Literal, TypeVar

from .catalog import (
    CONTROLLED_TERMS,
    DEMO_COUNTS,
    DESCRIPTIONS,
    FAKE_PLACES,
    HOSTILE_USERS,
    ICONIC_TAXA,
    KINGDOMS,
    LIFE_ID,
    LOGIN_WORDS,
    PERSON_NAMES,
    PLACES,
    TIME_ZONES,
    FakeSpecies,
    species_spec,
)

Host = Literal["s3", "static"]
_T = TypeVar("_T")

#: Longest side in pixels of each size iNaturalist serves ("square" is a 75 px crop).
PHOTO_SIZES: dict[str, int] = {
    "square": 75,
    "thumb": 100,
    "small": 240,
    "medium": 500,
    "large": 1024,
    "original": 2048,
}
LICENSE_CODES: tuple[str, ...] = (
    "cc-by",
    "cc-by-nc",
    "cc-by-nd",
    "cc-by-sa",
    "cc-by-nc-nd",
    "cc-by-nc-sa",
    "cc0",
)
#: Stand-in images the API names instead of a hidden or flagged photo.
PLACEHOLDERS: dict[str, str] = {
    "copyright": "/www/assets/copyright-infringement-square.png",
    "hidden": "/static/attachment_defaults/general/square.png",
}
#: Observations that each species gets first, in this order, whatever the seed.
QUIRKS: tuple[str, ...] = (
    "plain",  # research, cc-by, one .jpg photo on S3: the easy case
    "no_photos",  # photos: [] (casual)
    "mixed_licenses",  # photos under cc-by, null and cc-by-nc in one observation
    "placeholder",  # a flagged photo's placeholder before a real photo
    "null_license",  # null license on the observation and its photos (static host)
    "extensions",  # .jpeg .JPG .png .gif in one observation
    "empty_ext",  # "square." and "square?ts"
    "no_geo",  # geojson null, location null
    "no_time",  # time_observed_at null
    "subspecies",  # identified as a subspecies (if the species has one)
    "obscured",  # obscured coordinates
    "needs_id",
    "hidden_only",  # its only photo is a placeholder
    "casual",  # casual grade with photos
)

_OBS_LICENSES: tuple[tuple[str | None, float], ...] = (
    ("cc-by-nc", 0.42),
    (None, 0.20),
    ("cc-by", 0.14),
    ("cc0", 0.06),
    ("cc-by-nc-sa", 0.05),
    ("cc-by-nc-nd", 0.05),
    ("cc-by-sa", 0.04),
    ("cc-by-nd", 0.04),
)
# A photo's own license, when it differs from its observation's; "pd" exists on real photos.
_PHOTO_LICENSES: tuple[tuple[str | None, float], ...] = (*_OBS_LICENSES, ("pd", 0.02))
_EXTENSIONS: tuple[tuple[str, float], ...] = (
    ("jpg", 0.62),
    ("jpeg", 0.20),
    ("JPG", 0.05),
    ("png", 0.06),
    ("gif", 0.02),
    ("", 0.05),
)
_DIMENSIONS: tuple[tuple[int, int], ...] = (
    (2048, 1536),
    (1536, 2048),
    (2048, 1365),
    (1445, 1057),
    (1188, 1188),
    (2048, 2048),
    (800, 600),
    (640, 480),
)
_QUALITY: tuple[tuple[str, float], ...] = (("research", 0.62), ("needs_id", 0.28), ("casual", 0.10))
_ACCURACIES: tuple[int | None, ...] = (None, None, 3, 5, 8, 10, 15, 30, 65, 100, 500, 2000)
_RANK_LEVELS = {
    "stateofmatter": 100,
    "kingdom": 70,
    "class": 50,
    "family": 30,
    "genus": 20,
    "species": 10,
    "subspecies": 5,
}
# Quirks that need a given observation license to mean what they say.
_QUIRK_LICENSES: dict[str, str | None] = {
    "plain": "cc-by",
    "mixed_licenses": "cc-by-nc",
    "extensions": "cc-by-nc",
    "null_license": None,
}


@dataclass(frozen=True, slots=True)
class DatasetOptions:
    """Proportions of the random part of the dataset (the quirks come first regardless)."""

    hostile_users: bool = False
    guarantee_quirks: bool = True
    users: int = 40
    no_photo_rate: float = 0.06
    placeholder_rate: float = 0.03
    license_mismatch_rate: float = 0.15
    no_geo_rate: float = 0.07
    no_time_rate: float = 0.15
    no_date_rate: float = 0.01
    obscured_rate: float = 0.10
    subspecies_share: float = 0.20
    max_photos: int = 5
    captive_rate: float = 0.08


@dataclass(frozen=True, slots=True)
class FakeTaxon:
    id: int
    name: str
    rank: str
    parent_id: int | None
    #: Root first, this taxon last, as the API's ``ancestor_ids``.
    ancestor_ids: tuple[int, ...]
    is_active: bool = True
    common_name: str | None = None
    synonyms: tuple[str, ...] = ()
    iconic_taxon_id: int | None = None
    iconic_taxon_name: str | None = None
    #: For an inactive taxon: the active taxa that replaced it.
    current_synonymous_taxon_ids: tuple[int, ...] | None = None

    @property
    def rank_level(self) -> int:
        return _RANK_LEVELS.get(self.rank, 10)

    @property
    def names(self) -> tuple[str, ...]:
        """Every name the taxon answers to: scientific, common, then synonyms."""
        common = (self.common_name,) if self.common_name else ()
        return (self.name, *common, *self.synonyms)


@dataclass(frozen=True, slots=True)
class FakeUser:
    id: int
    login: str
    name: str | None
    created_at: str


@dataclass(frozen=True, slots=True)
class FakePhoto:
    id: int
    license_code: str | None
    attribution: str
    width: int
    height: int
    #: As written in the URL: "jpg", "JPG", "png", ... or "" (no extension).
    extension: str
    host: Host
    timestamp: int | None = None
    #: With an empty extension: True writes "square", False writes "square." (both occur).
    bare: bool = False
    #: The stand-in image path when the photo is hidden or flagged (see PLACEHOLDERS).
    placeholder: str | None = None
    observation_photo_id: int = 0
    uuid: str = ""

    def path(self, size: str = "square") -> str:
        """The URL path of this photo in ``size``, e.g. ``/s3/photos/12/medium.jpg``."""
        if self.placeholder is not None:
            return self.placeholder
        suffix = "" if self.bare and not self.extension else f".{self.extension}"
        return f"/{self.host}/photos/{self.id}/{size}{suffix}"

    def url(self, base_url: str, size: str = "square") -> str:
        query = f"?{self.timestamp}" if self.timestamp is not None else ""
        return f"{base_url}{self.path(size)}{query}"

    @property
    def media_type(self) -> str:
        return media_type(self.extension)


def media_type(extension: str) -> str:
    """Content type for a URL extension; no extension is served as JPEG, as the real hosts do."""
    ext = extension.lower()
    if ext == "png":
        return "image/png"
    if ext == "gif":
        return "image/gif"
    return "image/jpeg"


@dataclass(frozen=True, slots=True)
class FakeObservation:
    id: int
    uuid: str
    taxon_id: int
    #: The species this observation was generated for (its taxon or the taxon's parent).
    species_id: int
    quality_grade: str
    license_code: str | None
    observed_on: str | None
    time_observed_at: str | None
    time_zone: str
    time_zone_offset: str
    created_at: str
    updated_at: str
    latitude: float | None
    longitude: float | None
    obscured: bool
    positional_accuracy: int | None
    place_guess: str | None
    description: str | None
    user: FakeUser
    photos: tuple[FakePhoto, ...]
    identifications_count: int = 1
    agreements: int = 0
    comments_count: int = 0
    faves_count: int = 0
    #: Places whose box holds the coordinates, and their ancestors, ascending (none without).
    place_ids: tuple[int, ...] = ()
    captive: bool = False
    #: (controlled_attribute_id, controlled_value_id) pairs, as /controlled_terms numbers them.
    annotations: tuple[tuple[int, int], ...] = ()

    @property
    def photo_licenses(self) -> frozenset[str | None]:
        return frozenset(photo.license_code for photo in self.photos)

    @property
    def real_photos(self) -> tuple[FakePhoto, ...]:
        """The photos a downloader should fetch (placeholders left out)."""
        return tuple(photo for photo in self.photos if photo.placeholder is None)


def attribution(license_code: str | None, user: FakeUser, *, uploaded_by: bool = False) -> str:
    """The API's attribution line, worded as iNaturalistAPI's ``util.photoAttribution``."""
    who = user.name or user.login
    if license_code == "cc0":
        text = "no rights reserved"
    elif license_code == "pd":
        text = f"{who}, no known copyright restrictions (public domain)"
    elif license_code and license_code.startswith("cc-"):
        text = f"(c) {who}, some rights reserved (CC {license_code[3:].upper()})"
    else:
        text = f"(c) {who}, all rights reserved"
    return f"{text}, uploaded by {who}" if uploaded_by else text


@dataclass(frozen=True, slots=True)
class _Snapshot:
    """One consistent view of the mutable part; replaced whole on every change."""

    version: int
    observations: tuple[FakeObservation, ...]
    by_id: Mapping[int, FakeObservation]
    #: photo id -> observation id
    photo_owner: Mapping[int, int]

    @classmethod
    def of(cls, version: int, observations: Iterable[FakeObservation]) -> _Snapshot:
        ordered = tuple(sorted(observations, key=lambda o: o.id))
        owner = {photo.id: obs.id for obs in ordered for photo in obs.photos}
        return cls(version, ordered, {o.id: o for o in ordered}, owner)


class FakeDataset:
    """Taxa and observations served by :class:`~inat_async.testing.FakeInatServer`.

    Build one with :func:`build_dataset` or :func:`demo_dataset`. Reads are safe from any
    thread; the few mutations (for tests that change the world mid-run) swap in a new
    snapshot atomically and bump :attr:`version`.
    """

    def __init__(
        self,
        taxa: Mapping[int, FakeTaxon],
        observations: Iterable[FakeObservation],
        *,
        seed: int,
        generator: _Generator,
        species_ids: Mapping[str, int],
    ) -> None:
        self.seed = seed
        self.taxa: Mapping[int, FakeTaxon] = dict(taxa)
        self._species_ids = dict(species_ids)
        self._generator = generator
        self._lock = threading.Lock()
        self._snapshot = _Snapshot.of(0, observations)
        self._descendants = _descendants(self.taxa)
        self._stats: tuple[int, dict[int, int], dict[int, FakePhoto]] = (-1, {}, {})

    # -- reading -------------------------------------------------------------------------

    @property
    def version(self) -> int:
        return self._snapshot.version

    @property
    def observations(self) -> tuple[FakeObservation, ...]:
        """Every observation, ascending by id."""
        return self._snapshot.observations

    @property
    def species_names(self) -> tuple[str, ...]:
        return tuple(self._species_ids)

    def taxon(self, taxon_id: int) -> FakeTaxon | None:
        return self.taxa.get(taxon_id)

    def species(self, name: str) -> FakeTaxon:
        """The active taxon whose scientific name is ``name`` (any case); KeyError if none."""
        wanted = name.strip().lower()
        for taxon in self.taxa.values():
            if taxon.is_active and taxon.name.lower() == wanted:
                return taxon
        raise KeyError(name)

    def descendants(self, taxon_id: int) -> frozenset[int]:
        """The taxon and every taxon below it."""
        return self._descendants.get(taxon_id, frozenset())

    def observations_of(
        self, taxon: int | str, *, descendants: bool = True
    ) -> list[FakeObservation]:
        """What ``taxon_id=`` (descendants=True) or ``taxon_name=`` (False) would find."""
        taxon_id = taxon if isinstance(taxon, int) else self.species(taxon).id
        wanted = self.descendants(taxon_id) if descendants else frozenset((taxon_id,))
        return [o for o in self.observations if o.taxon_id in wanted]

    def observation(self, observation_id: int) -> FakeObservation | None:
        return self._snapshot.by_id.get(observation_id)

    def photo(self, photo_id: int) -> FakePhoto | None:
        owner = self.observation_of_photo(photo_id)
        if owner is None:
            return None
        return next(p for p in owner.photos if p.id == photo_id)

    def observation_of_photo(self, photo_id: int) -> FakeObservation | None:
        snapshot = self._snapshot
        obs_id = snapshot.photo_owner.get(photo_id)
        return None if obs_id is None else snapshot.by_id[obs_id]

    def photos(self) -> Iterator[FakePhoto]:
        """Every photo item, placeholders included, in observation order."""
        for obs in self.observations:
            yield from obs.photos

    def observations_count(self, taxon_id: int) -> int:
        """Observations of the taxon and its descendants, as the API's observations_count."""
        return self._taxon_stats()[0].get(taxon_id, 0)

    def default_photo(self, taxon_id: int) -> FakePhoto | None:
        """First openly licensed real photo of the taxon, or None (inactive or no photos)."""
        taxon = self.taxa.get(taxon_id)
        if taxon is None or not taxon.is_active:
            return None
        return self._taxon_stats()[1].get(taxon_id)

    def _taxon_stats(self) -> tuple[dict[int, int], dict[int, FakePhoto]]:
        """Per-taxon counts and default photos, computed once per version in one pass."""
        version, counts, photos = self._stats
        if version != self.version:
            version, counts, photos = self.version, {}, {}
            for obs in self.observations:
                open_photo = next((p for p in obs.real_photos if p.license_code), None)
                for ancestor in self.taxa[obs.taxon_id].ancestor_ids:
                    counts[ancestor] = counts.get(ancestor, 0) + 1
                    if open_photo is not None:
                        photos.setdefault(ancestor, open_photo)
            self._stats = (version, counts, photos)
        return counts, photos

    # -- changing the world mid-run --------------------------------------------------------

    def add_observations(self, species: str, count: int) -> list[FakeObservation]:
        """Append ``count`` new observations of ``species``, with ids above all others."""
        taxon = self.species(species)
        with self._lock:
            new = [self._generator.observation(taxon) for _ in range(count)]
            self._swap([*self._snapshot.observations, *new])
        return new

    def remove_observation(self, observation_id: int) -> None:
        with self._lock:
            self._swap([o for o in self._snapshot.observations if o.id != observation_id])

    def update_photo(self, photo_id: int, change: Callable[[FakePhoto], FakePhoto]) -> FakePhoto:
        """Replace one photo by ``change(photo)``, e.g. ``lambda p: replace(p, host="s3")``."""
        with self._lock:
            owner = self.observation_of_photo(photo_id)
            if owner is None:
                raise KeyError(photo_id)
            photos = tuple(change(p) if p.id == photo_id else p for p in owner.photos)
            updated = replace(owner, photos=photos)
            self._swap([updated if o.id == owner.id else o for o in self._snapshot.observations])
        return next(p for p in photos if p.id == photo_id)

    def move_photo(self, photo_id: int, host: Host | None = None) -> FakePhoto:
        """Move a photo to the other host (or to ``host``), as happens on a license change."""

        def move(photo: FakePhoto) -> FakePhoto:
            target: Host = host or ("static" if photo.host == "s3" else "s3")
            return replace(photo, host=target)

        return self.update_photo(photo_id, move)

    def hide_photo(self, photo_id: int, kind: str = "copyright") -> FakePhoto:
        """Turn a photo into a placeholder, as a moderator flag does."""
        return self.update_photo(photo_id, lambda p: replace(p, placeholder=PLACEHOLDERS[kind]))

    def _swap(self, observations: Iterable[FakeObservation]) -> None:
        self._snapshot = _Snapshot.of(self._snapshot.version + 1, observations)

    def describe(self) -> dict[str, dict[str, int]]:
        """``{species name: {"taxon_id": ..., "observations": ...}}``, for logs and the CLI."""
        return {
            name: {"taxon_id": taxon_id, "observations": self.observations_count(taxon_id)}
            for name, taxon_id in self._species_ids.items()
        }


def _descendants(taxa: Mapping[int, FakeTaxon]) -> dict[int, frozenset[int]]:
    below: dict[int, set[int]] = {}
    for taxon in taxa.values():
        for ancestor in taxon.ancestor_ids:
            below.setdefault(ancestor, set()).add(taxon.id)
    return {taxon_id: frozenset(ids) for taxon_id, ids in below.items()}


def _weighted(rng: random.Random, choices: tuple[tuple[_T, float], ...]) -> _T:
    # Cumulative weights computed once per table: random.choices() rebuilds them every call.
    table = _CUMULATIVE.get(choices)
    if table is None:
        table = _CUMULATIVE[choices] = list(itertools.accumulate(w for _, w in choices))
    return choices[bisect.bisect(table, rng.random() * table[-1])][0]


_CUMULATIVE: dict[tuple[tuple[object, float], ...], list[float]] = {}


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _iso(moment: datetime, offset: str) -> str:
    """ISO 8601 with the given "+HH:MM" offset applied, as the API writes times."""
    delta = _OFFSETS.get(offset)
    if delta is None:
        sign = 1 if offset[0] == "+" else -1
        delta = _OFFSETS[offset] = sign * timedelta(
            hours=int(offset[1:3]), minutes=int(offset[4:6])
        )
    t = moment + delta
    # Formatted by hand: strftime is the slowest step of generating big datasets.
    return (
        f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:{t.second:02d}{offset}"
    )


_OFFSETS: dict[str, timedelta] = {}


@dataclass(slots=True)
class _PhotoPlan:
    license: str | None
    extension: str
    bare: bool = False
    placeholder: str | None = None


@dataclass(slots=True)
class _Generator:
    """Draws observations one at a time; all randomness flows from one seeded Random."""

    rng: random.Random
    options: DatasetOptions
    taxa: Mapping[int, FakeTaxon]
    subspecies: Mapping[int, tuple[FakeTaxon, ...]]
    users: list[FakeUser] = field(default_factory=list)
    user_weights: list[float] = field(default_factory=list)
    hostile_queue: list[FakeUser] = field(default_factory=list)
    quirks_done: dict[int, int] = field(default_factory=dict)
    regions: dict[int, tuple[float, float]] = field(default_factory=dict)
    next_obs_id: int = 10_000
    next_photo_id: int = 500_000
    next_op_id: int = 900_000
    clock: datetime = datetime(2018, 3, 1, 8, 0, tzinfo=UTC)
    #: Draws what the first datasets did not have (places, captive, annotations) from its
    #: own stream, so that everything drawn from ``rng`` stays as it was for a given seed.
    extra: random.Random = field(default_factory=lambda: random.Random(0))

    def setup(self) -> None:
        rng = self.rng
        self.next_obs_id += rng.randrange(1000)
        self.next_photo_id += rng.randrange(10_000)
        self.next_op_id += rng.randrange(10_000)
        user_id = 1000 + rng.randrange(1000)
        logins: set[str] = set()
        for index in range(max(1, self.options.users)):
            user_id += rng.randint(1, 5000)
            login = f"{rng.choice(LOGIN_WORDS)}_{rng.choice(LOGIN_WORDS)}"
            if login in logins or rng.random() < 0.5:
                login = f"{login}{index}"
            logins.add(login)
            name = rng.choice(PERSON_NAMES) if rng.random() < 0.55 else None
            created = datetime(2012, 1, 1, tzinfo=UTC) + timedelta(days=rng.randrange(3000))
            self.users.append(FakeUser(user_id, login, name, _iso(created, "+00:00")))
            # A few users make most observations, as on the real site.
            self.user_weights.append(1.0 / (index + 1) ** 0.8)
        if self.options.hostile_users:
            for login, name in HOSTILE_USERS:
                user_id += rng.randint(1, 5000)
                hostile = FakeUser(user_id, login, name, "2015-05-05T05:05:05+00:00")
                self.hostile_queue.append(hostile)
                self.users.append(hostile)
                self.user_weights.append(self.user_weights[0])

    def _user(self) -> FakeUser:
        # Each hostile user gets used at least once, early, whatever the seed.
        if self.hostile_queue:
            return self.hostile_queue.pop(0)
        return self.rng.choices(self.users, self.user_weights)[0]

    def _quirk(self, species_id: int) -> str | None:
        if not self.options.guarantee_quirks:
            return None
        done = self.quirks_done.get(species_id, 0)
        self.quirks_done[species_id] = done + 1
        return QUIRKS[done] if done < len(QUIRKS) else None

    def _region(self, species_id: int) -> tuple[float, float]:
        if species_id not in self.regions:
            self.regions[species_id] = (self.rng.uniform(-35, 60), self.rng.uniform(-125, 140))
        return self.regions[species_id]

    def observation(self, species: FakeTaxon) -> FakeObservation:
        rng, opts = self.rng, self.options
        self.next_obs_id += rng.randint(1, 40)
        self.clock += timedelta(minutes=rng.randint(3, 600))
        quirk = self._quirk(species.id)
        subspecies = self.subspecies.get(species.id, ())
        taxon = species
        if subspecies and (
            quirk == "subspecies" or (quirk is None and rng.random() < opts.subspecies_share)
        ):
            taxon = rng.choice(subspecies)
        user = self._user()
        license_code = _weighted(rng, _OBS_LICENSES)
        zone, offset = rng.choice(TIME_ZONES)
        seen = self.clock - timedelta(days=rng.randint(0, 400), minutes=rng.randint(0, 1440))
        has_time = quirk != "no_time" and (quirk is not None or rng.random() >= opts.no_time_rate)
        has_date = quirk is not None or rng.random() >= opts.no_date_rate
        has_geo = quirk != "no_geo" and (quirk is not None or rng.random() >= opts.no_geo_rate)
        obscured = quirk == "obscured" or (quirk is None and rng.random() < opts.obscured_rate)
        license_code = _QUIRK_LICENSES.get(quirk or "", license_code)
        plans = self._photo_plans(quirk, license_code)
        lat, lon, accuracy = self._position(species.id, obscured)
        photos = tuple(self._photo(plan, user) for plan in plans)
        quality = self._quality(quirk, bool(photos))
        agreements = rng.randint(1, 4) if quality == "research" else 0
        created = _iso(self.clock, offset)
        return FakeObservation(
            id=self.next_obs_id,
            uuid=_uuid(rng),
            taxon_id=taxon.id,
            species_id=species.id,
            quality_grade=quality,
            license_code=license_code,
            observed_on=_iso(seen, offset)[:10] if has_date else None,
            time_observed_at=_iso(seen, offset) if has_time and has_date else None,
            time_zone=zone,
            time_zone_offset=offset,
            created_at=created,
            updated_at=_iso(self.clock + timedelta(days=rng.randint(0, 90)), offset),
            latitude=lat if has_geo else None,
            longitude=lon if has_geo else None,
            obscured=obscured and has_geo,
            positional_accuracy=accuracy,
            place_guess=rng.choice(PLACES) if has_geo else None,
            description=rng.choice(DESCRIPTIONS),
            user=user,
            photos=photos,
            identifications_count=agreements + rng.randint(0, 2),
            agreements=agreements,
            comments_count=rng.choice((0, 0, 0, 1, 2)),
            faves_count=rng.choice((0, 0, 0, 0, 1, 3)),
            place_ids=places_at(lat, lon) if has_geo else (),
            captive=self.extra.random() < opts.captive_rate,
            annotations=self._annotations(),
        )

    def _annotations(self) -> tuple[tuple[int, int], ...]:
        extra, found = self.extra, []
        for term in CONTROLLED_TERMS:
            if term.rate and extra.random() < term.rate:
                values = tuple((value_id, weight) for value_id, _, weight in term.values if weight)
                found.append((term.id, _weighted(extra, values)))
        return tuple(found)

    def _quality(self, quirk: str | None, has_photos: bool) -> str:
        if quirk in ("needs_id", "casual"):
            return quirk
        if not has_photos:
            # Without media an observation cannot leave casual grade.
            return "casual"
        if quirk is not None:
            return "research"
        return _weighted(self.rng, _QUALITY)

    def _position(self, species_id: int, obscured: bool) -> tuple[float, float, int | None]:
        rng = self.rng
        center_lat, center_lon = self._region(species_id)
        lat = max(-89.9, min(89.9, center_lat + rng.gauss(0, 3)))
        lon = max(-179.9, min(179.9, center_lon + rng.gauss(0, 5)))
        if obscured:
            # Obscured coordinates are snapped to a cell about 0.2 degrees wide.
            return round(lat * 5) / 5, round(lon * 5) / 5, 28_000
        return round(lat, 10), round(lon, 10), rng.choice(_ACCURACIES)

    def _photo_plans(self, quirk: str | None, license_code: str | None) -> list[_PhotoPlan]:
        rng, opts = self.rng, self.options
        fixed: dict[str, list[_PhotoPlan]] = {
            "plain": [_PhotoPlan("cc-by", "jpg")],
            "no_photos": [],
            "mixed_licenses": [
                _PhotoPlan("cc-by", "jpg"),
                _PhotoPlan(None, "jpg"),
                _PhotoPlan("cc-by-nc", "jpeg"),
            ],
            "placeholder": [
                _PhotoPlan(license_code, "jpg", placeholder=PLACEHOLDERS["copyright"]),
                _PhotoPlan(license_code, "jpg"),
            ],
            "null_license": [_PhotoPlan(None, "jpg"), _PhotoPlan(None, "jpeg")],
            "extensions": [_PhotoPlan("cc-by-nc", ext) for ext in ("jpeg", "JPG", "png", "gif")],
            "empty_ext": [_PhotoPlan(license_code, ""), _PhotoPlan(license_code, "", bare=True)],
            "hidden_only": [_PhotoPlan(license_code, "jpg", placeholder=PLACEHOLDERS["hidden"])],
        }
        if quirk in fixed:
            return fixed[quirk]
        if quirk is None and rng.random() < opts.no_photo_rate:
            return []
        count = 1
        while count < opts.max_photos and rng.random() < 0.45:
            count += 1
        plans = []
        for _ in range(count):
            own = license_code
            if rng.random() < opts.license_mismatch_rate:
                own = _weighted(rng, _PHOTO_LICENSES)
            placeholder = None
            if quirk is None and rng.random() < opts.placeholder_rate:
                placeholder = rng.choice(tuple(PLACEHOLDERS.values()))
            extension = _weighted(rng, _EXTENSIONS) if quirk is None else "jpg"
            plans.append(
                _PhotoPlan(own, extension, bare=rng.random() < 0.5, placeholder=placeholder)
            )
        return plans

    def _photo(self, plan: _PhotoPlan, user: FakeUser) -> FakePhoto:
        rng = self.rng
        self.next_photo_id += rng.randint(1, 9)
        self.next_op_id += rng.randint(1, 9)
        host: Host = "static"
        if plan.license is not None and rng.random() < 0.92:
            host = "s3"
        bare = plan.bare and not plan.extension
        has_stamp = bare or rng.random() < (0.8 if host == "static" else 0.25)
        width, height = rng.choice(_DIMENSIONS)
        return FakePhoto(
            id=self.next_photo_id,
            license_code=plan.license,
            attribution=attribution(plan.license, user, uploaded_by=rng.random() < 0.25),
            width=width,
            height=height,
            extension=plan.extension,
            host=host,
            timestamp=int(self.clock.timestamp()) + rng.randrange(600) if has_stamp else None,
            bare=bare,
            placeholder=plan.placeholder,
            observation_photo_id=self.next_op_id,
            uuid=_uuid(rng),
        )


def places_at(lat: float, lng: float) -> tuple[int, ...]:
    """Ids of the fake places holding a point, with their ancestors, ascending."""
    by_id = {place.id: place for place in FAKE_PLACES}
    found: set[int] = set()
    for place in FAKE_PLACES:
        if place.contains(lat, lng):
            at: int | None = place.id
            while at is not None:
                found.add(at)
                at = by_id[at].parent_id
    return tuple(sorted(found))


# Family ids come from their own range, not from the taxa stream, so that adding the
# family rank left every other taxon id of a seed unchanged.
_FAMILY_IDS = 9_000_000


def _build_taxa(
    specs: list[FakeSpecies], seed: int
) -> tuple[dict[int, FakeTaxon], dict[int, tuple[FakeTaxon, ...]], dict[str, int]]:
    """Life > kingdom > iconic class > family > genus > species > subspecies, plus synonyms."""
    rng = random.Random(f"taxa:{seed}")
    taxa: dict[int, FakeTaxon] = {
        LIFE_ID: FakeTaxon(LIFE_ID, "Life", "stateofmatter", None, (LIFE_ID,))
    }
    next_id = 52_000 + rng.randrange(1000)

    def new_id() -> int:
        nonlocal next_id
        next_id += rng.randint(1, 900)
        return next_id

    def add(
        name: str,
        rank: str,
        parent: FakeTaxon,
        taxon_id: int,
        *,
        common_name: str | None = None,
        synonyms: tuple[str, ...] = (),
        replaces: int | None = None,
    ) -> FakeTaxon:
        taxon = FakeTaxon(
            taxon_id,
            name,
            rank,
            parent.id,
            (*parent.ancestor_ids, taxon_id),
            is_active=replaces is None,
            common_name=common_name,
            synonyms=synonyms,
            iconic_taxon_id=parent.iconic_taxon_id,
            iconic_taxon_name=parent.iconic_taxon_name,
            current_synonymous_taxon_ids=None if replaces is None else (replaces,),
        )
        taxa[taxon_id] = taxon
        return taxon

    subspecies: dict[int, tuple[FakeTaxon, ...]] = {}
    species_ids: dict[str, int] = {}
    for spec in specs:
        iconic_id, kingdom_name = ICONIC_TAXA.get(spec.iconic, ICONIC_TAXA["Insecta"])
        kingdom_id = KINGDOMS[kingdom_name]
        kingdom = taxa.get(kingdom_id) or add(kingdom_name, "kingdom", taxa[LIFE_ID], kingdom_id)
        iconic = taxa.get(iconic_id)
        if iconic is None:
            iconic = add(spec.iconic, "class", kingdom, iconic_id)
        iconic = replace(iconic, iconic_taxon_id=iconic.id, iconic_taxon_name=iconic.name)
        taxa[iconic.id] = iconic
        genus_name = spec.name.split()[0]
        genus = next((t for t in taxa.values() if t.name == genus_name), None)
        if genus is None:
            family_name = spec.family_name
            family = next(
                (t for t in taxa.values() if t.name == family_name and t.rank == "family"), None
            )
            if family is None:
                families = sum(1 for t in taxa.values() if t.rank == "family")
                family = add(family_name, "family", iconic, _FAMILY_IDS + 1 + families)
            genus = add(genus_name, "genus", family, new_id())
        species = add(
            spec.name,
            "species",
            genus,
            new_id(),
            common_name=spec.common_name,
            synonyms=spec.synonyms,
        )
        species_ids[spec.name] = species.id
        subspecies[species.id] = tuple(
            add(n, "subspecies", species, new_id()) for n in spec.subspecies
        )
        for old_name in spec.synonyms:
            add(old_name, "species", genus, new_id(), replaces=species.id)
    return taxa, subspecies, species_ids


def build_dataset(
    species: Mapping[str, int] | Iterable[FakeSpecies | str] | None = None,
    *,
    seed: int = 0,
    options: DatasetOptions | None = None,
) -> FakeDataset:
    """A deterministic dataset for ``species``.

    ``species`` is ``{"Apis mellifera": 120, ...}`` (known names get their common name,
    synonyms and subspecies from the catalog), a list of :class:`FakeSpecies` or names
    (50 observations each), or None for the demo counts::

        dataset = build_dataset({"Apis mellifera": 120, "Mantis religiosa": 30}, seed=7)
    """
    if species is None:
        species = DEMO_COUNTS
    if isinstance(species, Mapping):
        specs = [species_spec(name, count) for name, count in species.items()]
    else:
        specs = [s if isinstance(s, FakeSpecies) else species_spec(s, 50) for s in species]
    names = [spec.name.lower() for spec in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate species in {[spec.name for spec in specs]}")
    options = options or DatasetOptions()
    taxa, subspecies, species_ids = _build_taxa(specs, seed)
    generator = _Generator(
        random.Random(seed), options, taxa, subspecies, extra=random.Random(f"extra:{seed}")
    )
    generator.setup()
    # Shuffle who observes next so ids of different species interleave, as real ids do.
    slots = [species_ids[spec.name] for spec in specs for _ in range(spec.count)]
    generator.rng.shuffle(slots)
    observations = [generator.observation(taxa[taxon_id]) for taxon_id in slots]
    return FakeDataset(taxa, observations, seed=seed, generator=generator, species_ids=species_ids)


def demo_dataset(seed: int = 0, *, scale: float = 1.0) -> FakeDataset:
    """The three species of the original tool's example, about 240 observations in all."""
    counts = {name: max(1, round(count * scale)) for name, count in DEMO_COUNTS.items()}
    return build_dataset(counts, seed=seed)
