"""A test client speaking the seed protocol through python-websockets (an independent implementation)."""

from __future__ import annotations

import json
from contextlib import ExitStack
from typing import Any, Self

from websockets.sync.client import ClientConnection, connect

TIMEOUT = 5.0


class ChatClient:
    def __init__(self, url: str, **options: Any) -> None:
        self._stack = ExitStack()
        self.ws: ClientConnection = self._stack.enter_context(
            connect(url, open_timeout=TIMEOUT, close_timeout=TIMEOUT, **options)
        )

    def send(self, event: object) -> None:
        self.ws.send(json.dumps(event))

    def send_raw(self, message: str | bytes) -> None:
        self.ws.send(message)

    def recv(self, timeout: float = TIMEOUT) -> dict[str, Any]:
        event = json.loads(self.ws.recv(timeout=timeout))
        assert isinstance(event, dict)
        return event

    def init(self, join_key: str | None = None, *, renders_text: bool = True) -> dict[str, Any]:
        """Start or join a room; ``renders_text=False`` behaves like the seed page (no ``render`` field)."""
        event: dict[str, Any] = {"type": "init"}
        if join_key is not None:
            event["joinKey"] = join_key
        if renders_text:
            event["render"] = "text"
        self.send(event)
        reply = self.recv()
        assert reply["type"] == "init", reply
        return reply

    def talks_until_quiet(self, quiet: float) -> list[dict[str, Any]]:
        """The talk events sent to this client (a joiner's replay, say) until none comes for ``quiet`` seconds."""
        events: list[dict[str, Any]] = []
        while True:
            try:
                event = self.recv(timeout=quiet)
            except TimeoutError:
                return events
            assert event["type"] == "talk", event
            events.append(event)

    def talk(self, payload: str) -> None:
        self.send({"type": "talk", "payload": payload})

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
