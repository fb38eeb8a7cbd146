"""A bug of ours at any stage of one connection ends that connection only, answered if it still can be.

Each test injects a failure at one stage, on each transport: while the
handshake is read, in the origin check, in the application, and while
writing. The failing connection gets what it can (HTTP 500 before the
upgrade, close 1011 after, an abort when the write path itself broke), the
traceback is logged exactly once, a member of another room is not
disturbed, and a new client is served.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from chat_client import ChatClient
from chatcore import ChatCore
from live import LiveServer, wait_until
from raw_websocket import handshake_request, read_until_closed
from transports.http.origin import OriginPolicy
from transports.websocket.handshake import HandshakeParser
from transports.websocket.socketpeer import SocketPeer

INJECT = "inject-failure"


class InjectedBug(RuntimeError):
    pass


@pytest.fixture
def bystander(server: LiveServer) -> Iterator[ChatClient]:
    """A member of another room, connected before the failure and checked after it."""
    with ChatClient(server.ws_url) as client:
        client.init()
        yield client


@pytest.fixture
def tracebacks(caplog: pytest.LogCaptureFixture) -> Callable[[], list[logging.LogRecord]]:
    caplog.set_level(logging.INFO)
    return lambda: [r for r in caplog.records if r.exc_info is not None]


def fail_when(marker: object, original: Callable[..., Any]) -> Callable[..., Any]:
    """``original``, except that it raises `InjectedBug` when an argument contains ``marker``."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if any(isinstance(a, str | bytes) and marker in a for a in args):  # type: ignore[operator]
            raise InjectedBug("injected")
        return original(*args, **kwargs)

    return wrapper


def still_serving(server: LiveServer, bystander: ChatClient) -> None:
    bystander.talk("still here")
    assert bystander.recv()["payload"] == "still here"
    with ChatClient(server.ws_url) as newcomer:
        assert newcomer.init()["userId"] == 1
        newcomer.talk("hello")
        assert newcomer.recv()["payload"] == "hello"


def raw_exchange(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        return read_until_closed(sock, timeout=10)


def test_a_bug_while_reading_the_handshake_is_answered_500(
    server: LiveServer, bystander: ChatClient, tracebacks: Callable[[], list[logging.LogRecord]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(HandshakeParser, "receive_data", fail_when(INJECT.encode(), HandshakeParser.receive_data))
    port = server.running.ws_port
    request = handshake_request("127.0.0.1", port).replace(b"\r\n\r\n", f"\r\nX-{INJECT}: 1\r\n\r\n".encode())
    answer = raw_exchange(port, request)
    assert answer.startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
    assert answer.endswith(b"\r\n\r\ninternal error\n")
    assert [r.exc_info[0] for r in tracebacks() if r.exc_info] == [InjectedBug]
    still_serving(server, bystander)


def test_a_bug_in_the_origin_check_is_answered_500(
    server: LiveServer, bystander: ChatClient, tracebacks: Callable[[], list[logging.LogRecord]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(OriginPolicy, "allows", fail_when(INJECT, OriginPolicy.allows))
    port = server.running.ws_port
    answer = raw_exchange(port, handshake_request("127.0.0.1", port, origin=f"http://{INJECT}.example"))
    assert answer.startswith(b"HTTP/1.1 500 ")
    assert len(tracebacks()) == 1
    still_serving(server, bystander)


def test_a_bug_in_the_application_closes_with_1011(
    server: LiveServer, bystander: ChatClient, tracebacks: Callable[[], list[logging.LogRecord]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ChatCore, "receive_text", fail_when(INJECT, ChatCore.receive_text))
    with ChatClient(server.ws_url) as victim:
        victim.init()
        victim.talk(INJECT)
        with pytest.raises(ConnectionClosed) as closed:
            victim.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1011
    assert len(tracebacks()) == 1
    still_serving(server, bystander)


def test_a_bug_while_writing_ends_that_connection(
    server: LiveServer, bystander: ChatClient, tracebacks: Callable[[], list[logging.LogRecord]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(SocketPeer, "_write_now", fail_when(INJECT.encode(), SocketPeer._write_now))
    with ChatClient(server.ws_url) as victim:
        victim.init()  # a room of its own: only its write fails
        victim.talk(INJECT)
        with pytest.raises(ConnectionClosed) as closed:
            victim.recv()
    assert closed.value.rcvd is None  # the write path broke: no close frame, the connection is cut
    wait_until(lambda: server.connection_count() == 1)
    assert len(tracebacks()) == 1
    still_serving(server, bystander)


def test_a_bug_while_writing_to_one_member_ends_that_connection_only_and_the_room_still_hears(
    server: LiveServer, bystander: ChatClient, tracebacks: Callable[[], list[logging.LogRecord]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    original = SocketPeer._write_now
    failed: list[SocketPeer] = []

    def first_write_fails(peer: SocketPeer, data: bytes | memoryview) -> None:
        # The first member's write of the message breaks (written at once, or by the flusher: either way).
        if INJECT.encode() in bytes(data) and (not failed or failed[0] is peer):
            failed.append(peer)
            raise InjectedBug("injected")
        original(peer, data)

    monkeypatch.setattr(SocketPeer, "_write_now", first_write_fails)
    with ChatClient(server.ws_url) as victim, ChatClient(server.ws_url) as sender, \
            ChatClient(server.ws_url) as other:
        room = victim.init()["joinKey"]
        sender.init(room)
        other.init(room)
        sender.talk(INJECT)
        assert sender.recv()["payload"] == INJECT  # the broadcast went on past the broken member
        assert other.recv()["payload"] == INJECT
        with pytest.raises(ConnectionClosed):
            victim.recv()
        sender.talk("after")
        assert sender.recv()["payload"] == "after"
    assert len(tracebacks()) == 1
    still_serving(server, bystander)
