"""The shared handshake check, without sockets: each refusal, and hypothesis throwing anything at it."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wsproto.utilities import generate_accept_token

from transports.config import MAX_HEADER_BYTES
from transports.http.answers import Refusal, http_response
from transports.websocket.handshake import Handshake, HandshakeParser

KEY = base64.b64encode(b"0123456789abcdef").decode()
GOOD = [
    ("Host", "127.0.0.1:8001"),
    ("Upgrade", "websocket"),
    ("Connection", "Upgrade"),
    ("Sec-WebSocket-Key", KEY),
    ("Sec-WebSocket-Version", "13"),
]
DOCUMENTED = {400, 426, 431}


def request(headers: list[tuple[str, str]], line: str = "GET /chat HTTP/1.1") -> bytes:
    return (line + "\r\n" + "".join(f"{name}: {value}\r\n" for name, value in headers) + "\r\n").encode("latin-1")


def replaced(name: str, *values: str) -> list[tuple[str, str]]:
    """GOOD with header ``name`` given ``values`` (none: removed; several: repeated)."""
    return [(n, v) for n, v in GOOD if n != name] + [(name, value) for value in values]


def parse(data: bytes, chunk: int | None = None) -> Handshake | None:
    parser = HandshakeParser()
    chunk = chunk or len(data) or 1
    result = None
    for start in range(0, len(data), chunk):
        result = parser.receive_data(data[start : start + chunk])
        if result is not None:
            return result
    return result


def refusal(data: bytes) -> Refusal:
    with pytest.raises(Refusal) as refused:
        parse(data)
    return refused.value


@pytest.mark.parametrize("chunk", [None, 1, 7])
def test_a_valid_handshake_gives_its_parts_and_the_101(chunk: int | None) -> None:
    data = request([*GOOD, ("Origin", "http://127.0.0.1:8000")])
    handshake = parse(data + b"\x81\x80frames sent early", chunk)
    assert handshake is not None
    assert (handshake.target, handshake.host, handshake.origin) == ("/chat", "127.0.0.1", "http://127.0.0.1:8000")
    # What came with the request's last chunk, and nothing more, is left for the WebSocket.
    assert handshake.received == data + handshake.trailing
    assert handshake.trailing == b"\x81\x80frames sent early"[: len(handshake.trailing)]
    if chunk is None:
        assert handshake.trailing == b"\x81\x80frames sent early"
    response = handshake.accept_response()
    assert response.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert b"Sec-WebSocket-Accept: " + generate_accept_token(KEY.encode()) + b"\r\n" in response


def test_an_incomplete_request_waits_for_more() -> None:
    assert HandshakeParser().receive_data(request(GOOD)[:-2]) is None


def test_header_names_and_tokens_are_case_insensitive() -> None:
    headers = [(n.upper(), v) for n, v in replaced("Connection", "keep-alive, UPGRADE") if n != "Upgrade"]
    assert parse(request([*headers, ("upgrade", "WebSocket")])) is not None


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (request(GOOD, "POST /chat HTTP/1.1"), 400),
        (request(GOOD, "GET /chat HTTP/1.0"), 400),
        (request(GOOD, "GET http://127.0.0.1:8001/chat HTTP/1.1"), 400),
        (request(GOOD, "GET /chat HTTP/2.0"), 400),
        (b"garbage\r\n\r\n", 400),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64 + b"\r\n\r\n", 400),
        (request(replaced("Host")), 400),
        (request(replaced("Host", "a", "b")), 400),
        (request(replaced("Host", "a:99999")), 400),
        (request(replaced("Host", "[::1")), 400),
        (request(replaced("Host", "exa mple")), 400),
        (request([*GOOD, ("Content-Length", "5")]) + b"hello", 400),
        (request([*GOOD, ("Transfer-Encoding", "chunked")]), 400),
        (request(replaced("Upgrade")), 400),
        (request(replaced("Upgrade", "h2c")), 400),
        (request(replaced("Connection", "keep-alive")), 400),
        (request(replaced("Sec-WebSocket-Version")), 400),
        (request(replaced("Sec-WebSocket-Version", "13", "13")), 400),
        (request(replaced("Sec-WebSocket-Version", "8")), 426),
        (request(replaced("Sec-WebSocket-Version", "13, 8")), 426),
        (request(replaced("Sec-WebSocket-Key")), 400),
        (request(replaced("Sec-WebSocket-Key", KEY, KEY)), 400),
        (request(replaced("Sec-WebSocket-Key", "not base64!")), 400),
        (request(replaced("Sec-WebSocket-Key", base64.b64encode(b"short").decode())), 400),
        (request([*GOOD, ("Origin", "http://a"), ("Origin", "http://b")]), 400),
        (request([*GOOD, ("X-Filler", "x" * MAX_HEADER_BYTES)]), 431),
        (request([*GOOD, *[(f"X-{i}", "1") for i in range(100)]]), 431),
    ],
    ids=[
        "post", "http-1.0", "absolute-target", "http-2", "garbage", "tls-hello", "no-host", "two-hosts",
        "host-bad-port", "host-bad-v6", "host-space", "body", "chunked", "no-upgrade", "upgrade-other",
        "connection-no-upgrade", "no-version", "two-versions", "version-8", "version-list", "no-key", "two-keys",
        "key-not-base64", "key-short", "two-origins", "head-too-large", "too-many-headers",
    ],
)
def test_each_malformed_handshake_gets_its_status(data: bytes, status: int) -> None:
    refused = refusal(data)
    assert refused.status == status
    response = refused.response()
    assert response.startswith(f"HTTP/1.1 {status} ".encode())
    head, body = response.split(b"\r\n\r\n", 1)
    assert body == refused.reason.encode() + b"\n"
    assert b"Content-Length: %d\r\n" % len(body) in head


def test_426_names_the_version_we_speak() -> None:
    head = refusal(request(replaced("Sec-WebSocket-Version", "8"))).response().split(b"\r\n\r\n")[0]
    assert b"\r\nSec-WebSocket-Version: 13" in head
    assert b"\r\nUpgrade: websocket" in head


def test_a_head_larger_than_the_limit_is_refused_before_it_ends() -> None:
    parser = HandshakeParser(max_bytes=2048)
    parser.receive_data(b"GET / HTTP/1.1\r\n")
    line = b"X-Filler: " + b"x" * 100 + b"\r\n"
    for _ in range(18):
        assert parser.receive_data(line) is None
    with pytest.raises(Refusal) as refused:
        parser.receive_data(line)
    assert refused.value.status == 431


def test_the_refusal_body_never_echoes_the_request() -> None:
    refused = refusal(request(replaced("Host", "<script>alert(1)</script>")))
    assert b"script" not in refused.response()


def test_http_response_is_well_formed() -> None:
    response = http_response(500, "internal error")
    assert response == (
        b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Length: 15\r\nConnection: close\r\n\r\ninternal error\n"
    )


# --- hypothesis: whatever arrives, the answer is a handshake or a documented refusal ---------------

header_names = st.sampled_from(
    ["Host", "Upgrade", "Connection", "Sec-WebSocket-Key", "Sec-WebSocket-Version", "Origin", "Content-Length",
     "Transfer-Encoding", "X-Other"]
) | st.text(st.characters(codec="latin-1"), min_size=0, max_size=20)
header_values = st.sampled_from(
    ["websocket", "Upgrade", "13", "8", KEY, "http://a:99999", "http://[::1]:8000", "null", "127.0.0.1:8001",
     "[::1]", "a:99999", "0", "chunked", ""]
) | st.text(st.characters(codec="latin-1"), max_size=40)
lines = st.sampled_from(["GET / HTTP/1.1", "GET /x?y HTTP/1.1", "POST / HTTP/1.1", "GET / HTTP/1.0"]) | st.text(
    st.characters(codec="latin-1"), max_size=30
)


@st.composite
def handshakes(draw: st.DrawFn) -> bytes:
    headers = list(GOOD) if draw(st.booleans()) else []
    for _ in range(draw(st.integers(0, 6))):
        action = draw(st.sampled_from(["add", "drop", "replace"]))
        if action == "add" or not headers:
            headers.insert(draw(st.integers(0, len(headers))), (draw(header_names), draw(header_values)))
        else:
            index = draw(st.integers(0, len(headers) - 1))
            if action == "drop":
                del headers[index]
            else:
                headers[index] = (headers[index][0], draw(header_values))
    data = request(headers, draw(lines))
    if draw(st.booleans()):
        data += draw(st.binary(max_size=64))
    return data


def check(data: bytes, chunk: int) -> None:
    refused: Refusal | None = None
    try:
        handshake = parse(data, chunk)
    except Refusal as refusal:
        refused = refusal
    if refused is not None:
        assert refused.status in DOCUMENTED
        assert refused.response().startswith(f"HTTP/1.1 {refused.status} ".encode())
    else:
        if handshake is not None:
            assert handshake.key
            assert handshake.host
            assert handshake.target.startswith("/")


@settings(max_examples=400, deadline=None)
@given(handshakes(), st.integers(1, 64))
def test_generated_handshakes_get_a_handshake_or_a_documented_status(data: bytes, chunk: int) -> None:
    check(data, chunk)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.integers(1, 64))
def test_raw_bytes_get_a_handshake_or_a_documented_status(data: bytes, chunk: int) -> None:
    check(data, chunk)


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 3 * MAX_HEADER_BYTES), st.integers(0, 200))
def test_sizes_get_a_documented_status(filler: int, count: int) -> None:
    headers = [*GOOD, *[(f"X-{i}", "v") for i in range(count)], ("X-Filler", "x" * filler)]
    check(request(headers), 4096)
