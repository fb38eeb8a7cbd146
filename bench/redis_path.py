"""The Redis path alone: CPU per 1000 talks of a server on Redis, thread by thread, and of its redis-server.

    python bench/redis_path.py now=src before=/tmp/old/src
    python bench/redis_path.py --connections 300 --room-size 10 --duration 4 --rounds 5 now=src before=/tmp/old/src

Each ``NAME=DIR`` holds the ``transports`` and ``chatcore`` packages. Each
round runs every variant once (each round starting one variant later): a
fresh redis-server on a free port (append-only, fsync every second, as the
README configures it), a fresh server process on Redis with DIR first on
PYTHONPATH, and bench/loadgen.py's closed loop (``--connections`` in rooms of
``--room-size``, a tenth of each room talking, ``--window`` in flight each)
for ``--duration`` seconds. ``--memory`` adds the first variant in memory
(no Redis), for the ratio of the Redis path to it.

The table shows medians over the rounds: CPU seconds per 1000 talks of the
server process, of its threads (the event loop, the storage thread, the
subscriber: /proc/PID/task/TID/stat, each thread named through prctl by a
shim), of the redis-server, talks/s, and server CPU per 1000 deliveries.
A micro-measurement: a modest load for a few seconds, not the benchmark.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ab import variant
from run import (
    CLK_TCK,
    HOST,
    LIMIT_FLAGS,
    LineReader,
    expect,
    free_port,
    stop,
    stop_run,
    wait_accepting,
)

BENCH = Path(__file__).resolve().parent
THREADS = ("main", "chat-storage", "chat-redis-sub")
SHIM = """
import ctypes, runpy, sys, threading
_prctl = ctypes.CDLL(None).prctl
_run = threading.Thread.run
def run(self):
    _prctl(15, self.name.encode()[:15], 0, 0, 0)  # PR_SET_NAME: what /proc/PID/task/TID/comm shows
    _run(self)
threading.Thread.run = run
_prctl(15, b"main", 0, 0, 0)
sys.argv[0] = "transports"
runpy.run_module("transports", run_name="__main__", alter_sys=True)
"""


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds (user + system) of each named thread of ``pid``, the rest as ``other``, and ``all``."""
    times: dict[str, float] = {"all": 0.0}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # (a thread that ended meanwhile)
        used = (int(fields[11]) + int(fields[12])) / CLK_TCK
        key = name if name in THREADS else "other"
        times[key] = times.get(key, 0.0) + used
        times["all"] += used
    return times


def process_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def start_redis(folder: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    folder.mkdir(parents=True, exist_ok=True)
    redis = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", HOST, "--dir", str(folder), "--appendonly", "yes",
         "--appendfsync", "everysec", "--save", "", "--logfile", str(folder / "redis.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        if subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True).stdout.strip() == b"PONG":
            return redis, port
        if time.monotonic() > deadline or redis.poll() is not None:
            stop(redis)
            raise RuntimeError("redis-server did not start")
        time.sleep(0.05)


def one(source: Path, args: argparse.Namespace, logs: Path, tag: str, *, redis_store: bool) -> dict[str, float]:
    """One fresh redis-server (if ``redis_store``), one server, one load: the numbers per 1000 talks."""
    redis = start_redis(logs / f"{tag}.redis") if redis_store else None
    port = free_port()
    store = ["--redis", f"redis://{HOST}:{redis[1]}/0"] if redis is not None else ["--db", ":memory:"]
    command = [sys.executable, "-c", SHIM, "--transport", args.transport, *store, "--host", HOST,
               "--http-port", str(free_port()), "--ws-port", str(port), "--log-level", "WARNING",
               "--max-connections", "10000", "--max-connections-per-address", "10000", *LIMIT_FLAGS]
    env = {**os.environ, "PYTHONPATH": str(source)}
    with open(logs / f"{tag}.server.log", "wb") as server_log, open(logs / f"{tag}.loadgen.log", "w") as gen_log:
        server = subprocess.Popen(command, env=env, stdout=server_log, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL)
        generator: subprocess.Popen[str] | None = None
        try:
            wait_accepting(server, port)
            generator = subprocess.Popen(
                [sys.executable, str(BENCH / "loadgen.py"), "--url", f"ws://{HOST}:{port}/",
                 "--connections", str(args.connections), "--room-size", str(args.room_size),
                 "--window", str(args.window), "--duration", str(args.duration)],
                text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=gen_log)
            assert generator.stdin is not None
            assert generator.stdout is not None
            reader = LineReader(generator.stdout)
            expect(reader, "joined", timeout=60)
            generator.stdin.write("go\n")
            generator.stdin.flush()
            expect(reader, "load-start", timeout=30)
            before = thread_cpu(server.pid)
            redis_before = process_cpu(redis[0].pid) if redis is not None else 0.0
            expect(reader, "load-end", timeout=args.duration + 60)
            after = thread_cpu(server.pid)
            redis_after = process_cpu(redis[0].pid) if redis is not None else 0.0
            result = expect(reader, "result", timeout=60)
        finally:
            stop_run(generator, server, None if redis is None else redis[0])
    if result["lost"] or result["errors"]:
        raise RuntimeError(f"{tag}: lost {result['lost']}, errors {result['errors']}: {result['error_samples']}")
    talks = result["sent"]
    row = {key: (after.get(key, 0.0) - before.get(key, 0.0)) / talks * 1000 for key in (*THREADS, "other", "all")}
    row["redis"] = (redis_after - redis_before) / talks * 1000
    row["talks/s"] = talks / result["duration"]
    row["per 1k deliv"] = (after["all"] - before["all"]) / result["deliveries"] * 1000
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="+", type=variant, help="NAME=DIR")
    parser.add_argument("--transport", default="wsproto")
    parser.add_argument("--connections", type=int, default=300)
    parser.add_argument("--room-size", type=int, default=10)
    parser.add_argument("--window", type=int, default=1)
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--memory", action="store_true", help="also the first variant in memory")
    parser.add_argument("--logs", type=Path, help="keep the servers' and generators' logs in this folder")
    args = parser.parse_args()
    runs = [(name, path, True) for name, path in args.variants]
    if args.memory:
        runs.append((f"{args.variants[0][0]}-memory", args.variants[0][1], False))
    rows: dict[str, list[dict[str, float]]] = {name: [] for name, _, _ in runs}
    with tempfile.TemporaryDirectory(prefix="redis-path-") as folder:
        if args.logs is not None:
            args.logs.mkdir(parents=True, exist_ok=True)
            folder = str(args.logs)
        for round_ in range(args.rounds):
            for index in range(len(runs)):
                name, path, on_redis = runs[(index + round_) % len(runs)]
                row = one(path, args, Path(folder), f"{name}-{round_}", redis_store=on_redis)
                rows[name].append(row)
                print(json.dumps({"variant": name, "round": round_, **{k: round(v, 4) for k, v in row.items()}}),
                      file=sys.stderr)
    columns = ("all", *THREADS, "other", "redis", "per 1k deliv", "talks/s")
    print(f"CPU seconds per 1000 talks (medians of {args.rounds}; {args.transport}, {args.connections} connections, "
          f"rooms of {args.room_size}, window {args.window}, {args.duration:g} s)")
    print(f"| {'variant':<16} | " + " | ".join(f"{column:>14}" for column in columns) + " | ratio all |")
    first = None
    for name, results in rows.items():
        medians = {column: statistics.median(row[column] for row in results) for column in columns}
        first = first or medians["all"]
        print(f"| {name:<16} | " + " | ".join(f"{medians[column]:>14.4f}" for column in columns)
              + f" | {medians['all'] / first:>9.3f} |")


if __name__ == "__main__":
    main()
