"""A/B runs of code variants at one point of the matrix, variants alternating.

    python bench/ab.py now=src before=/tmp/old/src                  # wsproto, 100 connections in rooms of 10
    python bench/ab.py --server trio-websocket --room-size 100 --rounds 8 now=src before=/tmp/old/src
    python bench/ab.py --measure baseline --connections 1000 now=src before=/tmp/old/src
    python bench/ab.py --room-size 100 --load one now=src before=/tmp/old/src   # one message in flight per room
    python bench/ab.py --measure tls --connections 1000 now=src before=/tmp/old/src

Each ``NAME=DIR`` is a copy of ``src/`` (for instance from ``git worktree add``);
its servers run with that folder first on PYTHONPATH. A round runs every
variant once, in turn (each round starting one variant later, so that none
always runs first or last), and each variant's run is one `run.py` repetition of
two servers back to back, whose ratio is compared within the pair, so drift on
a shared machine cancels out; the table shows every round's ratio and the
median. What the pair is (``--measure``):

- ``db``: the in-memory server, then the ``-db`` server; deliveries/s with SQLite over in memory.
- ``tls``: ours in plain, then ours serving wss:// with its own TLS; TLS's CPU per delivery over plain's.
- ``baseline``: the seed's design (``bench/baseline_server.py``), then ours; our server CPU per
  delivery over the baseline's, the ratio the README's matrix reports (lower is better). ``--store``
  says where ours keeps rooms: memory, a SQLite file, or a redis-server started for the run.

Beside the ratio, the second server's user-space CPU per delivery (its utime over the deliveries, µs): what
our own code costs, apart from the system calls (on loopback a send() also runs the receiving side of TCP).
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

from run import rotations

BENCH = Path(__file__).resolve().parent


def variant(text: str, holding: tuple[str, ...] = ("transports", "chatcore")) -> tuple[str, Path]:
    """``NAME=DIR``, DIR holding the packages ``holding`` names."""
    name, _, folder = text.partition("=")
    path = Path(folder).resolve()
    if not name or not all((path / package).is_dir() for package in holding):
        folders = " and ".join(f"{package}/" for package in holding)
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=DIR, DIR holding {folders}")
    return name, path


STORES = {"memory": "", "sqlite": "-db", "redis": "-redis"}
"""``--store``: the suffix of run.py's server name that keeps rooms there."""


def one_pair(source: Path, measure: str, server: str, connections: int, room_size: int, load: str,
             duration: float, store: str = "memory") -> tuple[float, float]:
    """The pair's ratio (see the module docstring), measured back to back with ``source`` on PYTHONPATH, and the
    second server's user-space CPU per delivery (µs)."""
    if measure == "baseline":
        server += STORES[store]
    servers = {"db": f"{server},{server}-db", "tls": f"{server},{server}-tls"}.get(measure, f"baseline,{server}")
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "runs.json"
        command = [sys.executable, str(BENCH / "run.py"), "--servers", servers,
                   "--connections", str(connections), "--room-sizes", str(room_size), "--loads", load, "--repeat", "1",
                   "--duration", str(duration), "--json", str(out)]
        env = dict(os.environ, PYTHONPATH=str(source))
        subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        runs = {run["server"]: run for run in json.loads(out.read_text())["runs"]}
    if measure == "db":
        second = runs[f"{server}-db"]
        return float(second["deliveries_per_sec"] / runs[server]["deliveries_per_sec"]), float(second["user_us"])
    if measure == "tls":
        second = runs[f"{server}-tls"]
        return float(second["cpu_per_1k"] / runs[server]["cpu_per_1k"]), float(second["user_us"])
    return float(runs[server]["cpu_per_1k"] / runs["baseline"]["cpu_per_1k"]), float(runs[server]["user_us"])


def main(argv: list[str] | None = None) -> int:
    """Run the rounds and print one row per variant."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("variants", type=variant, nargs="+", metavar="NAME=DIR")
    add("--measure", choices=["db", "tls", "baseline"], default="db")
    add("--server", choices=["trio-websocket", "wsproto"], default="wsproto")
    add("--connections", type=int, default=100)
    add("--room-size", type=int, default=10)
    add("--load", choices=["tenth", "one"], default="tenth",
        help="run.py's --loads: a tenth of each room talks, or one message in flight per room")
    add("--store", choices=list(STORES), default="memory",
        help="with --measure baseline: where our server keeps rooms (redis: a redis-server per run)")
    add("--rounds", type=int, default=6)
    add("--duration", type=float, default=8.0, help="seconds of load per run")
    args = parser.parse_args(argv)
    ratios: dict[str, list[float]] = {name: [] for name, _ in args.variants}
    users: dict[str, list[float]] = {name: [] for name, _ in args.variants}
    for repetition, order in rotations(args.variants, args.rounds):  # each variant goes first in turn
        round_number = repetition + 1
        for name, source in order:
            try:
                pair_ratio, user_us = one_pair(source, args.measure, args.server, args.connections, args.room_size,
                                               args.load, args.duration, args.store)
                ratios[name].append(pair_ratio)
                users[name].append(user_us)
            except subprocess.CalledProcessError as error:
                print(f"round {round_number}, {name}: run.py failed with status {error.returncode}; "
                      f"run it by hand with PYTHONPATH={source} to see why", file=sys.stderr)
                return 1
            print(f"round {round_number}, {name}: {ratios[name][-1]:.2f}, {users[name][-1]:.2f} µs user",
                  file=sys.stderr, flush=True)
    what = {"db": "deliveries/s with SQLite / in memory",
            "tls": "server CPU per delivery, TLS / plain"}.get(args.measure, "server CPU per delivery / the baseline's")
    store = f", rooms in {args.store}" if args.measure == "baseline" else ""
    print(f"\n{args.server}{store}, {args.connections} connections in rooms of {args.room_size}, load {args.load}: "
          f"{what}, {args.rounds} rounds\n")
    print("| variant | median | every round | user µs / delivery, median | every round |\n|---|---:|---|---:|---|")
    for name, values in ratios.items():
        user = users[name]
        print(f"| {name} | {statistics.median(values):.2f} | {' '.join(f'{v:.2f}' for v in values)} "
              f"| {statistics.median(user):.2f} | {' '.join(f'{v:.2f}' for v in user)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
