"""Time and peak memory of one Open Data selection over generated tables of millions of rows.

    python benchmarks/opendata_select.py --observations 3000000 --species 1500 \
        --pick 100 --limit 1000 --dir /tmp/od-bench

Generates the tables once (DuckDB, ``write_synthetic_open_data``), then in a fresh
process selects ``limit`` observations for each of ``pick`` species (one scan of the
tables), pages through the whole selection as a run does, and prints the seconds and
the peak RSS (VmHWM).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def select(folder: Path, pick: int, limit: int, species: int) -> dict[str, float]:
    from inat_async.options import Query
    from inat_async.sources.opendata import OpenDataSource
    from inat_async.species import SpeciesEntry

    started = time.perf_counter()
    source = OpenDataSource.open(folder)
    step = max(1, species // pick)
    entries = [SpeciesEntry(f"Species {i * step}") for i in range(pick)]
    await source.prepare(entries, Query.parse(quality="research"), limit=limit)
    selected = time.perf_counter()
    observations = photos = 0
    for index in range(pick):
        taxon = await source.resolve_taxon(f"Species {index * step}")
        async for page in source.observation_pages(taxon.taxon.id, Query.parse()):
            observations += len(page.observations)
            photos += sum(len(o.photos) for o in page.observations)
    source.close()
    done = time.perf_counter()
    return {
        "select_seconds": round(selected - started, 2),
        "page_seconds": round(done - selected, 2),
        "observations": observations,
        "photos": photos,
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--observations", type=int, default=3_000_000)
    parser.add_argument("--species", type=int, default=1_500)
    parser.add_argument("--pick", type=int, default=100)
    parser.add_argument("--limit", type=int, default=1_000)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/od-bench"))
    parser.add_argument("--child", action="store_true")
    args = parser.parse_args()
    if args.child:
        result = asyncio.run(select(args.dir, args.pick, args.limit, args.species))
        print(json.dumps(result))
        return
    if not (args.dir / "photos.csv.gz").exists():
        from inat_async.testing.opendata import write_synthetic_open_data

        started = time.perf_counter()
        write_synthetic_open_data(args.dir, observations=args.observations, species=args.species)
        print(f"generated in {time.perf_counter() - started:.1f}s", file=sys.stderr)
    for path in sorted(args.dir.glob("*.csv.gz")):
        print(f"{path.name}: {path.stat().st_size / 1e6:.1f} MB", file=sys.stderr)
    command = [sys.executable, __file__, "--child", *sys.argv[1:]]
    print(subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    main()
