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


KNOWN_SPECIES: dict[str, FakeSpecies] = {
    species.name.lower(): species
    for species in (
        FakeSpecies(
            "Apis mellifera",
            common_name="Western Honey Bee",
            synonyms=("Apis mellifica",),
            subspecies=("Apis mellifera ligustica", "Apis mellifera carnica"),
        ),
        FakeSpecies(
            "Mantis religiosa",
            common_name="European Mantis",
            synonyms=("Gryllus religiosus",),
            subspecies=("Mantis religiosa religiosa",),
        ),
        FakeSpecies(
            "Martes americana",
            common_name="American Marten",
            synonyms=("Mustela americana",),
            iconic="Mammalia",
        ),
        FakeSpecies("Danaus plexippus", common_name="Monarch"),
        FakeSpecies("Turdus merula", common_name="Eurasian Blackbird", iconic="Aves"),
        FakeSpecies("Amanita muscaria", common_name="Fly Agaric", iconic="Fungi"),
        FakeSpecies("Quercus robur", common_name="English Oak", iconic="Plantae"),
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
