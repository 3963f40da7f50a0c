"""The names the fake dataset is drawn from: species, places, time zones, people.

Everything here is plain data. The species entries carry what the real taxonomy has and a
downloader trips over: common names, old names that are now synonyms, subspecies.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

#: Root of the real tree of life and the "iconic" taxa, with their real iNaturalist ids.
LIFE_ID = 48460
ICONIC_TAXA: dict[str, tuple[int, str]] = {
    # name: (id, kingdom the iconic taxon belongs to)
    "Insecta": (47158, "Animalia"),
    "Arachnida": (47119, "Animalia"),
    "Aves": (3, "Animalia"),
    "Mammalia": (40151, "Animalia"),
    "Reptilia": (26036, "Animalia"),
    "Amphibia": (20978, "Animalia"),
    "Mollusca": (47115, "Animalia"),
    "Plantae": (47126, "Plantae"),
    "Fungi": (47170, "Fungi"),
}
KINGDOMS: dict[str, int] = {"Animalia": 1, "Plantae": 47126, "Fungi": 47170}


@dataclass(frozen=True, slots=True)
class FakeSpecies:
    """One species of the fake dataset and how many observations it gets.

    ``synonyms`` are older scientific names: ``/taxa?q=`` finds the active species through
    them (``matched_term`` shows the old name) and each also exists as an inactive taxon.
    ``subspecies`` become child taxa holding part of the observations: ``taxon_id`` searches
    include them, ``taxon_name`` searches do not.
    """

    name: str
    count: int = 50
    common_name: str | None = None
    synonyms: tuple[str, ...] = ()
    subspecies: tuple[str, ...] = ()
    iconic: str = "Insecta"
    #: The family the genus belongs to; None makes one up from the genus ("Apis" -> "Apidae").
    family: str | None = None

    @property
    def family_name(self) -> str:
        return self.family or f"{self.name.split()[0]}idae"


KNOWN_SPECIES: dict[str, FakeSpecies] = {
    species.name.lower(): species
    for species in (
        FakeSpecies(
            "Apis mellifera",
            common_name="Western Honey Bee",
            synonyms=("Apis mellifica",),
            subspecies=("Apis mellifera ligustica", "Apis mellifera carnica"),
            family="Apidae",
        ),
        FakeSpecies(
            "Mantis religiosa",
            common_name="European Mantis",
            synonyms=("Gryllus religiosus",),
            subspecies=("Mantis religiosa religiosa",),
            family="Mantidae",
        ),
        FakeSpecies(
            "Martes americana",
            common_name="American Marten",
            synonyms=("Mustela americana",),
            iconic="Mammalia",
            family="Mustelidae",
        ),
        FakeSpecies("Danaus plexippus", common_name="Monarch", family="Nymphalidae"),
        FakeSpecies(
            "Turdus merula", common_name="Eurasian Blackbird", iconic="Aves", family="Turdidae"
        ),
        FakeSpecies(
            "Amanita muscaria", common_name="Fly Agaric", iconic="Fungi", family="Amanitaceae"
        ),
        FakeSpecies(
            "Quercus robur", common_name="English Oak", iconic="Plantae", family="Fagaceae"
        ),
        FakeSpecies(
            "Bombus terrestris",
            common_name="Buff-tailed Bumble Bee",
            subspecies=("Bombus terrestris audax",),
            family="Apidae",
        ),
        FakeSpecies("Xylocopa violacea", common_name="Violet Carpenter Bee", family="Apidae"),
    )
}

#: The demo dataset: the three species of the original tool's example species.csv.
DEMO_COUNTS: dict[str, int] = {
    "Apis mellifera": 120,
    "Mantis religiosa": 80,
    "Martes americana": 40,
}


def species_spec(name: str, count: int) -> FakeSpecies:
    """The catalog entry for ``name`` (any case) with ``count``, or a bare species."""
    known = KNOWN_SPECIES.get(name.strip().lower())
    if known is None:
        return FakeSpecies(name.strip(), count)
    return replace(known, count=count)


PLACES: tuple[str | None, ...] = (
    "SE 85th St, Newcastle, WA, US",
    "Parc de la Tête d'Or, Lyon, France",
    "Zürich, Schweiz",
    "Île-de-France, FR",
    "東京都, 日本",
    "Sierra Nevada, Granada, España",
    "Algonquin Provincial Park, ON, CA",
    "Kraków, Polska",
    "Yosemite National Park, CA, USA",
    "Unnamed Road, Østfold, Norge",
    None,
)

#: (IANA name, UTC offset) pairs; offsets ignore summer time, as a sample this is enough.
TIME_ZONES: tuple[tuple[str, str], ...] = (
    ("America/Los_Angeles", "-08:00"),
    ("America/New_York", "-05:00"),
    ("Europe/Paris", "+01:00"),
    ("Europe/London", "+00:00"),
    ("Asia/Tokyo", "+09:00"),
    ("Australia/Sydney", "+10:00"),
    ("UTC", "+00:00"),
)

#: Real people's names are often absent (``name: null``), and often not ASCII.
PERSON_NAMES: tuple[str, ...] = (
    "Nicolas Noé",
    "Benjamin Bohémier",
    "Неруш Владимир",
    "José Manuel Carreón Silva",
    "Zoë O'Brien",
    "Søren Madsen",
    "李小明",
    "Meg Madden",
    "Davide Puddu",
    "Christine Young",
    "Ana Luísa Gonçalves",
    "Ömer Çelik",
)
LOGIN_WORDS: tuple[str, ...] = (
    "bee",
    "moth",
    "naturalist",
    "fungi",
    "birder",
    "hiker",
    "botanist",
    "wild",
    "chroma",
    "nz",
    "pnw",
    "herper",
)

#: (login, name) of users that break naive file naming and CSV writing. Real logins are
#: ``[a-z0-9_-]``; these are not, on purpose: an opt-in torture test for the client.
HOSTILE_USERS: tuple[tuple[str, str | None], ...] = (
    ("../../etc/passwd", "Path Traversal"),
    ("con", "Windows Reserved"),
    ("a/b\\c", None),
    ("x" * 255, "Very Long Login"),
    ("emoji🐝bee", "Émoji 🐝 Bee"),
    (" spaced login ", "  padded  "),
    (".hidden", '=HYPERLINK("http://evil.example")'),
    ('comma,quote"', 'Robert"); DROP TABLE observations;--'),
    ("-leading-dash", "line\nbreak"),
    ("nul.txt", "tab\tname"),
)

DESCRIPTIONS: tuple[str | None, ...] = (
    None,
    "",
    "On lavender.",
    'Seen near the "old" bridge,\nsecond line; third, with commas',
    "Photo’s a bit blurry – sorry",
)


@dataclass(frozen=True, slots=True)
class FakePlace:
    """A place with a bounding box: an observation inside the box carries its id in place_ids.

    Ids are the real iNaturalist ones where the place exists there; boxes are rough.
    """

    id: int
    name: str
    display_name: str
    place_type: int
    admin_level: int | None
    parent_id: int | None
    #: (swlat, swlng, nelat, nelng)
    bbox: tuple[float, float, float, float]

    def contains(self, lat: float, lng: float) -> bool:
        swlat, swlng, nelat, nelng = self.bbox
        return swlat <= lat <= nelat and swlng <= lng <= nelng


# place_type 29 continent, 12 country, 8 state, 9 county, 7 town (as iNaturalist numbers them).
FAKE_PLACES: tuple[FakePlace, ...] = (
    FakePlace(97394, "North America", "North America", 29, None, None, (7.0, -170.0, 84.0, -50.0)),
    FakePlace(1, "United States", "United States", 12, 0, 97394, (24.4, -125.0, 49.4, -66.9)),
    FakePlace(14, "California", "California, US", 8, 10, 1, (32.5, -124.5, 42.0, -114.1)),
    FakePlace(18, "Texas", "Texas, US", 8, 10, 1, (25.8, -106.7, 36.5, -93.5)),
    FakePlace(
        2359, "Springfield", "Springfield, IL, US", 7, None, 1, (39.7, -89.75, 39.85, -89.55)
    ),
    FakePlace(
        2887, "Springfield", "Springfield, MA, US", 7, None, 1, (42.07, -72.63, 42.16, -72.47)
    ),
    FakePlace(6712, "Canada", "Canada", 12, 0, 97394, (41.7, -141.0, 83.1, -52.6)),
    FakePlace(6793, "Mexico", "Mexico", 12, 0, 97394, (14.5, -118.4, 32.7, -86.7)),
    FakePlace(
        7, "Baja California", "Baja California, MX", 8, 10, 6793, (28.0, -117.1, 32.7, -112.6)
    ),
    FakePlace(97391, "Europe", "Europe", 29, None, None, (34.0, -25.0, 72.0, 45.0)),
    FakePlace(6753, "France", "France", 12, 0, 97391, (41.3, -5.2, 51.1, 9.6)),
    FakePlace(7207, "Germany", "Germany", 12, 0, 97391, (47.3, 5.9, 55.1, 15.0)),
    FakePlace(6774, "Spain", "Spain", 12, 0, 97391, (36.0, -9.3, 43.8, 3.3)),
    FakePlace(97395, "Asia", "Asia", 29, None, None, (-11.0, 45.0, 82.0, 180.0)),
    FakePlace(6737, "Japan", "Japan", 12, 0, 97395, (24.0, 122.9, 45.6, 146.0)),
    FakePlace(97392, "Africa", "Africa", 29, None, None, (-35.0, -18.0, 37.5, 52.0)),
    FakePlace(6986, "South Africa", "South Africa", 12, 0, 97392, (-34.9, 16.4, -22.1, 32.9)),
    FakePlace(
        93735, "Springbok", "Springbok, Northern Cape", 7, None, 6986, (-29.7, 17.85, -29.63, 17.92)
    ),
    FakePlace(97389, "South America", "South America", 29, None, None, (-56.0, -82.0, 13.0, -34.0)),
    FakePlace(6878, "Brazil", "Brazil", 12, 0, 97389, (-33.8, -74.0, 5.3, -34.8)),
    FakePlace(97393, "Oceania", "Oceania", 29, None, None, (-50.0, 110.0, 0.0, 180.0)),
    FakePlace(6744, "Australia", "Australia", 12, 0, 97393, (-43.7, 113.0, -10.0, 154.0)),
    FakePlace(6803, "New Zealand", "New Zealand", 12, 0, 97393, (-47.5, 166.0, -34.0, 178.6)),
)


@dataclass(frozen=True, slots=True)
class FakeTerm:
    """An annotation term (``controlled_attribute``) and its values, as /controlled_terms has."""

    id: int
    label: str
    multivalued: bool
    #: (value id, label, weight when drawn for an annotated observation)
    values: tuple[tuple[int, str, float], ...]
    #: Share of observations annotated with this term.
    rate: float
    uuid: str


#: The recorded /controlled_terms answer's terms and value ids (value 20 is shared).
CONTROLLED_TERMS: tuple[FakeTerm, ...] = (
    FakeTerm(
        17,
        "Alive or Dead",
        False,
        ((18, "Alive", 0.85), (19, "Dead", 0.12), (20, "Cannot Be Determined", 0.03)),
        0.30,
        "60901c4f-7b6d-4df9-a014-8ed66533d2dc",
    ),
    FakeTerm(33, "Established", False, ((34, "Not Established", 1.0),), 0.0, "8e8fdbf3-1231"),
    FakeTerm(
        1,
        "Life Stage",
        False,
        (
            (2, "Adult", 0.70),
            (3, "Teneral", 0.0),
            (4, "Pupa", 0.03),
            (5, "Nymph", 0.03),
            (6, "Larva", 0.08),
            (7, "Egg", 0.04),
            (8, "Juvenile", 0.12),
            (16, "Subimago", 0.0),
        ),
        0.55,
        "f895e9ce-fb2d-4a63-a486-ac424f497e02",
    ),
    FakeTerm(
        36,
        "Leaves",
        True,
        (
            (37, "Breaking Leaf Buds", 0.0),
            (38, "Green Leaves", 0.0),
            (39, "Colored Leaves", 0.0),
            (40, "No Live Leaves", 0.0),
        ),
        0.0,
        "2a3f8d0e-0a47",
    ),
    FakeTerm(
        22,
        "Evidence of Presence",
        True,
        (
            (23, "Feather", 0.0),
            (24, "Organism", 1.0),
            (25, "Scat", 0.0),
            (29, "Gall", 0.0),
            (26, "Track", 0.0),
            (27, "Bone", 0.0),
            (28, "Molt", 0.0),
            (30, "Egg", 0.0),
            (31, "Hair", 0.0),
            (32, "Leafmine", 0.0),
            (35, "Construction", 0.0),
        ),
        0.10,
        "c5a0a9c4-3b0e",
    ),
    FakeTerm(
        12,
        "Flowers and Fruits",
        True,
        (
            (13, "Flowers", 0.5),
            (14, "Fruits or Seeds", 0.3),
            (15, "Flower Buds", 0.1),
            (21, "No Flowers or Fruits", 0.1),
        ),
        0.0,
        "b9b1b6a4-0a16",
    ),
    FakeTerm(
        9,
        "Sex",
        False,
        ((10, "Female", 0.45), (11, "Male", 0.45), (20, "Cannot Be Determined", 0.10)),
        0.25,
        "0e3b5d68-9b0f",
    ),
)
