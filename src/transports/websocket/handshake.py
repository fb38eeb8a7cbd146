"""The WebSocket opening handshake, checked once for both transports (sans-IO).

Feed `HandshakeParser.receive_data` what the client sends until it returns a
`Handshake`; then answer it with `Handshake.accept_response`, and hand
`Handshake.trailing` (frames sent before our answer) to the WebSocket.
Anything wrong with the request raises `Refusal`, which carries the HTTP
answer to send before closing. The parser never raises anything else for
any input, so whatever else escapes is a bug of ours.

What is refused, in the order it is checked (the first failed check answers):

======  ============================================================================
status  when
======  ============================================================================
400     not parseable as HTTP/1.1, a method other than GET, a target that is not
        a path, no ``Host`` or more than one, an unparseable ``Host``, a body, no
        ``Upgrade: websocket`` or no ``Connection: upgrade``, no
        ``Sec-WebSocket-Version`` or more than one, no ``Sec-WebSocket-Key`` or
        more than one or not 16 bytes in base64, more than one ``Origin``
431     a request head over ``max_bytes`` or with more than ``max_headers`` fields
426     a ``Sec-WebSocket-Version`` other than 13 (answered with
        ``Sec-WebSocket-Version: 13``, RFC 6455 section 4.4)
======  ============================================================================

Whether there is room (429, 503) is decided before this, at the
connection's first byte; whether the ``Origin`` may connect (403) after
it; both by the hub.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

import h11
from wsproto.utilities import generate_accept_token

from ..config import MAX_HEADER_BYTES, MAX_HEADERS
from ..http.answers import Refusal
from ..http.origin import parse_host
from ..http.proxies import FORWARDING_HEADERS


@dataclass(frozen=True, slots=True)
class Handshake:
    """A valid opening handshake."""

    received: bytes
    """Everything read so far: the request, then any frames the client sent before our answer."""
    trailing: bytes
    """The part of ``received`` after the request."""
    target: str
    host: str
    """The host name ``Host`` gives (lower case, without port or brackets)."""
    origin: str | None
    """The ``Origin`` header as sent (decoded as Latin-1); None when absent."""
    key: bytes
    authority: str = ""
    """The ``Host`` header as sent (``name[:port]``): what a page behind a proxy was loaded from."""
    forwarding: tuple[tuple[bytes, bytes], ...] = ()
    """Its forwarding headers (``X-Forwarded-*``, ``Forwarded``), names in lower case: they count only when
    the connection comes from a trusted proxy (`http.proxies`)."""

    def accept_response(self) -> bytes:
        """The 101 answer that completes the handshake (no subprotocol, no extension)."""
        return (
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + generate_accept_token(self.key) + b"\r\n\r\n"
        )


class HandshakeParser:
    """Reads one opening handshake from the bytes of a new connection."""

    def __init__(self, max_bytes: int = MAX_HEADER_BYTES, max_headers: int = MAX_HEADERS) -> None:
        self._http = h11.Connection(h11.SERVER, max_incomplete_event_size=max_bytes)
        self._max_bytes = max_bytes
        self._max_headers = max_headers
        self._received = bytearray()
        self._request: _Checked | None = None

    def receive_data(self, data: bytes) -> Handshake | None:
        """Take bytes the client sent (not empty: end of stream is the caller's to handle).

        Returns the handshake once the whole request is in, None while more is
        needed; raises `Refusal` when the request cannot be accepted.
        """
        self._received += data
        if self._request is None and b"\n" in data and _REQUEST_LINE.match(self._received) is None:
            # Not HTTP at all (a TLS hello, an SSH banner, a frame): say so now, not at the timeout.
            raise Refusal(400, "not a valid HTTP/1.1 request")
        try:
            self._http.receive_data(data)
            while True:
                event = self._http.next_event()
                if event is h11.NEED_DATA:
                    return None
                if isinstance(event, h11.Request):
                    # h11 bounds only a head still incomplete; one that arrived whole is measured here.
                    if len(self._received) - len(self._http.trailing_data[0]) > self._max_bytes:
                        raise Refusal(431, f"request head larger than {self._max_bytes} bytes")
                    self._request = self._check(event)
                elif event is h11.PAUSED or isinstance(event, h11.EndOfMessage):
                    return self._complete()
                else:  # a body (refused at its headers already) or a closed connection: not a handshake
                    raise Refusal(400, "not a WebSocket handshake")
        except h11.RemoteProtocolError as error:
            if error.error_status_hint == 431:
                raise Refusal(431, f"request head larger than {self._max_bytes} bytes") from None
            raise Refusal(400, "not a valid HTTP/1.1 request") from None

    def receive_eof(self) -> None:
        """The client stopped sending: `Refusal` (400) if a request had begun, else nothing to answer."""
        if self._received.strip():
            raise Refusal(400, "the request ended before its headers did")

    def _complete(self) -> Handshake:
        assert self._request is not None
        trailing = bytes(self._http.trailing_data[0])
        return Handshake(bytes(self._received), trailing, *self._request)

    def _check(self, request: h11.Request) -> _Checked:
        headers: dict[bytes, list[bytes]] = {}
        for name, value in request.headers:
            headers.setdefault(name, []).append(value)
        if len(request.headers) > self._max_headers:
            raise Refusal(431, f"more than {self._max_headers} header fields")
        if request.method != b"GET":
            raise Refusal(400, "not a WebSocket handshake: the method must be GET")
        if request.http_version != b"1.1":
            raise Refusal(400, "not a WebSocket handshake: HTTP/1.1 is required")
        if not request.target.startswith(b"/"):
            raise Refusal(400, "not a WebSocket handshake: the target must be a path")
        hosts = headers.get(b"host", [])
        if len(hosts) != 1:
            raise Refusal(400, "exactly one Host header is required")
        host = parse_host(hosts[0].decode("latin-1"))
        if host is None:
            raise Refusal(400, "the Host header is malformed")
        if headers.get(b"content-length", [b"0"]) != [b"0"] or b"transfer-encoding" in headers:
            raise Refusal(400, "a WebSocket handshake has no body")
        if "websocket" not in _tokens(headers.get(b"upgrade", [])):
            raise Refusal(400, "not a WebSocket handshake: no Upgrade: websocket header")
        if "upgrade" not in _tokens(headers.get(b"connection", [])):
            raise Refusal(400, "not a WebSocket handshake: no Connection: Upgrade header")
        versions = headers.get(b"sec-websocket-version", [])
        if len(versions) != 1:
            raise Refusal(400, "exactly one Sec-WebSocket-Version header is required")
        if versions[0] != b"13":
            raise Refusal(426, "this server speaks WebSocket version 13", _VERSION_HEADERS)
        keys = headers.get(b"sec-websocket-key", [])
        if len(keys) != 1 or not _valid_key(keys[0]):
            raise Refusal(400, "exactly one Sec-WebSocket-Key header of 16 bytes in base64 is required")
        origins = headers.get(b"origin", [])
        if len(origins) > 1:
            raise Refusal(400, "more than one Origin header")
        origin = origins[0].decode("latin-1") if origins else None
        forwarding = tuple((name, value) for name, value in request.headers if name in FORWARDING_HEADERS)
        return request.target.decode("latin-1"), host, origin, keys[0], hosts[0].decode("latin-1"), forwarding


_Checked = tuple[str, str, str | None, bytes, str, tuple[tuple[bytes, bytes], ...]]
_REQUEST_LINE = re.compile(rb"(?:\r?\n)*[!#$%&'*+.^_`|~0-9A-Za-z-]+ [^ \r\n]+ HTTP/[0-9]\.[0-9]\r?\n")
_VERSION_HEADERS = (("Upgrade", "websocket"), ("Sec-WebSocket-Version", "13"))


def _tokens(values: list[bytes]) -> set[str]:
    """The comma-separated tokens of a header's values, lower case."""
    return {token.strip().lower() for value in values for token in value.decode("latin-1").split(",")}


def _valid_key(key: bytes) -> bool:
    try:
        return len(base64.b64decode(key, validate=True)) == 16
    except binascii.Error:
        return False
