"""What a chat server process holds, on demand: for finding what each idle connection costs.

    MEMPROBE=/tmp/mem PYTHONTRACEMALLOC=1 PYTHONPATH=bench/memprobe:src python -m transports ...

Python imports ``sitecustomize`` at start-up from ``PYTHONPATH``; this one acts
only in server processes (``-m transports`` on the command line) and only with
``MEMPROBE`` set. Creating ``$MEMPROBE-<pid>.<tag>.go`` makes it write
``$MEMPROBE-<pid>.<tag>.types`` (live objects by type, after a full collection)
and, when tracemalloc runs, ``$MEMPROBE-<pid>.<tag>.snapshot``; then it removes
the trigger. `bench/idle_memory.py --tracemalloc` drives it.
"""

from __future__ import annotations

import collections
import gc
import json
import os
import sys
import threading
import time
import tracemalloc
from pathlib import Path

_CODE = ("cr_code", "gi_code", "__code__")


def _dump(prefix: str) -> None:
    gc.collect()
    counts: collections.Counter[str] = collections.Counter()
    sizes: collections.Counter[str] = collections.Counter()
    for thing in gc.get_objects():
        kind = type(thing)
        name = f"{kind.__module__}.{kind.__qualname__}"
        if kind.__name__ in ("coroutine", "generator", "function", "cell", "method"):
            code = next((getattr(thing, key) for key in _CODE if hasattr(thing, key)), None)
            name += f" {code.co_qualname}" if code is not None else ""
        counts[name] += 1
        sizes[name] += sys.getsizeof(thing)
    Path(f"{prefix}.types").write_text(json.dumps([(name, count, sizes[name]) for name, count in counts.items()]))
    if tracemalloc.is_tracing():
        tracemalloc.take_snapshot().dump(f"{prefix}.snapshot")


def _watch(prefix: str) -> None:
    while True:
        time.sleep(0.2)
        for trigger in Path(prefix).parent.glob(f"{Path(prefix).name}-{os.getpid()}.*.go"):
            _dump(str(trigger)[: -len(".go")])
            trigger.unlink()


def _is_server() -> bool:
    try:
        return b"transports" in Path("/proc/self/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False


if os.environ.get("MEMPROBE") and _is_server():
    threading.Thread(target=_watch, args=(os.environ["MEMPROBE"],), daemon=True, name="memprobe").start()
