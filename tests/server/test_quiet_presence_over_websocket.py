"""``--presence-grace`` on real server processes, both transports, with an independent client (python-websockets):
a user whose last connection closes and who comes back within the grace, on the same process or on another one
sharing Redis (a reconnect, a drain), shows the others nothing; one who does not come back is announced ``left``.

Behaviour only, and no race with the grace: a test that shows nothing is shown uses a grace (and a presence ttl)
far longer than it runs, and checks that what the others see up to a probe (the returning user's talk) holds no
presence news; only a test that must see ``left`` uses a short grace, and waits for it. None measures how fast
anything came. (That nothing shows once the grace of a user who came back is over is the core's to test, on its
injected clock: tests/core/test_presence_grace.py.)
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from chat_client import V2Client
from processes import ServerProcess, server_process
from redis_server import RedisServer, redis_server

TRANSPORTS = ["trio-websocket", "wsproto"]
LONG_GRACE = 60.0
"""For the tests where a user comes back: longer than any test runs, however loaded the machine."""
SHORT_GRACE = 1.0
"""For the tests that wait for ``left``."""
PRESENCE = {"joined", "left"}


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    with redis_server(tmp_path) as server:
        yield server


def start(stack: ExitStack, transport: str, grace: float, *more: str) -> ServerProcess:
    return stack.enter_context(server_process(
        "--transport", transport, "--http-port", "0", "--ws-port", "0", "--ping-interval", "0",
        "--presence-grace", str(grace), *more,
    ))


def url(process: ServerProcess) -> str:
    return f"ws://127.0.0.1:{process.ws_port}/"


def presence(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [event for event in events if event["type"] in PRESENCE]


def until_talk(client: V2Client, payload: str) -> list[dict[str, Any]]:
    """Every event up to and with the talk saying ``payload`` (none skipped)."""
    events = [client.recv()]
    while (events[-1]["type"], events[-1].get("payload")) != ("talk", payload):
        events.append(client.recv())
    return events


def test_a_quick_reconnect_shows_nothing(transport: str, tmp_path: Path) -> None:
    with ExitStack() as stack:
        server = start(stack, transport, LONG_GRACE, "--db", str(tmp_path / "chat.db"))
        ada = stack.enter_context(V2Client(url(server)))
        room = ada.join(name="Ada")["joinKey"]
        bob = V2Client(url(server))
        first = bob.join(room, name="Bob")
        assert ada.wait_for("joined") == {"type": "joined", "userId": 2, "name": "Bob"}

        bob.close()  # a network blip: the page comes back, with its token
        again = stack.enter_context(V2Client(url(server)))
        back = again.join(room, token=first["token"])
        assert (back["userId"], back["resumed"]) == (2, True)
        assert [member["userId"] for member in back["members"]] == [1, 2]
        again.send({"type": "talk", "payload": "still here"})
        assert presence(until_talk(ada, "still here")) == []  # neither left nor joined before it


def test_a_user_who_stays_away_is_left_once_the_grace_is_over(transport: str, tmp_path: Path) -> None:
    with ExitStack() as stack:
        server = start(stack, transport, SHORT_GRACE, "--db", str(tmp_path / "chat.db"))
        ada = stack.enter_context(V2Client(url(server)))
        room = ada.join(name="Ada")["joinKey"]
        bob = V2Client(url(server))
        bob.join(room, name="Bob")
        assert ada.wait_for("joined") == {"type": "joined", "userId": 2, "name": "Bob"}

        bob.close()  # for good
        assert ada.wait_for("left", timeout=SHORT_GRACE + 10) == {"type": "left", "userId": 2}
        cy = stack.enter_context(V2Client(url(server)))
        assert [member["userId"] for member in cy.join(room)["members"]] == [1, 3]


def test_a_grace_of_0_announces_left_at_once_as_before(transport: str) -> None:
    with ExitStack() as stack:
        server = stack.enter_context(server_process(
            "--transport", transport, "--http-port", "0", "--ws-port", "0", "--ping-interval", "0", "--db", ":memory:",
            "--presence-grace", "0",
        ))
        ada = stack.enter_context(V2Client(url(server)))
        room = ada.join()["joinKey"]
        bob = V2Client(url(server))
        first = bob.join(room)
        ada.wait_for("joined")
        bob.close()
        assert ada.wait_for("left") == {"type": "left", "userId": 2}
        again = stack.enter_context(V2Client(url(server)))
        again.join(room, token=first["token"])
        assert ada.wait_for("joined") == {"type": "joined", "userId": 2, "name": None}


# Two processes sharing Redis


def test_back_on_the_other_process_shows_nothing(transport: str, redis: RedisServer) -> None:
    with ExitStack() as stack:
        a = start(stack, transport, LONG_GRACE, "--redis", redis.url, "--redis-timeout", "1")
        b = start(stack, transport, LONG_GRACE, "--redis", redis.url, "--redis-timeout", "1")
        cy = stack.enter_context(V2Client(url(a)))
        room = cy.join(name="Cy")["joinKey"]
        bob = V2Client(url(a))
        first = bob.join(room, name="Bob")
        assert cy.wait_for("joined") == {"type": "joined", "userId": 2, "name": "Bob"}
        dan = stack.enter_context(V2Client(url(b)))
        dan.join(room, name="Dan")
        assert cy.wait_for("joined") == {"type": "joined", "userId": 3, "name": "Dan"}

        bob.close()  # on A; back on B
        again = stack.enter_context(V2Client(url(b)))
        back = again.join(room, token=first["token"])
        assert (back["userId"], back["resumed"]) == (2, True)
        again.send({"type": "talk", "payload": "on B now"})
        assert presence(until_talk(cy, "on B now")) == []  # on A
        assert presence(until_talk(dan, "on B now")) == []  # on B


def test_gone_for_good_is_left_on_every_process(transport: str, redis: RedisServer) -> None:
    with ExitStack() as stack:
        a = start(stack, transport, SHORT_GRACE, "--redis", redis.url, "--redis-timeout", "1")
        b = start(stack, transport, SHORT_GRACE, "--redis", redis.url, "--redis-timeout", "1")
        cy = stack.enter_context(V2Client(url(a)))
        room = cy.join(name="Cy")["joinKey"]
        dan = stack.enter_context(V2Client(url(b)))
        dan.join(room, name="Dan")
        assert cy.wait_for("joined") == {"type": "joined", "userId": 2, "name": "Dan"}
        bob = V2Client(url(b))
        bob.join(room, name="Bob")
        assert cy.wait_for("joined") == {"type": "joined", "userId": 3, "name": "Bob"}
        assert dan.wait_for("joined") == {"type": "joined", "userId": 3, "name": "Bob"}

        bob.close()  # for good, on B
        assert cy.wait_for("left", timeout=SHORT_GRACE + 10) == {"type": "left", "userId": 3}
        assert dan.wait_for("left", timeout=SHORT_GRACE + 10) == {"type": "left", "userId": 3}


def test_a_drained_process_users_who_move_show_nothing(transport: str, redis: RedisServer) -> None:
    # (its users' entries outlast the test: nothing lapses, however slowly Bob's page comes back)
    shared = ("--redis", redis.url, "--redis-timeout", "1", "--presence-ttl", str(LONG_GRACE))
    with ExitStack() as stack:
        doomed = start(stack, transport, LONG_GRACE, *shared)
        b = start(stack, transport, LONG_GRACE, *shared)
        cy = stack.enter_context(V2Client(url(b)))
        room = cy.join(name="Cy")["joinKey"]
        bob = stack.enter_context(V2Client(url(doomed)))
        first = bob.join(room, name="Bob")
        assert cy.wait_for("joined")["userId"] == 2

        doomed.process.send_signal(signal.SIGTERM)  # a restart: its clients are closed with 1012
        assert bob.closed_with(timeout=10)[0] == 1012
        assert doomed.process.wait(timeout=30) == 0
        again = stack.enter_context(V2Client(url(b)))  # Bob's page comes back, on B
        assert again.join(room, token=first["token"])["userId"] == 2
        again.send({"type": "talk", "payload": "moved"})
        assert presence(until_talk(cy, "moved")) == []


def test_a_drained_process_users_who_do_not_move_are_left(transport: str, redis: RedisServer) -> None:
    ttl = 1.0
    shared = ("--redis", redis.url, "--redis-timeout", "1", "--presence-ttl", str(ttl))
    with ExitStack() as stack:
        doomed = start(stack, transport, SHORT_GRACE, *shared)
        b = start(stack, transport, SHORT_GRACE, *shared)
        cy = stack.enter_context(V2Client(url(b)))
        room = cy.join(name="Cy")["joinKey"]
        dan = stack.enter_context(V2Client(url(doomed)))
        dan.join(room, name="Dan")
        assert cy.wait_for("joined")["userId"] == 2

        doomed.process.send_signal(signal.SIGTERM)  # its clients are closed with 1012; Dan's page does not come back
        assert dan.closed_with(timeout=10)[0] == 1012
        assert doomed.process.wait(timeout=30) == 0
        # It told nothing on its way out (Dan was in his grace): his entry lapses in --presence-ttl.
        assert cy.wait_for("left", timeout=SHORT_GRACE + 4 * ttl + 10) == {"type": "left", "userId": 2}
