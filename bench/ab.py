"""A/B runs of code variants: SQLite against memory, one point of the matrix, variants alternating.

    python bench/ab.py now=src before=/tmp/old/src                  # wsproto, 100 connections in rooms of 10
    python bench/ab.py --server trio-websocket --room-size 100 --rounds 8 now=src before=/tmp/old/src

Each ``NAME=DIR`` is a copy of ``src/`` (for instance from ``git worktree add``);
its servers run with that folder first on PYTHONPATH. A round runs every
variant once, in turn, and each variant's run is one `run.py` repetition: the
in-memory server, then the ``-db`` server, back to back. Their ratio is
compared within the pair, so drift on a shared machine cancels out, and the
table shows every round's ratio with the median.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent


def variant(text: str) -> tuple[str, Path]:
    """``NAME=DIR``, DIR holding the ``chatcore`` and ``transports`` packages."""
    name, _, folder = text.partition("=")
    path = Path(folder).resolve()
    if not name or not (path / "transports").is_dir():
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=DIR, DIR holding transports/ and chatcore/")
    return name, path


def one_pair(source: Path, server: str, connections: int, room_size: int, duration: float) -> float:
    """Deliveries/s of ``server-db`` over ``server``, measured back to back with ``source`` on PYTHONPATH."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "runs.json"
        command = [sys.executable, str(BENCH / "run.py"), "--servers", f"{server},{server}-db",
                   "--connections", str(connections), "--room-sizes", str(room_size), "--repeat", "1",
                   "--duration", str(duration), "--json", str(out)]
        env = dict(os.environ, PYTHONPATH=str(source))
        subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        rate = {run["server"]: run["deliveries_per_sec"] for run in json.loads(out.read_text())["runs"]}
    return float(rate[f"{server}-db"] / rate[server])


def main(argv: list[str] | None = None) -> int:
    """Run the rounds and print one row per variant."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("variants", type=variant, nargs="+", metavar="NAME=DIR")
    add("--server", choices=["trio-websocket", "wsproto"], default="wsproto")
    add("--connections", type=int, default=100)
    add("--room-size", type=int, default=10)
    add("--rounds", type=int, default=6)
    add("--duration", type=float, default=8.0, help="seconds of load per run")
    args = parser.parse_args(argv)
    ratios: dict[str, list[float]] = {name: [] for name, _ in args.variants}
    for round_number in range(1, args.rounds + 1):
        for name, source in args.variants:
            try:
                ratios[name].append(one_pair(source, args.server, args.connections, args.room_size, args.duration))
            except subprocess.CalledProcessError as error:
                print(f"round {round_number}, {name}: run.py failed with status {error.returncode}; "
                      f"run it by hand with PYTHONPATH={source} to see why", file=sys.stderr)
                return 1
            print(f"round {round_number}, {name}: {ratios[name][-1]:.2f}", file=sys.stderr, flush=True)
    print(f"\n{args.server}, {args.connections} connections in rooms of {args.room_size}: "
          f"deliveries/s with SQLite / in memory, {args.rounds} rounds\n")
    print("| variant | median | every round |\n|---|---:|---|")
    for name, values in ratios.items():
        print(f"| {name} | {statistics.median(values):.2f} | {' '.join(f'{v:.2f}' for v in values)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
