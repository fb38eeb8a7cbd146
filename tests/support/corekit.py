"""Driving the pure core by hand in tests: a clock that stands still, keys in order, decoded events."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from chatcore import Action, Broadcast, ChatCore, Send

MARKUP = '<img src=x onerror="alert(1)"> & \'quoted\''


ESCAPED = "&lt;img src=x onerror=&quot;alert(1)&quot;&gt; &amp; &#x27;quoted&#x27;"


class FakeClock:
    """Stands still until a test moves it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def keys() -> Iterator[str]:
    n = 0
    while True:
        n += 1
        yield f"key{n}"


def decoded(action: Action) -> dict[str, Any]:
    assert isinstance(action, Send | Broadcast)
    event = json.loads(action.message)
    assert isinstance(event, dict)
    return event


def only_reply(actions: list[Action], connection: int) -> dict[str, Any]:
    assert len(actions) == 1
    action = actions[0]
    assert isinstance(action, Send)
    assert action.connection == connection
    return decoded(action)


def send(core: ChatCore, connection: int, event: object) -> list[Action]:
    return core.receive_text(connection, json.dumps(event))


def start_room(core: ChatCore, connection: int, **init: object) -> str:
    core.connect(connection)
    reply = only_reply(send(core, connection, {"type": "init", **init}), connection)
    join_key = reply["joinKey"]
    assert isinstance(join_key, str)
    return join_key


def join_room(core: ChatCore, connection: int, join_key: str, **init: object) -> list[Action]:
    core.connect(connection)
    return send(core, connection, {"type": "init", "joinKey": join_key, **init})


def assert_error(actions: list[Action], connection: int, text: str) -> None:
    event = only_reply(actions, connection)
    assert event == {"type": "error", "message": event["message"], "payload": event["message"]}
    assert text in event["message"]
