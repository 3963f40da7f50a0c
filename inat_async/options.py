"""Validation of the user's choices: quality grades, licenses, photo sizes, byte sizes.

Each parser takes what a user types (a comma string or a sequence) and returns a
normalised, validated value, or raises :class:`~inat_async.errors.UsageError` with a
message that names the bad value and the accepted ones.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

from .errors import UsageError
from .selection import Filters, Sampling

QUALITY_GRADES: tuple[str, ...] = ("research", "needs_id", "casual")
LICENSES: tuple[str, ...] = (
    "cc-by",
    "cc-by-nc",
    "cc-by-nd",
    "cc-by-sa",
    "cc-by-nc-nd",
    "cc-by-nc-sa",
    "cc0",
)
Size = Literal["small", "medium", "large", "original"]
SIZES: tuple[Size, ...] = ("small", "medium", "large", "original")
#: Longest side in pixels of each size, as iNaturalist serves them.
SIZE_PIXELS: dict[str, int] = {"small": 240, "medium": 500, "large": 1024, "original": 2048}

ANY = "any"


def _split(value: str | Sequence[str]) -> list[str]:
    items = value.split(",") if isinstance(value, str) else list(value)
    return [item.strip().lower() for item in items if item and item.strip()]


def _choices(
    value: str | Sequence[str], allowed: tuple[str, ...], what: str
) -> tuple[str, ...] | None:
    """A sorted, de-duplicated tuple of choices, or None for "any" (no filter)."""
    items = _split(value)
    if not items:
        raise UsageError(f"no {what} given; use one of {', '.join(allowed)} or 'any'")
    if ANY in items:
        if len(items) > 1:
            raise UsageError(f"'any' {what} cannot be combined with other values")
        return None
    unknown = [item for item in items if item not in allowed]
    if unknown:
        raise UsageError(
            f"unknown {what} {', '.join(repr(u) for u in unknown)}; "
            f"use one of {', '.join(allowed)} or 'any'"
        )
    return tuple(sorted(set(items), key=allowed.index))


def parse_quality(value: str | Sequence[str]) -> tuple[str, ...] | None:
    """``"research,needs_id"`` -> ``("research", "needs_id")``; ``"any"`` -> ``None``."""
    return _choices(value, QUALITY_GRADES, "quality grade")


def parse_license(value: str | Sequence[str]) -> tuple[str, ...] | None:
    """``"CC-BY, cc0"`` -> ``("cc-by", "cc0")``; ``"any"`` -> ``None`` (every license)."""
    return _choices(value, LICENSES, "license")


def parse_size(value: str) -> Size:
    """One of small, medium, large, original."""
    size = value.strip().lower()
    for allowed in SIZES:
        if size == allowed:
            return allowed
    raise UsageError(f"unknown size {value!r}; use one of {', '.join(SIZES)}")


_BYTE_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
# Limits are persisted as SQLite integers, which stop at 2**63 - 1.
_MAX_BYTES = 2**63 - 1
_BYTE_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*([a-z]*)\s*$", re.IGNORECASE)


def parse_byte_size(value: str | int, *, option: str | None = None) -> int:
    """``"4.5GB"`` -> 4_500_000_000, ``"2GiB"`` -> 2_147_483_648 (GB = 10^9 bytes).

    ``option`` names the setting being read (``"hourly_bytes"``): an error then starts
    with it, so the user knows which of several sizes is wrong.
    """
    try:
        return _parse_byte_size(value)
    except UsageError as exc:
        if option is None:
            raise
        raise UsageError(f"{option}: {exc.message}", options=(option,)) from None


def _parse_byte_size(value: str | int) -> int:
    if isinstance(value, int):
        if value <= 0:
            raise UsageError(f"byte size must be positive, got {value}")
        if value > _MAX_BYTES:
            raise UsageError(f"byte size {value} is too large")
        return value
    match = _BYTE_SIZE.match(value)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _BYTE_UNITS:
        raise UsageError(
            f"cannot read {value!r} as a size; write e.g. 500MB, 4.5GB or 2GiB (GB = 10^9 bytes)"
        )
    if len(match.group(1)) > 40:  # far beyond any limit; spares Decimal a huge exponent
        raise UsageError(f"byte size {value!r} is too large")
    # Decimal, not float: "8.2GB" must be 8_200_000_000, not 8_199_999_999, and a huge
    # number must give a clear error rather than an OverflowError from float infinity.
    amount = int(Decimal(match.group(1)) * _BYTE_UNITS[unit])
    if amount <= 0:
        raise UsageError(f"byte size must be positive, got {value!r}")
    if amount > _MAX_BYTES:
        raise UsageError(f"byte size {value!r} is too large")
    return amount


def format_byte_size(nbytes: int) -> str:
    """The shortest exact decimal spelling: 4_500_000_000 -> ``"4.5GB"``, 512 -> ``"512B"``.

    The inverse of :func:`parse_byte_size` (``parse_byte_size(format_byte_size(n)) == n``),
    so a default shown to the user reads back as the same number of bytes.
    """
    if nbytes <= 0:
        raise ValueError(f"byte size must be positive, got {nbytes}")
    for unit in ("TB", "GB", "MB", "kB"):
        factor = _BYTE_UNITS[unit.lower()]
        if nbytes >= factor:
            # Decimal division is exact here: at most 19 digits over a power of ten.
            return f"{format((Decimal(nbytes) / factor).normalize(), 'f')}{unit}"
    return f"{nbytes}B"


@dataclass(frozen=True, slots=True)
class Query:
    """What to fetch for every species: one dataset is defined by these settings."""

    quality: tuple[str, ...] | None = ("research",)
    licenses: tuple[str, ...] | None = None
    size: Size = "medium"
    #: Place, date, annotation and other search filters (see :mod:`inat_async.selection`).
    filters: Filters = field(default_factory=Filters)
    #: Spread or oldest, caps per observer and per observation.
    sampling: Sampling = field(default_factory=Sampling)
    #: Where the observations come from, when not the API: e.g. the Open Data source and
    #: the snapshot of its tables (see :attr:`inat_async.sources.Source.origin`).
    origin: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(
        cls,
        *,
        quality: str | Sequence[str] = "research",
        license: str | Sequence[str] = ANY,
        size: str = "medium",
        filters: Filters | None = None,
        sampling: Sampling | None = None,
    ) -> Query:
        return cls(
            parse_quality(quality),
            parse_license(license),
            parse_size(size),
            filters or Filters(),
            sampling or Sampling(),
        )

    @property
    def quality_param(self) -> str | None:
        return ",".join(self.quality) if self.quality else None

    @property
    def license_param(self) -> str | None:
        return ",".join(self.licenses) if self.licenses else None

    def accepts_photo_license(self, license_code: str | None) -> bool:
        """A photo is kept on its *own* license; None (all rights reserved) only under 'any'."""
        return self.licenses is None or license_code in self.licenses

    def describe(self) -> dict[str, str]:
        """The dataset's identity: only filters that are set appear (by API parameter)."""
        return {
            "quality": self.quality_param or ANY,
            "license": self.license_param or ANY,
            "size": self.size,
            **self.filters.describe(),
            **self.sampling.describe(),
            **dict(self.origin),
        }
