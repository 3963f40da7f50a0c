"""inat-async: bulk, concurrent, resumable downloads of iNaturalist photos and metadata.

Inside async code::

    result = await inat_async.download_species("Apis mellifera", observations=50)
    result.photos_downloaded, result.bytes, result.failures

From the shell: ``inat-async run species.csv --workers 8``.
"""

from ._version import __version__
from .api import InatClient, TaxonMatch
from .checklist import SpeciesCount, list_species, resolve_selection, write_species_csv
from .errors import (
    ApiError,
    InatError,
    LimitsError,
    OpenDataError,
    OutputConflictError,
    ResponseShapeError,
    SpeciesFileError,
    StorageError,
    TaxonNotFoundError,
    UsageError,
)
from .events import (
    Event,
    EventCallback,
    LimitWait,
    ObservationSkipped,
    PageFetched,
    PhotoDownloaded,
    PhotoFailed,
    PhotoSkipped,
    RunFinished,
    RunStarted,
    SpeciesFinished,
    SpeciesStarted,
    TaxonResolved,
    WorkersLimited,
)
from .export import ExportOptions, ExportResult, export_dataset
from .limits import Limits, LimitSettings, default_limits
from .models import Observation, Photo, Taxon
from .options import Query
from .pipeline import download_all, download_species
from .plan import RunPlan, SpeciesPlan, plan_run
from .results import PhotoFailure, RunResult, SpeciesResult
from .retry import RetryPolicy
from .selection import FilterRequest, Filters, parse_search_url
from .settings import DEFAULT_USER_AGENT, OFFICIAL_API_URL, Settings
from .species import SpeciesEntry, read_species_csv
from .status import DatasetStatus, SpeciesStatus, dataset_status
from .verify import VerifyResult, verify_dataset

__all__ = [
    "DEFAULT_USER_AGENT",
    "OFFICIAL_API_URL",
    "ApiError",
    "DatasetStatus",
    "Event",
    "EventCallback",
    "ExportOptions",
    "ExportResult",
    "FilterRequest",
    "Filters",
    "InatClient",
    "InatError",
    "LimitSettings",
    "LimitWait",
    "Limits",
    "LimitsError",
    "Observation",
    "ObservationSkipped",
    "OpenDataError",
    "OutputConflictError",
    "PageFetched",
    "Photo",
    "PhotoDownloaded",
    "PhotoFailed",
    "PhotoFailure",
    "PhotoSkipped",
    "Query",
    "ResponseShapeError",
    "RetryPolicy",
    "RunFinished",
    "RunPlan",
    "RunResult",
    "RunStarted",
    "Settings",
    "SpeciesCount",
    "SpeciesEntry",
    "SpeciesFileError",
    "SpeciesFinished",
    "SpeciesPlan",
    "SpeciesResult",
    "SpeciesStarted",
    "SpeciesStatus",
    "StorageError",
    "Taxon",
    "TaxonMatch",
    "TaxonNotFoundError",
    "TaxonResolved",
    "UsageError",
    "VerifyResult",
    "WorkersLimited",
    "__version__",
    "dataset_status",
    "default_limits",
    "download_all",
    "download_species",
    "export_dataset",
    "list_species",
    "parse_search_url",
    "plan_run",
    "read_species_csv",
    "resolve_selection",
    "verify_dataset",
    "write_species_csv",
]
