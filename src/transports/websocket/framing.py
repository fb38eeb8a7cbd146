"""One outgoing message, shared by all its recipients: encoded and framed at most once."""

from __future__ import annotations

from wsproto.frame_protocol import FrameProtocol

# Server frames are unmasked and we negotiate no extension, so a frame does not
# depend on the connection: one framer serves them all. With fin=True every
# call is a whole message and leaves no state behind.
_FRAMER = FrameProtocol(client=False, extensions=[])


class Outgoing:
    """A WebSocket message (text or binary) and, once asked for, its frame."""

    __slots__ = ("_frame", "message")

    def __init__(self, message: str | bytes) -> None:
        self.message = message
        self._frame: bytes | None = None

    def frame(self) -> bytes:
        """The complete WebSocket frame, built on first use and reused after."""
        if self._frame is None:
            self._frame = bytes(_FRAMER.send_data(self.message, fin=True))
        return self._frame
