"""What users type for quality, license, size and byte limits: accepted, normalised or refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from inat_async.errors import UsageError
from inat_async.options import (
    LICENSES,
    QUALITY_GRADES,
    SIZE_PIXELS,
    SIZES,
    Query,
    format_byte_size,
    parse_byte_size,
    parse_license,
    parse_quality,
    parse_size,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("research", ("research",)),
        ("Research", ("research",)),
        (" research , needs_id ", ("research", "needs_id")),
        ("casual,research,research", ("research", "casual")),
        ("needs_id,,", ("needs_id",)),
        (["casual", "NEEDS_ID"], ("needs_id", "casual")),
        (("research",), ("research",)),
        ("any", None),
        (" ANY ", None),
        (["any"], None),
    ],
)
def test_parse_quality_accepts(value: str | list[str], expected: tuple[str, ...] | None) -> None:
    assert parse_quality(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "no quality grade"),
        (" , ", "no quality grade"),
        ([], "no quality grade"),
        ("good", "unknown quality grade 'good'"),
        ("research,verifiable", "'verifiable'"),
        ("needs-id", "'needs-id'"),
        ("any,research", "cannot be combined"),
    ],
)
def test_parse_quality_rejects(value: str | list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message) as caught:
        parse_quality(value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("cc-by", ("cc-by",)),
        ("CC-BY, cc0", ("cc-by", "cc0")),
        ("cc0,cc-by-nc,cc-by", ("cc-by", "cc-by-nc", "cc0")),
        (list(reversed(LICENSES)), LICENSES),
        ("cc-by-nc-nd,cc-by-nc-nd", ("cc-by-nc-nd",)),
        ("any", None),
        ("Any", None),
    ],
)
def test_parse_license_accepts(value: str | list[str], expected: tuple[str, ...] | None) -> None:
    assert parse_license(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "no license"),
        ("cc-by-4.0", "unknown license 'cc-by-4.0'"),
        ("pd", "unknown license 'pd'"),
        ("all rights reserved", "unknown license"),
        ("cc by", "unknown license 'cc by'"),
        ("cc0,any", "cannot be combined"),
    ],
)
def test_parse_license_rejects(value: str, message: str) -> None:
    with pytest.raises(UsageError, match=message) as caught:
        parse_license(value)
    # The message lists what is accepted, so the user can fix the command at once.
    assert "cc-by-nc-sa" in str(caught.value) or "combined" in str(caught.value)


@given(st.lists(st.sampled_from(LICENSES), min_size=1))
def test_parse_license_is_order_and_case_insensitive(chosen: list[str]) -> None:
    parsed = parse_license(",".join(item.upper() for item in chosen))
    assert parsed is not None
    assert set(parsed) == set(chosen)
    assert list(parsed) == sorted(parsed, key=LICENSES.index)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("small", "small"), ("Medium", "medium"), (" LARGE ", "large"), ("original", "original")],
)
def test_parse_size_accepts(value: str, expected: str) -> None:
    assert parse_size(value) == expected


@pytest.mark.parametrize("value", ["", "square", "thumb", "huge", "med", "any", "large,small"])
def test_parse_size_rejects(value: str) -> None:
    with pytest.raises(UsageError, match="unknown size"):
        parse_size(value)


def test_sizes_and_pixels_agree() -> None:
    assert set(SIZES) == set(SIZE_PIXELS)
    assert [SIZE_PIXELS[size] for size in SIZES] == [240, 500, 1024, 2048]
    assert QUALITY_GRADES == ("research", "needs_id", "casual")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("4.5GB", 4_500_000_000),
        ("5GB", 5_000_000_000),
        ("24 GB", 24_000_000_000),
        ("8.2GB", 8_200_000_000),
        ("4.35GB", 4_350_000_000),
        ("0.07GB", 70_000_000),
        ("2GiB", 2 * 2**30),
        ("500MB", 500_000_000),
        ("500mb", 500_000_000),
        ("1.5kib", 1536),
        (" 1 kb ", 1000),
        ("1TB", 10**12),
        ("100", 100),
        ("100b", 100),
        (".5GB", 500_000_000),
        (123, 123),
    ],
)
def test_parse_byte_size_accepts(value: str | int, expected: int) -> None:
    assert parse_byte_size(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "cannot read"),
        ("GB", "cannot read"),
        ("abc", "cannot read"),
        ("5XB", "cannot read"),
        ("-1GB", "cannot read"),
        ("1e3", "cannot read"),
        ("1,5GB", "cannot read"),
        ("5 G B", "cannot read"),
        ("0", "positive"),
        ("0.0000000001", "positive"),
        ("0GB", "positive"),
        (0, "positive"),
        (-5, "positive"),
        ("9" * 400 + "GB", "too large"),
        ("10000000000TiB", "too large"),
        (2**63, "too large"),
    ],
)
def test_parse_byte_size_rejects(value: str | int, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_byte_size(value)


@given(st.integers(0, 10**6), st.sampled_from(["kb", "mb", "gb", "tb"]))
def test_decimal_units_are_exact(hundredths: int, unit: str) -> None:
    factor = {"kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}[unit]
    text = f"{hundredths // 100}.{hundredths % 100:02d}{unit}"
    if hundredths * factor // 100 == 0:
        with pytest.raises(UsageError):
            parse_byte_size(text)
    else:
        assert parse_byte_size(text) == hundredths * factor // 100


@pytest.mark.parametrize(
    ("nbytes", "text"),
    [
        (4_500_000_000, "4.5GB"),
        (22_000_000_000, "22GB"),
        (20_000_000, "20MB"),
        (1_000, "1kB"),
        (1_001, "1.001kB"),
        (999, "999B"),
        (3 * 10**12, "3TB"),
    ],
)
def test_format_byte_size_is_the_shortest_decimal_spelling(nbytes: int, text: str) -> None:
    assert format_byte_size(nbytes) == text


@given(st.integers(1, 2**63 - 1))
def test_format_byte_size_reads_back_as_the_same_bytes(nbytes: int) -> None:
    assert parse_byte_size(format_byte_size(nbytes)) == nbytes


def test_format_byte_size_refuses_what_is_not_a_size() -> None:
    with pytest.raises(ValueError, match="positive"):
        format_byte_size(0)


def test_query_defaults_match_the_original() -> None:
    query = Query.parse()
    assert query == Query(quality=("research",), licenses=None, size="medium")
    assert query.quality_param == "research"
    assert query.license_param is None
    assert query.describe() == {"quality": "research", "license": "any", "size": "medium"}


def test_query_parse_normalises_every_field() -> None:
    query = Query.parse(quality="needs_id,research", license=["cc0", "CC-BY"], size="Large")
    assert query == Query(quality=("research", "needs_id"), licenses=("cc-by", "cc0"), size="large")
    assert query.quality_param == "research,needs_id"
    assert query.license_param == "cc-by,cc0"
    assert query.describe() == {
        "quality": "research,needs_id",
        "license": "cc-by,cc0",
        "size": "large",
    }


def test_query_any_quality_sends_no_filter() -> None:
    query = Query.parse(quality="any")
    assert query.quality is None
    assert query.quality_param is None
    assert query.describe()["quality"] == "any"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"quality": "best"}, "quality"),
        ({"license": "gpl"}, "license"),
        ({"size": "xl"}, "size"),
    ],
)
def test_query_parse_rejects(kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        Query.parse(**kwargs)


@pytest.mark.parametrize(
    ("licenses", "code", "accepted"),
    [
        (None, "cc-by", True),
        (None, None, True),  # "any" keeps all-rights-reserved photos too
        (None, "pd", True),
        (("cc-by", "cc0"), "cc-by", True),
        (("cc-by", "cc0"), "cc0", True),
        (("cc-by", "cc0"), "cc-by-nc", False),
        (("cc-by", "cc0"), None, False),  # all rights reserved never passes a license filter
        (("cc-by",), "cc-by-sa", False),  # no prefix matching
    ],
)
def test_accepts_photo_license(
    licenses: tuple[str, ...] | None, code: str | None, accepted: bool
) -> None:
    assert Query(licenses=licenses).accepts_photo_license(code) is accepted
