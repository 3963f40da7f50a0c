"""Check a dataset's files against what was recorded: :func:`verify_dataset`.

An export (a folder with ``manifest.json``) is checked against its manifest: every file
named there is re-hashed. A ``run`` folder (one with ``.inat-async/state.sqlite3``) is
checked against its resume store: every photo recorded as done is re-hashed against the
sha256 taken while it downloaded. Files are read one at a time in 1 MiB pieces and
problems are reported as they are found, so memory stays flat at any size.

>>> result = verify_dataset("ds")  # doctest: +SKIP
>>> result.ok, result.checked, result.missing  # doctest: +SKIP
(False, 1204, 1)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .errors import UsageError
from .layout import Layout
from .resume import DONE, STATE_DIR, STATE_FILE, ResumeStore, hash_file
from .writers.manifest import MANIFEST, FileEntry, iter_manifest_files

Problem = Literal["missing", "changed"]
#: How many problems of each kind :class:`VerifyResult` keeps (all are counted).
KEEP = 100


@dataclass(frozen=True, slots=True)
class FileProblem:
    path: str
    problem: Problem
    detail: str


@dataclass(slots=True)
class VerifyResult:
    folder: Path
    kind: Literal["export", "run"]
    checked: int = 0
    bytes: int = 0
    missing: int = 0
    changed: int = 0
    #: The first :data:`KEEP` problems of each kind, in the order found.
    problems: list[FileProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.missing == 0 and self.changed == 0


def verify_dataset(
    folder: str | os.PathLike[str],
    *,
    on_problem: Callable[[FileProblem], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> VerifyResult:
    """Re-hash every recorded file of an export or a run folder; see the module docstring.

    ``on_problem`` hears of each missing or changed file as it is found; ``on_progress``
    gets the number of files checked, every thousand. Raises :class:`UsageError` when
    ``folder`` is neither an export nor a run folder.
    """
    path = Path(folder)
    if (path / MANIFEST).is_file():
        result = VerifyResult(path, "export")
        _check(result, _export_files(path), on_problem, on_progress)
    elif (path / STATE_DIR / STATE_FILE).is_file():
        result = VerifyResult(path, "run")
        with ResumeStore.open(path, create=False) as store:
            _check(result, _run_files(store, path), on_problem, on_progress)
    else:
        raise UsageError(
            f"{path} is neither an export (no {MANIFEST}) nor a run folder "
            f"(no {STATE_DIR}/{STATE_FILE})"
        )
    return result


def _export_files(folder: Path) -> Iterator[tuple[Path, FileEntry]]:
    for entry in iter_manifest_files(folder / MANIFEST):
        relative = Path(entry.path)
        if relative.is_absolute() or ".." in relative.parts:
            # A manifest names files inside its folder; anything else is not checked blindly.
            raise UsageError(f"{folder / MANIFEST} names a file outside the export: {entry.path}")
        yield folder / relative, entry


def _run_files(store: ResumeStore, folder: Path) -> Iterator[tuple[Path, FileEntry]]:
    layout = Layout(folder)
    # Read lazily, species by species: nothing is written to the store meanwhile.
    for species in store.all_species():
        images = layout.images_dir(species.name)
        for record in store.iter_photos(species.name, DONE):
            if record.file_name is None or record.sha256 is None or record.bytes is None:
                continue
            relative = f"{images.name}/{record.file_name}"
            yield images / record.file_name, FileEntry(relative, record.bytes, record.sha256)


def _check(
    result: VerifyResult,
    files: Iterator[tuple[Path, FileEntry]],
    on_problem: Callable[[FileProblem], None] | None,
    on_progress: Callable[[int], None] | None,
) -> None:
    kept = {"missing": 0, "changed": 0}

    def report(problem: FileProblem) -> None:
        if problem.problem == "missing":
            result.missing += 1
        else:
            result.changed += 1
        if kept[problem.problem] < KEEP:
            kept[problem.problem] += 1
            result.problems.append(problem)
        if on_problem is not None:
            on_problem(problem)

    for path, entry in files:
        result.checked += 1
        if on_progress is not None and result.checked % 1000 == 0:
            on_progress(result.checked)
        try:
            size, digest = hash_file(path)
        except FileNotFoundError:
            report(FileProblem(entry.path, "missing", "not found"))
            continue
        except OSError as exc:
            report(FileProblem(entry.path, "missing", f"unreadable: {exc.strerror or exc}"))
            continue
        result.bytes += size
        if size != entry.size:
            report(FileProblem(entry.path, "changed", f"{size} bytes, {entry.size} recorded"))
        elif digest != entry.sha256:
            report(FileProblem(entry.path, "changed", "same size, different sha256"))
