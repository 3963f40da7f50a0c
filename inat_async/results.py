"""What a run returns: per-species counts, failures as data, and the exit code they imply."""

from __future__ import annotations

from dataclasses import dataclass, field

from .models import ObservationId, Taxon


@dataclass(frozen=True, slots=True)
class PhotoFailure:
    observation_id: ObservationId
    photo_id: int
    url: str
    reason: str
    #: The server no longer has it (404/410): reported, but not a failure of the run.
    missing: bool


@dataclass(slots=True)
class SpeciesResult:
    """Counts for one species. ``error`` is set when the species could not be walked."""

    name: str
    taxon: Taxon | None = None
    #: The synonym or common name the name matched, when it was not the taxon's own name.
    matched_term: str | None = None
    observations: int = 0
    photos_downloaded: int = 0
    #: Photos a previous run had already downloaded (not fetched again).
    photos_already_done: int = 0
    skipped_license: int = 0
    skipped_placeholder: int = 0
    #: Photo items with a bad id or listed twice, and photos past the per-observation cap.
    skipped_invalid: int = 0
    skipped_too_many: int = 0
    #: Results the API sent without a usable observation id (dropped, never stored).
    skipped_observations: int = 0
    bytes: int = 0
    failures: list[PhotoFailure] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0

    @property
    def photos_failed(self) -> int:
        return sum(1 for failure in self.failures if not failure.missing)

    @property
    def photos_missing(self) -> int:
        return sum(1 for failure in self.failures if failure.missing)

    @property
    def ok(self) -> bool:
        return self.error is None and self.photos_failed == 0


@dataclass(slots=True)
class RunResult:
    species: list[SpeciesResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(species.ok for species in self.species)

    @property
    def exit_code(self) -> int:
        """0 when everything is done (missing photos included), 1 when anything failed."""
        return 0 if self.ok else 1

    @property
    def photos_downloaded(self) -> int:
        return sum(species.photos_downloaded for species in self.species)

    @property
    def bytes(self) -> int:
        return sum(species.bytes for species in self.species)
