"""Hostile and malformed handshakes over real sockets: both transports give the same HTTP answer, and live on.

Also what the policy allows: pages of this machine under any of its names.
"""

from __future__ import annotations

import logging
import socket
import struct

import pytest

from chat_client import ChatClient
from live import LiveServer, wait_until
from raw_websocket import (
    answer_to_init_sent_with_the_handshake,
    exchange,
    raw_handshake,
)
from transports.config import Transport


def handshake(*extra: str, host: str = "127.0.0.1", version: str = "13", line: str = "GET / HTTP/1.1") -> bytes:
    return raw_handshake(*extra, host=host, version=version, line=line)


HOSTILE = {
    "origin-port-out-of-range": (handshake("Origin: http://a:99999"), 403),
    "origin-null": (handshake("Origin: null"), 403),
    "origin-garbage": (handshake("Origin: \xff\xfe::"), 403),
    "origin-foreign": (handshake("Origin: http://evil.example"), 403),
    "origin-repeated": (handshake("Origin: http://127.0.0.1:1", "Origin: http://evil.example"), 400),
    "host-unparseable": (handshake(host="a:99999"), 400),
    "host-missing": (handshake().replace(b"Host: 127.0.0.1\r\n", b""), 400),
    "host-repeated": (handshake("Host: other"), 400),
    "key-missing": (handshake().replace(b"Sec-WebSocket-Key", b"X-Key"), 400),
    "key-bad": (handshake("Sec-WebSocket-Key: abc"), 400),
    "version-8": (handshake(version="8"), 426),
    "version-missing": (handshake().replace(b"Sec-WebSocket-Version: 13\r\n", b""), 400),
    "not-upgrade": (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    "post": (handshake(line="POST / HTTP/1.1"), 400),
    "http-1.0": (handshake(line="GET / HTTP/1.0"), 400),
    "body": (handshake("Content-Length: 3") + b"abc", 400),
    "garbage": (b"\x00\x01\x02 hello\r\n\r\n", 400),
    "ssh-banner": (b"SSH-2.0-OpenSSH_9.0\r\n", 400),  # a first line that is not HTTP: answered at once
    "truncated-then-eof": (handshake()[:30], 400),
    "upgrade-token-list": (handshake().replace(b"Upgrade: websocket", b"Upgrade: foo, websocket, h2c") + b"", 101),
    "header-too-large": (handshake("X-Big: " + "x" * 20_000), 431),
    "header-huge-stream": (handshake("X-Big: " + "x" * 2_000_000), 431),
    "too-many-headers": (handshake(*[f"X-{i}: 1" for i in range(200)]), 431),
}


@pytest.mark.parametrize("case", HOSTILE)
def test_both_transports_answer_each_bad_handshake_the_same(servers: dict[Transport, LiveServer], case: str) -> None:
    request, status = HOSTILE[case]
    answers = {transport: exchange(live.running.ws_port, request) for transport, live in servers.items()}
    trio_answer, wsproto_answer = answers[Transport.TRIO_WEBSOCKET], answers[Transport.WSPROTO]
    assert trio_answer.startswith(f"HTTP/1.1 {status} ".encode()), trio_answer[:200]
    assert trio_answer == wsproto_answer
    if status == 101:
        return
    head, body = trio_answer.split(b"\r\n\r\n", 1)
    assert 0 < len(body) < 200
    assert body.endswith(b"\n")
    assert b"Connection: " in head
    if status == 426:
        assert b"\r\nSec-WebSocket-Version: 13" in head
    for live in servers.values():
        with ChatClient(live.ws_url) as client:
            assert client.init()["userId"] == 1


@pytest.mark.parametrize("transport", list(Transport))
@pytest.mark.parametrize("page", ["localhost", "127.0.0.1", "[::1]"])
@pytest.mark.parametrize("socket_name", ["localhost", "127.0.0.1"])
def test_pages_of_this_machine_may_connect_under_any_of_its_names(
    servers: dict[Transport, LiveServer], transport: Transport, page: str, socket_name: str
) -> None:
    live = servers[transport]
    url = f"ws://{socket_name}:{live.running.ws_port}/"
    with ChatClient(url, origin=f"http://{page}:{live.running.http_port}") as client:
        assert client.init()["userId"] == 1


@pytest.mark.parametrize("transport", list(Transport))
def test_nothing_else_is_loosened(servers: dict[Transport, LiveServer], transport: Transport) -> None:
    live = servers[transport]
    port = live.running.ws_port
    page = live.running.http_port
    for origin, host in [
        (f"http://localhost:{port}", "127.0.0.1"),
        ("http://localhost", "127.0.0.1"),
        (f"http://192.0.2.1:{page}", "127.0.0.1"),
        (f"https://127.0.0.1:{page}", "127.0.0.1"),
        (f"http://127.0.0.2:{page}", "localhost"),
        (f"http://evil.example:{page}", "evil.example"),  # DNS rebinding: a name pointed at us
    ]:
        answer = exchange(port, handshake(f"Origin: {origin}", host=host))
        assert answer.startswith(b"HTTP/1.1 403 "), origin


@pytest.mark.parametrize("transport", list(Transport))
def test_frames_sent_with_the_handshake_are_not_lost(
    servers: dict[Transport, LiveServer], transport: Transport
) -> None:
    port = servers[transport].running.ws_port
    assert answer_to_init_sent_with_the_handshake(port, handshake())["type"] == "init"


@pytest.mark.parametrize("transport", list(Transport))
def test_a_client_resetting_after_its_handshake_is_no_error_of_ours(
    servers: dict[Transport, LiveServer], transport: Transport, caplog: pytest.LogCaptureFixture
) -> None:
    live = servers[transport]
    caplog.set_level(logging.DEBUG)
    for _ in range(30):
        with socket.create_connection(("127.0.0.1", live.running.ws_port)) as sock:
            sock.sendall(handshake())
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    wait_until(lambda: live.connection_count() == 0)
    assert [r.getMessage() for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR] == []
    with ChatClient(live.ws_url) as client:
        assert client.init()["userId"] == 1
