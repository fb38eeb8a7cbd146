"""`FrameReader` against wsproto alone: whatever a client sends, however it is split, the same messages and closes."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st
from wsproto import ConnectionType
from wsproto.connection import Connection, ConnectionState
from wsproto.events import BytesMessage, CloseConnection, Event, Ping, Pong, TextMessage

from raw_websocket import client_frame
from transports.websocket.incoming import Assembler, FrameReader, MessageTooBig

LIMIT = 300

texts = st.text(max_size=200)
payloads = st.binary(max_size=125)


def _non_minimal(text: str) -> bytes:
    data = text.encode()
    return bytes([0x81, 0x80 | 126]) + struct.pack("!H", len(data)) + b"\0\0\0\0" + data  # zero mask


def _fragments(text: str) -> bytes:
    data = text.encode()
    middle = len(data) // 2
    return client_frame(0x1, data[:middle], fin=False) + client_frame(0x0, data[middle:])


frames = st.one_of(
    texts.map(lambda text: client_frame(0x1, text.encode())),  # the common case, weighted by repetition
    texts.map(lambda text: client_frame(0x1, text.encode())),
    texts.map(lambda text: client_frame(0x1, text.encode())),
    payloads.map(lambda data: client_frame(0x2, data)),
    payloads.map(lambda data: client_frame(0x9, data)),
    payloads.map(lambda data: client_frame(0xA, data)),
    texts.map(_fragments),
    st.binary(min_size=1, max_size=20).map(lambda data: client_frame(0x1, b"ok" + data)),  # often invalid UTF-8
    texts.map(lambda text: client_frame(0x1, text.encode(), masked=False)),
    texts.map(lambda text: client_frame(0x1, text.encode(), rsv=4)),
    texts.map(_non_minimal),
    st.integers(LIMIT + 1, LIMIT + 500).map(lambda size: client_frame(0x1, b"x" * size)),
    st.binary(min_size=126, max_size=200).map(lambda data: client_frame(0x9, data)),  # control frame too long
    st.just(client_frame(0x1, b"\xed\xa0\x80")),  # an encoded surrogate: not UTF-8 for WebSocket
    st.just(client_frame(0x3, b"reserved opcode")),
    st.just(client_frame(0x8, struct.pack("!H", 1000) + b"bye")),
)


def _outcomes(batches: list[list[str | Event]]) -> list[tuple[object, ...]]:
    """What a server makes of the events: whole messages, pings, pongs, closes, and a message too big."""
    assembler = Assembler(LIMIT)
    seen: list[tuple[object, ...]] = []
    for batch in batches:
        for event in batch:
            if isinstance(event, str):
                seen.append(("message", event))
            elif isinstance(event, TextMessage | BytesMessage):
                try:
                    message = assembler.add(event)
                except MessageTooBig:
                    return [*seen, ("too big",)]
                if message is not None:
                    seen.append(("message", message))
            elif isinstance(event, Ping | Pong):
                seen.append((type(event).__name__, bytes(event.payload)))
            elif isinstance(event, CloseConnection):
                seen.append(("close", event.code))  # (and whatever wsproto makes of the bytes after it)
    return seen


@settings(max_examples=400)
@given(st.lists(frames, max_size=12), st.lists(st.integers(1, 400), min_size=1, max_size=30), st.booleans())
def test_the_reader_makes_of_any_bytes_what_wsproto_makes_of_them(
    sent: list[bytes], cuts: list[int], with_handshake: bool
) -> None:
    stream = b"".join(sent)
    chunks, position = [], 0
    for cut in cuts:
        chunks.append(stream[position:position + cut])
        position += cut
    chunks.append(stream[position:])
    trailing = chunks.pop(0) if with_handshake else b""  # bytes that came in the handshake's read

    reference = Connection(ConnectionType.SERVER, trailing_data=trailing)
    expected: list[list[str | Event]] = [list(reference.events())]
    reader = FrameReader(Connection(ConnectionType.SERVER), LIMIT, trailing)
    got = [reader.feed(b"")]
    for chunk in chunks:
        if chunk:
            reference.receive_data(chunk)
            expected.append(list(reference.events()))
            got.append(reader.feed(chunk))
    assert _outcomes(got) == _outcomes(expected)


def test_whole_text_frames_come_out_as_text_without_wsproto() -> None:
    connection = Connection(ConnectionType.SERVER)
    reader = FrameReader(connection, LIMIT)
    data = client_frame(0x1, "héllo 🌍".encode()) + client_frame(0x1, b"second")
    assert reader.feed(data[:5]) == []
    assert reader.feed(data[5:]) == ["héllo 🌍", "second"]


def test_a_client_sending_text_and_pongs_gets_no_wsproto_connection() -> None:
    # An idle connection keeps what its reader holds: wsproto's connection is made only when something needs it.
    reader = FrameReader(None, LIMIT)
    assert reader.feed(client_frame(0x1, b"hello") + client_frame(0xA, b"keepalive")) == [
        "hello", Pong(payload=b"keepalive")]
    assert reader._connection is None
    assert reader.state is ConnectionState.OPEN
    assert reader.feed(client_frame(0x9, b"ping")) == [Ping(payload=b"ping")]
    assert reader._connection is not None


@settings(max_examples=200)
@given(st.lists(frames, max_size=12))
def test_a_reader_making_its_wsproto_connection_when_needed_reads_the_same(sent: list[bytes]) -> None:
    stream = b"".join(sent)
    given_one, lazy = FrameReader(Connection(ConnectionType.SERVER), LIMIT), FrameReader(None, LIMIT)
    assert _outcomes([given_one.feed(stream), given_one.feed(None)]) == _outcomes([lazy.feed(stream), lazy.feed(None)])
    assert given_one.state is lazy.state
