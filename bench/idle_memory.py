"""What an idle connection costs the server: RSS per connection as bench/run.py measures it, and what holds it.

    python bench/idle_memory.py --server wsproto --connections 1000 10000 --repeat 3
    python bench/idle_memory.py --server trio-websocket --connections 2000 --tracemalloc

Each run starts a fresh server with bench/run.py's command (limits lifted, on
free loopback ports), reads its VmRSS, has bench/loadgen.py open the
connections in rooms of ``--room-size`` and wait once all are joined, reads
VmRSS again, and stops both by PID: (after - before) / connections, the
"RSS KiB / idle conn" column of bench/run.py's table. ``--src`` runs another
tree's ``src`` (say, the previous commit's, from ``git archive``).

``--tracemalloc`` starts the server with tracemalloc and bench/memprobe's
sitecustomize, and prints, per connection, the growth between before and after
by source line and the live objects gained by type (RSS is then not
comparable: tracemalloc's own bookkeeping is in it).
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
import tracemalloc
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
import run  # noqa: E402  (bench/run.py: the same server command and measurements)


def probe(server: str, connections: int, room_size: int, src: Path, trace: Path | None) -> float:
    """One fresh server and generator; the server's RSS growth per connection, KiB."""
    port = run.free_port()
    env = dict(os.environ, PYTHONPATH=str(src))
    if trace is not None:
        env.update(PYTHONPATH=f"{BENCH / 'memprobe'}{os.pathsep}{src}", MEMPROBE=str(trace), PYTHONTRACEMALLOC="1")
    command = run.server_command(server, port, connections + 100, Path(":memory:"))
    process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL)
    generator = None
    try:
        run.wait_accepting(process, port, timeout=120)
        time.sleep(0.5)
        if trace is not None:
            dump(trace, process.pid, "before")
        before = run.rss_kib(process.pid)
        generator = subprocess.Popen(
            [sys.executable, str(BENCH / "loadgen.py"), "--url", f"ws://{run.HOST}:{port}/",
             "--connections", str(connections), "--room-size", str(room_size)],
            text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert generator.stdout is not None
        run.expect(run.LineReader(generator.stdout), "joined", timeout=60 + connections / 50)
        after = run.rss_kib(process.pid)
        if trace is not None:
            dump(trace, process.pid, "after")
        return (after - before) / connections
    finally:
        if generator is not None:
            generator.kill()
            generator.wait()
        process.kill()
        process.wait()


def dump(trace: Path, pid: int, tag: str) -> None:
    """Have the server's memprobe write its object counts (and tracemalloc snapshot) as ``tag``."""
    trigger = Path(f"{trace}-{pid}.{tag}.go")
    trigger.touch()
    while trigger.exists():
        time.sleep(0.1)


def report(trace: Path, connections: int, top: int, group: str = "lineno") -> None:
    """Per connection: tracemalloc's growth by line, and live objects gained by type."""
    (types_before,) = trace.parent.glob(f"{trace.name}-*.before.types")
    prefix = str(types_before)[: -len(".before.types")]
    before = {name: (count, size) for name, count, size in json.loads(Path(f"{prefix}.before.types").read_text())}
    after = {name: (count, size) for name, count, size in json.loads(Path(f"{prefix}.after.types").read_text())}
    gained = sorted(((size - before.get(name, (0, 0))[1], count - before.get(name, (0, 0))[0], name)
                     for name, (count, size) in after.items()), reverse=True)
    print(f"\nlive gc-tracked objects gained per connection, {connections} connections (sys.getsizeof, B):")
    print(f"  total {sum(size for size, _, _ in gained) / connections:.0f} B")
    for size, count, name in gained[:top]:
        if count >= connections // 2:
            print(f"  {size / connections:6.0f} B {count / connections:6.2f}  {name}")
    snapshot_after = Path(f"{prefix}.after.snapshot")
    if not snapshot_after.exists():
        return
    stats = tracemalloc.Snapshot.load(str(snapshot_after)).compare_to(
        tracemalloc.Snapshot.load(f"{prefix}.before.snapshot"), group)
    total = sum(stat.size_diff for stat in stats)
    print(f"\ntracemalloc growth per connection: {total / connections:.0f} B; by {group}:")
    for stat in stats[:top]:
        frame = stat.traceback[0]
        where = "/".join(Path(frame.filename).parts[-2:])
        share, blocks = stat.size_diff / connections, stat.count_diff / connections
        print(f"  {share:7.0f} B {blocks:6.2f} blocks  {where}" + (f":{frame.lineno}" if group == "lineno" else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="wsproto", choices=("wsproto", "trio-websocket", "wsproto-uvloop"))
    parser.add_argument("--connections", type=int, nargs="+", default=[1000])
    parser.add_argument("--room-size", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--src", type=Path, default=BENCH.parent / "src")
    parser.add_argument("--tracemalloc", action="store_true", help="what holds it (one run)")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--group", choices=("lineno", "filename"), default="lineno", help="tracemalloc's grouping")
    args = parser.parse_args()
    run.raise_file_limit()
    src = args.src.resolve()
    if args.tracemalloc:
        with tempfile.TemporaryDirectory() as folder:
            trace = Path(folder) / "mem"
            kib = probe(args.server, args.connections[0], args.room_size, src, trace)
            print(f"{args.server} {args.connections[0]}: {kib:.2f} KiB/conn (with tracemalloc)")
            report(trace, args.connections[0], args.top, args.group)
        return
    for connections in args.connections:
        values = [probe(args.server, connections, args.room_size, src, None) for _ in range(args.repeat)]
        print(f"{args.server} {connections} x{args.room_size}: median {statistics.median(values):.2f} KiB/conn "
              f"({', '.join(f'{v:.2f}' for v in values)}) src={src}", flush=True)


if __name__ == "__main__":
    main()
