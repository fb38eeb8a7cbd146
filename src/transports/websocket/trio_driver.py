"""The default transport: trio-websocket does the WebSocket protocol."""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import anyio.abc
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection
from wsproto import ConnectionType, WSConnection
from wsproto.connection import Connection, ConnectionState
from wsproto.events import CloseConnection

from chatcore import ConnectionId

from ..config import Limits
from ..net.listener import Listener
from ..net.rawsocket import abort_on_close
from ..net.tcp import format_remote
from ..runtime.hub import Hub
from .handshake import Handshake
from .lifecycle import serve_connection
from .peer import Peer

log = logging.getLogger(__name__)


class _ServerConnection(WebSocketConnection):
    """trio-websocket with two additions, both on its own internals (pinned by our tests).

    A protocol error is answered with its close code: trio-websocket drops the
    TCP connection when wsproto finds one (invalid UTF-8, an unmasked frame...),
    but RFC 6455 (7.1.7) asks for a close frame with 1002/1007 first.

    `send_frames` writes frames built elsewhere, so that a broadcast is framed
    once for a whole room and a batch of messages is one write.

    (And `_open` starts it with the handshake already done, by setting a few
    of its private attributes: trio-websocket is pinned below 0.13 for that.)
    """

    label = "?"
    """How log lines name the client (``host:port``)."""

    async def send_frames(self, frames: bytes) -> None:
        """Write complete, unmasked frames (no extension is ever negotiated) in one go."""
        if self._close_reason:
            raise ConnectionClosed(self._close_reason)
        lock = self._stream_lock
        try:
            lock.acquire_nowait()  # uncontended (the usual case): no extra scheduling round; send_all checkpoints
        except trio.WouldBlock:
            await lock.acquire()
        try:
            await self._stream.send_all(frames)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            await self._abort_web_socket()
            assert self._close_reason is not None
            raise ConnectionClosed(self._close_reason) from None
        finally:
            lock.release()

    async def _handle_close_connection_event(self, event: CloseConnection) -> None:
        if self._wsproto.state is ConnectionState.OPEN:  # the error is ours to report, not the peer's close
            log.info("%s: closing with %d: %s", self.label, event.code, event.reason)
            with contextlib.suppress(ConnectionClosed):
                await self._send(CloseConnection(code=event.code, reason=event.reason))
        await super()._handle_close_connection_event(event)


class TrioWebsocketPeer(Peer):
    """Queues frames (a broadcast's are shared); a writer task writes each batch at once."""

    __slots__ = ("_hub", "_ready", "_websocket")

    def __init__(self, hub: Hub, websocket: _ServerConnection, limits: Limits, address: str, port: int) -> None:
        self._hub = hub
        self._websocket = websocket
        self._ready = trio.Event()
        super().__init__(limits, address, port)

    def _wake(self) -> None:
        self._ready.set()

    def start(self, tasks: anyio.abc.TaskGroup) -> None:
        super().start(tasks)
        tasks.start_soon(self._write_loop)

    async def read_loop(self, connection: ConnectionId) -> None:
        hub, websocket = self._hub, self._websocket
        try:
            while True:
                message = await websocket.get_message()
                if isinstance(message, str):
                    hub.receive_text(connection, message)
                else:
                    hub.receive_binary(connection, message)
        except ConnectionClosed as closed:
            log.debug("connection %d closed: %s", connection, closed.reason)

    async def _write_loop(self) -> None:
        outbox = self.outbox
        try:
            while True:
                await self._ready.wait()
                # One more scheduling round before taking: the other broadcasts of this round (more
                # readers, a batch of stored talks) join the same write. Fewer, larger writes.
                await trio.lowlevel.cancel_shielded_checkpoint()
                self._ready = trio.Event()
                frames = outbox.take()
                if frames:
                    await self._websocket.send_frames(frames[0] if len(frames) == 1 else b"".join(frames))
                close = outbox.closing
                if close is not None and not outbox:
                    await self._websocket.aclose(close.code, close.reason)
                    return
        except (ConnectionClosed, trio.BrokenResourceError, trio.ClosedResourceError):
            self.drop("the connection broke")

    def _send_ping(self) -> None:
        if self.tasks is not None:
            self.tasks.start_soon(self._ping_roundtrip)

    async def _ping_roundtrip(self) -> None:
        with contextlib.suppress(ConnectionClosed, trio.BrokenResourceError, trio.ClosedResourceError):
            await self._websocket.ping()
            self.pong_received()


class TrioLink:
    """A trio socket stream as `lifecycle.Link`: what the handshake stage reads and answers through."""

    __slots__ = ("address", "port", "stream")

    def __init__(self, stream: trio.SocketStream, address: str, port: int) -> None:
        self.stream = stream
        self.address = address
        self.port = port

    @property
    def remote(self) -> str:
        return format_remote(self.address, self.port)

    async def receive(self, max_bytes: int) -> bytes:
        try:
            return await self.stream.receive_some(max_bytes)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return b""

    async def send_all(self, data: bytes) -> None:
        try:
            await self.stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as error:
            raise ConnectionError(str(error)) from None

    def shutdown_write(self) -> None:
        with contextlib.suppress(OSError):
            self.stream.socket.shutdown(socket.SHUT_WR)

    def abort(self) -> None:
        abort_on_close(self.stream.socket)

    def close(self) -> None:
        self.stream.socket.close()


@asynccontextmanager
async def _open(hub: Hub, limits: Limits, link: TrioLink, handshake: Handshake) -> AsyncIterator[Peer]:
    """Send our 101 and hand trio-websocket a connection that is open already.

    trio-websocket would otherwise parse the request again, with its own
    (different) rules, and drop frames the client sent before our answer.
    """
    ws = WSConnection(ConnectionType.SERVER)
    ws.connection = Connection(ConnectionType.SERVER, trailing_data=handshake.trailing)
    websocket = _ServerConnection(link.stream, ws, max_message_size=limits.max_message_size)
    websocket._connection_proposal = None  # no request to hand out: the handshake is done
    websocket._path = handshake.target
    websocket.label = link.remote
    peer = TrioWebsocketPeer(hub, websocket, limits, link.address, link.port)
    await link.send_all(handshake.accept_response())
    websocket._open_handshake.set()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(websocket._reader_task)
        yield peer
        nursery.cancel_scope.cancel()


async def _serve_socket(hub: Hub, limits: Limits, sock: socket.socket, peer: tuple[str, int]) -> None:
    stream = trio.SocketStream(trio.socket.from_stdlib_socket(sock))
    link = TrioLink(stream, peer[0], peer[1])
    await serve_connection(link, hub, limits, partial(_open, hub, limits))


async def serve(hub: Hub, listener: Listener, limits: Limits) -> None:
    """Serve WebSocket connections from ``listener`` until it stops accepting and they have ended, or cancelled."""
    await listener.serve(partial(_serve_socket, hub, limits))
