"""``inat-async export`` and ``inat-async verify``: parse, call the library, render.

Registered on the main typer app when :mod:`inat_async.cli` is imported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ..errors import InatError, UsageError
from ..export import DEFAULT_SHARD_SIZE, ExportOptions, ExportResult, export_dataset
from ..options import format_byte_size
from ..settings import DEFAULT_OUT_DIR
from ..splits import DEFAULT_SPLIT
from ..verify import FileProblem, verify_dataset
from ..writers.exportstate import ExportState
from ..writers.img2dataset import BUCKET_URL, REFUSED_REASON, check_bucket_url, write_img2dataset
from ..writers.img2dataset import FILE as IMG2DATASET_FILE
from .app import EXIT_FAILED, EXIT_OK, EXIT_USAGE, _fail, app
from .params import out_option
from .views import count, human_bytes

EXPORT_EPILOG = """\
[bold]Examples[/]

  inat-async export ds                         [dim]# imagefolder, 80/10/10 by observer[/]
  inat-async export ds --format imagefolder,webdataset,parquet --seed 7
  inat-async export ds --license cc-by,cc-by-sa,cc0   [dim]# only commercially usable photos[/]
  inat-async verify ds

Then: datasets.load_dataset("imagefolder", data_dir="ds") or torchvision \
ImageFolder("ds/train"). Rerun the same export after a bigger run: new photos are \
added, nothing already exported moves or changes.
"""


@app.command(epilog=EXPORT_EPILOG)
def export(
    dest: Annotated[
        Path,
        typer.Argument(
            help="Folder to write the dataset to (new or empty, "
            "or an earlier export of the same dataset)."
        ),
    ],
    out: Annotated[Path, out_option("The output folder of the run to export.")] = DEFAULT_OUT_DIR,
    format: Annotated[
        str,
        typer.Option(
            "--format",
            help="Comma list of imagefolder (DEST/<split>/<species>/), webdataset (tar "
            "shards), parquet (DEST/metadata.parquet, needs the parquet extra).",
        ),
    ] = "imagefolder",
    split: Annotated[
        str,
        typer.Option("--split", help="Split names and ratios adding up to 1."),
    ] = DEFAULT_SPLIT,
    group_by: Annotated[
        str,
        typer.Option(
            "--group-by",
            help="What never straddles two splits of a species: observer (iNaturalist's own "
            "rule) or observation.",
        ),
    ] = "observer",
    seed: Annotated[int, typer.Option("--seed", help="Seed of the split hash.")] = 0,
    license: Annotated[
        str,
        typer.Option(
            "--license",
            help="Keep only photos under these licenses (same words as run -l), or any.",
        ),
    ] = "any",
    link: Annotated[
        str,
        typer.Option(
            "--link",
            help="How photos get into DEST: auto (hard link, else copy), hardlink, symlink, copy.",
        ),
    ] = "auto",
    shard_size: Annotated[
        str, typer.Option("--shard-size", help="WebDataset shard size, e.g. 1GB or 500MB.")
    ] = format_byte_size(DEFAULT_SHARD_SIZE),
    open_data_url: Annotated[
        str,
        typer.Option(
            "--open-data-url",
            help="With --format img2dataset: the Open Data bucket; only its URLs are listed.",
        ),
    ] = BUCKET_URL,
) -> None:
    """Turn the photos of a run into a dataset to train on, share and credit (offline).

    Writes DEST/<split>/<species>/<photo id>.<ext>, a metadata.csv per split with license
    and attribution columns, ATTRIBUTION.csv, a dataset card (README.md), manifest.json.

    No observer (or observation) of a species is in two splits.
    """
    console = Console(highlight=False)
    formats = [f.strip().lower() for f in format.split(",") if f.strip()]
    manifest = IMG2DATASET in formats
    formats = [f for f in formats if f != IMG2DATASET]
    try:
        if manifest and not formats:
            options = ExportOptions.create(
                split=split, group_by=group_by, seed=seed, license=license, link=link
            )
            _check_manifest_dest(dest, out)
            _write_manifest(console, dest, out, options, open_data_url)
            raise typer.Exit(EXIT_OK)
        options = ExportOptions.create(
            formats=formats,
            split=split,
            group_by=group_by,
            seed=seed,
            license=license,
            link=link,
            shard_size=shard_size,
        )
        with console.status("Exporting…") as spinner:
            result = export_dataset(
                dest,
                out_dir=out,
                options=options,
                on_progress=lambda n: spinner.update(f"Exporting… {count(n)} photos looked at"),
            )
    except UsageError as exc:
        raise _fail(exc, EXIT_USAGE) from None
    except InatError as exc:
        raise _fail(exc, EXIT_FAILED) from None
    render_export(console, result)
    if manifest:
        try:
            _write_manifest(console, dest, out, options, open_data_url)
        except InatError as exc:
            raise _fail(exc, EXIT_FAILED) from None
    raise typer.Exit(EXIT_OK)


IMG2DATASET = "img2dataset"


def _check_manifest_dest(dest: Path, out: Path) -> None:
    """A manifest alone: DEST outside the dataset, new, empty, or an earlier export."""
    if not (out / ".inat-async").is_dir():
        raise UsageError(f"no inat-async dataset in {out}: run `inat-async run` first")
    real_dest, real_out = dest.resolve(), out.resolve()
    if real_dest == real_out or real_dest.is_relative_to(real_out):
        raise UsageError(f"{dest} is inside the dataset folder {out}: export to another folder")
    if dest.exists() and not dest.is_dir():
        raise UsageError(f"{dest} is not a folder")
    if dest.is_dir():
        others = [p.name for p in dest.iterdir() if p.name != IMG2DATASET_FILE]
        if others and not ExportState.path_in(dest).is_file():
            raise UsageError(
                f"{dest} is not empty and holds no earlier export: choose a new or empty folder"
            )


def _write_manifest(
    console: Console, dest: Path, out: Path, options: ExportOptions, bucket_url: str
) -> None:
    result = write_img2dataset(
        out,
        dest,
        splits=options.splits,
        group_by=options.group_by,
        seed=options.seed,
        licenses=options.licenses,
        bucket_url=check_bucket_url(bucket_url),
    )
    by_split = ", ".join(f"{split} {count(n)}" for split, n in sorted(result.splits.items()))
    console.print(
        f"{count(result.rows)} photo URLs in {result.path} ({by_split or 'none'}): "
        "hand it to img2dataset (see the README for the command lines).",
        markup=False,
    )
    why = {
        "not_in_bucket": f"refused: {REFUSED_REASON}",
        "missing": "no longer in the bucket (recorded missing by the run)",
        "license": "under a license not asked for (--license)",
    }
    for reason, number in sorted(result.skipped.items()):
        err = reason == "not_in_bucket"
        line = f"{count(number)} photos left out: {why.get(reason, reason)}."
        (Console(stderr=True, highlight=False) if err else console).print(line, markup=False)


def render_export(console: Console, result: ExportResult) -> None:
    if result.total == 0:
        console.print(
            f"Nothing to export from {result.out_dir}: no downloaded photos"
            + (" pass --license" if result.skipped.get("license") else "")
            + ". Run `inat-async run` first, or check --out.",
            markup=False,
        )
    table = Table(title=f"Exported to {result.dest}", title_justify="left")
    table.add_column("species")
    for split in result.splits:
        table.add_column(split, justify="right")
    table.add_column("total", justify="right")
    for name in sorted(result.counts):
        by_split = result.counts[name]
        table.add_row(
            name,
            *(count(by_split.get(split, 0)) for split in result.splits),
            count(sum(by_split.values())),
        )
    table.add_row(
        "[bold]total[/]",
        *(count(sum(c.get(s, 0) for c in result.counts.values())) for s in result.splits),
        count(result.total),
    )
    console.print(table)
    placed = ", ".join(f"{count(n)} {how}" for how, n in sorted(result.placed.items()))
    console.print(
        f"{count(result.added)} photos added ({placed or 'none'}), "
        f"{count(result.already)} already exported; "
        f"{count(result.files)} files, {human_bytes(result.bytes)}; formats: "
        f"{', '.join(result.formats)}.",
        markup=False,
    )
    if result.restored:
        console.print(
            f"{count(result.restored)} exported photos were missing from {result.dest} and "
            "were put back from the run folder.",
            markup=False,
        )
    if result.converted:
        console.print(
            f"{count(result.converted)} GIF photos were converted to PNG "
            "(torchvision's ImageFolder does not load .gif).",
            markup=False,
        )
    for reason, number in sorted(result.skipped.items()):
        why = {
            "license": "under a license not asked for (--license)",
            "missing": "missing from the run folder (rerun `inat-async run` to fetch them)",
            "changed": "changed since they were downloaded (see `inat-async verify`)",
            "unreadable": "not readable as images",
        }.get(reason, reason)
        console.print(f"{count(number)} photos left out: {why}.", markup=False)
    if result.duplicates:
        console.print(
            f"{count(result.duplicates)} duplicate photos (same bytes) exported once; "
            f"{count(result.conflicts)} with another species (see duplicates.csv).",
            markup=False,
        )
    for conflict in result.conflict_examples:
        console.print(
            f"conflict: photo {conflict.photo_id} ({conflict.species}) has the bytes of "
            f"photo {conflict.kept_photo_id} ({conflict.kept_species}), exported as "
            f"{conflict.kept_species} only",
            markup=False,
        )
    for thin in result.thin:
        console.print(
            f"too few {result.group_by}s: {thin.species} has {thin.groups}, and no photo "
            f"in {', '.join(thin.empty_splits)}",
            markup=False,
        )
    console.print(
        f"Credits: {result.dest / 'ATTRIBUTION.csv'}; card: {result.dest / 'README.md'}; "
        f"check later with: inat-async verify {result.dest}",
        markup=False,
    )


@app.command()
def verify(
    folder: Annotated[
        Path, typer.Argument(help="An export (with manifest.json) or a run's output folder.")
    ],
) -> None:
    """Re-hash every recorded file; exit 0 when all match, 1 listing missing or changed ones.

    An export is checked against its manifest.json, a run folder against the sha256s its
    resume store took while downloading.
    """
    console = Console(highlight=False)
    err = Console(stderr=True, highlight=False)

    def on_problem(problem: FileProblem) -> None:
        err.print(f"{problem.problem}: {problem.path} ({problem.detail})", markup=False)

    try:
        result = verify_dataset(folder, on_problem=on_problem)
    except UsageError as exc:
        raise _fail(exc, EXIT_USAGE) from None
    except InatError as exc:
        raise _fail(exc, EXIT_FAILED) from None
    what = f"{count(result.checked)} files, {human_bytes(result.bytes)}"
    if result.ok:
        console.print(f"ok: {what} in {folder} match the {result.kind}'s records", markup=False)
        raise typer.Exit(EXIT_OK)
    err.print(
        f"[bold red]error:[/] {count(result.missing)} missing and {count(result.changed)} "
        f"changed of {count(result.checked)} files in {folder}"
    )
    raise typer.Exit(EXIT_FAILED)
