"""One port is enough: the page's port takes WebSocket upgrades (at /ws, and at /) exactly as the socket's port does.

Both transports; the same room across the two ports; the same answers, byte for byte, to bad handshakes;
the same limits and origin policy.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import replace

import pytest
from websockets.exceptions import InvalidStatus

from chat_client import ChatClient, V2Client
from live import TEST_LIMITS, LiveServer, wait_until
from raw_websocket import (
    answer_to_init_sent_with_the_handshake,
    exchange,
    raw_handshake,
    read_until_closed,
)
from transports.config import Transport


def page_ws(live: LiveServer, path: str = "/ws") -> str:
    return f"ws://127.0.0.1:{live.running.http_port}{path}"


def handshake(*extra: str, target: str = "/ws", line: str | None = None, version: str = "13") -> bytes:
    return raw_handshake(*extra, target=target, line=line, version=version)


def refused_status(url: str, **options: object) -> int:
    with pytest.raises(InvalidStatus) as refused:
        ChatClient(url, **options)
    return refused.value.response.status_code


@pytest.mark.parametrize("transport", list(Transport))
@pytest.mark.parametrize("path", ["/ws", "/", "/ws?x=1"])
def test_the_page_port_serves_the_chat_in_the_same_rooms_as_the_socket_port(
    servers: dict[Transport, LiveServer], transport: Transport, path: str
) -> None:
    live = servers[transport]
    with ChatClient(page_ws(live, path)) as ada, ChatClient(live.ws_url) as bob:
        room = ada.init()["joinKey"]
        bob.init(room)
        ada.talk("over the page's port")
        assert ada.recv()["payload"] == bob.recv()["payload"] == "over the page's port"
        bob.talk("over the socket's port")
        assert ada.recv()["payload"] == bob.recv()["payload"] == "over the socket's port"


@pytest.mark.parametrize("transport", list(Transport))
def test_version_2_and_our_own_page_origin_on_the_page_port(
    servers: dict[Transport, LiveServer], transport: Transport
) -> None:
    live = servers[transport]
    origin = f"http://127.0.0.1:{live.running.http_port}"  # the page, opening its own origin's /ws
    with V2Client(page_ws(live), origin=origin) as ada, V2Client(live.ws_url, origin=origin) as bob:
        room = ada.join(name="Ada")["joinKey"]
        assert bob.join(room, name="Bob")["members"] == [
            {"userId": 1, "name": "Ada", "role": "owner"},
            {"userId": 2, "name": "Bob", "role": "member"},
        ]


@pytest.mark.parametrize("transport", list(Transport))
def test_the_page_is_still_the_page(servers: dict[Transport, LiveServer], transport: Transport) -> None:
    port = servers[transport].running.http_port
    page = exchange(port, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    assert page.startswith(b"HTTP/1.1 200 ")
    assert b'id="message-wrapper"' in page
    assert exchange(port, b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").startswith(b"HTTP/1.1 404 ")
    # An upgrade anywhere else is no WebSocket:
    assert exchange(port, handshake(target="/main.js")).startswith(b"HTTP/1.1 404 ")


BAD = {
    "origin-foreign": (handshake("Origin: http://evil.example"), 403),
    "origin-null": (handshake("Origin: null"), 403),
    "origin-repeated": (handshake("Origin: http://127.0.0.1:1", "Origin: http://evil.example"), 400),
    "host-repeated": (handshake("Host: other"), 400),
    "key-missing": (handshake().replace(b"Sec-WebSocket-Key", b"X-Key"), 400),
    "key-bad": (handshake("Sec-WebSocket-Key: abc"), 400),
    "version-8": (handshake(version="8"), 426),
    "version-missing": (handshake().replace(b"Sec-WebSocket-Version: 13\r\n", b""), 400),
    "post": (handshake(line="POST /ws HTTP/1.1"), 400),
    "http-1.0": (handshake(line="GET /ws HTTP/1.0"), 400),
    "body": (handshake("Content-Length: 3") + b"abc", 400),
    "too-many-headers": (handshake(*[f"X-{i}: 1" for i in range(200)]), 431),
    "header-too-large": (handshake("X-Big: " + "x" * 20_000), 431),
    "truncated-then-eof": (handshake()[:-12], 400),
    "connection-not-upgrade": (handshake().replace(b"Connection: Upgrade", b"Connection: keep-alive"), 400),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_handshakes_get_the_same_answer_on_both_ports_and_transports(
    servers: dict[Transport, LiveServer], case: str
) -> None:
    request, status = BAD[case]
    answers = {
        (transport, port): exchange(port, request)
        for transport, live in servers.items()
        for port in (live.running.ws_port, live.running.http_port)
    }
    first = next(iter(answers.values()))
    assert first.startswith(f"HTTP/1.1 {status} ".encode()), first[:200]
    assert set(answers.values()) == {first}, answers
    for live in servers.values():
        with ChatClient(page_ws(live)) as client:
            assert client.init()["type"] == "init"


@pytest.mark.parametrize("transport", list(Transport))
def test_frames_sent_with_the_handshake_are_not_lost_on_the_page_port(
    servers: dict[Transport, LiveServer], transport: Transport
) -> None:
    port = servers[transport].running.http_port
    assert answer_to_init_sent_with_the_handshake(port, handshake())["type"] == "init"


def test_the_page_port_upgrades_count_against_the_websocket_limits(
    start_server: Callable[..., LiveServer],
) -> None:
    live = start_server(limits=replace(TEST_LIMITS, max_connections=3, max_connections_per_address=2))
    first, second = ChatClient(page_ws(live)), ChatClient(live.ws_url)
    try:
        assert refused_status(page_ws(live)) == 429  # a third WebSocket from 127.0.0.1, whichever port
        assert refused_status(live.ws_url) == 429
        with socket.create_connection(("127.0.0.1", live.running.http_port), timeout=5) as sock:  # pages apart
            sock.sendall(b"GET /config.js HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert read_until_closed(sock, 5).startswith(b"HTTP/1.1 200 ")
    finally:
        first.close()
        second.close()
    wait_until(lambda: live.slots_taken() == 0)
    total = start_server(limits=replace(TEST_LIMITS, max_connections=1), database=None)
    with ChatClient(total.ws_url):
        assert refused_status(page_ws(total)) == 503


def test_a_foreign_origin_is_refused_on_the_page_port(start_server: Callable[..., LiveServer]) -> None:
    live = start_server(allow_origins=frozenset({"https://chat.example.org"}))
    assert refused_status(page_ws(live), origin="http://evil.example") == 403
    assert refused_status(page_ws(live), origin=f"https://127.0.0.1:{live.running.http_port}") == 403  # not https
    with ChatClient(page_ws(live), origin="https://chat.example.org") as listed:
        assert listed.init()["type"] == "init"
