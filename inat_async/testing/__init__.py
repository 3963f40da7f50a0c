"""A fake iNaturalist for tests, demos and benchmarks: API and photo hosts on loopback.

Faithful to the real API's semantics and quirks (see :mod:`.query`), deterministic (the
dataset comes from a seed), fast, and able to fail on demand (see :mod:`.faults`)::

    from inat_async.testing import FakeInatServer, FaultKind, build_dataset

    dataset = build_dataset({"Apis mellifera": 120, "Mantis religiosa": 30}, seed=1)
    async with FakeInatServer(dataset) as server:
        server.faults.fail_api(FaultKind.TOO_MANY_REQUESTS, times=1)
        ...  # point the client at server.api_url
        assert not server.log.refetched_photos()

Photo URLs keep the real path shape under a prefix naming the emulated host:
``http://127.0.0.1:<port>/s3/photos/<id>/square.jpg`` stands for the open-data S3 bucket,
``.../static/photos/<id>/square.jpg`` for static.inaturalist.org.

From a shell: ``python -m inat_async.testing --port 0 --species "Apis mellifera=50"``
prints the API URL on its first line and serves until killed.
"""

from .catalog import CONTROLLED_TERMS, DEMO_COUNTS, FAKE_PLACES, FakePlace, FakeSpecies, FakeTerm
from .data import (
    LICENSE_CODES,
    PHOTO_SIZES,
    PLACEHOLDERS,
    QUIRKS,
    DatasetOptions,
    FakeDataset,
    FakeObservation,
    FakePhoto,
    FakeTaxon,
    FakeUser,
    build_dataset,
    demo_dataset,
)
from .faults import FaultKind, FaultRule, Faults
from .images import DEFAULT_PHOTO_BYTES, ImageFactory
from .log import FetchCounts, RequestLog, RequestRecord
from .server import FakeInatServer, ServerSettings
from .thread import ServerThread, run_in_thread

__all__ = [
    "CONTROLLED_TERMS",
    "DEFAULT_PHOTO_BYTES",
    "DEMO_COUNTS",
    "FAKE_PLACES",
    "LICENSE_CODES",
    "PHOTO_SIZES",
    "PLACEHOLDERS",
    "QUIRKS",
    "DatasetOptions",
    "FakeDataset",
    "FakeInatServer",
    "FakeObservation",
    "FakePhoto",
    "FakePlace",
    "FakeSpecies",
    "FakeTaxon",
    "FakeTerm",
    "FakeUser",
    "FaultKind",
    "FaultRule",
    "Faults",
    "FetchCounts",
    "ImageFactory",
    "RequestLog",
    "RequestRecord",
    "ServerSettings",
    "ServerThread",
    "build_dataset",
    "demo_dataset",
    "run_in_thread",
]
