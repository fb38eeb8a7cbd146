"""Driving the pure core by hand in tests: a clock that stands still, keys in order, decoded events."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

from chatcore import (
    Action,
    Broadcast,
    ChatCore,
    Close,
    ConnectionId,
    CoreLimits,
    Forget,
    LogResult,
    MemoryLog,
    Presence,
    Send,
    Subscribe,
    Typing,
    Wake,
)
from chatcore.identity import NameKey, SignIn, folded
from chatcore.problems import Problem

MARKUP = '<img src=x onerror="alert(1)"> & \'quoted\''


ESCAPED = "&lt;img src=x onerror=&quot;alert(1)&quot;&gt; &amp; &#x27;quoted&#x27;"


class _Driven(ChatCore):
    """A core whose every call passes what it returns through `_out` (what the test's driver does with it)."""

    def connect(self, connection: ConnectionId) -> list[Action]:
        return self._out(super().connect(connection))

    def disconnect(self, connection: ConnectionId) -> list[Action]:
        return self._out(super().disconnect(connection))

    def receive_text(self, connection: ConnectionId, text: str) -> list[Action]:
        return self._out(super().receive_text(connection, text))

    def receive(self, connection: ConnectionId, event: object) -> list[Action]:
        return self._out(super().receive(connection, event))

    def receive_binary(self, connection: ConnectionId, data: bytes) -> list[Action]:
        return self._out(super().receive_binary(connection, data))

    def log_result(self, result: LogResult) -> list[Action]:
        return self._out(super().log_result(result))

    def expire(self, before: float) -> list[Action]:
        return self._out(super().expire(before))

    def _out(self, actions: list[Action]) -> list[Action]:
        raise NotImplementedError


class LocalChat(_Driven):
    """A core whose room log is a `MemoryLog` performed at once: its calls return only what goes to clients.

    What the server does without a store (its hub hands each log action to the
    memory log and feeds the results straight back), without the server.
    """

    def __init__(
        self, *, clock: Callable[[], float], new_join_key: Callable[[], str], limits: CoreLimits | None = None,
        new_token: Callable[[], str] | None = None, sign_in: SignIn | None = None, name_key: NameKey = folded,
    ) -> None:
        super().__init__(
            clock=clock, new_join_key=new_join_key, limits=limits, new_token=new_token, sign_in=sign_in,
            name_key=name_key,
        )
        self.memory_log = MemoryLog(self.limits.history_limit, self.limits.remembered_users)

    def _out(self, actions: list[Action]) -> list[Action]:
        shown: list[Action] = []
        for action in actions:
            if isinstance(action, Send | Broadcast | Close | Wake):
                shown.append(action)
                continue
            for result in self.memory_log.perform(action):
                shown.extend(self._out(ChatCore.log_result(self, result)))
        return shown


class StoredChat(_Driven):
    """A core whose calls leave out the log's notices (`Subscribe`, `Forget`, `Presence`, `Typing`): what a driver
    whose log is a store alone (SQLite) needs of it, for tests that play that log by hand."""

    def _out(self, actions: list[Action]) -> list[Action]:
        return [action for action in actions if not isinstance(action, Subscribe | Forget | Presence | Typing)]


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


def v2_error(problem: Problem, **fields: object) -> dict[str, object]:
    """The version-2 error event saying ``problem``, with ``fields`` (``id``, ``request``)."""
    return {"type": "error", "message": problem.text, "payload": problem.text, "code": problem.code, **fields}


def assert_error(actions: list[Action], connection: int, problem: Problem) -> None:
    """The one reply is the seed's error event saying ``problem`` (its text, in the seed's two fields)."""
    event = only_reply(actions, connection)
    text = problem.text if problem.seed_text is None else problem.seed_text
    assert event == {"type": "error", "message": text, "payload": text}
