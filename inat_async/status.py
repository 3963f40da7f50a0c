"""Where a dataset stands, read from the resume stores alone: no network, nothing written.

:func:`dataset_status` opens the output folder's resume store and the user's limits
store (if they exist) and returns plain data; ``inat-async status`` renders it.

>>> status = dataset_status("results")  # doctest: +SKIP
>>> status.pending, status.limits.bytes_hour.used  # doctest: +SKIP
(0, 1_204_332_118)
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import StorageError
from .limits import Limits, LimitSettings, LimitsSnapshot
from .limitstore import FILENAME as LIMITS_FILE
from .limitstore import LimitStore
from .resume import DONE, FAILED, PENDING, STATE_DIR, STATE_FILE, ResumeStore
from .sources.opendata import BUCKET_LEDGER

#: The ``source`` a dataset selected from the Open Data tables records in its query
#: (:attr:`inat_async.sources.opendata.OpenDataSource.origin`).
OPEN_DATA_ORIGIN = "open-data"


@dataclass(frozen=True, slots=True)
class SpeciesStatus:
    """One species of a dataset: observations recorded and photos by status."""

    name: str
    taxon_id: int | None
    taxon_name: str | None
    #: The synonym or common name the species name matched.
    matched_term: str | None
    observations: int
    #: The highest observation id recorded: the next run continues above it.
    watermark: int
    done: int
    pending: int
    failed: int
    missing: int
    bytes: int

    @property
    def photos(self) -> int:
        return self.done + self.pending + self.failed + self.missing


@dataclass(frozen=True, slots=True)
class DatasetStatus:
    out_dir: Path
    #: The dataset's settings as stored (``quality``, ``license``, ``size``).
    query: dict[str, str] | None
    species: list[SpeciesStatus]
    #: The user's shared limits store, and what it holds (None: nothing spent yet).
    state_dir: Path
    limits: LimitsSnapshot | None
    #: For a dataset selected from Open Data: the bucket's own byte ledger (in
    #: ``<state folder>/open-data-bucket``) and what it holds (None: nothing spent yet).
    bucket_state_dir: Path | None = None
    bucket_limits: LimitsSnapshot | None = None

    @property
    def open_data(self) -> bool:
        """True when the dataset was selected from the Open Data tables, not the API."""
        return (self.query or {}).get("source") == OPEN_DATA_ORIGIN

    @property
    def done(self) -> int:
        return sum(s.done for s in self.species)

    @property
    def pending(self) -> int:
        return sum(s.pending for s in self.species)

    @property
    def failed(self) -> int:
        return sum(s.failed for s in self.species)

    @property
    def missing(self) -> int:
        return sum(s.missing for s in self.species)

    @property
    def bytes(self) -> int:
        return sum(s.bytes for s in self.species)


def has_dataset(out_dir: str | os.PathLike[str]) -> bool:
    return (Path(out_dir) / STATE_DIR / STATE_FILE).is_file()


def dataset_status(
    out_dir: str | os.PathLike[str],
    limits: LimitSettings | None = None,
    bucket_limits: LimitSettings | None = None,
) -> DatasetStatus:
    """Read the dataset in ``out_dir`` and the budgets spent by this user.

    For an Open Data dataset, also the bucket's own ledger, with the budgets of
    ``bucket_limits`` (default: the same as iNaturalist's, as a run has them; its
    ``state_dir`` is ignored: the ledger lives under that of ``limits``).
    Raises :class:`~inat_async.errors.StorageError` when ``out_dir`` holds no dataset.
    Creates nothing: a missing limits store means nothing was spent yet.
    """
    out = Path(out_dir)
    if not has_dataset(out):
        raise StorageError(
            f"no inat-async dataset in {out} (no {STATE_DIR}/{STATE_FILE}); "
            "give the out_dir folder of a run",
            options=("out_dir",),
        )
    with ResumeStore.open_readonly(out) as store:
        query = store.query()
        species = []
        for state in store.all_species():
            counts = store.counts(state.name)
            species.append(
                SpeciesStatus(
                    name=state.name,
                    taxon_id=state.taxon.id if state.taxon else None,
                    taxon_name=state.taxon.name if state.taxon else None,
                    matched_term=state.matched_term,
                    observations=state.observations,
                    watermark=state.watermark,
                    done=counts[DONE],
                    pending=counts[PENDING],
                    failed=counts[FAILED],
                    missing=counts["missing"],
                    bytes=counts["bytes"],
                )
            )
    settings = limits if limits is not None else LimitSettings()
    state_dir = settings.resolved_state_dir()
    report = DatasetStatus(out, query, species, state_dir, limits_snapshot(settings))
    if not report.open_data:
        return report
    bucket_dir = state_dir / BUCKET_LEDGER
    bucket = dataclasses.replace(bucket_limits or settings, state_dir=bucket_dir)
    return dataclasses.replace(
        report, bucket_state_dir=bucket_dir, bucket_limits=limits_snapshot(bucket)
    )


def clear_pauses(settings: LimitSettings, host: str | None = None) -> int:
    """End the HTTP 429 pauses (and slow-downs) kept in this user's limits store, of the
    API ``host`` (``host[:port]``) or of every host: how many hosts had one."""
    path = settings.resolved_state_dir() / LIMITS_FILE
    if not path.is_file():
        return 0
    with LimitStore(path) as store:
        return store.clear_backoff(host)


def limits_snapshot(settings: LimitSettings) -> LimitsSnapshot | None:
    """What this user spent, without creating the limits store (None: there is none)."""
    state_dir = settings.resolved_state_dir()
    if not (state_dir / LIMITS_FILE).is_file():
        return None
    # Read only: opening it to write would change the file (and its -wal/-shm).
    with LimitStore(state_dir / LIMITS_FILE, readonly=True) as store:
        return Limits(settings, store=store).snapshot()
