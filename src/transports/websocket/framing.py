"""One outgoing message, shared by all its recipients: encoded and framed at most once.

A server's frame is the simplest WebSocket frame there is: unmasked, one
whole message (FIN set), no extension negotiated (no RSV bit), so it does
not depend on the connection. Its header is written here, in the three
length forms of RFC 6455 section 5.2: two bytes, at once, where wsproto's
general framer (kept for everything else: pings, closes, the client side)
spends ten times as long per broadcast (`tests/transports/test_framing.py`
checks every length form against it).
"""

from __future__ import annotations

import struct

_TEXT, _BINARY = 0x81, 0x82  # FIN + opcode
_LENGTH_16 = struct.Struct("!BBH")
_LENGTH_64 = struct.Struct("!BBQ")


def frame(message: str | bytes) -> bytes:
    """The complete server frame of one text (``str``) or binary (``bytes``) message."""
    if isinstance(message, str):
        data, first = message.encode(), _TEXT
    else:
        data, first = message, _BINARY
    size = len(data)
    if size < 126:
        return bytes((first, size)) + data
    if size < 65536:
        return _LENGTH_16.pack(first, 126, size) + data
    return _LENGTH_64.pack(first, 127, size) + data


class Outgoing:
    """A WebSocket message (text or binary) and, once asked for, its frame."""

    __slots__ = ("_frame", "message")

    def __init__(self, message: str | bytes) -> None:
        self.message = message
        self._frame: bytes | None = None

    def frame(self) -> bytes:
        """The complete WebSocket frame, built on first use and reused after."""
        if self._frame is None:
            self._frame = frame(self.message)
        return self._frame
