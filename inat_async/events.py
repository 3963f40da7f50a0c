"""Typed progress events: the only way the library reports what it does.

The library never prints. It calls the ``on_event`` callback given to
:func:`~inat_async.download_species` with one of the events below; the CLI renders
them, an embedding program may render its own or ignore them. Callbacks run on the
event loop and must be quick.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .models import ObservationId, Taxon
from .results import RunResult, SpeciesResult


@dataclass(frozen=True, slots=True)
class RunStarted:
    species: tuple[str, ...]
    workers: int
    out_dir: Path


@dataclass(frozen=True, slots=True)
class SpeciesStarted:
    species: str
    #: How many observations the run asks for (the -o value).
    wanted: int
    #: Observations already stored by an earlier run of the same dataset.
    resumed_observations: int
    #: Photos from an earlier run that will be downloaded (again).
    resumed_photos: int


@dataclass(frozen=True, slots=True)
class TaxonResolved:
    species: str
    taxon: Taxon
    #: The synonym or common name the species name matched, when it is not the taxon's name.
    matched_term: str | None


@dataclass(frozen=True, slots=True)
class PageFetched:
    species: str
    #: Observations taken from this page (after the -o cap).
    observations: int
    #: Photos queued from this page (license and placeholder filters applied).
    photos: int
    #: Observations the run will take for this species in all, once known.
    expected_observations: int
    last_id: int


@dataclass(frozen=True, slots=True)
class PhotoSkipped:
    species: str
    observation_id: ObservationId
    photo_id: int | None
    #: "license" (its own license is not in the list), "placeholder" (no real photo),
    #: "invalid" (the API sent a bad id, or the same photo twice) or "too_many" (past
    #: the cap of photos per observation, :data:`~inat_async.models.MAX_PHOTOS_PER_OBSERVATION`).
    reason: str
    #: The particulars, for "invalid" and "too_many".
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class ObservationSkipped:
    """The API sent a result that cannot be used (no id, or one out of range)."""

    species: str
    reason: str


@dataclass(frozen=True, slots=True)
class PhotoDownloaded:
    species: str
    observation_id: ObservationId
    photo_id: int
    path: Path
    bytes: int


@dataclass(frozen=True, slots=True)
class PhotoFailed:
    species: str
    observation_id: ObservationId
    photo_id: int
    url: str
    reason: str
    #: True when the server no longer has the photo (404/410): reported, not an error.
    missing: bool


@dataclass(frozen=True, slots=True)
class LimitWait:
    """Everything pauses on a limit until ``resume_at`` (wall-clock epoch seconds).

    ``reason`` names the limit (``"hourly byte budget"``, ``"daily request budget"``,
    ``"API asked to slow down (HTTP 429)"``, ...). For a budget, ``spent`` of
    ``budget`` is how full it was when the wait began (bytes, spent and in flight; or
    requests); both are None for a pause that is not a budget.
    """

    reason: str
    resume_at: float
    spent: int | None = None
    budget: int | None = None


@dataclass(frozen=True, slots=True)
class WorkersLimited:
    """Fewer workers than asked for, or a raised soft limit: what the process may open."""

    #: Workers asked for, and the number the run uses.
    requested: int
    workers: int
    #: The soft limit on open files before and after the run raised it (equal if not).
    soft_before: int
    soft_after: int
    #: The hard limit: the most the soft one can be raised to without privileges.
    hard: int | None

    @property
    def capped(self) -> bool:
        return self.workers < self.requested


@dataclass(frozen=True, slots=True)
class SpeciesFinished:
    species: str
    result: SpeciesResult


@dataclass(frozen=True, slots=True)
class RunFinished:
    result: RunResult


Event = (
    RunStarted
    | SpeciesStarted
    | TaxonResolved
    | PageFetched
    | PhotoSkipped
    | ObservationSkipped
    | PhotoDownloaded
    | PhotoFailed
    | LimitWait
    | WorkersLimited
    | SpeciesFinished
    | RunFinished
)
EventCallback = Callable[[Event], None]


def ignore(event: Event) -> None:
    """The default callback: report nothing."""


def wait_reporter(
    on_event: EventCallback,
) -> Callable[[str, float, int | None, int | None], None]:
    """The ``on_wait`` callback for :class:`~inat_async.limits.Limits`: reports ``LimitWait``."""

    def report(reason: str, resume_at: float, spent: int | None, budget: int | None) -> None:
        on_event(LimitWait(reason=reason, resume_at=resume_at, spent=spent, budget=budget))

    return report
