"""Crash recovery: SIGKILL the server mid-stream, restart it on the same file, and nothing anyone saw is lost."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from websockets.exceptions import ConnectionClosed

from chat_client import ChatClient
from transports.config import Transport

HOST = "127.0.0.1"
WINDOW = 20  # a sender's own messages in flight (sent, not yet shown back to it)
KILL_AFTER = 150  # messages the silent member has seen when the server is killed
SEND_CAP = 1000  # bound on each sender; the kill comes long before it
TRAFFIC_TIMEOUT = 10.0
QUIET = 1.0  # a joiner's replay is over once nothing arrives for this long


@dataclass
class ServerProcess:
    """``python -m transports`` in a process of its own, its output going to ``log``."""

    process: subprocess.Popen[bytes]
    ws_port: int
    log: Path

    @property
    def url(self) -> str:
        return f"ws://{HOST}:{self.ws_port}/"

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return f"\n--- last lines of {self.log.name} ---\n" + "\n".join(text.splitlines()[-lines:])


def free_ports(count: int) -> list[int]:
    """Ports nobody listens on right now, all different."""
    with ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind((HOST, 0))
        return [int(sock.getsockname()[1]) for sock in sockets]


def wait_accepting(server: ServerProcess, timeout: float = 20.0) -> None:
    """Block until the server accepts TCP connections on its WebSocket port."""
    deadline = time.monotonic() + timeout
    while True:
        returncode = server.process.poll()
        assert returncode is None, f"server exited with status {returncode} before accepting{server.tail()}"
        try:
            with socket.create_connection((HOST, server.ws_port), timeout=0.5):
                return
        except OSError:
            assert time.monotonic() < deadline, f"server not accepting within {timeout} s{server.tail()}"
            time.sleep(0.05)


@contextmanager
def chat_server(transport: Transport, db: Path, log: Path) -> Iterator[ServerProcess]:
    """A server keeping its rooms in ``db``; killed on the way out if still running."""
    http_port, ws_port = free_ports(2)
    argv = [
        sys.executable, "-m", "transports", "--transport", transport.value, "--host", HOST,
        "--http-port", str(http_port), "--ws-port", str(ws_port), "--db", str(db),
        "--rate", "100000", "--burst", "100000", "--history-limit", "5000", "--log-level", "INFO",
    ]  # fmt: skip
    with log.open("ab") as output:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT)
    server = ServerProcess(process, ws_port, log)
    try:
        wait_accepting(server)
        yield server
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


@dataclass
class Member:
    """One client in the room and, in order, every talk it was shown."""

    name: str
    client: ChatClient
    user_id: int
    seen: list[tuple[str, int]] = field(default_factory=list)
    """(payload, userId) of each talk event received."""
    own_seen: int = 0
    sent: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    gone: str | None = None
    """Why the connection ended, once it has."""
    changed: threading.Condition = field(default_factory=threading.Condition)

    def wait_gone(self) -> bool:
        """Wait for the reader to notice the connection ended."""
        with self.changed:
            return self.changed.wait_for(lambda: self.gone is not None, timeout=TRAFFIC_TIMEOUT)

    @property
    def payloads(self) -> list[str]:
        with self.changed:
            return [payload for payload, _ in self.seen]


def read_until_gone(member: Member, stop: threading.Event) -> None:
    """Record every event the member receives until its connection dies (or ``stop``)."""
    while not stop.is_set():
        try:
            event = member.client.recv(timeout=0.2)
        except TimeoutError:
            continue
        except (ConnectionClosed, OSError) as exc:
            with member.changed:
                member.gone = repr(exc)
                member.changed.notify_all()
            return
        except Exception as exc:
            with member.changed:
                member.problems.append(f"reader: {exc!r}")
                member.gone = repr(exc)
                member.changed.notify_all()
            return
        with member.changed:
            if event.get("type") == "talk":
                member.seen.append((event["payload"], event["userId"]))
                member.own_seen += event["userId"] == member.user_id
            else:
                member.problems.append(f"unexpected event: {event}")
            member.changed.notify_all()


def send_numbered(member: Member, stop: threading.Event) -> None:
    """Talk ``NAME-0``, ``NAME-1``, ... as fast as the member's own messages come back, at most WINDOW ahead."""
    for number in range(SEND_CAP):
        deadline = time.monotonic() + TRAFFIC_TIMEOUT
        with member.changed:
            while not (stop.is_set() or member.gone is not None or member.own_seen >= number - WINDOW):
                if not member.changed.wait(deadline - time.monotonic()):
                    member.problems.append(f"sender: own messages stopped coming back after {number} sent")
                    return
            if stop.is_set() or member.gone is not None:
                return
            payload = f"{member.name}-{number}"
            member.sent.append(payload)  # before sending: it may reach the server even if send() fails
        try:
            member.client.talk(payload)
        except (ConnectionClosed, OSError):
            return
        except Exception as exc:
            with member.changed:
                member.problems.append(f"sender: {exc!r}")
            return


@contextmanager
def traffic(members: list[Member], senders: list[Member]) -> Iterator[threading.Event]:
    """A reader thread per member, a sender thread per sender; all stopped and joined on the way out."""
    stop = threading.Event()
    threads = [threading.Thread(target=read_until_gone, args=(m, stop), name=f"read-{m.name}") for m in members]
    threads += [threading.Thread(target=send_numbered, args=(m, stop), name=f"send-{m.name}") for m in senders]
    for thread in threads:
        thread.start()
    try:
        yield stop
    finally:
        stop.set()
        for member in members:
            with member.changed:
                member.changed.notify_all()
        for thread in threads:
            thread.join(timeout=10)
        alive = [thread.name for thread in threads if thread.is_alive()]
        assert not alive, f"threads still running: {alive}"


def join(client: ChatClient, join_key: str, server: ServerProcess) -> int:
    """Join the room; the new member's user id."""
    client.send({"type": "init", "joinKey": join_key, "render": "text"})
    reply = client.recv()
    assert reply["type"] == "init", f"joining {join_key!r} after the restart: {reply}{server.tail()}"
    assert reply["joinKey"] == join_key, reply
    user_id = reply["userId"]
    assert isinstance(user_id, int), reply
    return user_id


def first_out_of_order(part: list[str], whole: list[str]) -> str | None:
    """None if ``part`` is a subsequence of ``whole``, else which element breaks it."""
    position = 0
    for index, item in enumerate(part):
        try:
            position = whole.index(item, position) + 1
        except ValueError:
            where = "missing from" if item not in whole else "out of order in"
            return f"item {index} ({item!r}) is {where} the replay"
    return None


def test_sigkill_mid_stream_loses_nothing_any_member_saw(transport: Transport, tmp_path: Path) -> None:
    """Join links, user ids and every message shown survive SIGKILL during traffic, in order."""
    db = tmp_path / "chat.db"
    with chat_server(transport, db, tmp_path / "server-before.log") as first, ExitStack() as clients:
        a, b, c = (clients.enter_context(ChatClient(first.url)) for _ in range(3))
        started = a.init()
        join_key = started["joinKey"]
        alice = Member("A", a, started["userId"])
        bob = Member("B", b, b.init(join_key)["userId"])
        carol = Member("C", c, c.init(join_key)["userId"])
        members = [alice, bob, carol]
        ids_before = [m.user_id for m in members]
        assert len(set(ids_before)) == 3, ids_before
        with traffic(members, senders=[alice, bob]):
            with carol.changed:
                enough = carol.changed.wait_for(
                    lambda: len(carol.seen) >= KILL_AFTER or carol.gone is not None, timeout=TRAFFIC_TIMEOUT
                )
            assert enough, f"C saw only {len(carol.seen)} messages in {TRAFFIC_TIMEOUT} s{first.tail()}"
            assert carol.gone is None, f"C's connection ended before the kill: {carol.gone}{first.tail()}"
            first.process.kill()
            first.process.wait(timeout=10)
            for member in members:
                assert member.wait_gone(), f"{member.name}'s connection outlived the server"
    for member in members:
        assert not member.problems, f"{member.name}: {member.problems}{first.tail()}"
    for sender in (alice, bob):
        assert len(sender.sent) < SEND_CAP, f"{sender.name} had stopped sending before the kill"
    sent = {payload: m.user_id for m in (alice, bob) for payload in m.sent}
    for member in members:
        assert member.seen, f"{member.name} saw nothing before the kill"
        for payload, user_id in member.seen:
            assert sent.get(payload) == user_id, f"{member.name} was shown {payload!r} from user {user_id}"

    with chat_server(transport, db, tmp_path / "server-after.log") as second, \
            ChatClient(second.url) as d, ChatClient(second.url) as e:  # fmt: skip
        dave_id = join(d, join_key, second)
        assert dave_id > max(ids_before), f"user id {dave_id} reused after the restart (before: {ids_before})"
        replay = d.talks_until_quiet(QUIET)
        erin_id = join(e, join_key, second)
        assert erin_id > dave_id, f"user id {erin_id} after {dave_id}"
        assert [e.recv() for _ in range(len(replay))] == replay, "a second joiner was replayed something else"
        d.talk("D-after")
        for client in (d, e):  # the room is live again, and E was replayed nothing more
            event = client.recv()
            assert (event["type"], event["payload"], event["userId"]) == ("talk", "D-after", dave_id), event

    logs = first.tail() + second.tail()
    payloads = [event["payload"] for event in replay]
    assert len(set(payloads)) == len(payloads), f"the replay repeats messages: {payloads}"
    for event in replay:
        assert sent.get(event["payload"]) == event["userId"], f"replayed {event} was not sent by that user"
        assert isinstance(event["time"], int | float), event
    for member in members:
        problem = first_out_of_order(member.payloads, payloads)
        assert problem is None, (
            f"{member.name} saw {len(member.seen)} messages before the kill, the replay has {len(payloads)}: "
            f"{problem}{logs}"
        )
    for sender in (alice, bob):
        own = [payload for payload in payloads if payload.startswith(f"{sender.name}-")]
        assert own == sender.sent[: len(own)], f"{sender.name}: replayed with a gap or out of order: {own}"
