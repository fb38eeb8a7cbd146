"""Benchmark runner: our two transports against the baseline, one command.

    python bench/run.py                 # full matrix: 100/1000/10000 connections x rooms of 10/100, 3 repeats
    python bench/run.py --peers         # ... and the same chat on aiohttp and on Starlette (bench/peers/)
    python bench/run.py --quick         # seconds-long smoke run; exits non-zero on any lost message

Servers named ``...-db`` keep rooms in a fresh SQLite file (``--db``), the
others in memory (``--db :memory:``); a second table compares each pair.
Servers named ``...-tls`` (``--tls``) serve wss:// with their own TLS, on a
certificate made for the run (trustme) that the generator trusts; a table
compares each with the same server in plain.

Two loads (``--loads``): ``tenth``, a tenth of each room's members talking
(max(1, room size // 10) senders per room, ``--window`` messages in flight
each), and ``one``, one sender per room with one message in flight, run only
where it differs from ``tenth`` (rooms larger than 19, or a window above 1).

Every run gets a fresh server process on free ports, with the protection limits
lifted, pinned to one CPU while the load generator (bench/loadgen.py) runs on
another. Servers take turns in rotating order across repetitions so drift on a
shared machine hits all of them alike; the table shows medians. Any lost
message, error or failed run makes the exit status 1 and marks the row.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import platform
import queue
import resource
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

BENCH = Path(__file__).resolve().parent
T = TypeVar("T")
HOST = "127.0.0.1"
SERVERS = ("baseline", "trio-websocket", "trio-websocket-db", "wsproto", "wsproto-db", "wsproto-uvloop")
# The same chat in the frameworks a Python team would otherwise pick, each broadcasting its idiomatic way:
# script, and the packages it needs (from the bench extra).
PEERS = {"aiohttp": ("peers/aiohttp_server.py", ("aiohttp",)),
         "starlette": ("peers/starlette_server.py", ("starlette", "uvicorn")),
         "picows": ("peers/picows_server.py", ("picows",)),
         "picows-uvloop": ("peers/picows_server.py", ("picows", "uvloop"))}
SCRIPTS = {"baseline": "baseline_server.py", **{name: script for name, (script, _) in PEERS.items()}}
# Rooms in a redis-server started for each run (on the server's CPU, its CPU measured apart): one process,
# and two workers (--workers 2) sharing the ports.
REDIS_SUFFIX, WORKERS_SUFFIX = "-redis", "-redis-w2"
REDIS_SERVERS = ("trio-websocket-redis", "wsproto-redis", "wsproto-redis-w2")
# The same servers over their own TLS (--tls-cert; the baseline: websockets with an ssl context).
TLS_SUFFIX = "-tls"
TLS_SERVERS = ("baseline-tls", "trio-websocket-tls", "wsproto-tls")
KNOWN_SERVERS = (*SERVERS, *PEERS, *REDIS_SERVERS, *TLS_SERVERS)
LOADS = {"tenth": "a tenth talk", "one": "one in flight"}  # --loads names and their table labels
DURABLE_SUFFIX = "-db"  # the same server keeping rooms in a SQLite file (--db) rather than in memory
CLK_TCK = os.sysconf("SC_CLK_TCK")
LIMIT_FLAGS = ["--rate", "1000000", "--burst", "1000000", "--ping-interval", "0",
               "--outbox-bytes", "16777216", "--max-payload-chars", "100000"]
FD_HEADROOM = 256  # listeners, logs, the odd HTTP client
GENERATOR_BUSY_PCT = 90  # above this the generator, not the server, may be what limits deliveries/s
DISTURBED_PCT = 20  # other processes using this much CPU during a run disturb its numbers


@dataclass
class Run:
    """What one (server, connections, room size) run measured; ``failure`` says why it has no numbers."""

    server: str
    connections: int
    room_size: int
    load: str  # a key of LOADS
    repetition: int
    senders_per_room: int = 0
    window: int = 0
    failure: str | None = None
    lost: int = 0
    errors: int = 0
    cpu_per_1k: float = float("nan")
    deliveries_per_sec: float = float("nan")
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    rss_kib_per_conn: float = float("nan")
    conns_per_sec: float = float("nan")
    server_cpu_pct: float = float("nan")
    kernel_pct: float = float("nan")  # the share of the server's CPU spent in the kernel (system time)
    user_us: float = float("nan")  # the server's user-space CPU per delivery, µs (utime over deliveries)
    redis_cpu_per_1k: float = float("nan")  # a -redis server's redis-server, CPU seconds per 1000 deliveries
    gen_cpu_pct: float = float("nan")
    other_cpu_pct: float = float("nan")
    loadgen: dict[str, Any] = field(default_factory=dict)

    @property
    def bad(self) -> bool:
        """Lost messages, errors, or no result at all."""
        return self.failure is not None or self.lost != 0 or self.errors != 0

    @property
    def where(self) -> str:
        """``wsproto 1000x100 one #2``, for messages."""
        return f"{self.server} {self.connections}x{self.room_size} {self.load} #{self.repetition + 1}"


@dataclass(frozen=True)
class Placement:
    """Which CPUs the server and the generator are pinned to (None: not pinned)."""

    server: set[int] | None
    generator: set[int] | None

    @staticmethod
    def choose() -> Placement:
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            return Placement(None, None)
        return Placement({cpus[0]}, {cpus[1]})

    def describe(self) -> str:
        if self.server is None or self.generator is None:
            return "not pinned (--no-pin, or fewer than 2 CPUs): server and generator share the CPUs"
        return f"server pinned to CPU {min(self.server)}, load generator to CPU {min(self.generator)}"


# --- the machine -------------------------------------------------------------------------------------------


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo."""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version(),
            "kernel": platform.release(), "port_range": ephemeral_ports()}


def ephemeral_ports() -> tuple[int, int]:
    """The client port range; every connection of the generator needs one of them."""
    low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
    return int(low), int(high)


def raise_file_limit() -> int:
    """Lift the soft open-file limit to the hard one (inherited by the processes we start)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard if hard != resource.RLIM_INFINITY else 1 << 20


def check_capacity(max_connections: int, file_limit: int) -> None:
    """Refuse to start a matrix the machine cannot hold, rather than fail mid-way."""
    low, high = ephemeral_ports()
    problems = []
    if high - low + 1 < max_connections + 1000:
        problems.append(f"ephemeral port range {low}-{high} is too small for {max_connections} connections "
                        "(widen /proc/sys/net/ipv4/ip_local_port_range)")
    if file_limit < max_connections + FD_HEADROOM:
        problems.append(f"open-file hard limit {file_limit} is below {max_connections + FD_HEADROOM} "
                        "(raise it with ulimit -Hn or limits.conf)")
    if problems:
        sys.exit("bench: " + "; ".join(problems))


# --- one process --------------------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class Certificates:
    """A CA made for the run, and a certificate it signed for 127.0.0.1: what ``-tls`` servers serve."""

    ca: Path
    certificate: Path
    key: Path

    @staticmethod
    def make(folder: Path) -> Certificates:
        import trustme  # (the bench extra's; only --tls needs it)

        ca = trustme.CA()
        leaf = ca.issue_cert(HOST, "localhost")
        made = Certificates(folder / "ca.pem", folder / "cert.pem", folder / "key.pem")
        ca.cert_pem.write_to_path(str(made.ca))
        made.certificate.write_bytes(b"".join(pem.bytes() for pem in leaf.cert_chain_pems))
        leaf.private_key_pem.write_to_path(str(made.key))
        return made


def server_command(
    server: str, port: int, max_connections: int, database: Path, redis_url: str | None = None,
    tls: Certificates | None = None,
) -> list[str]:
    """How to start one server on ``port`` with its limits lifted (``database``: its file, for a ``-db`` server)."""
    tls_flags = []
    if server.endswith(TLS_SUFFIX):
        assert tls is not None, "a -tls server needs the run's certificates"
        server = server.removesuffix(TLS_SUFFIX)
        tls_flags = ["--tls-cert", str(tls.certificate), "--tls-key", str(tls.key)]
    if server in SCRIPTS:
        peer_loop = ["--uvloop"] if server.endswith("-uvloop") else []
        return [sys.executable, str(BENCH / SCRIPTS[server]), "--host", HOST, "--port", str(port), *peer_loop,
                *tls_flags]
    loop_flags = ["--event-loop", "uvloop"] if server.endswith("-uvloop") else []
    db_flags = ["--db", str(database) if server.endswith(DURABLE_SUFFIX) else ":memory:"]
    if redis_url is not None:
        db_flags = ["--redis", redis_url] + (["--workers", "2"] if server.endswith(WORKERS_SUFFIX) else [])
    transport = server.removesuffix("-uvloop").removesuffix(DURABLE_SUFFIX).removesuffix(WORKERS_SUFFIX)
    transport = transport.removesuffix(REDIS_SUFFIX)
    return [sys.executable, "-m", "transports", "--transport", transport, *loop_flags, *db_flags,
            "--host", HOST,
            "--http-port", str(free_port()), "--ws-port", str(port), "--log-level", "WARNING",
            "--max-connections", str(max_connections), "--max-connections-per-address", str(max_connections),
            *LIMIT_FLAGS, *tls_flags]


def wait_accepting(process: subprocess.Popen[bytes], port: int, timeout: float = 20.0) -> None:
    """Block until the server accepts TCP connections on ``port``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with status {process.returncode} before accepting")
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server did not accept connections on port {port} within {timeout} s")


def rss_kib(pid: int) -> int:
    """Resident set size (VmRSS) of a process and its children, in KiB."""
    total = 0
    for process in (pid, *children(pid)):
        for line in Path(f"/proc/{process}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


def cpu_times(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of a process, all threads, and of its children (a supervisor's workers)."""
    user = system = 0.0
    for process in (pid, *children(pid)):
        fields = Path(f"/proc/{process}/stat").read_text().rsplit(")", 1)[1].split()
        user += int(fields[11]) / CLK_TCK  # utime, stime: fields 14 and 15 of stat(5)
        system += int(fields[12]) / CLK_TCK
    return user, system


def children(pid: int) -> list[int]:
    """The PIDs of a process's children."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
    return found


def machine_busy() -> float:
    """CPU seconds spent by everything on the machine, all CPUs together (first line of /proc/stat)."""
    user, nice, system, _idle, _iowait, irq, softirq = map(int, Path("/proc/stat").read_text().split()[1:8])
    return (user + nice + system + irq + softirq) / CLK_TCK


def pin(process: subprocess.Popen[Any], cpus: set[int] | None) -> None:
    """Pin a freshly started process (before it starts any thread) to ``cpus``."""
    if cpus is not None:
        os.sched_setaffinity(process.pid, cpus)


def stop(process: subprocess.Popen[Any], timeout: float = 10.0, grace: float = 0.0) -> None:
    """Give it ``grace`` seconds to exit by itself, then SIGTERM, then SIGKILL if it lingers."""
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(grace)
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def stop_run(generator: subprocess.Popen[Any] | None, server: subprocess.Popen[Any],
             redis: subprocess.Popen[Any] | None) -> None:
    """End a run: the generator (given time to report), the server, and its redis-server if it has one."""
    if generator is not None:
        stop(generator, grace=10)
    stop(server, timeout=20)
    if redis is not None:
        stop(redis)


class LineReader:
    """The generator's stdout, one JSON event at a time, with a timeout (a thread feeds a queue)."""

    def __init__(self, stream: IO[str]) -> None:
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self._lines.put(line)
        self._lines.put(None)

    def next_event(self, timeout: float) -> dict[str, Any]:
        """The next JSON line (other output is passed through to stderr)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise RuntimeError(f"load generator silent for {timeout:.0f} s") from None
            if line is None:
                raise RuntimeError("load generator ended early")
            try:
                event: dict[str, Any] = json.loads(line)
                return event
            except ValueError:
                sys.stderr.write(line)


def expect(reader: LineReader, name: str, timeout: float) -> dict[str, Any]:
    """Read the next event, which must be ``name`` (a ``result`` instead means the generator gave up)."""
    event = reader.next_event(timeout)
    if event.get("event") != name:
        raise RuntimeError(f"expected {name!r} from the load generator, got {event}")
    return event


# --- one run -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """Everything a run needs besides the server and the matrix point."""

    duration: float
    window: int
    payload_bytes: int
    max_connections: int
    placement: Placement
    logs: Path
    tls: Certificates | None = None
    """The run's certificates, made when a ``-tls`` server is in the matrix."""


def talkers(load: str, room_size: int, window: int) -> tuple[int, int]:
    """(senders per room, messages in flight per sender) for a load."""
    return (max(1, room_size // 10), window) if load == "tenth" else (1, 1)


def loads_at(loads: list[str], room_size: int, window: int) -> list[str]:
    """The loads to run in rooms of ``room_size``: ``one`` only where it is not the same as ``tenth``."""
    if "tenth" in loads and talkers("one", room_size, window) == talkers("tenth", room_size, window):
        return [load for load in loads if load != "one"]
    return loads


def loadgen_command(settings: Settings, port: int, run: Run) -> list[str]:
    """How to start the load generator against ``port``."""
    tls = ["--ca-file", str(settings.tls.ca)] if run.server.endswith(TLS_SUFFIX) and settings.tls else []
    scheme = "wss" if tls else "ws"
    return [sys.executable, str(BENCH / "loadgen.py"), "--url", f"{scheme}://{HOST}:{port}/", *tls,
            "--connections", str(run.connections), "--room-size", str(run.room_size),
            "--senders-per-room", str(run.senders_per_room), "--window", str(run.window),
            "--duration", str(settings.duration), "--payload-bytes", str(settings.payload_bytes)]


def measure(run: Run, server: subprocess.Popen[bytes], generator: subprocess.Popen[str],
            settings: Settings, rss_before: int, redis_pid: int | None) -> None:
    """Follow the generator through its phases, sampling the server's RSS and CPU at each step."""
    assert generator.stdin is not None
    assert generator.stdout is not None
    reader = LineReader(generator.stdout)
    expect(reader, "joined", timeout=60 + run.connections / 50)
    run.rss_kib_per_conn = (rss_kib(server.pid) - rss_before) / run.connections
    generator.stdin.write("go\n")
    generator.stdin.flush()
    expect(reader, "load-start", timeout=30)
    (user_before, system_before), busy_before = cpu_times(server.pid), machine_busy()
    redis_before = sum(cpu_times(redis_pid)) if redis_pid is not None else 0.0
    expect(reader, "load-end", timeout=settings.duration + 60)
    (user, system), busy = cpu_times(server.pid), machine_busy() - busy_before
    user, system = user - user_before, system - system_before
    cpu_used = user + system
    redis_used = sum(cpu_times(redis_pid)) - redis_before if redis_pid is not None else 0.0
    result = expect(reader, "result", timeout=120)
    if server.poll() is not None:
        raise RuntimeError(f"server exited with status {server.returncode} during the run")
    record(run, result, cpu_used)
    run.kernel_pct = 100 * system / cpu_used if cpu_used else float("nan")
    if result["deliveries"]:
        run.user_us = user / result["deliveries"] * 1e6
    if redis_pid is not None and result["deliveries"]:
        run.redis_cpu_per_1k = redis_used / result["deliveries"] * 1000
    # Whatever else ran meanwhile (other jobs on a shared machine, this runner): the drift check.
    run.other_cpu_pct = 100 * max(0.0, busy - cpu_used - redis_used - result["cpu_seconds_load"]) / result["duration"]


def record(run: Run, result: dict[str, Any], server_cpu: float) -> None:
    """Fill a run from the generator's result and the server's CPU seconds over the load phase."""
    run.loadgen = result
    run.lost, run.errors = result["lost"], result["errors"]
    run.cpu_per_1k = server_cpu / result["deliveries"] * 1000 if result["deliveries"] else float("nan")
    run.deliveries_per_sec = result["deliveries_per_sec"]
    run.p50_ms, run.p99_ms = result["p50_ms"], result["p99_ms"]
    run.conns_per_sec = result["conns_per_sec"]
    run.server_cpu_pct = 100 * server_cpu / result["duration"]
    run.gen_cpu_pct = result["cpu_percent_load"]


def run_one(settings: Settings, server_name: str, connections: int, room_size: int, load: str,
            repetition: int) -> Run:
    """One fresh server, one generator, one set of numbers."""
    senders, window = talkers(load, room_size, settings.window)
    run = Run(server_name, connections, room_size, load, repetition, senders, window)
    port = free_port()
    tag = f"{server_name}-{connections}-{room_size}-{load}-{repetition}"
    with open(settings.logs / f"{tag}.server.log", "wb") as server_log, \
         open(settings.logs / f"{tag}.loadgen.log", "w") as generator_log:
        redis = start_redis(settings, tag) if REDIS_SUFFIX in server_name else None
        redis_url = None if redis is None else f"redis://{HOST}:{redis[1]}/0"
        command = server_command(server_name, port, settings.max_connections, settings.logs / f"{tag}.db", redis_url,
                                 settings.tls)
        server = subprocess.Popen(command,
                                  stdout=server_log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        pin(server, settings.placement.server)
        generator: subprocess.Popen[str] | None = None
        try:
            wait_accepting(server, port)
            if server_name.endswith(WORKERS_SUFFIX):
                wait_for_workers(server, 2)
            rss_before = rss_kib(server.pid)
            generator = subprocess.Popen(loadgen_command(settings, port, run), text=True,
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=generator_log)
            pin(generator, settings.placement.generator)
            measure(run, server, generator, settings, rss_before, None if redis is None else redis[0].pid)
        except (RuntimeError, OSError, KeyError) as error:
            run.failure = f"{error} (logs: {settings.logs}/{tag}.*.log)"
        finally:
            stop_run(generator, server, None if redis is None else redis[0])
    return run


def start_redis(settings: Settings, tag: str) -> tuple[subprocess.Popen[bytes], int]:
    """A fresh redis-server for one run, configured as the README says (append-only file, fsync every second)."""
    folder = settings.logs / f"{tag}.redis"
    folder.mkdir()
    port = free_port()
    redis = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", HOST, "--dir", str(folder), "--appendonly", "yes",
         "--appendfsync", "everysec", "--save", "", "--logfile", str(folder / "redis.log")],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    pin(redis, settings.placement.server)  # the server's side of the machine: the store is part of its cost
    deadline = time.monotonic() + 10
    while True:
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=1):
            return redis, port
        if time.monotonic() > deadline or redis.poll() is not None:
            stop(redis)
            raise RuntimeError(f"redis-server did not start (log: {folder}/redis.log)")
        time.sleep(0.05)


def wait_for_workers(server: subprocess.Popen[bytes], count: int, timeout: float = 20.0) -> None:
    """Block until a supervisor has ``count`` workers and they have had a moment to start listening."""
    deadline = time.monotonic() + timeout
    while len(children(server.pid)) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the server did not start {count} workers")
        time.sleep(0.05)
    time.sleep(1.0)


# --- the matrix --------------------------------------------------------------------------------------------


def rotations(items: list[T], repeat: int) -> Iterator[tuple[int, list[T]]]:
    """Round robin: every repetition runs every item (server, variant), starting one further along."""
    for repetition in range(repeat):
        shift = repetition % len(items)
        yield repetition, items[shift:] + items[:shift]


def progress(run: Run) -> None:
    """One line per run on stderr, so a long matrix shows it is alive."""
    if run.failure:
        status = f"FAILED: {run.failure}"
    else:
        status = (f"{run.cpu_per_1k:.4f} CPU s/1k, {run.deliveries_per_sec:,.0f} deliv/s, p50 {run.p50_ms:.2f} ms, "
                  f"p99 {run.p99_ms:.2f} ms, {run.rss_kib_per_conn:.1f} KiB/conn, {run.conns_per_sec:,.0f} conn/s, "
                  f"CPU: server {run.server_cpu_pct:.0f}%, generator {run.gen_cpu_pct:.0f}%, "
                  f"other {run.other_cpu_pct:.0f}%, "
                  f"lost {run.lost}, errors {run.errors}")
    print(f"  {run.connections:>6} conns, rooms of {run.room_size:>3}, {LOADS[run.load]}, #{run.repetition + 1} "
          f"{run.server:<15} {status}", file=sys.stderr, flush=True)


def run_matrix(args: argparse.Namespace, settings: Settings) -> list[Run]:
    """Every (connections, room size, load) point, every server, ``--repeat`` times, in rotating order."""
    runs = []
    for connections in args.connections:
        for room_size in args.room_sizes:
            for load in loads_at(args.loads, room_size, args.window):
                for repetition, order in rotations(args.servers, args.repeat):
                    for server in order:
                        run = run_one(settings, server, connections, room_size, load, repetition)
                        progress(run)
                        runs.append(run)
    return runs


# --- the report --------------------------------------------------------------------------------------------

METRICS = ("cpu_per_1k", "deliveries_per_sec", "p50_ms", "p99_ms", "rss_kib_per_conn", "conns_per_sec",
           "server_cpu_pct", "kernel_pct", "user_us", "gen_cpu_pct", "other_cpu_pct", "redis_cpu_per_1k")


def medians(runs: list[Run]) -> dict[str, float]:
    """Median of every metric over the runs that produced numbers."""
    good = [run for run in runs if run.failure is None]
    return {name: statistics.median(getattr(run, name) for run in good) if good else float("nan")
            for name in METRICS}


def ratio(value: float, base: float | None) -> str:
    """`` (x1.23)`` against the baseline, or nothing."""
    if base is None or base != base or base == 0 or value != value:
        return ""
    return f" (x{value / base:.2f})"


def points(runs: list[Run]) -> list[tuple[int, int, str]]:
    """The (connections, room size, load) points measured, in order (loads in LOADS order)."""
    return sorted({(run.connections, run.room_size, run.load) for run in runs},
                  key=lambda point: (point[0], point[1], list(LOADS).index(point[2])))


def at(runs: list[Run], point: tuple[int, int, str], server: str) -> list[Run]:
    """The runs of one server at one point."""
    return [run for run in runs if (run.connections, run.room_size, run.load, run.server) == (*point, server)]


def table(runs: list[Run], servers: list[str]) -> str:
    """The Markdown table of medians, one row per (connections, room size, load, server)."""
    lines = ["| conns | room | server | load | CPU s / 1k deliv | deliv/s | p50 ms | p99 ms | RSS KiB / idle conn "
             "| conns/s | server CPU % | of it kernel % | user µs / deliv | gen CPU % | other CPU % | lost | errors |",
             "|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for point in points(runs):
        here = {name: at(runs, point, name) for name in servers}
        base = medians(here["baseline"]) if here.get("baseline") else None
        for name in servers:
            if here[name]:
                lines.append(row(point, name, here[name], base))
    return "\n".join(lines)


def row(point: tuple[int, int, str], name: str, runs: list[Run], base: dict[str, float] | None) -> str:
    """One table row; a bad row is marked in bold with ❌."""
    connections, room_size, load = point
    m = medians(runs)
    b = base or {}
    lost, errors = sum(run.lost for run in runs), sum(run.errors for run in runs)
    failed = sum(run.failure is not None for run in runs)
    mark = f"**❌ {name}**" + (f" ({failed} failed)" if failed else "") if any(r.bad for r in runs) else name
    return (f"| {connections} | {room_size} | {mark} | {LOADS[load]} "
            f"| {m['cpu_per_1k']:.4f}{ratio(m['cpu_per_1k'], b.get('cpu_per_1k'))} "
            f"| {m['deliveries_per_sec']:,.0f}{ratio(m['deliveries_per_sec'], b.get('deliveries_per_sec'))} "
            f"| {m['p50_ms']:.2f} | {m['p99_ms']:.2f} "
            f"| {m['rss_kib_per_conn']:.1f}{ratio(m['rss_kib_per_conn'], b.get('rss_kib_per_conn'))} "
            f"| {m['conns_per_sec']:,.0f}{ratio(m['conns_per_sec'], b.get('conns_per_sec'))} "
            f"| {m['server_cpu_pct']:.0f} | {m['kernel_pct']:.0f} "
            f"| {m['user_us']:.2f}{ratio(m['user_us'], b.get('user_us'))} | {m['gen_cpu_pct']:.0f} "
            f"| {m['other_cpu_pct']:.0f} | {lost} | {errors} |")


def redis_table(runs: list[Run], servers: list[str]) -> str:
    """Each Redis-backed server against the same transport in memory: what sharing rooms through Redis costs."""
    lines = ["| conns | room | server | load | deliv/s | deliv/s, Redis / memory | server CPU per delivery, "
             "Redis / memory | redis-server CPU s / 1k deliv |", "|---:|---:|---|---|---:|---:|---:|---:|"]
    for point in points(runs):
        for shared in (name for name in servers if REDIS_SUFFIX in name):
            memory = shared.removesuffix(WORKERS_SUFFIX).removesuffix(REDIS_SUFFIX)
            pair = [at(runs, point, name) for name in (shared, memory)]
            if pair[0]:
                r = medians(pair[0])
                m = medians(pair[1]) if pair[1] else {"deliveries_per_sec": float("nan"), "cpu_per_1k": float("nan")}
                connections, room_size, load = point
                lines.append(f"| {connections} | {room_size} | {shared} | {LOADS[load]} "
                             f"| {r['deliveries_per_sec']:,.0f} "
                             f"| {r['deliveries_per_sec'] / m['deliveries_per_sec']:.2f} "
                             f"| {r['cpu_per_1k'] / m['cpu_per_1k']:.2f} | {r['redis_cpu_per_1k']:.5f} |")
    return "\n".join(lines) if len(lines) > 2 else ""


def pairs(
    runs: list[Run], servers: list[str], suffix: str
) -> Iterator[tuple[tuple[int, int, str], str, dict[str, float], dict[str, float]]]:
    """Each server named with ``suffix`` and the same server without it, at every point both ran: the point, the
    server's name and the medians of both."""
    for point in points(runs):
        for name in (server for server in servers if server.endswith(suffix)):
            pair = [at(runs, point, server) for server in (name, name.removesuffix(suffix))]
            if all(pair):
                yield point, name, medians(pair[0]), medians(pair[1])


def durability_table(runs: list[Run], servers: list[str]) -> str:
    """Each ``-db`` server against the same server in memory: what keeping rooms in SQLite costs."""
    lines = ["| conns | room | server | load | deliv/s, SQLite / memory | CPU per delivery, SQLite / memory |",
             "|---:|---:|---|---|---:|---:|"]
    for (connections, room_size, load), durable, d, m in pairs(runs, servers, DURABLE_SUFFIX):
        lines.append(f"| {connections} | {room_size} | {durable} | {LOADS[load]} "
                     f"| {d['deliveries_per_sec'] / m['deliveries_per_sec']:.2f} "
                     f"| {d['cpu_per_1k'] / m['cpu_per_1k']:.2f} |")
    return "\n".join(lines) if len(lines) > 2 else ""


def tls_table(runs: list[Run], servers: list[str]) -> str:
    """Each ``-tls`` server against the same server in plain: what serving TLS in the process costs."""
    lines = ["| conns | room | server | load | CPU per delivery, TLS / plain | user µs / deliv, TLS / plain "
             "| deliv/s, TLS / plain | extra RSS KiB / idle TLS conn |", "|---:|---:|---|---|---:|---:|---:|---:|"]
    for (connections, room_size, load), secure, t, p in pairs(runs, servers, TLS_SUFFIX):
        lines.append(f"| {connections} | {room_size} | {secure} | {LOADS[load]} "
                     f"| {t['cpu_per_1k'] / p['cpu_per_1k']:.2f} | {t['user_us'] / p['user_us']:.2f} "
                     f"| {t['deliveries_per_sec'] / p['deliveries_per_sec']:.2f} "
                     f"| {t['rss_kib_per_conn'] - p['rss_kib_per_conn']:.1f} |")
    return "\n".join(lines) if len(lines) > 2 else ""


def header(args: argparse.Namespace, settings: Settings, argv: list[str]) -> str:
    """Machine, placement and the exact command line."""
    info = machine()
    return "\n".join([
        f"machine: {info['cpu']}, {info['cores']} cores, Python {info['python']}, Linux {info['kernel']}",
        f"placement: {settings.placement.describe()}",
        f"command: {shlex.join([sys.executable, *argv])}",
        f"load: {args.duration:g} s per run, payload {args.payload_bytes} B, medians of {args.repeat} repetition(s); "
        f"loads {','.join(args.loads)} ('{LOADS['tenth']}': max(1, room size // 10) senders per room, "
        f"window {args.window} each; '{LOADS['one']}': 1 sender per room, window 1; "
        "the latter only where it differs); "
        "ratios (x) are against the baseline (asyncio + python-websockets); CPU % are of one CPU over the "
        "load phase; 'of it kernel' is the server's system time (on loopback a send() also runs the "
        "receiving side of TCP); 'user µs' is the server's user-space CPU (utime) per delivery; 'other' is "
        "everything else on the machine meanwhile (high: the numbers are disturbed)",
    ])


def failures(runs: list[Run]) -> list[str]:
    """A line for every run that lost messages, saw errors or failed."""
    lines = []
    for run in runs:
        if run.bad:
            samples = run.loadgen.get("error_samples", [])
            lines.append(f"{run.where}: lost {run.lost}, errors {run.errors} {samples} {run.failure or ''}")
    return lines


def warnings(runs: list[Run]) -> list[str]:
    """Runs whose numbers may not measure the server: a busy generator or a busy machine."""
    lines = []
    for run in runs:
        if run.gen_cpu_pct >= GENERATOR_BUSY_PCT:
            lines.append(f"{run.where}: load generator at {run.gen_cpu_pct:.0f}% CPU: it may be the bottleneck")
        if run.other_cpu_pct >= DISTURBED_PCT:
            lines.append(f"{run.where}: other processes used {run.other_cpu_pct:.0f}% of a CPU during the load")
    return lines


# --- the command -------------------------------------------------------------------------------------------


def int_list(text: str) -> list[int]:
    """``100,1000`` → [100, 1000]."""
    return [int(part) for part in text.split(",") if part]


def name_list(text: str, known: tuple[str, ...], what: str) -> list[str]:
    """``a,b`` → names, each one of ``known``."""
    names = [part for part in text.split(",") if part]
    unknown = set(names) - set(known)
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown {what}(s) {sorted(unknown)}; choose from {known}")
    return names


def server_list(text: str) -> list[str]:
    """``baseline,wsproto`` → validated server names."""
    return name_list(text, KNOWN_SERVERS, "server")


def load_list(text: str) -> list[str]:
    """``tenth,one`` → validated load names."""
    return name_list(text, tuple(LOADS), "load")


def check_peer_packages(servers: list[str]) -> None:
    """A peer whose framework is not installed stops the run at once, saying what to install."""
    for name in (server for server in servers if server in PEERS):
        missing = [package for package in PEERS[name][1] if importlib.util.find_spec(package) is None]
        if missing:
            sys.exit(f"bench: the {name} peer needs {', '.join(missing)}: install the bench extra "
                     "(.venv/bin/pip install -e '.[bench]')")
    if any(server.endswith(TLS_SUFFIX) for server in servers) and importlib.util.find_spec("trustme") is None:
        sys.exit("bench: the -tls servers need trustme: install the bench extra (.venv/bin/pip install -e '.[bench]')")


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Options; ``--quick`` overrides the matrix with a seconds-long smoke run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--quick", action="store_true",
        help="smoke run: 100 connections, rooms of 10, load tenth, 1 s, 1 repetition")
    add("--connections", type=int_list, default=[100, 1000, 10000], help="comma-separated")
    add("--room-sizes", type=int_list, default=[10, 100], help="comma-separated")
    add("--repeat", type=int, default=3, help="repetitions per server (median is reported)")
    add("--duration", type=float, default=10.0, help="seconds of load per run")
    add("--window", type=int, default=1, help="messages in flight per sender")
    add("--payload-bytes", type=int, default=64)
    add("--servers", type=server_list, default=list(SERVERS),
        help="comma-separated, from " + ",".join(KNOWN_SERVERS) + " (default: all but the peers)")
    add("--peers", action="store_true", help="add the peer servers: " + ",".join(PEERS))
    add("--redis", action="store_true",
        help="add the servers keeping rooms in Redis (a redis-server per run): " + ",".join(REDIS_SERVERS))
    add("--tls", action="store_true",
        help="add the servers serving wss:// with their own TLS, and the same servers in plain to compare: "
        + ",".join(TLS_SERVERS))
    add("--loads", type=load_list, default=list(LOADS),
        help="comma-separated: tenth (a tenth of each room talks, --window in flight each), "
             "one (one sender per room, one message in flight); one runs only where it differs from tenth")
    add("--json", type=Path, default=None, metavar="OUT", help="also write every run and the medians here")
    add("--no-pin", action="store_true",
        help="pin nothing: server (and its workers, and Redis) and generator share every CPU, e.g. to see what "
        "--workers gains from the CPU the generator leaves")
    args = parser.parse_args(argv)
    if args.peers:
        args.servers += [name for name in PEERS if name not in args.servers]
    if args.redis:
        args.servers += [name for name in REDIS_SERVERS if name not in args.servers]
    if args.tls:
        plain = [name.removesuffix(TLS_SUFFIX) for name in TLS_SERVERS]
        args.servers += [name for name in (*plain, *TLS_SERVERS) if name not in args.servers]
    if args.quick:
        args.connections, args.room_sizes, args.loads, args.repeat, args.duration = [100], [10], ["tenth"], 1, 1.0
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the matrix, print the table; 1 if anything was lost, errored or failed."""
    argv = sys.argv if argv is None else argv
    args = parse_args(argv[1:])
    check_peer_packages(args.servers)
    started = time.monotonic()
    file_limit = raise_file_limit()
    max_connections = min(20000, file_limit - FD_HEADROOM)
    check_capacity(max(args.connections), file_limit)
    logs = Path(tempfile.mkdtemp(prefix="chat-bench-"))
    placement = Placement(None, None) if args.no_pin else Placement.choose()
    tls = Certificates.make(logs) if any(name.endswith(TLS_SUFFIX) for name in args.servers) else None
    settings = Settings(args.duration, args.window, args.payload_bytes, max_connections, placement, logs, tls)
    print(header(args, settings, argv), file=sys.stderr, flush=True)
    runs = run_matrix(args, settings)
    elapsed = time.monotonic() - started
    print(f"\n{header(args, settings, argv)}\nwall time: {elapsed:.0f} s\n\n{table(runs, args.servers)}\n")
    if durability := durability_table(runs, args.servers):
        print(f"{durability}\n")
    if shared := redis_table(runs, args.servers):
        print(f"{shared}\n")
    if secure := tls_table(runs, args.servers):
        print(f"{secure}\n")
    bad = failures(runs)
    for line in warnings(runs):
        print(f"WARNING: {line}", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "command": argv, "wall_seconds": elapsed,
                                         "runs": [asdict(run) for run in runs]}, indent=1))
    if bad:
        print("FAILED: lost messages, errors or failed runs:\n  " + "\n  ".join(bad), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
