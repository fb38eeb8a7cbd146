"""Test clients speaking the seed protocol and protocol version 2 through python-websockets (independent of ours)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Coroutine
from contextlib import ExitStack
from typing import Any, Self, TypeVar

import websockets.asyncio.client
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

TIMEOUT = 5.0
T = TypeVar("T")


class ChatClient:
    def __init__(self, url: str, **options: Any) -> None:
        self._stack = ExitStack()
        self.ws: ClientConnection | OverTls
        if "ssl" in options:
            self.ws = self._stack.enter_context(OverTls(url, **options))
        else:
            self.ws = self._stack.enter_context(connect(url, open_timeout=TIMEOUT, close_timeout=TIMEOUT, **options))

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

    def closed_with(self, timeout: float = 5.0) -> tuple[int, str]:
        """Read until the server closes the connection: its close code and reason."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.recv(timeout=max(0.01, deadline - time.monotonic()))
            except ConnectionClosed as closed:
                received = closed.rcvd
                assert received is not None
                return received.code, received.reason

    def vanish(self) -> None:
        """End the TCP connection with no close frame, as a client whose network went away."""
        if isinstance(self.ws, OverTls):
            self.ws.abort()
        else:
            self.ws.socket.close()

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class OverTls:
    """python-websockets' asyncio client, driven from the calling thread through a loop thread of its own.

    The sync client reads its ``ssl.SSLSocket`` in a background thread while the caller writes to it from
    another, and OpenSSL's connection objects are not safe to use from two threads at once: now and then
    the handshake's request was never sent. Here one thread does all of a connection's TLS.
    """

    _loop: asyncio.AbstractEventLoop | None = None
    _guard = threading.Lock()

    def __init__(self, url: str, *, source_address: tuple[str, int] | None = None, **options: Any) -> None:
        if source_address is not None:
            options["local_addr"] = source_address
        self._connection = self._run(websockets.asyncio.client.connect(
            url, open_timeout=TIMEOUT, close_timeout=TIMEOUT, **options
        ).__aenter__())

    def send(self, message: Any) -> None:
        self._run(self._connection.send(message))

    def recv(self, timeout: float | None = None) -> str | bytes:
        return self._run(asyncio.wait_for(self._connection.recv(), timeout))

    def close(self, code: int = 1000, reason: str = "") -> None:
        self._run(self._connection.close(code, reason))

    def abort(self) -> None:
        async def abort() -> None:
            self._connection.transport.abort()

        self._run(abort())

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @classmethod
    def _run(cls, coroutine: Coroutine[Any, Any, T]) -> T:
        with cls._guard:
            if cls._loop is None:
                cls._loop = asyncio.new_event_loop()
                threading.Thread(target=cls._loop.run_forever, name="tls-test-clients", daemon=True).start()
        return asyncio.run_coroutine_threadsafe(coroutine, cls._loop).result()


class V2Client(ChatClient):
    """A protocol version 2 client, written against the protocol reference (docs/protocol.md)."""

    def join(self, join_key: str | None = None, **fields: Any) -> dict[str, Any]:
        """Send a version-2 ``init`` (text rendering) and return its reply; the replay stays to be read."""
        event: dict[str, Any] = {"type": "init", "v": 2, "render": "text", **fields}
        if join_key is not None:
            event["joinKey"] = join_key
        self.send(event)
        reply = self.recv()
        assert reply["type"] == "init", reply
        return reply

    def until_quiet(self, quiet: float = 0.4) -> list[dict[str, Any]]:
        """Every event sent until none comes for ``quiet`` seconds."""
        events: list[dict[str, Any]] = []
        while True:
            try:
                events.append(self.recv(timeout=quiet))
            except TimeoutError:
                return events

    def wait_for(self, kind: str, timeout: float = 5.0, **fields: Any) -> dict[str, Any]:
        """The next event of this kind with these fields (others before it are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            event = self.recv(timeout=max(0.01, deadline - time.monotonic()))
            if event["type"] == kind and all(event.get(name) == value for name, value in fields.items()):
                return event
