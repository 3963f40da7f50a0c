"""From a downloaded folder to a dataset people load, share and credit: :func:`export_dataset`.

Reads the output folder of ``run`` and its resume store (no network) and writes, into a
folder of its own (``DEST``)::

    DEST/
      train/Apis_mellifera/506314.jpg     imagefolder: <split>/<class>/<photo id>.<ext>
      train/metadata.csv                  one per split: file_name + species, license, ...
      webdataset/train-000000.tar         webdataset: <photo id>.jpg/.json/.cls samples
      metadata.parquet                    parquet: one row per photo
      ATTRIBUTION.csv                     title, author, source, license of every photo
      duplicates.csv                      photos whose bytes equal an exported photo's
      README.md                           the dataset card (Hugging Face YAML header)
      manifest.json                       settings, counts, every file with size + sha256
      .inat-async/export.sqlite3          what was exported where (makes re-exports stable)

Classes are the species' accepted scientific names, folder-safe (``Apis_mellifera``);
a species asked for by a synonym lands under its accepted name. Splits come from
:mod:`inat_async.splits`: no observer (or observation) of a species in two splits,
reproducible for a seed, stable as the dataset grows. A re-export into the same DEST
adds what ``run`` downloaded since and changes nothing already exported.

>>> result = export_dataset("ds", out_dir="results", seed=1)  # doctest: +SKIP
>>> result.total, result.counts["Apis_mellifera"]  # doctest: +SKIP
(1204, {'train': 961, 'val': 130, 'test': 113})
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from ._version import __version__
from .errors import UsageError
from .layout import Layout
from .naming import species_dir_name
from .options import parse_byte_size, parse_license
from .resume import STATE_DIR as RUN_STATE_DIR
from .resume import STATE_FILE as RUN_STATE_FILE
from .resume import ExportRow, ResumeStore
from .splits import (
    DEFAULT_SPLIT,
    GroupBy,
    Split,
    describe_split,
    group_key,
    parse_group_by,
    parse_split,
    split_of,
)
from .writers.credits import (
    ATTRIBUTION_COLUMNS,
    CardFacts,
    attribution_row,
    dataset_card,
    license_counts,
    license_info,
    observation_page,
    photo_page,
)
from .writers.exportstate import STATE_DIR, ExportState
from .writers.files import LINK_MODES, LinkMode, Placer, UnreadableImage, write_csv, write_text
from .writers.manifest import MANIFEST, FileEntry, write_manifest

Format = Literal["imagefolder", "webdataset", "parquet"]
FORMATS: tuple[Format, ...] = ("imagefolder", "webdataset", "parquet")
#: What torchvision's ImageFolder loads (its IMG_EXTENSIONS); anything else is converted
#: to PNG (a GIF's first frame) or left out when Pillow cannot read it.
TORCHVISION_EXTENSIONS = ("jpg", "jpeg", "png", "ppm", "bmp", "pgm", "tif", "tiff", "webp")
DEFAULT_SHARD_SIZE = 1_000_000_000

#: Columns of every split's metadata.csv (and of the Parquet table and WebDataset json).
METADATA_COLUMNS = (
    "file_name",
    "species",
    "taxon_id",
    "photo_id",
    "observation_id",
    "observer_login",
    "observer_id",
    "observer_name",
    "observed_on",
    "latitude",
    "longitude",
    "license",
    "license_url",
    "attribution",
    "split",
    "quality_grade",
    "observed_taxon",
    "width",
    "height",
    "sha256",
    "photo_url",
    "observation_url",
)
DUPLICATE_COLUMNS = (
    "sha256",
    "kept_photo_id",
    "kept_species",
    "photo_id",
    "species",
    "conflict",
)
#: Settings that define an export: a re-export must use the same ones.
_FIXED_SETTINGS = ("split", "group_by", "seed", "license")


@dataclass(frozen=True, slots=True)
class ExportOptions:
    """Validated export settings; build with :meth:`create` from what a user types."""

    formats: tuple[Format, ...] = ("imagefolder",)
    splits: tuple[Split, ...] = field(default_factory=lambda: parse_split(DEFAULT_SPLIT))
    group_by: GroupBy = "observer"
    seed: int = 0
    licenses: tuple[str, ...] | None = None
    link: LinkMode = "auto"
    shard_size: int = DEFAULT_SHARD_SIZE

    @classmethod
    def create(
        cls,
        *,
        formats: str | Sequence[str] = "imagefolder",
        split: str = DEFAULT_SPLIT,
        group_by: str = "observer",
        seed: int = 0,
        license: str | Sequence[str] = "any",
        link: str = "auto",
        shard_size: int | str = DEFAULT_SHARD_SIZE,
    ) -> ExportOptions:
        items = formats.split(",") if isinstance(formats, str) else list(formats)
        chosen: list[Format] = []
        for item in (i.strip().lower() for i in items if i.strip()):
            match = next((f for f in FORMATS if f == item), None)
            if match is None:
                raise UsageError(f"unknown format {item!r}; use {', '.join(FORMATS)}")
            if match not in chosen:
                chosen.append(match)
        if not chosen:
            raise UsageError(f"no format given; use {', '.join(FORMATS)}")
        mode = next((m for m in LINK_MODES if m == link.strip().lower()), None)
        if mode is None:
            raise UsageError(
                f"unknown link {link!r}; use {', '.join(LINK_MODES)}", options=("link",)
            )
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise UsageError(f"the seed must be an integer, got {seed!r}")
        return cls(
            formats=tuple(f for f in FORMATS if f in chosen),
            splits=parse_split(split),
            group_by=parse_group_by(group_by),
            seed=seed,
            licenses=parse_license(license),
            link=mode,
            shard_size=parse_byte_size(shard_size, option="shard_size"),
        )

    def fixed(self) -> dict[str, Any]:
        """The settings a re-export must share, as the manifest records them."""
        return {
            "split": describe_split(self.splits),
            "group_by": self.group_by,
            "seed": self.seed,
            "license": ",".join(self.licenses) if self.licenses else "any",
        }

    def accepts(self, license_code: str | None) -> bool:
        return self.licenses is None or license_code in self.licenses


@dataclass(frozen=True, slots=True)
class Conflict:
    """Two photos with the same bytes under different species: only the first is exported."""

    sha256: str
    kept_photo_id: int
    kept_species: str
    photo_id: int
    species: str


@dataclass(frozen=True, slots=True)
class ThinSpecies:
    """A species with too few groups (observers or observations) to fill every split."""

    species: str
    groups: int
    empty_splits: tuple[str, ...]


@dataclass(slots=True)
class ExportResult:
    dest: Path
    out_dir: Path
    formats: tuple[str, ...]
    splits: tuple[str, ...]
    group_by: str = "observer"
    #: Photos per class (folder name) and split, everything in the export.
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    #: Photos exported by this call; the rest were exported before.
    added: int = 0
    already: int = 0
    #: Exported photo files found deleted from DEST and put back from the run folder.
    restored: int = 0
    #: Photos whose bytes equal an exported photo's, and of those, the conflicts.
    duplicates: int = 0
    conflicts: int = 0
    #: Up to 20 conflicts found by this call (all of them are in duplicates.csv).
    conflict_examples: list[Conflict] = field(default_factory=list)
    #: GIF (and other) photos converted to PNG, in the whole export.
    converted: int = 0
    #: Photos left out, by reason: license, missing, changed, unreadable.
    skipped: dict[str, int] = field(default_factory=dict)
    thin: list[ThinSpecies] = field(default_factory=list)
    #: How this call placed files: hard-linked, copied, symlinked, converted.
    placed: dict[str, int] = field(default_factory=dict)
    shards_written: int = 0
    files: int = 0
    bytes: int = 0

    @property
    def total(self) -> int:
        return sum(sum(by_split.values()) for by_split in self.counts.values())


def export_dataset(
    dest: str | os.PathLike[str],
    *,
    out_dir: str | os.PathLike[str] = "results",
    options: ExportOptions | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> ExportResult:
    """Export the dataset in ``out_dir`` into ``dest``; see the module docstring.

    Raises :class:`UsageError` for a DEST inside ``out_dir``, or holding anything but an
    earlier export of the same dataset with the same settings. ``on_progress`` gets the
    number of photos looked at so far, every thousand.
    """
    options = options or ExportOptions()
    dest_path, out_path = Path(dest), Path(out_dir)
    if not (out_path / RUN_STATE_DIR / RUN_STATE_FILE).is_file():
        raise UsageError(f"no inat-async dataset in {out_path}: run `inat-async run` first")
    _check_dest(dest_path, out_path)
    if "parquet" in options.formats:
        from .writers.parquet import require_pyarrow

        require_pyarrow()
    with ResumeStore.open(out_path, create=False) as store:
        dataset_id = store.dataset_id()
        with ExportState.open(dest_path) as state:
            _check_settings(state, dataset_id, options, dest_path)
            run = _Export(store, state, options, dest_path, out_path, on_progress)
            return run.run()


def _check_dest(dest: Path, out: Path) -> None:
    real_dest, real_out = dest.resolve(), out.resolve()
    if real_dest == real_out or real_dest.is_relative_to(real_out):
        raise UsageError(f"{dest} is inside the dataset folder {out}: export to another folder")
    if real_out.is_relative_to(real_dest):
        raise UsageError(f"{dest} holds the dataset folder {out}: export to another folder")
    if dest.exists() and not dest.is_dir():
        raise UsageError(f"{dest} is not a folder")
    if dest.is_dir() and not ExportState.path_in(dest).is_file() and any(dest.iterdir()):
        raise UsageError(
            f"{dest} is not empty and holds no earlier export: choose a new or empty folder"
        )


def _check_settings(
    state: ExportState, dataset_id: str, options: ExportOptions, dest: Path
) -> None:
    stored_id = state.get_meta("dataset_id")
    if stored_id is None:
        state.set_meta("dataset_id", dataset_id)
        state.set_meta("settings", options.fixed())
        state.set_meta("formats", list(options.formats))
        state.set_meta("created", _now())
        state.commit()
        return
    if stored_id != dataset_id:
        raise UsageError(f"{dest} holds an export of another dataset: choose another folder")
    stored: dict[str, Any] = state.get_meta("settings") or {}
    wanted = options.fixed()
    differences = [
        f"{key} {stored.get(key)!r} before, {wanted[key]!r} now"
        for key in _FIXED_SETTINGS
        if stored.get(key) != wanted[key]
    ]
    if differences:
        raise UsageError(
            f"{dest} was exported with other settings ({'; '.join(differences)}): "
            "use the same ones to update it, or export into a new folder"
        )
    formats: list[str] = state.get_meta("formats") or []
    if "imagefolder" in options.formats and "imagefolder" not in formats:
        raise UsageError(
            f"{dest} was exported without imagefolder, which cannot be added later: "
            "export into a new folder"
        )
    state.set_meta("formats", [f for f in FORMATS if f in formats or f in options.formats])
    state.commit()


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Export:
    def __init__(
        self,
        store: ResumeStore,
        state: ExportState,
        options: ExportOptions,
        dest: Path,
        out: Path,
        on_progress: Callable[[int], None] | None,
    ) -> None:
        self.store, self.state, self.options = store, state, options
        self.dest, self.out = dest, out
        self.layout = Layout(out)
        self.placer = Placer(options.link)
        self.on_progress = on_progress
        self.formats: tuple[str, ...] = tuple(state.get_meta("formats") or options.formats)
        self.result = ExportResult(
            dest=dest,
            out_dir=out,
            formats=self.formats,
            splits=tuple(s.name for s in options.splits),
            group_by=options.group_by,
        )
        self._images: dict[str, Path] = {}
        #: Class folder names by taxon id (a handful; fixed once chosen).
        self._classes: dict[int, str] = {}

    def run(self) -> ExportResult:
        # Class indexes (WebDataset .cls, Parquet class_index) in name order, as
        # torchvision's ImageFolder numbers classes; species resolved later (a grown
        # species list) are numbered after them, so an index never changes.
        taxa = {s.taxon.id: s.taxon.name for s in self.store.all_species() if s.taxon}
        for taxon_id, name in sorted(taxa.items(), key=lambda t: species_dir_name(t[1])):
            self.state.class_index(taxon_id, species_dir_name(name))
        for seen, row in enumerate(self.store.iter_export_rows(), start=1):
            self._take(row)
            self.state.maybe_commit()
            if self.on_progress is not None and seen % 1000 == 0:
                self.on_progress(seen)
        self.state.commit()
        self.result.placed = dict(self.placer.used)
        self._write_outputs()
        return self.result

    # -- one photo --------------------------------------------------------------------------

    def _skip(self, reason: str) -> None:
        self.result.skipped[reason] = self.result.skipped.get(reason, 0) + 1

    def _take(self, item: ExportRow) -> None:
        photo, state, result = item.photo, self.state, self.result
        if not self.options.accepts(photo.license):
            self._skip("license")
            return
        if state.has_photo(photo.photo_id, item.taxon_id):
            result.already += 1
            self._restore(item)
            return
        class_name = self._classes.get(item.taxon_id)
        if class_name is None:
            class_name, _ = state.class_index(item.taxon_id, species_dir_name(item.taxon_name))
            self._classes[item.taxon_id] = class_name
        row = self._row(item)
        assert photo.sha256 is not None and photo.bytes is not None and photo.file_name
        prior = state.same_bytes(photo.sha256) or state.same_photo(photo.photo_id)
        if prior is not None:
            conflict = prior.taxon_id != item.taxon_id
            kept_species = self._species_of(prior.taxon_id)
            state.add_duplicate(
                photo_id=photo.photo_id,
                taxon_id=item.taxon_id,
                sha256=photo.sha256,
                kept_photo_id=prior.photo_id,
                conflict=conflict,
                row={**row, "kept_species": kept_species},
            )
            if conflict and len(result.conflict_examples) < 20:
                result.conflict_examples.append(
                    Conflict(
                        photo.sha256, prior.photo_id, kept_species, photo.photo_id, item.taxon_name
                    )
                )
            return
        source = self._source(item)
        try:
            size = source.stat().st_size
        except FileNotFoundError:
            self._skip("missing")
            return
        if size != photo.bytes:
            self._skip("changed")
            return
        ext = source.suffix.lstrip(".").lower()
        convert = ext not in TORCHVISION_EXTENSIONS
        out_ext = "png" if convert else ext
        split = self._split(item)
        relative = f"{class_name}/{photo.photo_id}.{out_ext}"
        path = f"{split}/{relative}" if "imagefolder" in self.formats else None
        if path is not None:
            try:
                file_size, file_sha = self.placer.place(
                    source,
                    self.dest / path,
                    convert=convert,
                    known=(photo.bytes, photo.sha256),
                )
            except UnreadableImage:
                self._skip("unreadable")
                return
            state.add_file(FileEntry(path, file_size, file_sha))
        row.update(file_name=relative, split=split)
        state.add_photo(
            photo_id=photo.photo_id,
            sha256=photo.sha256,
            taxon_id=item.taxon_id,
            split=split,
            ext=ext,
            source=str(source),
            convert=convert,
            path=path,
            license=photo.license,
            row=row,
        )
        result.added += 1

    def _restore(self, item: ExportRow) -> None:
        """Put back an exported photo file someone deleted from DEST, from the run folder."""
        placed = self.state.placed(item.photo.photo_id)
        if placed is None:
            return
        path, convert = placed
        target = self.dest / path
        if os.path.lexists(target):
            return
        source = self._source(item)
        photo = item.photo
        assert photo.sha256 is not None and photo.bytes is not None
        try:
            if source.stat().st_size != photo.bytes:
                return
            size, digest = self.placer.place(
                source, target, convert=convert, known=(photo.bytes, photo.sha256)
            )
        except (FileNotFoundError, UnreadableImage):
            return
        self.state.add_file(FileEntry(path, size, digest))
        self.result.restored += 1

    def _source(self, item: ExportRow) -> Path:
        images = self._images.get(item.species)
        if images is None:
            images = self._images[item.species] = self.layout.images_dir(item.species)
        assert item.photo.file_name is not None
        return images / item.photo.file_name

    def _species_of(self, taxon_id: int) -> str:
        for tid, name, _ in self.state.classes():
            if tid == taxon_id:
                return name.replace("_", " ")
        return str(taxon_id)

    def _split(self, item: ExportRow) -> str:
        photo, options = item.photo, self.options
        key = group_key(
            options.group_by,
            observation_id=photo.observation_id,
            observer_id=photo.observer_id,
            login=photo.login,
        )
        keys: tuple[str, ...] = (key,)
        if key.startswith("observer:") and photo.login:
            # Photos stored before observer ids were kept are grouped by login: one
            # observer keeps one split whichever of the two keys a photo carries.
            keys = (key, f"login:{photo.login}")
        split, known = self.state.group_split(item.taxon_id, keys)
        if split is None:
            split = split_of(
                options.splits, seed=options.seed, species=str(item.taxon_id), group=key
            )
        if known < len(keys):
            for position, k in enumerate(keys):
                self.state.set_group_split(item.taxon_id, k, split, alias=position > 0)
        return split

    def _row(self, item: ExportRow) -> dict[str, Any]:
        photo, observation = item.photo, item.observation
        info = license_info(photo.license)
        return {
            "file_name": None,
            "species": item.taxon_name,
            "taxon_id": item.taxon_id,
            "photo_id": photo.photo_id,
            "observation_id": photo.observation_id,
            "observer_login": photo.login,
            "observer_id": photo.observer_id,
            "observer_name": observation.get("observer_name"),
            "observed_on": observation.get("observation_date"),
            "latitude": observation.get("observation_latitude"),
            "longitude": observation.get("observation_longitude"),
            "license": info.code,
            "license_url": info.url,
            "attribution": photo.attribution,
            "split": None,
            "quality_grade": observation.get("observation_quality"),
            "observed_taxon": observation.get("taxon_name"),
            "width": photo.stored_width,
            "height": photo.stored_height,
            "sha256": photo.sha256,
            "photo_url": photo_page(photo.photo_id),
            "observation_url": observation_page(photo.observation_id),
        }

    # -- derived files ----------------------------------------------------------------------

    def _write_outputs(self) -> None:
        state, dest, result, options = self.state, self.dest, self.result, self.options
        classes = state.classes()
        names = {taxon_id: name for taxon_id, name, _ in classes}
        index = {taxon_id: idx for taxon_id, _, idx in classes}
        split_names = [s.name for s in options.splits]
        if "imagefolder" in self.formats:
            for split in split_names:
                if not (dest / split).is_dir():
                    continue  # no photo in this split: no folder, no metadata file
                state.add_file(
                    write_csv(
                        dest / split / "metadata.csv",
                        f"{split}/metadata.csv",
                        METADATA_COLUMNS,
                        (row for _, row in state.rows(split)),
                    )
                )
        state.add_file(
            write_csv(
                dest / "ATTRIBUTION.csv",
                "ATTRIBUTION.csv",
                ("split", *ATTRIBUTION_COLUMNS),
                (
                    {"split": row["split"], **attribution_row(row, path or "")}
                    for path, row in state.rows()
                ),
            )
        )
        state.add_file(
            write_csv(
                dest / "duplicates.csv",
                "duplicates.csv",
                DUPLICATE_COLUMNS,
                (
                    {
                        "sha256": sha,
                        "kept_photo_id": kept,
                        "kept_species": row.get("kept_species"),
                        "photo_id": photo_id,
                        "species": row.get("species"),
                        "conflict": conflict,
                    }
                    for photo_id, _, sha, kept, conflict, row in state.duplicates()
                ),
            )
        )
        if "webdataset" in self.formats:
            from .writers.webdataset import write_shards

            result.shards_written = write_shards(
                state, dest, shard_size=options.shard_size, class_index=index
            )
        if "parquet" in self.formats:
            from .writers.parquet import write_parquet

            state.add_file(write_parquet(state, dest, METADATA_COLUMNS, index))
        counts = state.counts()
        result.counts = {names[taxon_id]: by_split for taxon_id, by_split in counts.items()}
        result.duplicates, result.conflicts = state.duplicate_counts()
        result.converted = state.converted()
        groups = state.groups_per_class()
        wanted = [s.name for s in options.splits if s.ratio > 0]
        for taxon_id, by_split in sorted(counts.items(), key=lambda kv: names[kv[0]]):
            empty = tuple(s for s in wanted if not by_split.get(s))
            if empty:
                result.thin.append(ThinSpecies(names[taxon_id], groups.get(taxon_id, 0), empty))
        now = _now()
        species = [
            (s.name, s.taxon.id if s.taxon else None, s.taxon.name if s.taxon else s.name)
            for s in self.store.all_species()
        ]
        settings = {**options.fixed(), "formats": ",".join(self.formats)}
        card = dataset_card(
            CardFacts(
                title=_title([name for _, _, name in species]),
                tool_version=__version__,
                api_url=self.store.api_url(),
                query=self.store.query(),
                species=species,
                settings=settings,
                splits=split_names,
                counts=result.counts,
                licenses=license_counts(state.license_counts()),
                formats=self.formats,
                duplicates=result.duplicates,
                conflicts=result.conflicts,
                converted=result.converted,
                updated=now[:10],
            )
        )
        state.add_file(write_text(dest / "README.md", "README.md", card))
        state.commit()
        result.files, result.bytes = state.file_totals()
        header = {
            "format": "inat-async export",
            "manifest_version": 1,
            "tool": "inat-async",
            "tool_version": __version__,
            "dataset_id": state.get_meta("dataset_id"),
            "source": str(self.out.resolve()),
            "api_url": self.store.api_url(),
            "query": self.store.query(),
            "species": [
                {"name": name, "taxon_id": taxon_id, "accepted_name": accepted}
                for name, taxon_id, accepted in species
            ],
            "settings": {**settings, "split_ratios": {s.name: s.ratio for s in options.splits}},
            "classes": [name for _, name, _ in classes],
            "counts": result.counts,
            "photos": result.total,
            "duplicates": result.duplicates,
            "conflicts": result.conflicts,
            "converted_to_png": result.converted,
            "created": state.get_meta("created"),
            "updated": now,
        }
        write_manifest(dest / MANIFEST, header, state.files())


def _title(names: list[str]) -> str:
    if not names:
        return "iNaturalist photos"
    shown = ", ".join(names[:3])
    more = f" and {len(names) - 3} more" if len(names) > 3 else ""
    return f"iNaturalist photos: {shown}{more}"


__all__ = [
    "FORMATS",
    "METADATA_COLUMNS",
    "STATE_DIR",
    "Conflict",
    "ExportOptions",
    "ExportResult",
    "ThinSpecies",
    "export_dataset",
]
