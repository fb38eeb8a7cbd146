"""Driving the pure core as clients of protocol version 2 see it: events per connection, and a log answered by hand."""

from __future__ import annotations

import json
from collections import defaultdict, deque
from typing import Any

from chatcore import (
    Action,
    Broadcast,
    ChatCore,
    Close,
    Forget,
    LogRequest,
    MemoryLog,
    Presence,
    Send,
    Subscribe,
    Typing,
    Wake,
)
from corekit import LocalChat


class Net:
    """The core, every connection's inbox, and (for an external log) the log's requests waiting for an answer."""

    def __init__(self, core: ChatCore) -> None:
        self.core = core
        self.inbox: dict[int, list[dict[str, Any]]] = defaultdict(list)
        self.closed: dict[int, int] = {}
        self.reasons: dict[int, str] = {}
        self.shared: list[Forget | Presence | Typing] = []
        """What the core said for a shared log's other processes."""
        self.wakes: list[Wake] = []
        """When the core asked to be settled (`ChatCore.settle`), in order."""
        self.waiting: deque[LogRequest] = deque()
        self.log = None if isinstance(core, LocalChat) else MemoryLog(core.limits.history_limit)

    def do(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Send):
                self.inbox[action.connection].append(json.loads(action.message))
            elif isinstance(action, Broadcast):
                for recipient in action.recipients:
                    self.inbox[recipient].append(json.loads(action.message))
            elif isinstance(action, Close):
                self.closed[action.connection] = action.code
                self.reasons[action.connection] = action.reason
            elif isinstance(action, LogRequest):
                self.waiting.append(action)
            elif isinstance(action, Forget | Presence | Typing):
                self.shared.append(action)
            elif isinstance(action, Subscribe):
                pass
            elif isinstance(action, Wake):
                self.wakes.append(action)
            else:
                raise AssertionError(f"unexpected {action}")

    def connect(self, connection: int) -> None:
        self.do(self.core.connect(connection))

    def send(self, connection: int, event: dict[str, Any]) -> None:
        self.do(self.core.receive_text(connection, json.dumps(event)))

    def disconnect(self, connection: int) -> None:
        self.do(self.core.disconnect(connection))

    def answer(self, count: int | None = None) -> None:
        """Let the log answer its oldest ``count`` requests (all, and what they lead to, by default)."""
        assert self.log is not None
        done = 0
        while self.waiting and (count is None or done < count):
            self.do(self.core.log_result(self.log.answer(self.waiting.popleft())))
            done += 1

    def take(self, connection: int) -> list[dict[str, Any]]:
        """What the connection received since the last `take`."""
        events = self.inbox.pop(connection, [])
        return events

    def join(self, connection: int, **init: Any) -> dict[str, Any]:
        """Open a connection, send a version-2 init, and return the init reply (the replay stays in the inbox)."""
        self.connect(connection)
        self.send(connection, {"type": "init", "v": 2, **init})
        if self.log is not None:
            self.answer()
        events = self.inbox[connection]
        reply = events.pop(0)
        assert reply["type"] == "init", reply
        return reply
