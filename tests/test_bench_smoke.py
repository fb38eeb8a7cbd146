"""The benchmark still runs end to end (seconds, not a timing test: nothing here compares speeds)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_benchmark_runs_every_server_and_loses_nothing() -> None:
    result = subprocess.run(
        [sys.executable, "bench/run.py", "--quick"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    for server in ["baseline", "trio-websocket", "wsproto", "wsproto-uvloop"]:
        row = next(line for line in output.splitlines() if line.startswith(f"| 100 | 10 | {server} |"))
        assert row.split("|")[-3].strip() == "0"  # lost
