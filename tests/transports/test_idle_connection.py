"""What an idle connection keeps: objects without instance dictionaries, no wsproto connection until one is needed
(keepalive pings included), nothing of trio-websocket's that no connection uses."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import cast

import pytest
import trio
from wsproto import ConnectionType
from wsproto.connection import Connection
from wsproto.events import Ping

from transports.config import Limits
from transports.net.rawsocket import RawSocket
from transports.net.readiness import current_readiness
from transports.websocket.handshake import Handshake
from transports.websocket.host import Host
from transports.websocket.socketpeer import Flusher, SocketPeer
from transports.websocket.trio_driver import TrioWebsocketPeer
from transports.websocket.wsproto_driver import WsprotoPeer

HANDSHAKE = Handshake(b"", b"", "/", "localhost", None, b"dGhlIHNhbXBsZSBub25jZQ==")


@pytest.fixture
def sockets() -> Iterator[tuple[socket.socket, socket.socket]]:
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    with ours, theirs:
        yield ours, theirs


def _peer(kind: type[SocketPeer], sock: socket.socket) -> SocketPeer:
    raw = RawSocket(sock, "127.0.0.1", 1, current_readiness().wait_readable)
    make = cast(type[WsprotoPeer], kind)
    return make(cast(Host, None), Limits(), Flusher(), raw, HANDSHAKE)


@pytest.mark.trio
@pytest.mark.parametrize("kind", [WsprotoPeer, TrioWebsocketPeer])
async def test_a_peer_and_what_it_reads_with_keep_no_instance_dictionary(
    kind: type[SocketPeer], sockets: tuple[socket.socket, socket.socket]
) -> None:
    # A subclass without __slots__, or a base without them, gives every connection a dictionary.
    peer = _peer(kind, sockets[0])
    for kept in (peer, peer.frames, peer.raw, peer.assembler):
        assert not hasattr(kept, "__dict__"), type(kept).__name__


@pytest.mark.trio
@pytest.mark.parametrize("kind", [WsprotoPeer, TrioWebsocketPeer])
async def test_keepalive_pings_make_no_wsproto_connection(
    kind: type[SocketPeer], sockets: tuple[socket.socket, socket.socket]
) -> None:
    peer = _peer(kind, sockets[0])
    peer.ping(trio.current_time())
    assert peer.frames._connection is None
    assert peer.take() == [Connection(ConnectionType.SERVER).send(Ping(payload=b"keepalive"))]
