"""``DEST/img2dataset.parquet``: a URL list that img2dataset downloads on one machine or many.

Past one machine, the sanctioned path is iNaturalist's Open Data bucket, and a
distributed engine such as img2dataset (Spark or Ray) can fetch it. This writer lists
every photo of a dataset (downloaded or not yet) whose URL is in the bucket, one row
each: ``url`` (the dataset's size), ``key`` and ``photo_id`` (the photo id), ``label``
(the species' accepted name), ``taxon_id``, ``license``, ``attribution``,
``observation_id`` and ``split``. Photos on iNaturalist's own servers are refused and
counted: those servers serve one user from one machine, within published limits, and
must never be spread over many.

It reads the run's resume store in batches and needs pyarrow (the ``parquet`` extra).
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import StorageError, UsageError
from ..models import photo_url_for_size
from ..resume import DONE, FAILED, PENDING, ResumeStore
from ..splits import GroupBy, Split, group_key, split_of
from .parquet import require_pyarrow

FILE = "img2dataset.parquet"
#: The public Open Data bucket: the only host a manifest may send many machines to.
BUCKET_URL = "https://inaturalist-open-data.s3.amazonaws.com"
_BATCH = 5000
COLUMNS: tuple[tuple[str, str], ...] = (
    ("url", "string"),
    ("key", "string"),
    ("photo_id", "int64"),
    ("label", "string"),
    ("taxon_id", "int64"),
    ("license", "string"),
    ("attribution", "string"),
    ("observation_id", "string"),
    ("split", "string"),
)
REFUSED_REASON = (
    "on iNaturalist's own servers, which serve one user from one machine within their "
    "published limits: never hand them to many machines (only the Open Data bucket)"
)


@dataclass(slots=True)
class ManifestResult:
    path: Path
    rows: int = 0
    #: Photos left out, by reason: ``not_in_bucket``, ``missing``, ``license``.
    skipped: dict[str, int] = field(default_factory=dict)
    #: Rows per split.
    splits: dict[str, int] = field(default_factory=dict)

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1


def write_img2dataset(
    out_dir: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    splits: Sequence[Split],
    group_by: GroupBy = "observer",
    seed: int = 0,
    licenses: tuple[str, ...] | None = None,
    bucket_url: str = BUCKET_URL,
) -> ManifestResult:
    """Write ``dest/img2dataset.parquet`` from the dataset in ``out_dir``.

    Every photo whose URL is under ``bucket_url``, downloaded or pending, goes in; photos
    the bucket no longer has (recorded missing) and those under other ``licenses`` stay
    out; photos on any other host are refused and counted (``skipped["not_in_bucket"]``).
    Splits are the export's: a hash of (seed, species, observer or observation).
    """
    pa = require_pyarrow()
    pq = importlib.import_module("pyarrow.parquet")
    out_path, dest_path = Path(out_dir), Path(dest)
    prefix = bucket_url.rstrip("/") + "/photos/"
    schema = pa.schema([(name, getattr(pa, kind)()) for name, kind in COLUMNS])
    with ResumeStore.open(out_path, create=False) as store:
        size = (store.query() or {}).get("size", "medium")
        try:
            dest_path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create {dest_path}: {exc.strerror or exc}") from exc
        target = dest_path / FILE
        result = ManifestResult(target)
        tmp = dest_path / f".{FILE}.{os.getpid()}.tmp"
        try:
            writer = pq.ParquetWriter(str(tmp), schema)
            try:
                batch: list[dict[str, Any]] = []
                for state in store.all_species():
                    if state.taxon is None:
                        continue
                    label, taxon_id = state.taxon.name, state.taxon.id
                    for record in store.iter_photos(state.name, PENDING, DONE, FAILED):
                        if record.missing:
                            result.skip("missing")
                            continue
                        if licenses is not None and record.license not in licenses:
                            result.skip("license")
                            continue
                        url = photo_url_for_size(record.url, size)
                        if not url.startswith(prefix):
                            result.skip("not_in_bucket")
                            continue
                        group = group_key(
                            group_by,
                            observation_id=record.observation_id,
                            observer_id=record.observer_id,
                            login=record.login,
                        )
                        split = split_of(splits, seed=seed, species=str(taxon_id), group=group)
                        result.splits[split] = result.splits.get(split, 0) + 1
                        batch.append(
                            {
                                "url": url,
                                "key": str(record.photo_id),
                                "photo_id": record.photo_id,
                                "label": label,
                                "taxon_id": taxon_id,
                                "license": record.license,
                                "attribution": record.attribution,
                                "observation_id": str(record.observation_id),
                                "split": split,
                            }
                        )
                        if len(batch) >= _BATCH:
                            writer.write_table(_table(pa, schema, batch))
                            result.rows += len(batch)
                            batch = []
                if batch:
                    writer.write_table(_table(pa, schema, batch))
                    result.rows += len(batch)
            finally:
                writer.close()
            tmp.replace(target)
        except OSError as exc:
            raise StorageError(f"cannot write {target}: {exc.strerror or exc}") from exc
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
    return result


def _table(pa: Any, schema: Any, batch: list[dict[str, Any]]) -> Any:
    return pa.Table.from_pylist(batch, schema=schema)


def check_bucket_url(url: str) -> str:
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"the bucket URL must start with http:// or https://, got {url!r}")
    return url.rstrip("/")
