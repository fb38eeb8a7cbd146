"""The pure core alone: CPU per talk for variants of the source, alternating, no sockets.

    python bench/core.py now=src before=/tmp/old/src
    python bench/core.py --rooms 1000 --room-size 10 --talks 500000 now=src

Each ``NAME=DIR`` holds the ``chatcore`` package; each round runs every
variant once (each round starting one variant later), in a fresh process with DIR first on PYTHONPATH: ``--rooms``
rooms of ``--room-size`` members (text renderers), then ``--talks`` talks
sent round-robin by members of every room, each one delivered to its room.
The table shows the median microseconds of process CPU per talk and the ratio
to the first variant, measured in the same session.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from functools import partial
from pathlib import Path

from ab import variant
from run import rotations

MEASURE = """
import inspect, itertools, json, sys, time
from chatcore import ChatCore, CoreLimits, MemoryLog

rooms, size, talks = (int(arg) for arg in sys.argv[1:4])
keys = itertools.count()
limits = CoreLimits(messages_per_second=1e9, message_burst=10**9)
chat = ChatCore(clock=time.time, new_join_key=lambda: f"k{next(keys)}", limits=limits)


class Performed:
    # The core and its memory log as the server's hub runs them: each log action handed to the log, its results
    # fed back in its place (a core from before the log's one route answers them itself).

    def __init__(self, chat):
        self.chat = chat
        self.log = None if "external_log" in inspect.signature(ChatCore).parameters else MemoryLog(1000)

    def connect(self, connection):
        return self.perform(self.chat.connect(connection))

    def receive_text(self, connection, text):
        return self.perform(self.chat.receive_text(connection, text))

    def perform(self, actions):
        log = self.log
        if log is None:
            return actions
        shown = []
        for action in actions:
            if type(action).__name__ in ("Send", "Broadcast", "Close"):
                shown.append(action)
            else:
                for result in log.perform(action):
                    shown.extend(self.perform(self.chat.log_result(result)))
        return shown


core = Performed(chat)
for room in range(rooms):
    join_key = None
    for member in range(size):
        connection = room * size + member + 1
        core.connect(connection)
        event = {"type": "init", "render": "text"}
        if join_key is not None:
            event["joinKey"] = join_key
        reply = core.receive_text(connection, json.dumps(event))
        join_key = json.loads(reply[0].message)["joinKey"]
# Talk n comes from room n % rooms, each of its members in turn.
order = [(n % rooms) * size + (n // rooms) % size + 1 for n in range(rooms * size)]
message = json.dumps({"type": "talk", "payload": "x" * 64})
start = time.process_time()
for n in range(talks):
    core.receive_text(order[n % len(order)], message)
print(json.dumps({"us_per_talk": (time.process_time() - start) / talks * 1e6}))
"""


def one_run(source: Path, rooms: int, room_size: int, talks: int) -> float:
    env = dict(os.environ, PYTHONPATH=str(source))
    command = [sys.executable, "-c", MEASURE, str(rooms), str(room_size), str(talks)]
    result = subprocess.run(command, env=env, check=True, capture_output=True, text=True)
    return float(json.loads(result.stdout)["us_per_talk"])


def main(argv: list[str] | None = None) -> int:
    """Run the rounds and print one row per variant."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("variants", type=partial(variant, holding=("chatcore",)), nargs="+", metavar="NAME=DIR")
    add("--rooms", type=int, default=100)
    add("--room-size", type=int, default=10)
    add("--talks", type=int, default=200_000)
    add("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    times: dict[str, list[float]] = {name: [] for name, _ in args.variants}
    for repetition, order in rotations(args.variants, args.rounds):  # each variant goes first in turn
        round_number = repetition + 1
        for name, source in order:
            try:
                times[name].append(one_run(source, args.rooms, args.room_size, args.talks))
            except subprocess.CalledProcessError as error:
                print(f"round {round_number}, {name}: failed ({error.stderr.strip()[-500:]})", file=sys.stderr)
                return 1
    first = statistics.median(times[args.variants[0][0]])
    print(f"\n{args.rooms} rooms of {args.room_size}, {args.talks} talks: CPU microseconds per talk, "
          f"{args.rounds} rounds\n")
    print(f"| variant | median | ratio to {args.variants[0][0]} | every round |\n|---|---:|---:|---|")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.2f} | {median / first:.2f} | {' '.join(f'{v:.2f}' for v in values)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
