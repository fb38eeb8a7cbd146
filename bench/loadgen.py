"""Load generator for the chat protocol: picows on uvloop, one process.

Opens ``--connections`` WebSocket connections in rooms of ``--room-size``, then
lets ``--senders-per-room`` members of every room talk in a closed loop (each
keeps ``--window`` messages in flight and sends the next one when its own comes
back through the room's broadcast) for ``--duration`` seconds. Every member
timestamps what it receives, so the result has end-to-end latency percentiles
and an exact delivery count (every message must reach every member of its room).

Talks to its runner through stdout (one JSON object per line) and stdin:

    {"event": "joined", ...}       all connections have their init reply;
                                   waits for a line on stdin before the load
    {"event": "load-start"}
    {"event": "load-end"}          sending stopped and in-flight messages drained
    {"event": "result", ...}       counts, rates, latencies, own CPU time

Exit status 1 on any lost message, error event or unexpected close.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import resource
import ssl
import sys
import time
from array import array
from dataclasses import dataclass, field
from typing import Any

import uvloop
from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

# Our servers and the baseline both encode talk events in this field order.
TALK_PREFIX = b'{"type":"talk","payload":"'
PREFIX_LEN = len(TALK_PREFIX)
TALK_SUFFIX = b'"}'
PAD = b"x" * 1_000_000
CONNECT_CONCURRENCY = 200
CONNECT_TIMEOUT = 60.0
DRAIN_TIMEOUT = 30.0
MAX_ERROR_SAMPLES = 10


@dataclass(eq=False)
class Stats:
    """Counters shared by every connection (one event loop: no locking needed)."""

    sending: bool = False
    finished: bool = False
    sent: int = 0
    expected: int = 0
    deliveries: int = 0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    latencies_ns: array[int] = field(default_factory=lambda: array("q"))
    drained: asyncio.Event = field(default_factory=asyncio.Event)

    def check_drained(self) -> None:
        """Once sending has stopped: signal when every expected delivery has arrived."""
        if not self.sending and self.deliveries >= self.expected:
            self.drained.set()

    def error(self, what: str) -> None:
        """Count an error; keep the first few descriptions for the report."""
        self.errors += 1
        if len(self.error_samples) < MAX_ERROR_SAMPLES:
            self.error_samples.append(what)


@dataclass(eq=False)
class Room:
    """One room as the generator sees it: its members and how many talks were sent into it."""

    size: int
    members: list[Member] = field(default_factory=list)
    sent: int = 0


class Member(WSListener):
    """One connection. Every member counts and times deliveries; senders also talk."""

    def __init__(self, stats: Stats, room: Room, payload_bytes: int) -> None:
        super().__init__()
        self.stats = stats
        self.room = room
        self.payload_bytes = payload_bytes
        self.transport: WSTransport | None = None
        self.init_reply: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.received = 0
        self.sender_key = b"-"  # senders get their decimal id; "-" never matches one
        self.seq = 0

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        data = frame.get_payload_as_bytes()
        if data.startswith(TALK_PREFIX) and frame.fin:
            now = time.monotonic_ns()
            sender, _seq, sent_ns, _pad = data[PREFIX_LEN:].split(b":", 3)
            stats = self.stats
            stats.deliveries += 1
            stats.latencies_ns.append(now - int(sent_ns))
            self.received += 1
            if sender == self.sender_key and stats.sending:
                self.send_talk()
            elif not stats.sending:
                stats.check_drained()
        else:
            self._other_frame(frame, data)

    def _other_frame(self, frame: WSFrame, data: bytes) -> None:
        """Anything but a talk: our init reply, or an error."""
        if frame.msg_type is WSMsgType.CLOSE:
            self.stats.error(f"close frame {frame.get_close_code()} {frame.get_close_reason()!r}")
            return
        if frame.msg_type is not WSMsgType.TEXT or not frame.fin:
            self.stats.error(f"unexpected frame {frame}")
            return
        event = json.loads(data)
        if event.get("type") == "init" and not self.init_reply.done():
            self.init_reply.set_result(event)
        else:
            self.stats.error(f"unexpected event {data[:200]!r}")

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if not self.stats.finished:
            self.stats.error("unexpected disconnect")
        if not self.init_reply.done():
            self.init_reply.set_exception(ConnectionError("disconnected before the init reply"))

    def send_init(self, join_key: str | None) -> None:
        """Create a room (no key) or join one."""
        event: dict[str, str] = {"type": "init", "render": "text"}
        if join_key is not None:
            event["joinKey"] = join_key
        self._send(json.dumps(event).encode())

    def send_talk(self) -> None:
        """Send the next message: ``sender:seq:monotonic_ns:`` padded to the payload size."""
        self.seq += 1
        head = b"%s:%d:%d:" % (self.sender_key, self.seq, time.monotonic_ns())
        payload = head + PAD[: self.payload_bytes - len(head)]
        self._send(TALK_PREFIX + payload + TALK_SUFFIX)
        self.stats.sent += 1
        self.stats.expected += self.room.size
        self.room.sent += 1

    def _send(self, message: bytes) -> None:
        assert self.transport is not None
        self.transport.send(WSMsgType.TEXT, message)


def room_sizes(connections: int, room_size: int) -> list[int]:
    """Rooms of ``room_size``; the last one holds the remainder."""
    return [min(room_size, connections - start) for start in range(0, connections, room_size)]


@dataclass(frozen=True)
class Target:
    """Where to connect, and for wss:// the context that trusts the server's CA."""

    url: str
    tls: ssl.SSLContext | None = None


async def open_member(target: Target, stats: Stats, room: Room, join_key: str | None, payload_bytes: int,
                      limit: asyncio.Semaphore) -> Member:
    """Connect, send init and wait for its reply, holding one of the connect slots throughout."""
    async with limit:
        _, listener = await ws_connect(lambda: Member(stats, room, payload_bytes), target.url,
                                       ssl_context=target.tls, websocket_handshake_timeout=CONNECT_TIMEOUT)
        assert isinstance(listener, Member)
        listener.send_init(join_key)
        await asyncio.wait_for(listener.init_reply, CONNECT_TIMEOUT)
    return listener


async def open_room(target: Target, stats: Stats, size: int, payload_bytes: int, limit: asyncio.Semaphore) -> Room:
    """The first member creates the room, the others join it with its key."""
    room = Room(size)
    creator = await open_member(target, stats, room, None, payload_bytes, limit)
    key = creator.init_reply.result()["joinKey"]
    others = await asyncio.gather(
        *(open_member(target, stats, room, key, payload_bytes, limit) for _ in range(size - 1)))
    room.members = [creator, *others]
    return room


def pick_senders(rooms: list[Room], senders_per_room: int) -> list[Member]:
    """The first members of every room talk; their ids are unique across rooms."""
    senders = [member for room in rooms for member in room.members[:senders_per_room]]
    for number, sender in enumerate(senders):
        sender.sender_key = str(number).encode()
    return senders


async def drain(stats: Stats) -> None:
    """Wait until every sent message has reached every member of its room, or DRAIN_TIMEOUT."""
    stats.check_drained()
    try:
        async with asyncio.timeout(DRAIN_TIMEOUT):
            await stats.drained.wait()
    except TimeoutError:
        pass  # what has not arrived by now counts as lost


def percentile_ms(sorted_ns: list[int], fraction: float) -> float:
    """Nearest-rank percentile of sorted nanoseconds, in milliseconds."""
    if not sorted_ns:
        return float("nan")
    return sorted_ns[min(len(sorted_ns) - 1, int(fraction * len(sorted_ns)))] / 1e6


def cpu_seconds() -> float:
    """User plus system CPU time of this process."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def emit(event: dict[str, Any]) -> None:
    """One JSON line to the runner."""
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def raise_file_limit() -> None:
    """Every connection is a file descriptor: lift the soft limit to the hard one."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def lost_deliveries(rooms: list[Room]) -> int:
    """Messages a member should have received but did not (every member gets every talk of its room)."""
    return sum(max(0, room.sent - member.received) for room in rooms for member in room.members)


async def connect_phase(args: argparse.Namespace, stats: Stats) -> tuple[list[Room], float]:
    """Open every connection; return the rooms and the seconds it took."""
    limit = asyncio.Semaphore(CONNECT_CONCURRENCY)
    target = Target(args.url, ssl.create_default_context(cafile=args.ca_file) if args.ca_file else None)
    started = time.perf_counter()
    rooms = await asyncio.gather(*(open_room(target, stats, size, args.payload_bytes, limit)
                                   for size in room_sizes(args.connections, args.room_size)))
    return list(rooms), time.perf_counter() - started


async def load_phase(args: argparse.Namespace, stats: Stats, senders: list[Member]) -> tuple[float, float]:
    """Talk for the duration, stop, drain; return (elapsed seconds, own CPU seconds)."""
    emit({"event": "load-start"})
    gc.disable()  # the hot path allocates only short-lived objects; collections cost ~5% and add jitter
    cpu_before, started = cpu_seconds(), time.perf_counter()
    stats.sending = True
    for sender in senders:
        for _ in range(args.window):
            sender.send_talk()
    await asyncio.sleep(args.duration)
    stats.sending = False
    await drain(stats)
    elapsed, cpu = time.perf_counter() - started, cpu_seconds() - cpu_before
    emit({"event": "load-end"})
    gc.enable()
    return elapsed, cpu


async def run(args: argparse.Namespace) -> int:
    """Connect, wait for the runner, load, report; 0 when nothing was lost."""
    raise_file_limit()
    stats = Stats()
    try:
        rooms, connect_s = await connect_phase(args, stats)
    except Exception as error:  # refused handshakes (HTTP 429/503), timeouts, resets: all reported
        stats.error(f"connect phase failed: {error!r}")
        emit({"event": "result", "connections": args.connections, "errors": stats.errors,
              "error_samples": stats.error_samples, "lost": 0, "failed": True})
        return 1
    emit({"event": "joined", "connections": args.connections, "rooms": len(rooms),
          "connect_seconds": connect_s, "conns_per_sec": args.connections / connect_s})
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    senders = pick_senders(rooms, args.senders_per_room or max(1, args.room_size // 10))
    elapsed, load_cpu = await load_phase(args, stats, senders)
    stats.finished = True
    for room in rooms:
        for member in room.members:
            if member.transport is not None:
                member.transport.disconnect(graceful=False)
    result = summary(args, stats, rooms, connect_s, elapsed, load_cpu, len(senders))
    emit(result)
    return 0 if result["lost"] == 0 and result["errors"] == 0 else 1


def summary(args: argparse.Namespace, stats: Stats, rooms: list[Room], connect_s: float, elapsed: float,
            load_cpu: float, senders: int) -> dict[str, Any]:
    """The final report line."""
    latencies = sorted(stats.latencies_ns)
    lost = lost_deliveries(rooms)
    if stats.deliveries > stats.expected:
        stats.error(f"{stats.deliveries - stats.expected} deliveries more than expected")
    return {
        "event": "result", "connections": args.connections, "room_size": args.room_size,
        "senders": senders, "window": args.window, "payload_bytes": args.payload_bytes,
        "conns_per_sec": args.connections / connect_s, "connect_seconds": connect_s,
        "sent": stats.sent, "deliveries": stats.deliveries, "expected_deliveries": stats.expected,
        "lost": lost, "errors": stats.errors, "error_samples": stats.error_samples,
        "duration": elapsed, "deliveries_per_sec": stats.deliveries / elapsed,
        "p50_ms": percentile_ms(latencies, 0.50), "p99_ms": percentile_ms(latencies, 0.99),
        "cpu_seconds_load": load_cpu, "cpu_percent_load": 100 * load_cpu / elapsed,
        "cpu_seconds_total": cpu_seconds(),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--url", required=True, help="ws://host:port/ or wss://host:port/")
    add("--ca-file", default=None, help="wss://: trust the server's certificate from this CA (PEM)")
    add("--connections", type=int, default=100)
    add("--room-size", type=int, default=10)
    add("--senders-per-room", type=int, default=0, help="default: max(1, room size // 10)")
    add("--duration", type=float, default=10.0, help="seconds of load")
    add("--window", type=int, default=1, help="messages in flight per sender")
    add("--payload-bytes", type=int, default=64, help="talk payload size (at least the header, ~30 bytes)")
    return parser.parse_args(argv)


def main() -> None:
    """Run on uvloop and exit with run()'s status."""
    sys.exit(uvloop.run(run(parse_args())))


if __name__ == "__main__":
    main()
