"""``python -m inat_async.testing``: serve the fake iNaturalist until killed.

The first stdout line is the API URL (``http://127.0.0.1:PORT/v1``), the second a JSON
summary (base URL, seed, species with their taxon ids and observation counts), so a test
or a script can start it with ``--port 0`` and read where it listens::

    python -m inat_async.testing --port 0 --species "Apis mellifera=50" --fault 503=0.1
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Sequence

from .data import DatasetOptions, build_dataset
from .faults import FaultKind, Faults
from .server import FakeInatServer


def _species(value: str) -> tuple[str, int]:
    name, _, count = value.rpartition("=")
    if not name or not count.strip().isdigit():
        raise argparse.ArgumentTypeError(f"expected NAME=COUNT, got {value!r}")
    return name.strip(), int(count)


def _fault(value: str) -> tuple[FaultKind, str, float]:
    spec, _, probability = value.partition("=")
    kind, _, target = spec.partition(":")
    try:
        if target not in ("", "api", "photo", "any"):
            raise ValueError(target)
        return FaultKind(kind), target or "photo", float(probability)
    except ValueError as error:
        kinds = ", ".join(k.value for k in FaultKind)
        raise argparse.ArgumentTypeError(
            f"expected KIND[:api|photo|any]=PROBABILITY with KIND in {kinds}; got {value!r}"
        ) from error


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m inat_async.testing",
        description="Serve a fake iNaturalist API and photo hosts on loopback.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--species",
        type=_species,
        action="append",
        metavar="NAME=COUNT",
        help="repeatable; default: the demo species (Apis mellifera, Mantis religiosa, ...)",
    )
    parser.add_argument("--hostile-users", action="store_true", help="add path/CSV-hostile logins")
    parser.add_argument("--api-latency", type=float, default=0.0, metavar="SECONDS")
    parser.add_argument(
        "--heavy-pages",
        action="store_true",
        help="observations as heavy as real ones (identifications, ancestries: ~35 KB each)",
    )
    parser.add_argument("--photo-latency", type=float, default=0.0, metavar="SECONDS")
    parser.add_argument("--bandwidth", type=int, default=None, metavar="BYTES_PER_S")
    parser.add_argument("--photo-bytes-scale", type=float, default=1.0, metavar="FACTOR")
    parser.add_argument("--throttle-per-minute", type=int, default=None, metavar="N")
    parser.add_argument(
        "--fault",
        type=_fault,
        action="append",
        default=[],
        metavar="KIND[:TARGET]=P",
        help="random fault, repeatable, e.g. 503=0.1 or 429:api=0.05 (target defaults to photo)",
    )
    parser.add_argument("--fault-seed", type=int, default=0)
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    counts = dict(args.species) if args.species else None
    dataset = build_dataset(
        counts, seed=args.seed, options=DatasetOptions(hostile_users=args.hostile_users)
    )
    faults = Faults()
    for kind, target, probability in args.fault:
        faults.randomly(kind, probability, target=target, seed=args.fault_seed)
    server = FakeInatServer(
        dataset,
        host=args.host,
        port=args.port,
        faults=faults,
        api_latency=args.api_latency,
        photo_latency=args.photo_latency,
        photo_bandwidth=args.bandwidth,
        throttle_per_minute=args.throttle_per_minute,
        photo_bytes_scale=args.photo_bytes_scale,
        heavy_pages=args.heavy_pages,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # Windows: Ctrl-C still raises
            loop.add_signal_handler(signum, stop.set)
    async with server:
        summary = {"base_url": server.base_url, "seed": args.seed, "species": dataset.describe()}
        print(server.api_url, flush=True)
        print(json.dumps(summary, ensure_ascii=False), flush=True)
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
