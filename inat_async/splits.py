"""Train/validation/test splits that leak nothing, reproduce exactly, and never move a photo.

A photo's split is drawn from a hash of (seed, species, group), where the group is its
observer (iNaturalist's own rule for its vision training sets) or its observation. All
photos of one group of one species therefore share a split, the same seed gives the
same assignment on any machine, and adding photos never moves one already assigned: the
hash of a group does not depend on what else is in the dataset.

>>> ratios = parse_split("train=0.8,val=0.1,test=0.1")
>>> split_of(ratios, seed=0, species="47219", group="observer:1")
'train'
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from .errors import UsageError

GroupBy = Literal["observer", "observation"]
GROUP_BY: tuple[GroupBy, ...] = ("observer", "observation")
DEFAULT_SPLIT = "train=0.8,val=0.1,test=0.1"

#: Split folder names Hugging Face's ``imagefolder`` loader recognises, by the split
#: it maps them to.
SPLIT_NAMES: dict[str, str] = {
    "train": "train",
    "training": "train",
    "validation": "validation",
    "valid": "validation",
    "val": "validation",
    "dev": "validation",
    "test": "test",
    "testing": "test",
    "eval": "test",
    "evaluation": "test",
}
_TOLERANCE = 1e-6


@dataclass(frozen=True, slots=True)
class Split:
    name: str
    ratio: float


def parse_split(value: str | Sequence[tuple[str, float]]) -> tuple[Split, ...]:
    """``"train=0.8,val=0.1,test=0.1"`` -> three :class:`Split`; ratios must sum to 1."""
    pairs: list[tuple[str, float]] = []
    if isinstance(value, str):
        for item in value.split(","):
            if not item.strip():
                continue
            name, sep, number = item.partition("=")
            try:
                ratio = float(number) if sep else float("nan")
            except ValueError:
                ratio = float("nan")
            if ratio != ratio:  # NaN: no "=" or not a number
                raise UsageError(
                    f"cannot read {item.strip()!r} as a split; write e.g. {DEFAULT_SPLIT}"
                )
            pairs.append((name.strip().lower(), ratio))
    else:
        pairs = [(name.strip().lower(), float(ratio)) for name, ratio in value]
    if not pairs:
        raise UsageError(f"no split given; write e.g. {DEFAULT_SPLIT}")
    seen: dict[str, str] = {}
    for name, ratio in pairs:
        if name not in SPLIT_NAMES:
            raise UsageError(
                f"unknown split name {name!r}; use train, validation (or val) and test, "
                "the names dataset loaders recognise"
            )
        if SPLIT_NAMES[name] in seen:
            raise UsageError(f"splits {seen[SPLIT_NAMES[name]]!r} and {name!r} are the same split")
        seen[SPLIT_NAMES[name]] = name
        if not 0 <= ratio <= 1:
            raise UsageError(f"split {name} must be between 0 and 1, got {ratio:g}")
    total = sum(ratio for _, ratio in pairs)
    if abs(total - 1) > _TOLERANCE:
        raise UsageError(f"split ratios must add up to 1, they add up to {total:g}")
    return tuple(Split(name, ratio) for name, ratio in pairs)


def describe_split(splits: Sequence[Split]) -> str:
    return ",".join(f"{s.name}={s.ratio:g}" for s in splits)


def parse_group_by(value: str) -> GroupBy:
    wanted = value.strip().lower()
    for group in GROUP_BY:
        if wanted == group:
            return group
    raise UsageError(
        f"unknown group_by {value!r}; use observer or observation", options=("group_by",)
    )


def group_key(
    group_by: GroupBy,
    *,
    observation_id: int | str,
    observer_id: int | None,
    login: str | None,
) -> str:
    """The unit that must not straddle splits: an observer (by id, else login) or observation.

    An observer without a known numeric id (datasets stored before ids were kept) is
    grouped by login.
    """
    if group_by == "observation":
        return f"observation:{observation_id}"
    if observer_id is not None:
        return f"observer:{observer_id}"
    return f"login:{login or ''}"


def split_of(splits: Sequence[Split], *, seed: int, species: str, group: str) -> str:
    """The split of ``group`` within ``species``: a pure function of its arguments."""
    digest = hashlib.sha256(f"{seed}\x1f{species}\x1f{group}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") / 2**64
    cumulative = 0.0
    chosen = [s for s in splits if s.ratio > 0]
    for split in chosen:
        cumulative += split.ratio
        if point < cumulative:
            return split.name
    return chosen[-1].name  # rounding: the ratios add up to 1 within the tolerance
