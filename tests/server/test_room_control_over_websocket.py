"""Rooms a teacher controls, as an independent client sees them, against real server processes.

The clients are python-websockets, written against the wire names of the protocol reference (docs/protocol.md).
Each test runs on both transports and on every store: memory, SQLite, and two processes sharing a real
redis-server (the teacher on one process, the students on the other).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from chat_client import ChatClient, V2Client
from chatcore import problems
from processes import ServerProcess, server_process
from redis_server import redis_server

TRANSPORTS = ["trio-websocket", "wsproto"]
STORES = ["memory", "sqlite", "redis"]
SECRET = "the answer to question 3 is 42"
RETENTION_DAYS = 0.00005
"""4.32 seconds."""


class Deployment:
    """One or two server processes; ``url(n)`` is the WebSocket URL of host n (0, 1: the same process unless Redis)."""

    def __init__(self, processes: list[ServerProcess]) -> None:
        self.processes = processes

    def url(self, n: int) -> str:
        return f"ws://127.0.0.1:{self.processes[n % len(self.processes)].ws_port}/"

    def logs(self) -> str:
        return "".join(line for process in self.processes for line in process.log)


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def deploy(stack: ExitStack, tmp_path: Path, transport: str, store: str, *extra: str) -> Deployment:
    common = [
        "--transport", transport, "--http-port", "0", "--ws-port", "0", "--ping-interval", "0",
        "--rate", "1000", "--burst", "1000", "--log-level", "DEBUG", *extra,
    ]
    if store == "memory":
        return Deployment([stack.enter_context(server_process(*common, "--db", ":memory:"))])
    if store == "sqlite":
        return Deployment([stack.enter_context(server_process(*common, "--db", str(tmp_path / "chat.db")))])
    redis = stack.enter_context(redis_server(tmp_path))
    return Deployment([
        stack.enter_context(server_process(*common, "--redis", redis.url, "--redis-timeout", "2",
                                           "--presence-ttl", "1"))
        for _ in range(2)
    ])


@pytest.fixture
def deployment(tmp_path: Path, transport: str, store: str) -> Iterator[Deployment]:
    with ExitStack() as stack:
        yield deploy(stack, tmp_path, transport, store)


def refusal(client: V2Client, **event: Any) -> str:
    client.send(event)
    error = client.wait_for("error")
    assert error["request"] == event["type"], error
    return str(error["message"])


def test_a_class_the_teacher_controls(deployment: Deployment, clients: Callable[[str], V2Client]) -> None:
    teacher = clients(deployment.url(0))
    start = teacher.join(name="Ms. Lovelace")
    room = start["joinKey"]
    assert (start["role"], start["room"]) == ("owner", {"title": None, "locked": False})
    ada = clients(deployment.url(1))
    ada_in = ada.join(room, name="Ada")
    assert [(m["userId"], m["role"]) for m in ada_in["members"]] == [(1, "owner"), (2, "member")]
    bob = clients(deployment.url(1))
    bob_in = bob.join(room, name="Bob")
    seed = ChatClient(deployment.url(0))
    seed.init(room)

    teacher.send({"type": "room", "title": "Math 7B"})
    for client in (teacher, ada, bob):
        assert client.wait_for("room") == {"type": "room", "title": "Math 7B", "locked": False, "by": 1}

    ada.send({"type": "talk", "payload": SECRET, "id": "a1"})
    secret = ada.wait_for("talk", id="a1")
    bob.send({"type": "talk", "payload": "2 + 2 = 5", "id": "b1"})
    wrong = bob.wait_for("talk", id="b1")
    bob.send({"type": "edit", "offset": wrong["offset"], "payload": "2 + 2 = 4"})
    edited = teacher.wait_for("edited")
    assert (edited["offset"], edited["payload"]) == (wrong["offset"], "2 + 2 = 4")
    assert refusal(ada, type="edit", offset=wrong["offset"], payload="x") == problems.EDIT_OWN_ONLY.text
    assert refusal(ada, type="delete", offset=wrong["offset"]) == problems.DELETE_OWN_ONLY.text

    teacher.send({"type": "role", "userId": ada_in["userId"], "role": "moderator"})
    assert bob.wait_for("role") == {"type": "role", "userId": 2, "role": "moderator", "by": 1}
    ada.send({"type": "delete", "offset": secret["offset"]})
    assert teacher.wait_for("deleted") == {"type": "deleted", "offset": secret["offset"], "by": 2}

    late = clients(deployment.url(0))
    late_in = late.join(room)
    replay = [event for event in late.until_quiet() if event["type"] == "talk"]
    assert late_in["room"]["title"] == "Math 7B"
    assert [(t["offset"], t.get("deleted"), t["payload"]) for t in replay] == [
        (secret["offset"], True, None), (wrong["offset"], None, "2 + 2 = 4"),
    ]
    assert replay[1]["edited"] >= replay[1]["time"]
    seed_again = ChatClient(deployment.url(1))
    seed_again.init(room)
    assert [t["payload"] for t in seed_again.talks_until_quiet(0.4)] == ["2 + 2 = 4"]  # the seed: no deleted talk

    ada.send({"type": "lock", "locked": True})
    assert teacher.wait_for("room")["locked"] is True
    stranger = clients(deployment.url(1))
    stranger.send({"type": "init", "v": 2, "joinKey": room, "name": "Eve"})
    assert stranger.wait_for("error")["message"] == problems.LOCKED.text
    seed_stranger = ChatClient(deployment.url(0))
    seed_stranger.send({"type": "init", "joinKey": room})
    assert seed_stranger.recv()["type"] == "error"
    back = clients(deployment.url(0))
    assert back.join(room, token=bob_in["token"])["userId"] == bob_in["userId"]  # a valid token comes back

    assert refusal(ada, type="remove", userId=1) == problems.REMOVE_OWNER.text
    teacher.send({"type": "remove", "userId": bob_in["userId"], "ban": True})
    assert bob.closed_with() == (4403, "removed from this chat")
    assert back.closed_with() == (4403, "removed from this chat")
    assert ada.wait_for("removed") == {"type": "removed", "userId": bob_in["userId"], "ban": True, "by": 1}
    banned = clients(deployment.url(1))
    banned.send({"type": "init", "v": 2, "joinKey": room, "token": bob_in["token"]})
    assert banned.wait_for("error")["message"] == problems.BANNED.text

    assert refusal(ada, type="end") == problems.OWNER_ONLY.format(doing="end it").text
    teacher.send({"type": "end"})
    for member in (teacher, ada, late, seed, seed_again):
        assert member.closed_with() == (4410, "this chat was ended")
    gone = clients(deployment.url(1))
    gone.send({"type": "init", "v": 2, "joinKey": room})
    assert gone.wait_for("error")["message"] == problems.NOT_FOUND.text
    assert SECRET not in deployment.logs()


def test_retention_erases_old_talks_and_ends_quiet_rooms_while_serving(
    tmp_path: Path, transport: str, store: str, clients: Callable[[str], V2Client]
) -> None:
    with ExitStack() as stack:
        deployment = deploy(stack, tmp_path, transport, store, "--retention", str(RETENTION_DAYS))
        teacher = clients(deployment.url(0))
        room = teacher.join(name="T")["joinKey"]
        teacher.send({"type": "talk", "payload": SECRET})
        teacher.wait_for("talk")
        quiet = clients(deployment.url(1))
        quiet_room = quiet.join(name="Q")["joinKey"]
        quiet.send({"type": "talk", "payload": "soon gone"})
        quiet.wait_for("talk")
        time.sleep(2.5)
        teacher.send({"type": "talk", "payload": "still here"})
        teacher.wait_for("talk", payload="still here")
        assert quiet.closed_with(timeout=6) == (4410, "this chat was ended")  # nothing said for the retention
        joiner = clients(deployment.url(1))
        joiner.join(room)
        assert [t["payload"] for t in joiner.until_quiet() if t["type"] == "talk"] == ["still here"]
        again = clients(deployment.url(0))
        again.send({"type": "init", "v": 2, "joinKey": quiet_room})
        assert again.wait_for("error")["message"] == problems.NOT_FOUND.text
        assert SECRET not in deployment.logs()
