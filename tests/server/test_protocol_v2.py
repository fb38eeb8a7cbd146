"""Protocol version 2 as an independent client sees it, against real server processes.

The client here is python-websockets, written against the names in the
protocol reference (docs/protocol.md), not against our code. Each
test runs on both transports and two deployments: one process with its rooms
in SQLite (both "hosts" are that process), and two processes sharing rooms
through a real redis-server, where the two hosts are different processes.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from chat_client import ChatClient, V2Client
from processes import server_process
from redis_server import redis_server

TRANSPORTS = ["trio-websocket", "wsproto"]
HISTORY_LIMIT = 5
PRESENCE_TTL = 1.0


@pytest.fixture(params=["sqlite", "redis"])
def hosts(request: pytest.FixtureRequest, tmp_path: Path, transport: str) -> Iterator[Callable[[int], str]]:
    """``hosts(n)``: the WebSocket URL of host n (0 or 1) of the deployment, on the transport of the test."""
    common = [
        "--transport", transport, "--http-port", "0", "--ws-port", "0", "--ping-interval", "0",
        "--rate", "1000", "--burst", "1000", "--history-limit", str(HISTORY_LIMIT),
    ]
    with ExitStack() as stack:
        if request.param == "sqlite":
            one = stack.enter_context(server_process(*common, "--db", str(tmp_path / "chat.db")))
            processes = [one, one]
        else:
            redis = stack.enter_context(redis_server(tmp_path))
            processes = [
                stack.enter_context(server_process(
                    *common, "--redis", redis.url, "--redis-timeout", "1", "--presence-ttl", str(PRESENCE_TTL),
                ))
                for _ in range(2)
            ]
        yield lambda n: f"ws://127.0.0.1:{processes[n].ws_port}/"


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def talks(events: list[dict[str, Any]]) -> list[tuple[int, str]]:
    return [(event["offset"], event["payload"]) for event in events if event["type"] == "talk"]


def test_names_presence_and_talks_across_hosts(
    transport: str, hosts: Callable[[int], str], clients: Callable[[str], V2Client]
) -> None:
    ada = clients(hosts(0))
    first = ada.join(name="Ada")
    room = first["joinKey"]
    assert first["members"] == [{"userId": 1, "name": "Ada", "role": "owner"}]
    bob = clients(hosts(1))
    joined = bob.join(room, name="Bob")
    assert joined["members"] == [
        {"userId": 1, "name": "Ada", "role": "owner"},
        {"userId": 2, "name": "Bob", "role": "member"},
    ]
    assert ada.wait_for("joined") == {"type": "joined", "userId": 2, "name": "Bob"}

    seed = ChatClient(hosts(1))
    assert seed.init(room).keys() == {"type", "joinKey", "userId"}
    assert ada.wait_for("joined", userId=3) == {"type": "joined", "userId": 3, "name": None}

    ada.send({"type": "talk", "payload": "hi", "id": "a-1"})
    hi = bob.wait_for("talk")
    bob.send({"type": "talk", "payload": "hello"})
    assert [(e["offset"], e["payload"], e["name"], e.get("id")) for e in [hi, bob.wait_for("talk")]] == [
        (1, "hi", "Ada", "a-1"), (2, "hello", "Bob", None)
    ]
    seen = [event for event in ada.until_quiet() if event["type"] == "talk"]
    assert [(e["offset"], e["payload"], e["name"], e.get("id")) for e in seen] == [
        (1, "hi", "Ada", "a-1"), (2, "hello", "Bob", None)
    ]
    seed_events = seed.talks_until_quiet(0.4)
    assert [event.keys() for event in seed_events] == [{"type", "payload", "userId", "time"}] * 2

    bob.send({"type": "name", "name": "Robert"})
    assert ada.wait_for("renamed") == {"type": "renamed", "userId": 2, "name": "Robert"}
    assert bob.wait_for("renamed") == {"type": "renamed", "userId": 2, "name": "Robert"}
    bob.talk("as Robert")
    assert ada.wait_for("talk", offset=3)["name"] == "Robert"

    seed.close()
    assert ada.wait_for("left") == {"type": "left", "userId": 3}
    bob.close()
    assert ada.wait_for("left") == {"type": "left", "userId": 2}


def test_typing_reaches_the_other_version_2_members_on_every_host_and_nobody_else(
    transport: str, hosts: Callable[[int], str], clients: Callable[[str], V2Client]
) -> None:
    ada = clients(hosts(0))
    first = ada.join(name="Ada")
    room = first["joinKey"]
    ada_tab = clients(hosts(1))
    assert ada_tab.join(room, token=first["token"])["userId"] == 1  # (the same user, on the other host)
    bob = clients(hosts(1))
    bob.join(room, name="Bob")
    cy = clients(hosts(0))
    cy.join(room, name="Cy")
    seed = ChatClient(hosts(1))
    seed.init(room)
    for _ in range(5):  # (as from keystrokes: all but the first within 2 s are dropped)
        ada.send({"type": "typing"})
    ada.send({"type": "talk", "payload": "done typing"})
    for member in (bob, cy):
        until_the_talk = _until_talk(member)
        typing = [event for event in until_the_talk if event["type"] == "typing"]
        assert typing[:1] == [{"type": "typing", "userId": 1}]
        assert len(typing) < 5
    for own in (ada, ada_tab):
        assert [event["type"] for event in _until_talk(own) if event["type"] == "typing"] == []
    seed_events = seed.talks_until_quiet(0.4)
    assert [(event["type"], event["payload"]) for event in seed_events] == [("talk", "done typing")]


def _until_talk(client: V2Client) -> list[dict[str, Any]]:
    """The events up to and with the next talk (what came before it: a typing sent before it comes first)."""
    events = [client.recv()]
    while events[-1]["type"] != "talk":
        events.append(client.recv())
    return events


def test_a_token_resumes_on_the_other_host_with_exactly_the_missed_talks(
    transport: str, hosts: Callable[[int], str], clients: Callable[[str], V2Client]
) -> None:
    ada = clients(hosts(0))
    first = ada.join(name="Ada")
    room = first["joinKey"]
    for text in ("one", "two", "three"):
        ada.talk(text)
    assert talks(ada.until_quiet()) == [(1, "one"), (2, "two"), (3, "three")]
    ada.close()

    bob = clients(hosts(0))
    bob.join(room, name="Bob")
    bob.talk("while Ada was away")
    bob.until_quiet()

    again = clients(hosts(1))
    reply = again.join(room, token=first["token"], after=2)
    assert (reply["userId"], reply["name"], reply["resumed"], reply["offset"], reply["older"]) == (
        1, "Ada", True, 4, False
    )
    assert reply["token"] == first["token"]
    assert talks(again.until_quiet()) == [(3, "three"), (4, "while Ada was away")]

    other = clients(hosts(1))
    assert other.join(room, token="not-a-token-of-this-room")["resumed"] is False


def test_a_resent_id_is_stored_once_whichever_host_gets_it(
    transport: str, hosts: Callable[[int], str], clients: Callable[[str], V2Client]
) -> None:
    ada = clients(hosts(0))
    first = ada.join(name="Ada")
    room = first["joinKey"]
    bob = clients(hosts(1))
    bob.join(room)
    ada.send({"type": "talk", "payload": "only once", "id": "m-1"})
    assert ada.wait_for("talk")["offset"] == 1
    ada.close()

    again = clients(hosts(1))
    again.join(room, token=first["token"], after=0)
    assert talks(again.until_quiet()) == [(1, "only once")]
    again.send({"type": "talk", "payload": "only once", "id": "m-1"})
    answer = again.wait_for("talk")
    assert (answer["offset"], answer["id"]) == (1, "m-1")
    again.talk("next")
    assert again.wait_for("talk")["offset"] == 2
    assert talks(bob.until_quiet()) == [(1, "only once"), (2, "next")]


def test_history_pages_back_to_the_start_of_the_room(
    transport: str, hosts: Callable[[int], str], clients: Callable[[str], V2Client]
) -> None:
    ada = clients(hosts(0))
    room = ada.join()["joinKey"]
    said = [f"m{n}" for n in range(1, 13)]
    for text in said:
        ada.talk(text)
    assert len(talks(ada.until_quiet())) == 12

    bob = clients(hosts(1))
    reply = bob.join(room)
    assert (reply["offset"], reply["older"]) == (12, True)
    shown = talks(bob.until_quiet())
    assert [offset for offset, _ in shown] == list(range(8, 13))
    older = True
    while older:
        bob.send({"type": "history", "before": shown[0][0], "limit": 3})
        page = bob.wait_for("history")
        assert page["before"] == shown[0][0]
        shown = talks(page["talks"]) + shown
        older = page["older"]
    assert shown == list(enumerate(said, start=1))


def test_mistakes_get_error_events_that_name_the_refused_talk(
    transport: str, hosts: Callable[[int], str], clients: Callable[[str], V2Client]
) -> None:
    ada = clients(hosts(0))
    ada.send({"type": "init", "v": 2, "name": "x" * 33})
    assert ada.recv()["type"] == "error"
    ada.join(name="Ada")
    ada.send({"type": "talk", "payload": {"not": "text"}, "id": "bad-1"})
    error = ada.recv()
    assert (error["type"], error["id"]) == ("error", "bad-1")
    ada.send({"type": "talk", "payload": "x", "id": "y" * 65})
    assert ada.recv()["type"] == "error"
    ada.send({"type": "name", "name": "\u0000"})
    assert ada.recv()["type"] == "error"
    ada.send({"type": "whatever"})
    assert ada.recv()["type"] == "error"
    ada.talk("still here")
    assert ada.wait_for("talk")["payload"] == "still here"


def test_a_token_never_reaches_the_log(transport: str, tmp_path: Path) -> None:
    with server_process(
        "--transport", transport, "--http-port", "0", "--ws-port", "0", "--log-level", "DEBUG",
        "--db", str(tmp_path / "chat.db"),
    ) as server:
        url = f"ws://127.0.0.1:{server.ws_port}/"
        with V2Client(url) as ada:
            first = ada.join(name="Ada")
        with V2Client(url) as again:
            assert again.join(first["joinKey"], token=first["token"])["resumed"]
            again.send({"type": "init", "v": 2, "token": first["token"]})  # a mistake: already in a room
            assert again.recv()["type"] == "error"
        server.process.send_signal(signal.SIGTERM)
        log = server.whole_log()
    assert "Ada" not in log
    assert first["token"] not in log
    assert first["token"][:8] not in log
