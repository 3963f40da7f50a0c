"""Time and peak memory of ``export`` and ``verify`` over a generated store (issue 11).

Run from the repository root (about 3 minutes for 100,000 photos)::

    python benchmarks/export_memory.py                 # 10,000 then 100,000 photos
    python benchmarks/export_memory.py --photos 20000  # one size

For each size a run folder is generated without a server
(:func:`inat_async.testing.stores.generate_run_folder`: tiny photo files, three species,
500 observers, a few duplicates), then each step runs in a fresh child process so that
``ru_maxrss`` is that step's peak RSS alone: the export (imagefolder with hard links,
plus webdataset and parquet), a re-export that finds nothing new, and ``verify`` of
the export. Flat memory means the peak barely moves from 10,000 to 100,000 photos
(most of the export's peak is pyarrow, imported for the parquet format).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def child(step: str, out: str, dest: str, formats: str) -> None:
    from inat_async.export import ExportOptions, export_dataset
    from inat_async.verify import verify_dataset

    started = time.perf_counter()
    if step == "verify":
        result = verify_dataset(dest)
        assert result.ok, result
        what = {"files": result.checked}
    else:
        exported = export_dataset(dest, out_dir=out, options=ExportOptions.create(formats=formats))
        what = {"added": exported.added, "already": exported.already, "files": exported.files}
    seconds = time.perf_counter() - started
    peak_mib = _peak_rss_kib() / 1024
    print(json.dumps({"seconds": round(seconds, 2), "peak_rss_mib": round(peak_mib, 1), **what}))


def _peak_rss_kib() -> float:
    """This process's own peak RSS. ``ru_maxrss`` is not it on Linux: it keeps the peak of
    the process before ``exec``, i.e. of the forking parent (here, the one that generated
    the store), so it grows with the store's size. ``VmHWM`` starts afresh at ``exec``."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return float(line.split()[1])
    except OSError:
        pass
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def measure(photos: int, formats: str) -> None:
    from inat_async.testing.stores import generate_run_folder

    root = Path(tempfile.mkdtemp(prefix="inat-export-bench-"))
    try:
        started = time.perf_counter()
        generate_run_folder(
            root / "out", photos=photos, observers=500, seed=1, duplicates=photos // 1000
        )
        print(f"{photos:,} photos: store generated in {time.perf_counter() - started:.1f} s")
        for step in ("export", "re-export", "verify"):
            done = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    step,
                    str(root / "out"),
                    str(root / "ds"),
                    formats,
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            print(f"  {step:10} {done.stdout.strip()}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, action="append")
    parser.add_argument("--formats", default="imagefolder,webdataset,parquet")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    for photos in args.photos or [10_000, 100_000]:
        measure(photos, args.formats)


if __name__ == "__main__":
    main()
