"""HTTP error answers, the same on every port: `Refusal` carries one up to where it is sent."""

from __future__ import annotations

from http import HTTPStatus


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
