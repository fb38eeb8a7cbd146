"""A server's frames (`transports.websocket.framing`) are byte for byte wsproto's, in every length form."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from wsproto.frame_protocol import FrameProtocol

from transports.websocket.framing import Outgoing, frame

EDGES = [0, 1, 125, 126, 127, 65535, 65536, 70000]


def wsproto_frame(message: str | bytes) -> bytes:
    return bytes(FrameProtocol(client=False, extensions=[]).send_data(message, fin=True))


def test_every_length_form_is_wsprotos() -> None:
    for size in EDGES:
        assert frame(b"\x00" * size) == wsproto_frame(b"\x00" * size)
        assert frame("é" * size) == wsproto_frame("é" * size)  # (two bytes a character: the length is of UTF-8)


@given(st.text() | st.binary())
def test_any_message_is_framed_as_wsproto_frames_it(message: str | bytes) -> None:
    assert frame(message) == wsproto_frame(message)


def test_a_message_is_framed_once_for_all_its_recipients() -> None:
    outgoing = Outgoing("hello")
    assert outgoing.frame() is outgoing.frame()
    assert outgoing.frame() == b"\x81\x05hello"
