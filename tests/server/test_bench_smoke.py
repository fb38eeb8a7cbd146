"""The benchmark still runs end to end (seconds, not a timing test: nothing here compares speeds)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from live import ROOT


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


def test_the_peers_and_one_message_in_flight_run_and_lose_nothing() -> None:
    result = subprocess.run(
        [sys.executable, "bench/run.py", "--connections", "100", "--room-sizes", "100", "--repeat", "1",
         "--duration", "1", "--servers", "wsproto", "--peers", "--loads", "tenth,one"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    for server in ["wsproto", "aiohttp", "starlette", "picows", "picows-uvloop"]:
        rows = [line for line in output.splitlines() if line.startswith(f"| 100 | 100 | {server} |")]
        assert len(rows) == 2, output[-3000:]  # a tenth of each room talking, and one message in flight per room
        assert all(row.split("|")[-3].strip() == "0" for row in rows)  # lost


def test_the_redis_backed_servers_run_and_lose_nothing() -> None:
    result = subprocess.run(
        [sys.executable, "bench/run.py", "--connections", "100", "--room-sizes", "10", "--repeat", "1",
         "--duration", "1", "--servers", "wsproto", "--redis"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    for server in ["trio-websocket-redis", "wsproto-redis", "wsproto-redis-w2"]:
        row, shared = (line for line in output.splitlines() if line.startswith(f"| 100 | 10 | {server} |"))
        assert row.split("|")[-3].strip() == "0"  # lost
        assert float(shared.split("|")[-2]) > 0  # the Redis table: redis-server's CPU per delivery, measured apart
    assert "deliv/s, Redis / memory" in output


def test_the_ab_runner_compares_a_variant_of_the_source_tree() -> None:
    result = subprocess.run(
        [sys.executable, "bench/ab.py", "--rounds", "1", "--duration", "1", "this=src"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    row = next(line for line in result.stdout.splitlines() if line.startswith("| this |"))
    median, every_round = (cell.strip() for cell in row.split("|")[2:4])
    assert float(median) > 0
    assert every_round == median  # one round: its ratio is the median


def test_the_ab_runner_refuses_a_folder_without_the_packages(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "bench/ab.py", f"empty={tmp_path}"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 2
    assert "expected NAME=DIR" in result.stderr


def test_the_ab_runner_runs_each_variants_own_source(tmp_path: Path) -> None:
    broken = tmp_path / "src"
    shutil.copytree(ROOT / "src", broken)
    (broken / "transports" / "__main__.py").write_text('raise SystemExit("a broken variant")\n')
    result = subprocess.run(
        [sys.executable, "bench/ab.py", "--rounds", "1", "--duration", "1", f"broken={broken}"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 1
    assert "round 1, broken: run.py failed" in result.stderr


def test_the_ab_runner_compares_against_the_baseline_too() -> None:
    result = subprocess.run(
        [sys.executable, "bench/ab.py", "--measure", "baseline", "--rounds", "1", "--duration", "1", "this=src"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert "server CPU per delivery / the baseline's" in result.stdout
    row = next(line for line in result.stdout.splitlines() if line.startswith("| this |"))
    assert float(row.split("|")[2]) > 0


def test_the_core_benchmark_times_each_variants_own_core(tmp_path: Path) -> None:
    small = ["--rooms", "2", "--room-size", "3", "--talks", "200", "--rounds", "1"]
    result = subprocess.run(
        [sys.executable, "bench/core.py", *small, "this=src"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    row = next(line for line in result.stdout.splitlines() if line.startswith("| this |"))
    assert float(row.split("|")[2]) > 0
    assert row.split("|")[3].strip() == "1.00"
    broken = tmp_path / "src"
    shutil.copytree(ROOT / "src", broken)
    (broken / "chatcore" / "__init__.py").write_text('raise SystemExit("a broken variant")\n')
    result = subprocess.run(
        [sys.executable, "bench/core.py", *small, "this=src", f"broken={broken}"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 1
    assert "round 1, broken: failed (a broken variant)" in result.stderr


def test_the_tls_servers_run_and_lose_nothing() -> None:
    result = subprocess.run(
        [sys.executable, "bench/run.py", "--connections", "100", "--room-sizes", "10", "--repeat", "1",
         "--duration", "1", "--servers", "wsproto", "--tls"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    for server in ["baseline-tls", "trio-websocket-tls", "wsproto-tls"]:
        row, compared = (line for line in output.splitlines() if line.startswith(f"| 100 | 10 | {server} |"))
        assert row.split("|")[-3].strip() == "0"  # lost
        assert float(compared.split("|")[5]) > 0  # the TLS table: CPU per delivery, TLS / plain
    assert "CPU per delivery, TLS / plain" in output
