"""``DEST/metadata.parquet``: one row per exported photo, written in batches with pyarrow.

pyarrow is an optional extra (``pip install 'inat-async[parquet]'``), imported only here.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import StorageError, UsageError
from ..resume import hash_file
from .exportstate import ExportState
from .manifest import FileEntry

FILE = "metadata.parquet"
_BATCH = 5000
#: Column types; every other column is text.
_TYPES = {
    "taxon_id": "int64",
    "photo_id": "int64",
    "observation_id": "int64",
    "observer_id": "int64",
    "class_index": "int64",
    "latitude": "float64",
    "longitude": "float64",
    "width": "int64",
    "height": "int64",
}


def require_pyarrow() -> Any:
    try:
        pyarrow = importlib.import_module("pyarrow")
        importlib.import_module("pyarrow.parquet")
    except ImportError:
        raise UsageError(
            "the parquet format needs pyarrow: pip install 'inat-async[parquet]'"
        ) from None
    return pyarrow


def write_parquet(
    state: ExportState, dest: Path, columns: Sequence[str], class_index: dict[int, int]
) -> FileEntry:
    pa = require_pyarrow()
    pq = importlib.import_module("pyarrow.parquet")

    all_columns = [*columns, "path", "class_index"]
    types = dict(_TYPES)
    if state.text_observation_ids():
        # Open Data observations are named by UUID; API datasets keep their int64 column.
        types["observation_id"] = "string"
    schema = pa.schema([(name, getattr(pa, types.get(name, "string"))()) for name in all_columns])
    target = dest / FILE
    tmp = dest / f".{FILE}.{os.getpid()}.tmp"
    try:
        writer = pq.ParquetWriter(str(tmp), schema)
        try:
            batch: list[dict[str, Any]] = []
            for path, row in state.rows():
                batch.append({**row, "path": path, "class_index": class_index[row["taxon_id"]]})
                if len(batch) >= _BATCH:
                    writer.write_table(_table(pa, schema, batch, all_columns, types))
                    batch = []
            if batch:
                writer.write_table(_table(pa, schema, batch, all_columns, types))
        finally:
            writer.close()
        size, sha256 = hash_file(tmp)
        tmp.replace(target)
    except OSError as exc:
        raise StorageError(f"cannot write {target}: {exc.strerror or exc}") from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return FileEntry(FILE, size, sha256)


def _table(
    pa: Any, schema: Any, batch: list[dict[str, Any]], columns: list[str], types: dict[str, str]
) -> Any:
    data = {
        name: [_value(row.get(name), types.get(name, "string")) for row in batch]
        for name in columns
    }
    return pa.table(data, schema=schema)


def _value(value: Any, kind: str) -> Any:
    if value is None or value == "":
        return None
    if kind == "string":
        return str(value)
    return value
