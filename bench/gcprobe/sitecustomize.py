"""Time every garbage collection of a chat server process, for finding costs that grow with connections.

    GCPROBE=/tmp/gc PYTHONPATH=bench/gcprobe .venv/bin/python bench/run.py --servers trio-websocket ...

Python imports ``sitecustomize`` at start-up from ``PYTHONPATH``; this one acts
only in server processes (``-m transports`` on the command line) and only with
``GCPROBE`` set. Every two seconds it rewrites ``$GCPROBE-<pid>.txt`` with the
process's CPU time and, per generation, how many collections ran and how long
they took in all.
"""

from __future__ import annotations

import gc
import os
import threading
import time
from pathlib import Path
from typing import Any

_INTERVAL = 2.0


def _install(prefix: str) -> None:
    stats = {generation: [0, 0.0] for generation in range(3)}
    started = [0.0]
    cpu_at_start = time.process_time()
    out = Path(f"{prefix}-{os.getpid()}.txt")

    def callback(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            entry = stats[info["generation"]]
            entry[0] += 1
            entry[1] += time.perf_counter() - started[0]

    def report() -> None:
        while True:
            time.sleep(_INTERVAL)
            lines = [f"cpu {time.process_time() - cpu_at_start:.2f} s, objects tracked {len(gc.get_objects())}"]
            lines += [f"gen{g}: {n} collections, {t:.2f} s" for g, (n, t) in stats.items()]
            out.write_text("\n".join(lines) + "\n")

    gc.callbacks.append(callback)
    threading.Thread(target=report, daemon=True, name="gcprobe").start()


def _is_server() -> bool:
    try:
        return b"transports" in Path("/proc/self/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False


if os.environ.get("GCPROBE") and _is_server():
    _install(os.environ["GCPROBE"])
