"""Writing a species' outputs when it ends: off the event loop, and only when it changed.

A writer (the CSV writer today; formats that follow a download tomorrow) derives files
from the resume store. :func:`write_species` runs the writers of a finished species in a
worker thread with its own SQLite connection, so a species of 150,000 photos never
freezes the downloads of the others; each writer reads one consistent state of the store
and its files are skipped when nothing in the species changed since they were written.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from ..resume import ResumeStore


class SpeciesWriter(Protocol):
    """Derives files of one species from the store."""

    #: Names the writer in the store's freshness marks; change it when its output does.
    name: str

    def outputs(self, species: str) -> tuple[Path, ...]:
        """The files :meth:`write` makes: all must exist for a skip."""
        ...

    def write(self, store: ResumeStore, species: str) -> None:
        """Write the files from ``store`` (called in a worker thread)."""
        ...


async def write_species(
    store_path: Path, species: str, writers: Sequence[SpeciesWriter]
) -> list[str]:
    """Run ``writers`` for ``species`` in a thread; the names of those that wrote."""
    return await asyncio.to_thread(write_species_now, store_path, species, writers)


def write_species_now(
    store_path: Path, species: str, writers: Sequence[SpeciesWriter]
) -> list[str]:
    """:func:`write_species` on the calling thread, with a connection of its own."""
    wrote: list[str] = []
    with ResumeStore.open_path(store_path) as store:
        for writer in writers:
            with store.read_snapshot():
                changes = store.changes(species)
                fresh = store.output_written_at(species, writer.name) == changes and all(
                    path.is_file() for path in writer.outputs(species)
                )
                if not fresh:
                    writer.write(store, species)
            if not fresh:
                store.note_output(species, writer.name, changes)
                wrote.append(writer.name)
    return wrote
