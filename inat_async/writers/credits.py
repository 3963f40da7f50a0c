"""Crediting the authors: license facts, TASL attribution rows and the dataset card.

Creative Commons asks whoever reuses a work for its Title, Author, Source (a link) and
License (name, version and a link to the deed): "TASL". iNaturalist's photo licenses
link to the 4.0 deeds, and CC0 to the 1.0 dedication.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class LicenseInfo:
    code: str
    name: str
    url: str
    #: The identifier Hugging Face dataset cards use ("other" when it has none).
    hub_id: str
    allows: str


def _cc(code: str, name: str, path: str, allows: str) -> LicenseInfo:
    return LicenseInfo(
        code,
        name,
        f"https://creativecommons.org/licenses/{path}/4.0/",
        f"cc-{path}-4.0",
        allows,
    )


_BY = "credit the author (TASL)"
LICENSES: dict[str, LicenseInfo] = {
    "cc0": LicenseInfo(
        "cc0",
        "CC0 1.0",
        "https://creativecommons.org/publicdomain/zero/1.0/",
        "cc0-1.0",
        "no rights reserved: any use, commercial included; crediting is courteous, not required",
    ),
    "cc-by": _cc("cc-by", "CC BY 4.0", "by", f"any use, commercial included; {_BY}"),
    "cc-by-sa": _cc(
        "cc-by-sa",
        "CC BY-SA 4.0",
        "by-sa",
        f"any use, commercial included; {_BY}; share adaptations under the same license (SA)",
    ),
    "cc-by-nd": _cc(
        "cc-by-nd",
        "CC BY-ND 4.0",
        "by-nd",
        f"any use, commercial included; {_BY}; adapted versions may not be shared (ND)",
    ),
    "cc-by-nc": _cc("cc-by-nc", "CC BY-NC 4.0", "by-nc", f"no commercial use (NC); {_BY}"),
    "cc-by-nc-sa": _cc(
        "cc-by-nc-sa",
        "CC BY-NC-SA 4.0",
        "by-nc-sa",
        f"no commercial use (NC); {_BY}; share adaptations under the same license (SA)",
    ),
    "cc-by-nc-nd": _cc(
        "cc-by-nc-nd",
        "CC BY-NC-ND 4.0",
        "by-nc-nd",
        f"no commercial use (NC); {_BY}; adapted versions may not be shared (ND)",
    ),
    "pd": LicenseInfo(
        "pd",
        "Public Domain Mark 1.0",
        "https://creativecommons.org/publicdomain/mark/1.0/",
        "other",
        "no known copyright restrictions",
    ),
}
ALL_RIGHTS_RESERVED = LicenseInfo(
    "none",
    "All rights reserved",
    "",
    "other",
    "not licensed for reuse: training on, sharing or publishing these photos needs the "
    "author's permission",
)


def license_info(code: str | None) -> LicenseInfo:
    """Facts about a photo license code; None or an unknown code is all rights reserved."""
    if code is None or code == "none":
        return ALL_RIGHTS_RESERVED
    return LICENSES.get(code.lower(), ALL_RIGHTS_RESERVED)


def photo_page(photo_id: int) -> str:
    return f"https://www.inaturalist.org/photos/{photo_id}"


def observation_page(observation_id: int | str) -> str:
    return f"https://www.inaturalist.org/observations/{observation_id}"


ATTRIBUTION_COLUMNS = (
    "file_name",
    "photo_id",
    "title",
    "author",
    "source",
    "observation_url",
    "license",
    "license_name",
    "license_url",
    "inaturalist_attribution",
    "notice",
)


def attribution_row(row: Mapping[str, Any], file_name: str) -> dict[str, Any]:
    """The four TASL parts of one exported photo, and a ready-to-paste credit line."""
    photo_id, species = row["photo_id"], row["species"]
    info = license_info(row.get("license"))
    author = row.get("observer_name") or row.get("observer_login") or "unknown"
    title = f"{species}, photo {photo_id} (observation {row['observation_id']})"
    source = photo_page(photo_id)
    if info is ALL_RIGHTS_RESERVED:
        terms = "all rights reserved (not licensed for reuse)"
        notice = f'"{title}" by {author} ({source}), © {author}, {terms}'
    elif info.code == "cc0":
        notice = f'"{title}" by {author} ({source}), no rights reserved ({info.name}, {info.url})'
    else:
        notice = f'"{title}" by {author} ({source}), {info.name} ({info.url})'
    return {
        "file_name": file_name,
        "photo_id": photo_id,
        "title": title,
        "author": author,
        "source": source,
        "observation_url": observation_page(row["observation_id"]),
        "license": info.code,
        "license_name": info.name,
        "license_url": info.url,
        "inaturalist_attribution": row.get("attribution") or "",
        "notice": notice,
    }


@dataclass(frozen=True, slots=True)
class CardFacts:
    """What the dataset card states; counts are per class and split."""

    title: str
    tool_version: str
    api_url: str | None
    query: Mapping[str, str] | None
    species: Sequence[tuple[str, int | None, str]]
    settings: Mapping[str, Any]
    splits: Sequence[str]
    counts: Mapping[str, Mapping[str, int]]
    licenses: Mapping[str, int]
    formats: Sequence[str]
    duplicates: int
    conflicts: int
    converted: int
    updated: str


def _size_category(total: int) -> str:
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K")):
        if total < limit:
            return label
    return "100K<n<1M" if total < 1_000_000 else "1M<n<10M"


def dataset_card(facts: CardFacts) -> str:
    """``README.md`` of an export: a Hugging Face YAML header, then the facts in prose."""
    total = sum(sum(by_split.values()) for by_split in facts.counts.values())
    infos = sorted(
        {license_info(code) for code in facts.licenses}, key=lambda i: (i.hub_id, i.code)
    )
    hub_ids = sorted({info.hub_id for info in infos}) or ["other"]
    lines = ["---", "license:"]
    lines += [f"- {hub_id}" for hub_id in hub_ids]
    if "other" in hub_ids:
        lines += [
            "license_name: mixed",
            "license_link: ATTRIBUTION.csv",
        ]
    lines += [
        "task_categories:",
        "- image-classification",
        "tags:",
        "- biology",
        "- biodiversity",
        "- inaturalist",
        "size_categories:",
        f"- {_size_category(total)}",
        f"pretty_name: {_yaml_text(facts.title)}",
        "---",
        "",
        f"# {facts.title}",
        "",
        f"{total:,} photos of {len(facts.counts):,} species from "
        "[iNaturalist](https://www.inaturalist.org), exported by inat-async "
        f"{facts.tool_version} on {facts.updated}. Each photo keeps its own license: "
        "**check the license of every photo before you use it** (`ATTRIBUTION.csv`).",
        "",
        "## Files",
        "",
    ]
    if "imagefolder" in facts.formats:
        lines.append(
            "- `<split>/<species>/<photo id>.<ext>` with one `metadata.csv` per split: "
            '`datasets.load_dataset("imagefolder", data_dir=".")` or torchvision '
            '`ImageFolder("train")`.'
        )
    if "webdataset" in facts.formats:
        lines.append(
            "- `webdataset/<split>-NNNNNN.tar`: one sample per photo, keyed by photo id "
            "(`.jpg`/`.png` image, `.json` metadata, `.cls` class index into "
            "`webdataset/classes.txt`)."
        )
    if "parquet" in facts.formats:
        lines.append("- `metadata.parquet`: one row per photo, the same columns.")
    lines += [
        "- `ATTRIBUTION.csv`: title, author, source and license of every photo (TASL).",
        "- `duplicates.csv`: photos left out because their bytes equal an exported photo's.",
        "- `manifest.json`: every file with its size and sha256; check them with "
        "`inat-async verify .`",
        "",
        "## Counts",
        "",
        "| species | " + " | ".join(facts.splits) + " | total |",
        "|---|" + "---:|" * (len(facts.splits) + 1),
    ]
    for name in sorted(facts.counts):
        by_split = facts.counts[name]
        cells = [f"{by_split.get(split, 0):,}" for split in facts.splits]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {sum(by_split.values()):,} |")
    totals = [f"{sum(c.get(split, 0) for c in facts.counts.values()):,}" for split in facts.splits]
    lines.append("| **total** | " + " | ".join(totals) + f" | {total:,} |")
    lines += [
        "",
        f"Splits are drawn per species by a hash of (seed, species, {facts.settings['group_by']}),"
        f" so no {facts.settings['group_by']} of a species appears in two splits (no leakage)"
        " and a larger export of the same data never moves a photo.",
    ]
    if facts.duplicates or facts.conflicts or facts.converted:
        lines += [
            "",
            f"{facts.duplicates:,} duplicate photos (same bytes) were exported once; "
            f"{facts.conflicts:,} of them carried another species (see `duplicates.csv`). "
            f"{facts.converted:,} GIF photos were converted to PNG.",
        ]
    lines += [
        "",
        "## Licenses",
        "",
        "| license | photos | what it allows |",
        "|---|---:|---|",
    ]
    for info in infos:
        number = sum(n for code, n in facts.licenses.items() if license_info(code) == info)
        name = f"[{info.name}]({info.url})" if info.url else info.name
        lines.append(f"| {name} | {number:,} | {info.allows} |")
    lines += [
        "",
        "Non-commercial (NC) photos may not be used for commercial purposes, which may "
        "include training a commercial model; no-derivatives (ND) and share-alike (SA) terms "
        "bind what you publish from them. Credit each photo as `ATTRIBUTION.csv` says.",
        "",
        "## How it was built",
        "",
        f"- API: {facts.api_url or 'unknown'}",
    ]
    for key, value in sorted((facts.query or {}).items()):
        lines.append(f"- {key}: {value}")
    lines.append("- species: " + "; ".join(_species_text(s) for s in facts.species))
    for key, value in facts.settings.items():
        lines.append(f"- export {key}: {value}")
    lines += [
        "",
        "## Citation",
        "",
        "Cite iNaturalist as: iNaturalist. Available from https://www.inaturalist.org. "
        f"Accessed {facts.updated}. Credit every photo's author as `ATTRIBUTION.csv` lists.",
        "",
    ]
    return "\n".join(lines)


def _species_text(species: tuple[str, int | None, str]) -> str:
    asked, taxon_id, accepted = species
    text = f"{accepted} (taxon {taxon_id})"
    return text if asked.casefold() == accepted.casefold() else f"{asked} → {text}"


def _yaml_text(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def license_counts(codes: Iterable[tuple[str | None, int]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for code, number in codes:
        key = code or "none"
        counts[key] = counts.get(key, 0) + number
    return counts
