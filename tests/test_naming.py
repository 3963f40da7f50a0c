"""Untrusted text must never choose where a file lands, nor make two photos collide."""

from __future__ import annotations

import re
import tempfile
import unicodedata
from pathlib import Path, PurePosixPath, PureWindowsPath

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from inat_async import naming
from inat_async.naming import (
    MAX_PHOTO_NAME_BYTES,
    photo_file_name,
    safe_component,
    species_dir_name,
    species_file_stem,
)

SAFE = re.compile(r"[A-Za-z0-9._-]+")
WINDOWS_DEVICES = {"CON", "PRN", "AUX", "NUL"} | {
    f"{dev}{i}" for dev in ("COM", "LPT") for i in range(10)
}
HOSTILE = [
    "../../x",
    "..",
    ".",
    "/etc/passwd",
    "C:\\Windows\\system32",
    "\\\\server\\share",
    "a\x00b",
    "x" * 10_000,
    "é" * 10_000,
    "CON",
    "con.txt",
    "Lpt1.tar.gz",
    "NUL",
    "",
    "   ",
    "\n\t",
    "-rf",
    ".hidden",
    "...",
    "Ａｐｉｓ／ｍｅｌｌｉｆｅｒａ",  # fullwidth letters and solidus: NFKD makes a real "/"
    "‥／‥／x",  # two-dot leader: NFKD turns it into ".."
    "🐝🐝",
    "Benjamin Bohémier",
    "Синица",
    "a\u202eb",  # right-to-left override
]
# One fixed folder: resolving needs no real directory, and hypothesis dislikes tmp_path.
OUT = Path(tempfile.gettempdir(), "inat-async-naming-out").resolve()
SPACES = st.sampled_from(["-", "_", ".", ""])
any_text = st.one_of(st.text(), st.sampled_from(HOSTILE), st.text(alphabet="./\\-_ \x00CONUL"))


def assert_safe_component(result: str, max_bytes: int = 255) -> None:
    assert result
    assert SAFE.fullmatch(result), result
    assert len(result.encode()) <= max_bytes
    assert result not in {".", ".."}
    assert not result.startswith((".", "-"))
    assert not result.endswith(".")
    assert not {"/", "\\", "\x00"} & set(result)
    assert PurePosixPath(result).name == result
    assert PureWindowsPath(result).name == result
    assert result.split(".")[0].upper() not in WINDOWS_DEVICES
    assert (OUT / result).resolve().parent == OUT


@settings(max_examples=400)
@given(text=any_text, space=SPACES, max_bytes=st.integers(1, 255))
@example(text="CON", space="-", max_bytes=3)
@example(text="CON.x", space="-", max_bytes=5)
@example(text="a" * 300, space="-", max_bytes=255)
def test_any_text_gives_one_safe_component(text: str, space: str, max_bytes: int) -> None:
    result = safe_component(text, space=space, max_bytes=max_bytes)
    assert_safe_component(result, max_bytes)


@settings(max_examples=400)
@given(text=any_text, space=SPACES, max_bytes=st.integers(1, 255))
def test_safe_component_is_idempotent(text: str, space: str, max_bytes: int) -> None:
    once = safe_component(text, space=space, max_bytes=max_bytes)
    assert safe_component(once, space=space, max_bytes=max_bytes) == once


@given(text=st.text(st.characters(max_codepoint=127)), space=SPACES)
@example(text="a.b--c d\tE_f..", space="_")
def test_ascii_text_skips_nothing_the_full_normalisation_does(text: str, space: str) -> None:
    # ASCII names skip the Unicode folding (a cost per photo): it must not change them.
    folded = unicodedata.normalize("NFKD", text.translate(naming._TRANSLITERATE))
    folded = "".join(ch for ch in folded if not unicodedata.combining(ch))
    assert folded == text
    assert naming._clean(text, space, 80) == naming._clean(text + "\u0301", space, 80)


@given(text=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_]{0,30}", fullmatch=True))
def test_plain_names_are_kept(text: str) -> None:
    if text.upper() not in WINDOWS_DEVICES:
        assert safe_component(text) == text


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_names_create_files_only_inside_the_folder(tmp_path: Path, text: str) -> None:
    for name in (
        safe_component(text),
        species_dir_name(text),
        species_file_stem(text),
        photo_file_name(text, text, text, 1, 0, text),
    ):
        (tmp_path / name).write_bytes(b"x")
        assert [p.name for p in tmp_path.iterdir()] == [name]
        (tmp_path / name).unlink()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Apis mellifera", "Apis-mellifera"),
        ("  Apis \t mellifera  ", "Apis-mellifera"),
        ("Benjamin Bohémier", "Benjamin-Bohemier"),
        ("Straße Øre Łódź", "Strasse-Ore-Lodz"),
        ("Quercus × bebbiana", "Quercus-x-bebbiana"),
        ("../../x", "x"),
        ("/etc/passwd", "etc-passwd"),
        ("a\x00b", "a-b"),
        ("a - b", "a-b"),
        ("CON", "_CON"),
        ("con.txt", "_con.txt"),
        ("CONSOLE", "CONSOLE"),
        ("file.", "file"),
        ("", "unknown"),
        ("🐝", "unknown"),
        ("..", "unknown"),
    ],
)
def test_safe_component_examples(text: str, expected: str) -> None:
    assert safe_component(text) == expected


def test_long_text_is_truncated() -> None:
    assert safe_component("x" * 10_000) == "x" * 80
    assert safe_component("x" * 10_000, max_bytes=255) == "x" * 255
    assert safe_component("", max_bytes=3) == "unk"


@pytest.mark.parametrize("space", ["/", "ab", " ", "\x00"])
def test_unsafe_space_is_refused(space: str) -> None:
    with pytest.raises(ValueError, match="space"):
        safe_component("a b", space=space)


@pytest.mark.parametrize("max_bytes", [0, -1, 256])
def test_max_bytes_is_bounded(max_bytes: int) -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        safe_component("a", max_bytes=max_bytes)


def test_species_names() -> None:
    assert species_dir_name("Apis mellifera") == "Apis_mellifera"
    assert species_file_stem("Apis mellifera") == "Apis-mellifera"
    assert species_dir_name("Mantis  religiosa ") == "Mantis_religiosa"
    assert species_dir_name("../Martes americana") == "Martes_americana"


def test_photo_file_name_matches_the_original() -> None:
    assert (
        photo_file_name("Apis mellifera", "Steve", "cc-by-nc-nd", 6093, 3, "jpg")
        == "Apis-mellifera_Steve_cc-by-nc-nd_6093_3.jpg"
    )


@pytest.mark.parametrize(
    ("login", "license_code", "ext", "expected"),
    [
        (None, None, "jpg", "Apis-mellifera_unknown_none_1_0.jpg"),
        ("", "", "", "Apis-mellifera_unknown_none_1_0.jpg"),
        ("alan_rockefeller", "CC-BY", ".JPG", "Apis-mellifera_alan_rockefeller_cc-by_1_0.jpg"),
        ("con", "cc0", "jpeg", "Apis-mellifera_con_cc0_1_0.jpeg"),
        ("x_9_9", "cc_by_9", "png", "Apis-mellifera_x_9_9_cc-by-9_1_0.png"),
        ("../../etc", "a/b", "../sh", "Apis-mellifera_etc_a-b_1_0.sh"),
        ("Bohémier", None, "jpé", "Apis-mellifera_Bohemier_none_1_0.jp"),
        ("u", None, None, "Apis-mellifera_u_none_1_0.jpg"),
    ],
)
def test_photo_file_name_fields(
    login: str | None, license_code: str | None, ext: str | None, expected: str
) -> None:
    assert photo_file_name("Apis mellifera", login, license_code, 1, 0, ext) == expected


def fields_from_the_right(name: str) -> tuple[str, int, int, str]:
    """What a reader can recover without ambiguity: (license, observation id, position, ext)."""
    stem, ext = name.rsplit(".", 1)
    head, observation_id, position = stem.rsplit("_", 2)
    return head.rsplit("_", 1)[1], int(observation_id), int(position), ext


optional_text = st.none() | any_text
ids = st.integers(0, 2**63 - 1)


@settings(max_examples=300)
@given(
    species=any_text,
    login=optional_text,
    license_code=optional_text,
    observation_id=ids,
    position=ids,
    ext=optional_text,
)
def test_photo_file_name_is_safe_and_ends_with_its_ids(
    species: str,
    login: str | None,
    license_code: str | None,
    observation_id: int,
    position: int,
    ext: str | None,
) -> None:
    name = photo_file_name(species, login, license_code, observation_id, position, ext)
    assert_safe_component(name, MAX_PHOTO_NAME_BYTES)
    license_part, got_id, got_position, got_ext = fields_from_the_right(name)
    assert (got_id, got_position) == (observation_id, position)
    assert re.fullmatch(r"[a-z0-9]{1,8}", got_ext)
    assert license_part
    assert "_" not in license_part
    assert name.startswith(species_file_stem(species) + "_")


@given(
    st.lists(
        st.tuples(optional_text, optional_text, ids, st.integers(0, 50), optional_text),
        min_size=2,
        max_size=6,
    )
)
def test_distinct_photos_never_share_a_name(
    photos: list[tuple[str | None, str | None, int, int, str | None]],
) -> None:
    # Every photo of one species folder, whatever its login, license and extension.
    names = {
        (observation_id, position): photo_file_name(
            "Apis mellifera", login, license_code, observation_id, position, ext
        )
        for login, license_code, observation_id, position, ext in photos
    }
    assert len(set(names.values())) == len(names)


@pytest.mark.parametrize(
    ("observation_id", "position"), [(-1, 0), (0, -1), (2**63, 0), (True, 0), (1, 1.5)]
)
def test_photo_file_name_rejects_impossible_ids(observation_id: object, position: object) -> None:
    with pytest.raises(ValueError, match=r"observation_id|position"):
        photo_file_name("Apis mellifera", "u", None, observation_id, position, "jpg")  # type: ignore[arg-type]
