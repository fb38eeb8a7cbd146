"""HTTP error answers, the same on every port: `Refusal` carries one up to where `answer` sends it."""

from __future__ import annotations

from http import HTTPStatus
from typing import Protocol

import anyio

_RECEIVE_SIZE = 65536


class Stream(Protocol):
    """The byte stream of one connection, as far as answering it goes (`websocket.lifecycle.Link` has more)."""

    async def receive(self, max_bytes: int) -> bytes:
        """Up to ``max_bytes``; ``b""`` once the client has closed or reset the connection."""

    async def send_all(self, data: bytes) -> None:
        """Write everything; raises `OSError` once the client is gone."""

    def shutdown_write(self) -> None:
        """Send FIN: we write nothing more."""


def http_response(status: int, body: str, headers: tuple[tuple[str, str], ...] = ()) -> bytes:
    """A complete HTTP/1.1 error answer with a short plain-text body; the connection closes after it."""
    content = f"{body}\n".encode()
    connection = "Upgrade, close" if any(name == "Upgrade" for name, _ in headers) else "close"
    lines = [
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}",
        "Content-Type: text/plain; charset=utf-8",
        f"Content-Length: {len(content)}",
        f"Connection: {connection}",
        *(f"{name}: {value}" for name, value in headers),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + content


class Refusal(Exception):
    """A handshake answered with an HTTP error instead of 101: the client's mistake, or a policy.

    ``reason`` is ours (it never echoes what the client sent) and becomes the body.
    """

    def __init__(self, status: int, reason: str, headers: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason
        self.headers = headers

    def response(self) -> bytes:
        return http_response(self.status, self.reason, self.headers)


async def answer(stream: Stream, response: bytes, linger: float) -> bool:
    """Send an HTTP answer and wait for the client to close; False if that did not happen within ``linger`` seconds.

    Closing with unread data would reset the connection, and a reset can
    destroy the answer before the client reads it: so we read until it closes.
    """
    with anyio.move_on_after(linger):
        try:
            await stream.send_all(response)
            stream.shutdown_write()
            while await stream.receive(_RECEIVE_SIZE):
                pass
        except OSError:
            return False
        return True
    return False
