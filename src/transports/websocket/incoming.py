"""What clients send: frames parsed (`FrameReader`) and whole messages within the size limit (`Assembler`)."""

from __future__ import annotations

from wsproto import ConnectionType
from wsproto.connection import Connection, ConnectionState
from wsproto.events import BytesMessage, CloseConnection, Event, Pong, TextMessage


class MessageTooBig(Exception):
    """A message grew past the limit; ``str(error)`` is the close reason (code 1009)."""


class Assembler:
    """Joins the fragments of one message at a time."""

    __slots__ = ("_binary", "_limit", "_size", "_text")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._size = 0
        self._text: list[str] | None = None  # fragments of an unfinished message, if any
        self._binary: list[bytes] | None = None

    def add(self, event: TextMessage | BytesMessage) -> str | bytes | None:
        """The whole message once ``event`` finishes it, else None; raises `MessageTooBig`."""
        self._size += len(event.data)
        if self._size > self._limit:
            raise MessageTooBig(f"Exceeded maximum message size: {self._limit} bytes")
        if isinstance(event, TextMessage):
            if self._text is None:
                if event.message_finished:  # the common case: a whole message in one frame
                    self._size = 0
                    return event.data
                self._text = []
            self._text.append(event.data)
            if not event.message_finished:
                return None
            text, self._text, self._size = "".join(self._text), None, 0
            return text
        if self._binary is None:
            self._binary = []
        self._binary.append(bytes(event.data))
        if not event.message_finished:
            return None
        data, self._binary, self._size = b"".join(self._binary), None, 0
        return data


_TEXT_FIN = 0x81  # FIN, no RSV bits, opcode 1: a whole text message in one frame
_PONG = 0x8A  # FIN, no RSV, opcode 10: what answers our keepalive pings
_MAX_CONTROL = 125  # a control frame's longest payload
_WHOLE_OTHER = frozenset({0x82, 0x88, 0x89, _PONG})  # FIN, no RSV: binary, close, ping, pong
_MAX_WAIT = 65536  # a frame longer than this is left to wsproto, which takes it as it comes


def _unmask(payload: bytes, mask: bytes) -> bytes:
    length = len(payload)
    key = int.from_bytes((mask * (length // 4 + 1))[:length], "little")
    return (int.from_bytes(payload, "little") ^ key).to_bytes(length, "little")


class FrameReader:
    """What a client sent, frame by frame: whole text frames parsed here, everything else by wsproto.

    A chat client sends small text messages, each one masked frame; wsproto's
    parser (generators, an incremental decoder, an event object per frame) is
    most of the cost of receiving one. `feed` takes such a frame itself when
    it is complete and exactly what wsproto would take as one whole message
    without complaint: FIN, no RSV bits, masked, its length in the shortest
    form and within the limit, its payload valid UTF-8. It hands any other
    complete binary or control frame to wsproto whole, so wsproto always
    starts at a frame boundary with nothing held; and from the first frame it
    would not take whole (a fragment, a malformed or oversized one) it leaves
    the rest of the connection to wsproto. wsproto then answers exactly as it
    would have: the same events, the same close codes.

    wsproto's connection (2 KiB with its parser and queue) is made when first
    needed (``connection``): a client that sends only text messages, and
    pongs (parsed here too), never needs one.
    """

    __slots__ = ("_buffer", "_connection", "_limit", "_wsproto_only")

    def __init__(self, connection: Connection | None, limit: int, trailing: bytes = b"") -> None:
        self._connection = connection
        """wsproto's connection for the client (None: not made yet)."""
        self._limit = limit
        self._buffer = trailing
        self._wsproto_only = False

    @property
    def connection(self) -> Connection:
        """wsproto's connection for the client, open (made now if it was not needed before)."""
        connection = self._connection
        if connection is None:
            connection = self._connection = Connection(ConnectionType.SERVER)
        return connection

    @property
    def state(self) -> ConnectionState:
        """The connection's state, without making wsproto's connection: open until that says otherwise."""
        return ConnectionState.OPEN if self._connection is None else self._connection.state

    def feed(self, data: bytes | None) -> list[str | Event]:
        """Received bytes (None: the peer has gone) in; whole text messages and wsproto's events out, in order."""
        if self._wsproto_only or data is None:
            return self._to_wsproto(data)
        buffer = self._buffer + data if self._buffer else data
        out: list[str | Event] = []
        position, end = 0, len(buffer)
        while end - position >= 2:
            first, second = buffer[position], buffer[position + 1]
            length, head = second & 0x7F, position + 2
            if length >= 126:
                if length == 126:
                    if end - head < 2:
                        break
                    length, head = int.from_bytes(buffer[head:head + 2], "big"), head + 2
                    shortest = length >= 126
                else:
                    if end - head < 8:
                        break
                    length, head = int.from_bytes(buffer[head:head + 8], "big"), head + 8
                    shortest = length >= 1 << 16 and length < 1 << 63
                if not shortest or length > _MAX_WAIT:
                    return self._switch(buffer, position, out)
            if not second & 0x80 or length > self._limit:
                return self._switch(buffer, position, out)  # unmasked, or too big: wsproto closes it
            frame_end = head + 4 + length
            if frame_end > end:
                break  # the rest of this frame has not arrived yet
            if first == _TEXT_FIN:
                payload = _unmask(buffer[head + 4:frame_end], buffer[head:head + 4])
                try:
                    out.append(payload.decode("utf-8"))
                except UnicodeDecodeError:
                    return self._switch(buffer, position, out)
            elif first == _PONG and length <= _MAX_CONTROL:
                out.append(Pong(payload=_unmask(buffer[head + 4:frame_end], buffer[head:head + 4])))
            elif first in _WHOLE_OTHER:
                connection = self.connection
                connection.receive_data(buffer[position:frame_end])
                events = list(connection.events())
                out.extend(events)
                if events and isinstance(events[-1], CloseConnection):  # the client's close, or a protocol error
                    return self._switch(buffer, frame_end, out)
            else:
                return self._switch(buffer, position, out)
            position = frame_end
        self._buffer = buffer[position:]
        return out

    def _switch(self, buffer: bytes, position: int, out: list[str | Event]) -> list[str | Event]:
        self._wsproto_only = True
        self._buffer = b""
        if position < len(buffer):
            out.extend(self._to_wsproto(buffer[position:]))
        return out

    def _to_wsproto(self, data: bytes | None) -> list[str | Event]:
        connection = self.connection
        if self._buffer:  # (only when the peer has gone mid-frame)
            connection.receive_data(self._buffer)
            self._buffer = b""
        self._wsproto_only = True
        connection.receive_data(data)
        return list(connection.events())
