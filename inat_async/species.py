"""The species list: reading ``species.csv`` and checking names given by library callers.

The file keeps the original script's format, a header line then one species a line::

    name,start_id
    Apis mellifera,0
    Mantis religiosa,0

Accepted, because spreadsheets and hand editing produce them: a UTF-8 BOM, blank
lines, spaces around cells, header names in any case, extra columns, no ``start_id``
column or an empty ``start_id`` cell (both mean 0), and an optional ``taxon_id`` column
that names the taxon directly. Names are trimmed and inner whitespace runs become one
space.

Duplicates (the same name ignoring case and spacing) are downloaded once: the first
row wins, its ``start_id`` and ``taxon_id`` included, so the file reads top to bottom
like the run. Two rows of one name with two different non-empty ``taxon_id`` values
are an error, as are two names that would share an output folder.

Anything else wrong is a :class:`~inat_async.errors.SpeciesFileError` whose one-line
message names the file and the line, e.g.
``species.csv, line 4: start_id must be a whole number (0 or more), got '-5'``.
"""

from __future__ import annotations

import csv
import io
import os
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .errors import SpeciesFileError, UsageError
from .naming import species_dir_name

# Ids are stored as SQLite integers, which stop here.
_MAX_ID = 2**63 - 1
_HEADER = "name,start_id"
# Invisible characters that web pages and spreadsheets slip into copied names.
_INVISIBLE = str.maketrans({"\ufeff": " ", "\u200b": " "})


@dataclass(frozen=True, slots=True)
class SpeciesEntry:
    """One species to download: its name, the observation id to start above, its taxon.

    ``taxon_id``, when known, skips the name lookup.
    """

    name: str
    start_id: int = 0
    taxon_id: int | None = None

    def __post_init__(self) -> None:
        # Library callers build entries directly; keep the invariants the pipeline relies on.
        if not isinstance(self.name, str) or not self.name.strip():
            raise UsageError(f"species name must be a non-empty string, got {self.name!r}")
        if not _valid_id(self.start_id, minimum=0):
            raise UsageError(
                f"start_id of {self.name!r} must be a whole number (0 or more), "
                f"got {self.start_id!r}"
            )
        if self.taxon_id is not None and not _valid_id(self.taxon_id, minimum=1):
            raise UsageError(
                f"taxon_id of {self.name!r} must be a positive whole number, got {self.taxon_id!r}"
            )


def _valid_id(value: object, *, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and minimum <= value <= _MAX_ID


def normalise_name(text: str) -> str:
    """``"  Apis   mellifera "`` -> ``"Apis mellifera"`` (NFC, single spaces)."""
    return " ".join(unicodedata.normalize("NFC", text.translate(_INVISIBLE)).split())


def _name_key(name: str) -> str:
    return name.casefold()


def _show(value: str, limit: int = 60) -> str:
    """A cell quoted for a one-line message: repr() escapes newlines and control characters."""
    return repr(value if len(value) <= limit else value[:limit] + "…")


def _bad_name(name: str) -> str | None:
    """Why a normalised name cannot be a species name, or None if it can."""
    if not name:
        return "empty species name"
    if any(unicodedata.category(ch) == "Cc" for ch in name):
        return f"species name contains control characters: {_show(name)}"
    return None


def _parse_id(raw: str, *, column: str, minimum: int, where: str) -> int:
    """A cell holding a whole number of ASCII digits within bounds."""
    kind = "a whole number (0 or more)" if minimum == 0 else "a positive whole number"
    # isdigit() alone accepts "²", which int() rejects, and other scripts' digits.
    if not (raw.isascii() and raw.isdigit()):
        raise SpeciesFileError(f"{where}: {column} must be {kind}, got {_show(raw)}")
    digits = raw.lstrip("0") or "0"
    # Length first: int() refuses strings of more than 4300 digits.
    if len(digits) > len(str(_MAX_ID)) or int(digits) > _MAX_ID:
        raise SpeciesFileError(f"{where}: {column} is too large: {_show(raw)}")
    if int(digits) < minimum:
        raise SpeciesFileError(f"{where}: {column} must be {kind}, got {_show(raw)}")
    return int(digits)


class _Collector:
    """Keeps first occurrences and rejects conflicts.

    ``where`` starts a message about an entry, ``short`` refers back to it later.
    """

    def __init__(self, error: type[UsageError]) -> None:
        self._error = error
        self.entries: list[SpeciesEntry] = []
        self._by_name: dict[str, tuple[SpeciesEntry, str]] = {}
        self._by_dir: dict[str, tuple[SpeciesEntry, str]] = {}

    def add(self, entry: SpeciesEntry, where: str, short: str) -> None:
        seen = self._by_name.get(_name_key(entry.name))
        if seen is not None:
            first, first_where = seen
            if None not in (first.taxon_id, entry.taxon_id) and first.taxon_id != entry.taxon_id:
                raise self._error(
                    f"{where}: {_show(entry.name)} is listed again with taxon_id "
                    f"{entry.taxon_id}, but {first_where} gives taxon_id {first.taxon_id}"
                )
            return
        # Folder names are compared case-insensitively, as macOS and Windows do.
        folder = species_dir_name(entry.name)
        clash = self._by_dir.get(folder.casefold())
        if clash is not None:
            other, other_where = clash
            raise self._error(
                f"{where}: {_show(entry.name)} would share the output folder {folder!r} "
                f"with {_show(other.name)} ({other_where}); rename or remove one of them"
            )
        self._by_name[_name_key(entry.name)] = (entry, short)
        self._by_dir[folder.casefold()] = (entry, short)
        self.entries.append(entry)


def species_from_names(names: Iterable[str | SpeciesEntry]) -> list[SpeciesEntry]:
    """Species entries from plain names (or entries), for library callers; duplicates dropped.

    A single string counts as one name, not as a sequence of letters.

    >>> [s.name for s in species_from_names(["Apis mellifera", " apis  MELLIFERA", "Mantis"])]
    ['Apis mellifera', 'Mantis']
    """
    collector = _Collector(UsageError)
    for index, raw in enumerate([names] if isinstance(names, str) else names, start=1):
        where = f"species #{index}"
        if isinstance(raw, SpeciesEntry):
            collector.add(raw, where, where)
            continue
        if not isinstance(raw, str):
            raise UsageError(f"{where}: a species name must be a string, got {raw!r}")
        name = normalise_name(raw)
        problem = _bad_name(name)
        if problem is not None:
            raise UsageError(f"{where}: {problem}")
        collector.add(SpeciesEntry(name), where, where)
    if not collector.entries:
        raise UsageError("no species given")
    return collector.entries


def _display(path: str | os.PathLike[str]) -> str:
    text = os.fspath(path)
    return text if text.isprintable() else repr(text)


def _read_text(path: str | os.PathLike[str], label: str) -> str:
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise SpeciesFileError(f"{label}: no such file") from None
    except IsADirectoryError:
        raise SpeciesFileError(f"{label}: is a folder, not a species list") from None
    except PermissionError:
        raise SpeciesFileError(
            f"{label}: cannot read the species list: permission denied"
        ) from None
    except OSError as error:
        reason = error.strerror or str(error)
        raise SpeciesFileError(f"{label}: cannot read the species list: {reason}") from None
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        # What spreadsheets call "Unicode text": tell the user the fix, not the codec.
        raise SpeciesFileError(f"{label}: the file is UTF-16 text; save it as CSV UTF-8")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        before = data[: error.start].decode("utf-8", "replace")
        line = len(re.findall(r"\r\n|\r|\n", before)) + 1
        raise SpeciesFileError(
            f"{label}, line {line}: not UTF-8 text; save the file as CSV UTF-8"
        ) from None


def _rows(text: str, label: str) -> Iterator[tuple[int, list[str]]]:
    """(first line number, cells) of every non-blank record, with csv errors made clear."""
    # strict: an unclosed quote is an error, not a name that swallows the rest of the file.
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    end = 0
    while True:
        start = end + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            if "unexpected end of data" in str(error):
                raise SpeciesFileError(
                    f'{label}, line {start}: a quote (") opens a cell that is never closed; '
                    "close it or remove it"
                ) from None
            raise SpeciesFileError(f"{label}, line {start}: not valid CSV: {error}") from None
        # A quoted cell may span lines: report the line where the record starts.
        end = reader.line_num
        if any(cell.translate(_INVISIBLE).strip() for cell in row):
            yield start, row


def _header_key(cell: str) -> str:
    # "Start ID", "start-id" and " START_ID " all name the start_id column.
    return re.sub(r"[\s-]+", "_", cell.translate(_INVISIBLE).strip().lower())


def _columns(cells: list[str], line: int, label: str) -> tuple[int, int | None, int | None]:
    keys = [_header_key(cell) for cell in cells]
    for wanted in ("name", "start_id", "taxon_id"):
        if keys.count(wanted) > 1:
            raise SpeciesFileError(
                f"{label}, line {line}: the column {wanted!r} appears twice in the header"
            )
    if "name" not in keys:
        found = ", ".join(_show(cell.strip()) for cell in cells)
        hint = ""
        if len(cells) == 1 and any(sep in cells[0] for sep in ";\t"):
            hint = " (columns must be separated by commas)"
        raise SpeciesFileError(
            f"{label}, line {line}: no 'name' column in the header{hint}; found {found}; "
            f"the first line must be {_HEADER!r}"
        )

    def index(key: str) -> int | None:
        return keys.index(key) if key in keys else None

    return keys.index("name"), index("start_id"), index("taxon_id")


def read_species_csv(path: str | os.PathLike[str]) -> list[SpeciesEntry]:
    """The species listed in a CSV file, in file order, without duplicates.

    >>> read_species_csv("species.csv")  # doctest: +SKIP
    [SpeciesEntry(name='Apis mellifera', start_id=0, taxon_id=None), ...]
    """
    label = _display(path)
    if not label:
        raise SpeciesFileError("no species file given")
    rows = _rows(_read_text(path, label), label)
    header = next(rows, None)
    if header is None:
        raise SpeciesFileError(
            f"{label}: no species listed (the file is empty; its first line must be {_HEADER!r})"
        )
    header_line, header_cells = header
    name_at, start_at, taxon_at = _columns(header_cells, header_line, label)

    def cell(row: list[str], at: int | None) -> str:
        return row[at].strip() if at is not None and at < len(row) else ""

    collector = _Collector(SpeciesFileError)
    for line, row in rows:
        where = f"{label}, line {line}"
        name = normalise_name(cell(row, name_at))
        problem = _bad_name(name)
        if problem is not None:
            raise SpeciesFileError(f"{where}: {problem}")
        raw_start, raw_taxon = cell(row, start_at), cell(row, taxon_at)
        # An empty cell means the default, as a missing column does.
        start_id = (
            _parse_id(raw_start, column="start_id", minimum=0, where=where) if raw_start else 0
        )
        taxon_id = (
            _parse_id(raw_taxon, column="taxon_id", minimum=1, where=where) if raw_taxon else None
        )
        collector.add(SpeciesEntry(name, start_id, taxon_id), where, f"line {line}")
    if not collector.entries:
        raise SpeciesFileError(f"{label}: no species listed (only a header on line {header_line})")
    return collector.entries


def daily_request_warning(entries: Iterable[SpeciesEntry], requests_per_day: int) -> str | None:
    """A warning when the list alone needs more API requests than a day allows, else None.

    Each species needs at least one page, and a name lookup unless it has a taxon_id:
    a list of 10,000 names needs 20,000 requests, two days of the 10,000-a-day budget.
    """
    species = 0
    needed = 0
    for entry in entries:
        species += 1
        needed += 1 if entry.taxon_id is not None else 2
    if requests_per_day < 1 or needed <= requests_per_day:
        return None
    days = -(-needed // requests_per_day)
    return (
        f"{species:,} species need at least {needed:,} API requests, more than the "
        f"{requests_per_day:,} a day allows (requests_per_day): the run takes at least "
        f"{days} days; it pauses when a day's budget is spent and goes on by itself"
    )
