"""species.csv: what spreadsheets and hand edits produce is read; the rest is one clear line."""

from __future__ import annotations

import csv
import dataclasses
import io
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from inat_async.errors import SpeciesFileError, UsageError
from inat_async.species import SpeciesEntry, read_species_csv, species_from_names


def write(tmp_path: Path, content: str | bytes, name: str = "species.csv") -> Path:
    path = tmp_path / name
    if isinstance(content, str):
        path.write_bytes(content.encode("utf-8"))
    else:
        path.write_bytes(content)
    return path


def names(entries: list[SpeciesEntry]) -> list[str]:
    return [entry.name for entry in entries]


def read_error(path: Path | str) -> str:
    with pytest.raises(SpeciesFileError) as caught:
        read_species_csv(path)
    message = str(caught.value)
    # One line, naming the file, so the CLI can print it as is.
    assert "\n" not in message
    assert str(path) in message
    return message


# --- accepted ------------------------------------------------------------------------------


def test_the_original_format(tmp_path: Path) -> None:
    path = write(
        tmp_path, "name,start_id\nApis mellifera,0\nMantis religiosa,0\nMartes americana,0\n"
    )
    assert read_species_csv(path) == [
        SpeciesEntry("Apis mellifera", 0),
        SpeciesEntry("Mantis religiosa", 0),
        SpeciesEntry("Martes americana", 0),
    ]


def test_the_example_file_of_the_project() -> None:
    example = Path(__file__).resolve().parents[1] / "species.csv"
    if not example.is_file():
        pytest.skip("no species.csv at the repository root")
    assert names(read_species_csv(example)) == [
        "Apis mellifera",
        "Mantis religiosa",
        "Martes americana",
    ]


def test_start_ids_and_str_paths(tmp_path: Path) -> None:
    path = write(tmp_path, "name,start_id\nApis mellifera,6093\nMantis religiosa,007\n")
    entries = read_species_csv(str(path))
    assert [entry.start_id for entry in entries] == [6093, 7]
    assert read_species_csv(os.fspath(path)) == read_species_csv(path)


def test_utf8_bom(tmp_path: Path) -> None:
    path = write(tmp_path, b"\xef\xbb\xbfname,start_id\r\nApis mellifera,5\r\n")
    assert read_species_csv(path) == [SpeciesEntry("Apis mellifera", 5)]


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_blank_lines_and_line_endings(tmp_path: Path, newline: str) -> None:
    lines = ["", "name,start_id", "", "Apis mellifera,0", "   ", ",", " , ", "Mantis religiosa,1"]
    path = write(tmp_path, newline.join(lines))  # no final newline either
    assert read_species_csv(path) == [
        SpeciesEntry("Apis mellifera", 0),
        SpeciesEntry("Mantis religiosa", 1),
    ]


def test_spaces_and_header_case(tmp_path: Path) -> None:
    path = write(
        tmp_path, " Name , START_ID \n  Apis   mellifera  ,  12 \n\tMantis\treligiosa\t,\n"
    )
    assert read_species_csv(path) == [
        SpeciesEntry("Apis mellifera", 12),
        SpeciesEntry("Mantis religiosa", 0),
    ]


@pytest.mark.parametrize("header", ["Start ID", "start-id", "START_ID"])
def test_start_id_header_spellings(tmp_path: Path, header: str) -> None:
    path = write(tmp_path, f"name,{header}\nApis mellifera,3\n")
    assert read_species_csv(path) == [SpeciesEntry("Apis mellifera", 3)]


def test_invisible_and_unicode_spaces_are_normalised(tmp_path: Path) -> None:
    path = write(tmp_path, "name\nApis\u00a0mellifera\n\u200bMantis  religiosa\u3000\n")
    assert names(read_species_csv(path)) == ["Apis mellifera", "Mantis religiosa"]


def test_missing_start_id_column_means_zero(tmp_path: Path) -> None:
    path = write(tmp_path, "name\nApis mellifera\nMantis religiosa\n")
    assert [entry.start_id for entry in read_species_csv(path)] == [0, 0]


def test_empty_or_missing_start_id_cell_means_zero(tmp_path: Path) -> None:
    path = write(tmp_path, "name,start_id\nApis mellifera,\nMantis religiosa\nMartes americana, \n")
    assert [entry.start_id for entry in read_species_csv(path)] == [0, 0, 0]


def test_extra_columns_anywhere(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "id,common name,name,start_id,notes\n"
        '1,honey bee,Apis mellifera,4,"sting, ouch"\n'
        "2,mantis,Mantis religiosa,,x,y,z\n",
    )
    assert read_species_csv(path) == [
        SpeciesEntry("Apis mellifera", 4),
        SpeciesEntry("Mantis religiosa", 0),
    ]


def test_taxon_id_column(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "name,start_id,taxon_id\nApis mellifera,0,47219\nMantis religiosa,10,\nMartes americana\n",
    )
    assert read_species_csv(path) == [
        SpeciesEntry("Apis mellifera", 0, 47219),
        SpeciesEntry("Mantis religiosa", 10, None),
        SpeciesEntry("Martes americana", 0, None),
    ]


def test_quoted_names(tmp_path: Path) -> None:
    path = write(tmp_path, 'name,start_id\n"Apis mellifera",1\n"Quercus × bebbiana",""\n')
    assert read_species_csv(path) == [
        SpeciesEntry("Apis mellifera", 1),
        SpeciesEntry("Quercus × bebbiana", 0),
    ]


def test_duplicates_keep_the_first_row(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "name,start_id,taxon_id\n"
        "Apis mellifera,100,\n"
        "Mantis religiosa,0,\n"
        "apis  MELLIFERA,0,47219\n"
        " Apis mellifera ,5,\n",
    )
    assert read_species_csv(path) == [
        SpeciesEntry("Apis mellifera", 100, None),
        SpeciesEntry("Mantis religiosa", 0, None),
    ]


def test_duplicates_in_other_unicode_forms(tmp_path: Path) -> None:
    nfc, nfd = "Bohémiera sp", "Bohe\u0301miera sp"
    path = write(tmp_path, f"name\n{nfd}\n{nfc}\n")
    assert names(read_species_csv(path)) == [nfc]


def test_largest_start_id(tmp_path: Path) -> None:
    path = write(tmp_path, f"name,start_id\nApis mellifera,{'0' * 50}{2**63 - 1}\n")
    assert read_species_csv(path)[0].start_id == 2**63 - 1


def test_ids_too_large(tmp_path: Path) -> None:
    path = write(tmp_path, f"name,start_id\nApis mellifera,{'9' * 5000}\n")
    assert "start_id is too large" in read_error(path)


def test_no_path() -> None:
    with pytest.raises(SpeciesFileError, match="no species file given"):
        read_species_csv("")


def test_invisible_only_rows_are_blank(tmp_path: Path) -> None:
    path = write(tmp_path, "name,start_id\n\u200b,\nApis mellifera,0\n\ufeff, \n")
    assert names(read_species_csv(path)) == ["Apis mellifera"]


# --- refused -------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    assert "no such file" in read_error(tmp_path / "nope.csv")


def test_a_folder(tmp_path: Path) -> None:
    assert "folder" in read_error(tmp_path)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file(tmp_path: Path) -> None:
    path = write(tmp_path, "name\nApis mellifera\n")
    path.chmod(0)
    try:
        assert "permission denied" in read_error(path)
    finally:
        path.chmod(0o600)


def test_not_utf8(tmp_path: Path) -> None:
    path = write(tmp_path, "name\nApis mellifera\nBoh\xe9mier\n".encode("latin-1"))
    message = read_error(path)
    assert "line 3" in message
    assert "UTF-8" in message


def test_utf16(tmp_path: Path) -> None:
    path = write(tmp_path, "name\nApis mellifera\n".encode("utf-16"))
    assert "UTF-16" in read_error(path)


def test_binary_file(tmp_path: Path) -> None:
    path = write(tmp_path, b"PK\x03\x04\x14\x00\x08\x08\x08\x00\xa3\x93")  # an .xlsx
    assert "UTF-8" in read_error(path)


@pytest.mark.parametrize("content", ["", "\n\n  \n", "\ufeff"])
def test_empty_file(tmp_path: Path, content: str) -> None:
    assert "no species" in read_error(write(tmp_path, content))


@pytest.mark.parametrize("content", ["name,start_id\n", "name,start_id\n\n , \n"])
def test_header_only(tmp_path: Path, content: str) -> None:
    assert "no species" in read_error(write(tmp_path, content))


@pytest.mark.parametrize(
    ("content", "line", "hint"),
    [
        ("species,start_id\nApis mellifera,0\n", 1, "'species'"),
        ("Apis mellifera,0\nMantis religiosa,0\n", 1, "first line must be"),
        ("\n\nnames\nApis mellifera\n", 3, "'names'"),
        ("name;start_id\nApis mellifera;0\n", 1, "separated by commas"),
        ("name\tstart_id\nApis mellifera\t0\n", 1, "separated by commas"),
    ],
)
def test_no_name_column(tmp_path: Path, content: str, line: int, hint: str) -> None:
    message = read_error(write(tmp_path, content))
    assert f"line {line}:" in message
    assert "no 'name' column" in message
    assert hint in message


def test_a_column_twice(tmp_path: Path) -> None:
    message = read_error(write(tmp_path, "name,Name\nApis mellifera,Mantis religiosa\n"))
    assert "line 1:" in message
    assert "twice" in message


@pytest.mark.parametrize(
    "value", ["abc", "-5", "1.5", "1e3", "+3", "²", "٣", "0x10", "1 000", str(2**63)]
)
def test_bad_start_id(tmp_path: Path, value: str) -> None:
    path = write(tmp_path, f"name,start_id\nApis mellifera,0\n\nMantis religiosa,{value}\n")
    message = read_error(path)
    assert "line 4:" in message
    assert "start_id" in message
    assert repr(value) in message


@pytest.mark.parametrize("value", ["abc", "0", "000", "-3", "47219.0", "x47219", "9" * 5000])
def test_bad_taxon_id(tmp_path: Path, value: str) -> None:
    path = write(tmp_path, f"name,start_id,taxon_id\nApis mellifera,0,{value}\n")
    message = read_error(path)
    assert "line 2:" in message
    assert "taxon_id" in message


def test_empty_name(tmp_path: Path) -> None:
    message = read_error(write(tmp_path, "name,start_id\nApis mellifera,0\n  ,5\n"))
    assert "line 3:" in message
    assert "empty species name" in message


def test_control_characters_in_a_name(tmp_path: Path) -> None:
    message = read_error(write(tmp_path, "name\nApis\x00mellifera\n"))
    assert "line 2:" in message
    assert "control characters" in message
    assert "\\x00" in message


def test_conflicting_taxon_ids(tmp_path: Path) -> None:
    path = write(tmp_path, "name,taxon_id\nMorus,1\nmorus,2\n")
    message = read_error(path)
    assert "line 3:" in message
    assert "line 2" in message
    assert "taxon_id" in message


def test_two_names_one_folder(tmp_path: Path) -> None:
    path = write(tmp_path, "name\nApis mellifera\nApis_mellifera\n")
    message = read_error(path)
    assert "line 3:" in message
    assert "Apis_mellifera" in message
    assert "line 2" in message


def test_multiline_record_reports_its_first_line(tmp_path: Path) -> None:
    path = write(tmp_path, 'name,start_id\nApis mellifera,0\n"Mantis\nreligiosa",oops\n')
    assert "line 3:" in read_error(path)


def test_multiline_name_is_one_species(tmp_path: Path) -> None:
    path = write(tmp_path, 'name,start_id\n"Mantis\nreligiosa",1\nApis mellifera,2\n')
    assert read_species_csv(path) == [
        SpeciesEntry("Mantis religiosa", 1),
        SpeciesEntry("Apis mellifera", 2),
    ]


def test_invalid_csv(tmp_path: Path) -> None:
    path = write(tmp_path, "name\nApis mellifera\n" + '"' + "x" * 200_000 + '"\n')
    message = read_error(path)
    assert "line 3:" in message
    assert "CSV" in message


def test_errors_are_usage_errors(tmp_path: Path) -> None:
    # The CLI maps UsageError to exit code 2, before anything is downloaded.
    with pytest.raises(UsageError):
        read_species_csv(tmp_path / "missing.csv")


# --- library callers -----------------------------------------------------------------------


def test_species_from_names() -> None:
    entries = species_from_names(
        ["Apis mellifera", " apis   MELLIFERA ", "Mantis\treligiosa", "Apis mellifera"]
    )
    assert entries == [SpeciesEntry("Apis mellifera"), SpeciesEntry("Mantis religiosa")]


def test_species_from_a_generator_and_a_single_string() -> None:
    assert names(species_from_names(name for name in ["a b", "c d"])) == ["a b", "c d"]
    assert species_from_names("Apis  mellifera") == [SpeciesEntry("Apis mellifera")]


@pytest.mark.parametrize(
    ("given_names", "message"),
    [
        ([], "no species"),
        (["Apis mellifera", "  "], "species #2: empty species name"),
        (["a\x07b"], "control characters"),
        (["Apis mellifera", "Apis_mellifera"], "share the output folder"),
        ([b"Apis mellifera"], "must be a string"),
    ],
)
def test_species_from_names_rejects(given_names: list[object], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        species_from_names(given_names)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"name": ""},
        {"name": "  "},
        {"name": "Apis mellifera", "start_id": -1},
        {"name": "Apis mellifera", "start_id": True},
        {"name": "Apis mellifera", "start_id": 2**63},
        {"name": "Apis mellifera", "taxon_id": 0},
        {"name": "Apis mellifera", "taxon_id": "47219"},
    ],
)
def test_entry_invariants(kwargs: dict[str, object]) -> None:
    with pytest.raises(UsageError):
        SpeciesEntry(**kwargs)  # type: ignore[arg-type]


def test_entry_is_frozen() -> None:
    entry = SpeciesEntry("Apis mellifera")
    with pytest.raises(dataclasses.FrozenInstanceError):
        entry.start_id = 5  # type: ignore[misc]
    assert not hasattr(entry, "__dict__")
    assert hash(entry) == hash(SpeciesEntry("Apis mellifera", 0, None))


# Names that survive a spreadsheet: no control characters, at least one visible character.
visible_names = st.text(
    st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=40
).filter(lambda text: bool(text.split()) and bool(text.strip("\ufeff\u200b").strip()))


@given(st.lists(visible_names, min_size=1, max_size=8))
def test_a_written_csv_reads_back_as_the_names(given_names: list[str]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["name", "start_id"])
    writer.writerows([name, index] for index, name in enumerate(given_names))
    # Only the file path differs between the two entry points; compare names and errors.
    try:
        expected: list[str] | str = names(species_from_names(given_names))
    except UsageError as error:
        expected = type(error).__name__
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder, "species.csv")
        path.write_text(buffer.getvalue(), encoding="utf-8", newline="")
        try:
            got: list[str] | str = names(read_species_csv(path))
        except SpeciesFileError:
            got = "UsageError"
    assert got == expected


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (PermissionError(13, "Permission denied"), "permission denied"),
        (OSError(5, "Input/output error"), "Input/output error"),
    ],
)
def test_read_failures_are_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: OSError, expected: str
) -> None:
    # Runs as root too, where chmod cannot make a file unreadable.
    path = write(tmp_path, "name\nApis mellifera\n")

    def fail(self: Path) -> bytes:
        raise error

    monkeypatch.setattr(Path, "read_bytes", fail)
    assert expected in read_error(path)
