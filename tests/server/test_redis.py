"""Rooms shared by several chat-server processes through a real redis-server, on both transports.

Each process stands for a host: clients on different processes share rooms,
get unique user ids and one order of talks, and a joiner anywhere is shown
the same history; version-2 clients see the same members, names, offsets
and history on every process, and a token or a talk id works on any of them.
Faults are real: a process SIGKILLed mid-traffic (its users are reported left
once their presence expires), Redis stopped and started again, the
subscribers' connections cut by Redis, and a Redis that comes back without
its data.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from chat_client import ChatClient, V2Client
from chatcore import problems
from live import ROOT, wait_until
from nginx_server import nginx
from probes import close_code_of
from processes import ServerProcess, children, server_process
from redis_server import STALLS, RedisServer, free_port, redis_proxy, redis_server, stalled

TRANSPORTS = ["trio-websocket", "wsproto"]
TIMEOUT = "1"  # --redis-timeout in these tests: errors come quickly


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    with redis_server(tmp_path) as server:
        yield server


def start(stack: ExitStack, redis: RedisServer, transport: str, *more: str, via: str | None = None) -> ServerProcess:
    """A process on this Redis (``via``: another URL that reaches it)."""
    return stack.enter_context(server_process(
        "--transport", transport, "--redis", via or redis.url, "--redis-timeout", TIMEOUT,
        "--http-port", "0", "--ws-port", "0", "--ping-interval", "0", "--rate", "1000", "--burst", "1000", *more,
    ))


def two_processes_one_room(
    stack: ExitStack, redis: RedisServer, transport: str
) -> tuple[ServerProcess, ServerProcess, ChatClient, ChatClient, str]:
    """Processes a and b, alice on a starting a room and bob on b joining it."""
    a, b = start(stack, redis, transport), start(stack, redis, transport)
    alice = stack.enter_context(ChatClient(url(a)))
    join_key = alice.init()["joinKey"]
    bob = stack.enter_context(ChatClient(url(b)))
    bob.init(join_key)
    return a, b, alice, bob, join_key


def url(process: ServerProcess) -> str:
    return f"ws://127.0.0.1:{process.ws_port}/"


def talks(client: ChatClient, count: int) -> list[str]:
    """The payloads of the next ``count`` talk events (error events fail the test)."""
    payloads: list[str] = []
    while len(payloads) < count:
        event = client.recv()
        assert event["type"] == "talk", event
        payloads.append(event["payload"])
    return payloads


def replay(client: ChatClient, quiet: float = 0.5) -> list[str]:
    """The payloads a joiner is shown until nothing comes for ``quiet`` seconds."""
    return [event["payload"] for event in client.talks_until_quiet(quiet)]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_three_processes_share_a_room_with_unique_ids_one_order_and_replay_anywhere(
    redis: RedisServer, transport: str
) -> None:
    with ExitStack() as stack:
        processes = [start(stack, redis, transport) for _ in range(3)]
        clients = [stack.enter_context(ChatClient(url(process))) for process in processes for _ in range(2)]
        join_key = clients[0].init()["joinKey"]
        ids = [1] + [client.init(join_key)["userId"] for client in clients[1:]]
        assert sorted(ids) == list(range(1, 7))
        for round_ in range(5):
            for n, client in enumerate(clients):
                client.talk(f"{round_}:{n}")
        seen = [talks(client, 30) for client in clients]
        assert all(sequence == seen[0] for sequence in seen), "every member sees one order"
        assert sorted(seen[0]) == sorted(f"{r}:{n}" for r in range(5) for n in range(6))
        for process in processes:  # a joiner on any process is shown the same history
            with ChatClient(url(process)) as joiner:
                joiner.init(join_key)
                assert replay(joiner) == seen[0]
        with ChatClient(url(processes[1])) as stranger:
            stranger.send({"type": "init", "joinKey": "no-such-room"})
            assert stranger.recv() == {"type": "error", "message": "chat not found.", "payload": "chat not found."}


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_process_killed_mid_traffic_takes_nothing_with_it(redis: RedisServer, transport: str) -> None:
    with ExitStack() as stack:
        survivor = start(stack, redis, transport)
        doomed = start(stack, redis, transport)
        listener = stack.enter_context(ChatClient(url(survivor)))
        join_key = listener.init()["joinKey"]
        talker = stack.enter_context(ChatClient(url(doomed)))
        talker.init(join_key)
        shown: list[str] = []
        n = 0
        while len(shown) < 40:  # the doomed process's client talks; the survivor's shows each one
            talker.talk(f"t{n}")
            n += 1
            shown.extend(talks(listener, 1))
        for more in range(20):  # some in flight when the process dies
            talker.talk(f"t{n + more}")
        doomed.process.send_signal(signal.SIGKILL)
        doomed.process.wait(timeout=5)
        shown.extend(replay(listener, quiet=1.0))
        with ChatClient(url(survivor)) as back:  # the killed process's user comes back on another
            back.init(join_key)
            history = replay(back)
        assert history == shown  # everything anyone was shown is there, once, in the same order
        assert history[:40] == [f"t{k}" for k in range(40)]
        back_talk = stack.enter_context(ChatClient(url(survivor)))
        back_talk.init(join_key)
        replay(back_talk)
        back_talk.talk("after")
        assert talks(listener, 1) == ["after"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_redis_down_gives_errors_and_the_same_connections_carry_on_when_it_is_back(
    redis: RedisServer, transport: str
) -> None:
    with ExitStack() as stack:
        a, b, alice, bob, join_key = two_processes_one_room(stack, redis, transport)
        alice.talk("before")
        assert talks(alice, 1) == talks(bob, 1) == ["before"]

        redis.stop()
        sent = time.monotonic()
        bob.talk("while down")
        error = bob.recv(timeout=5)
        assert time.monotonic() - sent < 1.5  # --redis-timeout 1, and some slack for a loaded machine
        assert error["type"] == "error", error
        assert error["message"] == problems.TALK_NOT_SAVED.text, error
        with ChatClient(url(a)) as newcomer:
            newcomer.send({"type": "init", "joinKey": join_key})
            assert newcomer.recv(timeout=5)["type"] == "error"

        redis.start()  # with its append-only file: nothing it acknowledged is lost
        deadline = time.monotonic() + 15
        while True:  # the same connections, once Redis answers again
            bob.talk("back")
            event = bob.recv(timeout=5)
            if event["type"] == "talk":
                break
            assert time.monotonic() < deadline, event
            time.sleep(0.2)
        assert event["payload"] == "back"
        assert talks(alice, 1) == ["back"]  # alice's process listens to the room again
        alice.talk("and on")
        assert talks(bob, 1) == talks(alice, 1) == ["and on"]
        with ChatClient(url(b)) as joiner:
            joiner.init(join_key)
            assert replay(joiner) == ["before", "back", "and on"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_talks_published_while_a_subscriber_was_cut_off_are_read_back_in_order(
    redis: RedisServer, transport: str
) -> None:
    with ExitStack() as stack:
        a, b, alice, bob, _ = two_processes_one_room(stack, redis, transport)
        expected: list[str] = []
        stop = threading.Event()
        errors: list[Any] = []

        def cut_subscribers() -> None:  # Redis drops every pub/sub connection, again and again
            client = redis.client()
            while not stop.is_set():
                client.client_kill_filter(_type="pubsub")
                time.sleep(0.05)

        cutter = threading.Thread(target=cut_subscribers)
        cutter.start()
        try:
            for n in range(150):
                alice.talk(f"a{n}")
                expected.append(f"a{n}")
                event = alice.recv()
                if event["type"] != "talk":
                    errors.append(event)
                    expected.pop()
                    continue
                assert event["payload"] == f"a{n}"
        finally:
            stop.set()
            cutter.join()
        assert not errors
        assert talks(bob, len(expected)) == expected  # every talk, once, in order, though pub/sub lost some
        assert any("reconnecting" in line for line in a.log + b.log)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_redis_that_lost_its_data_is_noticed_and_members_rejoin(redis: RedisServer, transport: str) -> None:
    with ExitStack() as stack:
        a = start(stack, redis, transport)
        alice = stack.enter_context(ChatClient(url(a)))
        join_key = alice.init()["joinKey"]
        alice.talk("hello")
        assert talks(alice, 1) == ["hello"]
        redis.stop()
        redis.wipe()
        redis.start()
        deadline = time.monotonic() + 15
        closed = None
        while closed is None:
            assert time.monotonic() < deadline
            try:
                alice.talk("anyone?")
                alice.recv(timeout=1)
            except ConnectionClosed as error:
                closed = error
            except TimeoutError:
                pass
        assert closed.rcvd is not None
        assert closed.rcvd.code == 1012
        wait_until(lambda: any("CRITICAL" in line and "without its data" in line for line in a.log))
        with ChatClient(url(a)) as again:
            again.send({"type": "init", "joinKey": join_key})
            assert again.recv()["message"] == "chat not found."  # not silently a different history


def test_a_password_protected_redis_over_tcp_and_a_unix_socket_and_the_password_is_never_logged(
    tmp_path: Path,
) -> None:
    secret = "s3cret-never-logged"
    with redis_server(tmp_path, password=secret) as redis, ExitStack() as stack:
        over_tcp = start(stack, redis, "wsproto")
        over_unix = stack.enter_context(server_process(
            "--redis", redis.unix_url, "--http-port", "0", "--ws-port", "0", "--ping-interval", "0",
        ))
        alice = stack.enter_context(ChatClient(url(over_tcp)))
        join_key = alice.init()["joinKey"]
        bob = stack.enter_context(ChatClient(url(over_unix)))
        bob.init(join_key)
        bob.talk("through the socket file")
        assert talks(alice, 1) == talks(bob, 1) == ["through the socket file"]
        redis.stop()  # and the reconnect attempts log the URL too
        bob.talk("lost")
        assert bob.recv()["type"] == "error"
        wait_until(lambda: any("reconnecting" in line for line in over_tcp.log))
        redis.start()
    log = over_tcp.whole_log() + over_unix.whole_log()
    assert "redis://:***@127.0.0.1" in log
    assert secret not in log


def test_rediss_with_a_certificate_made_at_test_time(tmp_path: Path) -> None:
    with redis_server(tmp_path, tls=True) as redis, ExitStack() as stack:
        over_tls = stack.enter_context(server_process(
            "--redis", redis.tls_url, "--http-port", "0", "--ws-port", "0", "--ping-interval", "0",
        ))
        plain = start(stack, redis, "wsproto")
        alice = stack.enter_context(ChatClient(url(over_tls)))
        join_key = alice.init()["joinKey"]
        bob = stack.enter_context(ChatClient(url(plain)))
        bob.init(join_key)
        alice.talk("encrypted on the way to Redis")
        assert talks(alice, 1) == talks(bob, 1) == ["encrypted on the way to Redis"]
        assert any("rediss://127.0.0.1" in line for line in over_tls.log)


def test_the_redis_url_is_checked_at_start() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "transports", "--redis", "http://localhost:6379"], capture_output=True, text=True,
        timeout=30, stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 2
    assert "--redis: must be a redis://, rediss:// (TLS) or unix:// URL" in result.stderr


def test_redis_keeps_rooms_under_hash_tagged_keys_and_the_model_answers_alike(redis: RedisServer) -> None:
    """What the simulation's model of Redis answers is what the real scripts answer."""
    from chatcore import AddUser, Append, Fill, Filled, Load, LogFailed
    from redis_model import RedisModel
    from transports.config import RedisSettings
    from transports.storage.redislog import RedisLog

    log = RedisLog(RedisSettings(redis.url, retention=3))
    log.open()
    model = RedisModel(retention=3)
    requests: list[AddUser | Append | Load] = [
        AddUser(1, "k", 10.0), AddUser(2, "k", 11.0), AddUser(3, "k", None), AddUser(4, "nope", None),
        *(Append(5 + n, "k", 1, 20.0 + n, f"m{n}\nwith a newline") for n in range(5)),
        Append(10, "nope", 1, 1.0, "x"), Load(11, "k", 2), Load(12, "k", 0), Load(13, "nope", 5),
    ]
    try:
        real = log.run(requests)
        expected = [model.add_user(r) if isinstance(r, AddUser) else model.append(r) if isinstance(r, Append)
                    else model.load(r, log.origin) for r in requests]
        assert real == expected
        assert isinstance(real[3], LogFailed)
        keys = sorted(key.decode() if isinstance(key, bytes) else key for key in redis.client().keys("chat:*"))
        assert keys == ["chat:epoch", "chat:{k}:room", f"chat:{{k}}:sent:{log.origin}", "chat:{k}:talks"]
        assert redis.client().xlen("chat:{k}:talks") >= 3  # trimmed to about the retention, never below it
        assert log.run([Fill("k", 3)]) == [Filled("k", 3, tuple(model.range("k", 3)))]
    finally:
        log.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_workers_share_the_ports_and_the_rooms_with_other_processes_and_come_back_when_killed(
    redis: RedisServer, transport: str
) -> None:
    """Three processes, as if on three hosts, and a --workers 2 pair, all in one room."""
    with ExitStack() as stack:
        pair = start(stack, redis, transport, "--workers", "2")
        singles = [start(stack, redis, transport) for _ in range(3)]
        supervisor = pair.process.pid
        wait_until(lambda: len(children(supervisor)) == 2)
        workers = children(supervisor)
        owner = stack.enter_context(ChatClient(url(singles[0])))
        join_key = owner.init()["joinKey"]
        others = [stack.enter_context(ChatClient(url(single))) for single in singles[1:]]
        members = [stack.enter_context(ChatClient(url(pair))) for _ in range(12)]
        ids = [client.init(join_key)["userId"] for client in others + members]
        assert sorted(ids) == list(range(2, 16))
        # The kernel spread the pair's members over both workers: five processes listen to the room.
        wait_until(lambda: redis.client().pubsub_numsub(f"chat:{{{join_key}}}:live")[0][1] == 5)
        owner.talk("one")
        members[0].talk("two")
        others[1].talk("three")
        expected = talks(owner, 3)
        assert all(talks(client, 3) == expected for client in others + members)

        killed = workers[0]
        os.kill(killed, signal.SIGKILL)
        wait_until(lambda: len(children(supervisor)) == 2 and killed not in children(supervisor))
        wait_until(lambda: any("exited with status -9" in line for line in pair.log))
        survivors = []
        for member in members:  # the killed worker's members find their connection gone, and come back
            try:
                member.talk("still here?")
                member.recv(timeout=2)
                survivors.append(member)
            except (ConnectionClosed, TimeoutError):
                pass
        assert len(survivors) < len(members)
        with ChatClient(url(pair)) as back:
            back.init(join_key)
            assert replay(back)[:3] == expected

        pair.process.send_signal(signal.SIGTERM)
        assert pair.process.wait(timeout=20) == 0
        assert children(supervisor) == []
        assert all(not Path(f"/proc/{pid}").exists() for pid in workers[1:])


def test_workers_without_redis_are_refused_in_one_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "transports", "--workers", "2"], capture_output=True, text=True, timeout=30,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "chat-server: error: --workers needs --redis: separate processes share rooms only through Redis"
    )


def test_a_server_started_while_redis_is_down_serves_once_it_is_up(redis: RedisServer) -> None:
    redis.stop()
    with ExitStack() as stack:
        process = start(stack, redis, "trio-websocket")
        with ChatClient(url(process)) as early:
            early.send({"type": "init"})
            assert early.recv()["message"] == problems.JOIN_NOT_SAVED.text
        assert any("does not answer" in line for line in process.log)
        redis.start()
        deadline = time.monotonic() + 15
        while True:
            with ChatClient(url(process)) as client:
                client.send({"type": "init"})
                reply = client.recv()
                if reply["type"] == "init":
                    client.talk("made it")
                    assert talks(client, 1) == ["made it"]
                    break
            assert time.monotonic() < deadline, reply
            time.sleep(0.3)


def test_the_docs_load_balancer_example_spreads_a_room_over_two_hosts(redis: RedisServer, tmp_path: Path) -> None:
    """The nginx configuration of "Many processes and hosts", with two loopback addresses standing for the hosts."""
    example = (ROOT / "docs" / "redis.md").read_text().split("```nginx\n", 1)[1].split("```", 1)[0]
    hosts = ["127.0.0.1", "127.0.0.2", "127.0.0.3"]  # the balancer, and the two chat hosts
    page_port, ws_port = free_port(*hosts), free_port(*hosts)
    body = (example.replace("10.0.0.1", hosts[1]).replace("10.0.0.2", hosts[2])
            .replace(":8000", f":{page_port}").replace(":8001", f":{ws_port}")
            .replace("listen 8000", f"listen {hosts[0]}:{page_port}")
            .replace("listen 8001", f"listen {hosts[0]}:{ws_port}"))
    with ExitStack() as stack:
        backends = [
            stack.enter_context(server_process(
                "--host", host, "--http-port", str(page_port), "--ws-port", str(ws_port), "--redis", redis.url,
                "--ping-interval", "0",
            ))
            for host in hosts[1:]
        ]
        stack.enter_context(nginx(tmp_path / "nginx", body, [(hosts[0], page_port), (hosts[0], ws_port)]))
        balanced = f"ws://{hosts[0]}:{ws_port}/"
        with urllib.request.urlopen(f"http://{hosts[0]}:{page_port}/config.js", timeout=5) as reply:
            assert '"wsPath": "/ws"' in reply.read().decode()  # the page's socket: its own origin, at /ws
        clients = [stack.enter_context(ChatClient(balanced)) for _ in range(3)]
        clients.append(stack.enter_context(ChatClient(f"ws://{hosts[0]}:{page_port}/ws")))  # as the page does
        join_key = clients[0].init()["joinKey"]
        assert sorted(client.init(join_key)["userId"] for client in clients[1:]) == [2, 3, 4]
        wait_until(lambda: redis.client().pubsub_numsub(f"chat:{{{join_key}}}:live")[0][1] == 2)  # both hosts
        clients[0].talk("hello")
        assert all(talks(client, 1) == ["hello"] for client in clients)

        backends[0].process.kill()  # one host goes down; its members come back through the balancer
        backends[0].process.wait()
        with ChatClient(balanced) as back:
            back.init(join_key)
            assert replay(back) == ["hello"]
            back.talk("still here")
            assert talks(back, 1) == ["still here"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_version_2_members_names_talk_ids_tokens_and_history_are_the_same_on_every_process(
    redis: RedisServer, transport: str
) -> None:
    with ExitStack() as stack:
        a = start(stack, redis, transport, "--presence-ttl", "1")
        b = start(stack, redis, transport, "--presence-ttl", "1")
        ada = stack.enter_context(V2Client(url(a)))
        first = ada.join(name="Ada")
        room = first["joinKey"]
        bob = stack.enter_context(V2Client(url(b)))
        assert bob.join(room, name="Bob")["members"] == [
            {"userId": 1, "name": "Ada", "role": "owner"},
            {"userId": 2, "name": "Bob", "role": "member"},
        ]
        assert ada.recv() == {"type": "joined", "userId": 2, "name": "Bob"}  # a user on B, told on A
        cy = stack.enter_context(V2Client(url(a)))
        members = [
            {"userId": 1, "name": "Ada", "role": "owner"},
            {"userId": 2, "name": "Bob", "role": "member"},
            {"userId": 3, "name": None, "role": "member"},
        ]
        assert cy.join(room)["members"] == members  # B's user among the members of a joiner on A
        assert ada.recv() == bob.recv() == {"type": "joined", "userId": 3, "name": None}

        bob.send({"type": "name", "name": "Bob B."})
        renamed = {"type": "renamed", "userId": 2, "name": "Bob B."}
        assert bob.recv() == ada.recv() == cy.recv() == renamed

        ada.send({"type": "talk", "payload": "hello", "id": "a-1"})
        hello = ada.recv()
        assert hello == {"type": "talk", "payload": "hello", "userId": 1, "time": hello["time"], "offset": 1,
                         "name": "Ada", "id": "a-1"}
        assert bob.recv() == cy.recv() == hello  # one offset on both processes

        # Ada comes back on B with the token A gave her (her first connection still open): nobody is told.
        again = stack.enter_context(V2Client(url(b)))
        back = again.join(room, token=first["token"])
        assert (back["userId"], back["name"], back["resumed"], back["token"]) == (1, "Ada", True, first["token"])
        assert back["members"] == [
            {"userId": 1, "name": "Ada", "role": "owner"},
            {"userId": 2, "name": "Bob B.", "role": "member"},
            {"userId": 3, "name": None, "role": "member"},
        ]
        assert again.recv() == hello  # the replay
        again.send({"type": "talk", "payload": "hello", "id": "a-1"})  # sent on A, sent again on B
        assert again.recv() == hello  # stored once: the original, to the sender only
        bob.send({"type": "talk", "payload": "after"})
        after = bob.recv()
        assert after["offset"] == 2
        assert ada.recv() == cy.recv() == again.recv() == after  # nobody saw "hello" twice

        bob.send({"type": "history", "limit": 10})  # on B: what was said on A too
        assert bob.recv() == {"type": "history", "before": 3, "talks": [hello, after], "older": False}
        bob.send({"type": "history", "before": 2, "limit": 10})
        assert bob.recv() == {"type": "history", "before": 2, "talks": [hello], "older": False}

        again.close()  # Ada is still on A: nobody is told
        ada.close()
        assert bob.recv() == cy.recv() == {"type": "left", "userId": 1}
        bob.close()  # a user on B leaves: told on A
        assert cy.recv() == {"type": "left", "userId": 2}
        assert cy.until_quiet() == []


def test_the_users_of_a_killed_process_are_left_within_the_presence_ttl_and_a_third(redis: RedisServer) -> None:
    ttl = 1.0
    with ExitStack() as stack:
        a = start(stack, redis, "trio-websocket", "--presence-ttl", str(ttl))
        doomed = start(stack, redis, "wsproto", "--presence-ttl", str(ttl))
        ada = stack.enter_context(V2Client(url(a)))
        room = ada.join(name="Ada")["joinKey"]
        for n, name in ((2, "Bob"), (3, "Cy")):
            assert stack.enter_context(V2Client(url(doomed))).join(room, name=name)["userId"] == n
            assert ada.recv() == {"type": "joined", "userId": n, "name": name}
        assert ada.until_quiet(2.5 * ttl) == []  # the living renew their users: nobody is dropped
        doomed.process.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        doomed.process.wait(timeout=5)
        left = [ada.recv(timeout=5), ada.recv(timeout=5)]
        took = time.monotonic() - killed
        assert sorted(left, key=lambda event: event["userId"]) == [
            {"type": "left", "userId": 2}, {"type": "left", "userId": 3}
        ]
        assert took < ttl + ttl / 3 + 0.5, took  # (0.5: slack for a loaded machine)
        joiner = stack.enter_context(V2Client(url(a)))
        assert joiner.join(room)["members"] == [
            {"userId": 1, "name": "Ada", "role": "owner"},
            {"userId": 4, "name": None, "role": "member"},
        ]
        keys = {key.decode() if isinstance(key, bytes) else key for key in redis.client().keys("chat:*")}
        assert f"chat:{{{room}}}:who" in keys
        assert len(redis.client().zrange(f"chat:{{{room}}}:who", 0, -1)) == 2  # Ada's and the joiner's, on A


class Talkers:
    """A version-2 client talking every 250 ms with ids, and a seed client that sends one message at a time and, as
    the error asks, tries it again until it is shown; what each is told about its own, and what a listener sees."""

    def __init__(self, talker: V2Client, seed: ChatClient, listener: ChatClient) -> None:
        self.talker, self.seed, self.listener = talker, seed, listener
        self.sent: list[str] = []
        self.told: dict[str, str] = {}
        """Each of the version-2 client's talk ids: "shown" (its talk came back) or "not sent" (an error)."""
        self.seed_payloads = ["s0"]
        self.seed_shown: list[str] = []
        self.seed_errors = 0
        self._seed_waiting = False
        self._seed_retry_at = 0.0
        self.heard: list[str] = []
        """What the listener was shown, in order."""

    def talk(self) -> None:
        talk_id = f"v{len(self.sent)}"
        self.sent.append(talk_id)
        self.talker.send({"type": "talk", "payload": talk_id, "id": talk_id})

    def run(self, seconds: float, *, talking: bool) -> None:
        """Talk (if ``talking``: a new version-2 talk every 250 ms, a new seed message once one is shown) and read."""
        until = time.monotonic() + seconds
        next_talk = time.monotonic()
        while time.monotonic() < until:
            now = time.monotonic()
            if talking and now >= next_talk:
                self.talk()
                next_talk += 0.25
            if not self._seed_waiting and now >= self._seed_retry_at and not self.seed_done:
                self.seed.talk(self.seed_payloads[-1])
                self._seed_waiting = True
            for event in _ready(self.talker):
                talk_id = event.get("id")
                if event["type"] in ("talk", "error") and talk_id in self.sent:
                    assert talk_id not in self.told, (talk_id, self.told[talk_id], event)  # one answer per talk
                    self.told[talk_id] = "shown" if event["type"] == "talk" else "not sent"
                    assert event["type"] == "talk" or event["code"] == "unavailable", event
            for event in _ready(self.seed):
                if event["type"] == "error":
                    assert event["message"] == problems.TALK_NOT_SAVED.text, event
                    self.seed_errors += 1
                    self._seed_waiting, self._seed_retry_at = False, time.monotonic() + 0.25  # try again
                elif event["payload"].startswith("s"):
                    self.seed_shown.append(event["payload"])
                    if event["payload"] == self.seed_payloads[-1]:
                        self._seed_waiting = False
                        if talking:
                            self.seed_payloads.append(f"s{len(self.seed_payloads)}")
            self.heard.extend(event["payload"] for event in _ready(self.listener))

    @property
    def seed_done(self) -> bool:
        return self.seed_payloads[-1] in self.seed_shown

    @property
    def settled(self) -> bool:
        return set(self.told) == set(self.sent) and self.seed_done


def _ready(client: ChatClient) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    with contextlib.suppress(TimeoutError):
        while True:
            events.append(client.recv(timeout=0.01))
    return events


@pytest.mark.parametrize("kind", STALLS)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_message_reported_not_sent_is_never_stored_and_one_stored_is_never_reported_not_sent(
    redis: RedisServer, transport: str, kind: str
) -> None:
    """Redis stalls for the talkers' process at one step of a request (or anywhere: SIGSTOP), then comes back."""
    with ExitStack() as stack:
        proxy = stack.enter_context(redis_proxy(redis))
        # (--presence-ttl 60: no renewal of a's presence is with Redis when it stalls, only the talks)
        a = start(stack, redis, transport, "--presence-ttl", "60", via=f"redis://127.0.0.1:{proxy.port}/0")
        b = start(stack, redis, transport)
        talker = stack.enter_context(V2Client(url(a)))
        room = talker.join(name="Vi")["joinKey"]
        seed = stack.enter_context(ChatClient(url(a)))
        seed.init(room)
        listener = stack.enter_context(ChatClient(url(b)))
        listener.init(room)
        talkers = Talkers(talker, seed, listener)
        deadline = time.monotonic() + 10
        while talkers.seed_shown != ["s0"]:  # (the seed's first message, before any stall)
            assert time.monotonic() < deadline, talkers.seed_shown
            talkers.run(0.1, talking=False)
        talkers.seed_payloads.append("s1")
        with stalled(redis, kind, proxy):
            talkers.talk()  # v0: sent, or about to be, when Redis stops answering
            wait_until(lambda: any("requests fail until it answers" in line for line in a.log))
            talkers.run(2.5, talking=True)  # the seed client's s1 first: refused at once, not sent
        deadline = time.monotonic() + 15
        while not talkers.settled:
            assert time.monotonic() < deadline, (talkers.sent, talkers.told, talkers.seed_payloads)
            talkers.run(0.2, talking=False)
        talkers.run(1.5, talking=False)  # any late copy would show now

        shown = [talk_id for talk_id in talkers.sent if talkers.told[talk_id] == "shown"]
        assert talkers.told["v0"] == "shown"  # in doubt until Redis answered: stored, and its sender told so
        assert any(told == "not sent" for told in talkers.told.values())
        assert talkers.seed_errors >= 1
        assert sorted(talkers.seed_shown) == sorted(talkers.seed_payloads)  # tried again as told: each shown once
        heard = talkers.heard
        assert len(heard) == len(set(heard))
        assert sorted(payload for payload in heard if payload.startswith("v")) == sorted(shown)  # no "not sent"
        assert sorted(payload for payload in heard if payload.startswith("s")) == sorted(talkers.seed_payloads)
        with ChatClient(url(b)) as joiner:
            joiner.init(room)
            assert replay(joiner) == heard  # the history: what was shown, once, in the same order


def test_a_drain_waits_for_redis_to_answer_about_a_message_it_may_have(redis: RedisServer) -> None:
    with ExitStack() as stack:
        proxy = stack.enter_context(redis_proxy(redis))
        a = start(stack, redis, "trio-websocket", "--drain-timeout", "20", "--presence-ttl", "60",
                  via=f"redis://127.0.0.1:{proxy.port}/0")
        talker = stack.enter_context(V2Client(url(a)))
        talker.join()
        talker.send({"type": "talk", "payload": "hello", "id": "h"})
        assert talker.recv()["id"] == "h"  # (after the join's own requests: nothing else is with Redis now)
        with stalled(redis, "replies dropped", proxy):  # stored, and the answer lost
            talker.send({"type": "talk", "payload": "last words", "id": "w"})
            wait_until(lambda: any("requests fail until it answers" in line for line in a.log))
            a.process.send_signal(signal.SIGTERM)
            wait_until(lambda: any("draining" in line for line in a.log))
        shown = talker.recv(timeout=10)
        assert (shown["type"], shown["id"]) == ("talk", "w")  # before the close: the drain waited for Redis
        assert close_code_of(talker, timeout=10) == 1012


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_teacher_controls_a_room_shared_by_two_processes(redis: RedisServer, transport: str) -> None:
    """Edits, deletes, a lock, a ban and an end made on one process take effect on the other, erased in Redis."""
    with ExitStack() as stack:
        a, b = start(stack, redis, transport), start(stack, redis, transport)
        ada = stack.enter_context(V2Client(url(a)))
        first = ada.join(name="Ada")
        room = first["joinKey"]
        bob = stack.enter_context(V2Client(url(b)))
        bob_token = bob.join(room, name="Bob")["token"]
        ada.wait_for("joined", userId=2)
        ada.send({"type": "talk", "payload": "a typo here", "id": "a-1"})
        bob.wait_for("talk", offset=1)
        bob.send({"type": "talk", "payload": "a distinctive secret", "id": "b-1"})
        ada.wait_for("talk", offset=2)
        ada.send({"type": "edit", "offset": 1, "payload": "no typo here"})
        edited = bob.wait_for("edited", offset=1)  # made on a, shown on b
        assert edited["payload"] == "no typo here"
        bob.send({"type": "delete", "offset": 2})
        assert ada.wait_for("deleted", offset=2) == {"type": "deleted", "offset": 2, "by": 2}
        values = b"".join(
            repr(redis.client().dump(key)).encode() for key in redis.client().keys(f"chat:{{{room}}}:*")
        )
        assert b"a distinctive secret" not in values and b"a typo here" not in values  # noqa: PT018
        with V2Client(url(b)) as joiner:  # a replay on the other process: as it is now
            joiner.join(room, name="Cy")
            replay = [event for event in joiner.until_quiet() if event["type"] == "talk"]
            assert [(event["payload"], event.get("deleted", False)) for event in replay] == [
                ("no typo here", False), (None, True)
            ]

        ada.send({"type": "lock", "locked": True})
        assert bob.wait_for("room")["locked"] is True
        with ChatClient(url(b)) as stranger:  # locked: a seed client without a token stays out
            stranger.send({"type": "init", "joinKey": room})
            assert stranger.recv()["message"] == problems.LOCKED.text
        ada.send({"type": "remove", "userId": 2, "ban": True})
        assert close_code_of(bob) == 4403
        with V2Client(url(a)) as again:  # banned: its token does not get back in, on any process
            again.send({"type": "init", "v": 2, "render": "text", "joinKey": room, "token": bob_token})
            assert again.recv()["message"] == problems.BANNED.text

        watcher = stack.enter_context(V2Client(url(b)))
        watcher.join(room, token=first["token"])  # Ada again, on b (a token of the room gets past the lock)
        ada.send({"type": "end"})
        assert close_code_of(ada) == close_code_of(watcher) == 4410
        with ChatClient(url(b)) as late:
            late.send({"type": "init", "joinKey": room})
            assert late.recv()["message"] == "chat not found."
        keys: Any = redis.client().keys(f"chat:{{{room}}}:*")  # (what remains names no one and holds no text)
        assert sorted(key.split(b":")[2] for key in keys) in ([b"ended"], [b"ended", b"sent"])
