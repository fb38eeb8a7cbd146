"""The storage thread's and the subscriber's side of Redis alone: CPU per 1000 talks, no websocket, no event loop.

    python bench/redis_log.py now=src before=/tmp/old/src
    python bench/redis_log.py --rooms 30 --batch 10 --talks 30000 --rounds 5 now=src before=/tmp/old/src

Each ``NAME=DIR`` holds the ``transports`` and ``chatcore`` packages. Each
round runs every variant once (each round starting one variant later), in a
fresh process with DIR first on PYTHONPATH, against a fresh redis-server on a
free port (append-only, fsync every second): ``RedisLog.run`` is handed
batches of ``--batch`` talks (round-robin over ``--rooms`` rooms, each room
read first, its offset moved past retention's ``--retention`` unless
``--fresh``) while the subscriber hears them back; its hand-over only counts
what it gets. The table shows medians over the rounds, CPU seconds per 1000
talks: the thread running the batches (the storage thread's part), the
subscriber's thread, and the redis-server.
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

from ab import variant
from redis_path import process_cpu, start_redis
from run import stop

MEASURE = """
import json, sys, threading, time
from pathlib import Path
from chatcore import Append, Load, Subscribe
from transports.config import RedisSettings
from transports.storage.redislog import RedisLog

port, rooms, batch, talks, retention, fresh = (int(arg) for arg in sys.argv[1:7])
log = RedisLog(RedisSettings(f"redis://127.0.0.1:{port}/0", retention=retention))
log.open()
heard = [0]
done = threading.Event()
def hand_over(burst):
    heard[0] += sum(1 for item in burst if type(item).__name__ == "LoggedTalk")
    if heard[0] >= talks:
        done.set()
def call(function, *args):
    function(*args)
log.subscriber.start(call, hand_over)
keys = [f"room{index:04d}" for index in range(rooms)]
from transports.storage.redisscheme import room_key
import redis
client = redis.Redis(port=port)
for key in keys:
    client.hset(room_key(key), mapping={"created": "1", "users": 0, "offset": 0 if fresh else 2 * retention,
                                        "pseq": 0})
log.run([Subscribe(key) for key in keys] + [Load(index, key, 0) for index, key in enumerate(keys)])
tickets = iter(range(10**9))
def one_batch(start):
    return [Append(ticket, keys[(start + i) % rooms], 1 + i % 10, time.time(), "x" * 64, f"name{i % 10}",
                   f"t{ticket}", False) for i, ticket in zip(range(batch), tickets)]
for start in range(0, 2000, batch):  # warm-up
    log.run(one_batch(start))
while heard[0] < 2000 // batch * batch:
    time.sleep(0.01)
def thread_cpu(name):
    for task in Path(f"/proc/self/task").iterdir():
        if (task / "comm").read_text().strip() == name:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / 100
    return 0.0
heard[0] = 0
print("ready", flush=True)
sys.stdin.readline()
sub_before, started = thread_cpu("chat-redis-sub"), time.thread_time()
for start in range(0, talks, batch):
    answers = log.run(one_batch(start))
    assert all(type(answer).__name__ == "Appended" for answer in answers), answers[:3]
storage = time.thread_time() - started
done.wait(30)
subscriber = thread_cpu("chat-redis-sub") - sub_before
print(json.dumps({"storage": storage, "subscriber": subscriber, "heard": heard[0]}), flush=True)
log.close()
"""
SHIM = """
import ctypes, threading
_prctl = ctypes.CDLL(None).prctl
_run = threading.Thread.run
def run(self):
    _prctl(15, self.name.encode()[:15], 0, 0, 0)
    _run(self)
threading.Thread.run = run
"""


def one(source: Path, args: argparse.Namespace, folder: Path) -> dict[str, float]:
    redis, port = start_redis(folder)
    try:
        process = subprocess.Popen(
            [sys.executable, "-c", SHIM + MEASURE, str(port), str(args.rooms), str(args.batch), str(args.talks),
             str(args.retention), str(int(args.fresh))],
            env={**os.environ, "PYTHONPATH": str(source)}, text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert process.stdin is not None
        assert process.stdout is not None
        if process.stdout.readline().strip() != "ready":
            raise RuntimeError("the measuring process failed")
        redis_before = process_cpu(redis.pid)
        process.stdin.write("go\n")
        process.stdin.flush()
        result = json.loads(process.stdout.readline())
        redis_used = process_cpu(redis.pid) - redis_before
        process.wait(30)
    finally:
        stop(redis)
    if result["heard"] < args.talks:
        raise RuntimeError(f"heard {result['heard']} of {args.talks} talks")
    scale = 1000 / args.talks
    return {"storage": result["storage"] * scale, "subscriber": result["subscriber"] * scale,
            "redis": redis_used * scale}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="+", type=variant, help="NAME=DIR")
    parser.add_argument("--rooms", type=int, default=30)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--talks", type=int, default=30000)
    parser.add_argument("--retention", type=int, default=10000)
    parser.add_argument("--fresh", action="store_true", help="rooms start at offset 0 (no trimming yet)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rows: dict[str, list[dict[str, float]]] = {name: [] for name, _ in args.variants}
    with tempfile.TemporaryDirectory(prefix="redis-log-") as folder:
        for round_ in range(args.rounds):
            for index in range(len(args.variants)):
                name, path = args.variants[(index + round_) % len(args.variants)]
                row = one(path, args, Path(folder) / f"{name}-{round_}")
                rows[name].append(row)
                print(json.dumps({"variant": name, "round": round_, **{k: round(v, 4) for k, v in row.items()}}),
                      file=sys.stderr)
    columns = ("storage", "subscriber", "redis")
    print(f"CPU seconds per 1000 talks (medians of {args.rounds}; {args.rooms} rooms, batches of {args.batch}, "
          f"{args.talks} talks{', fresh rooms' if args.fresh else ''})")
    print(f"| {'variant':<12} | " + " | ".join(f"{column:>10}" for column in columns) + " |")
    for name, results in rows.items():
        print(f"| {name:<12} | " + " | ".join(
            f"{statistics.median(row[column] for row in results):>10.4f}" for column in columns) + " |")


if __name__ == "__main__":
    main()
