"""The default transport: trio-websocket does the WebSocket protocol.

trio-websocket parses what clients send and runs the protocol's own
exchanges (answering pings, the closing handshake, protocol errors). What it
runs on is ours, through its public constructor: `_SocketStream` gives it the
connection's non-blocking socket, and everything it writes joins the ordered
write side both drivers share (`socketpeer`), where broadcasts are written by
one task for all connections.

The rest of trio-websocket's own machinery is left out of the way, for
speed: each whole message goes to the hub from its reader task, not through
a channel to a second task, and the reader task is the connection's read
loop, not a task of its own. That takes a few of its private names, all in
this module and listed in `PRIVATE_NAMES`; `check_private_names` fails at
start-up, naming the attribute, if an upgrade removed one (and the
dependency is pinned below its next minor version).
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from importlib.metadata import version

import anyio
import anyio.abc
import trio
from trio_websocket import CloseReason, WebSocketConnection
from wsproto import ConnectionType, WSConnection
from wsproto.connection import Connection, ConnectionState
from wsproto.events import BytesMessage, CloseConnection, Event, TextMessage

from chatcore import ConnectionId, closecodes

from ..config import Limits
from ..net.listener import Listener
from ..net.rawsocket import RawSocket
from . import socketpeer
from .handshake import Handshake
from .host import Host as Hub
from .incoming import FrameReader, MessageTooBig
from .lifecycle import RECEIVE_SIZE
from .outbox import CloseRequest
from .socketpeer import Flusher, SocketPeer

log = logging.getLogger(__name__)

PRIVATE_NAMES = (
    "_reader_task",  # run as the connection's read loop
    "_handle_message_event",  # overridden: whole messages go to the hub
    "_handle_close_connection_event",  # overridden: protocol errors are answered with their close code
    "_close_reason",  # set with the 1009 close, as trio-websocket's own handler does
    "_reader_running",  # cleared to stop reading after a 1009 close
    "_send",  # how the 1009 and protocol-error closes are sent
    "_connection_proposal",  # cleared: the handshake is ours, done before
    "_open_handshake",  # set: the connection starts open
)
"""trio-websocket's private attributes this module relies on (0.12)."""


def check_private_names() -> None:
    """Raise `RuntimeError` naming any of `PRIVATE_NAMES` that trio-websocket no longer has."""
    probe = WebSocketConnection(_SocketStream(None), _OpenWebSocket(Connection(ConnectionType.SERVER), 1))
    missing = [name for name in PRIVATE_NAMES if not hasattr(probe, name)]
    if missing:
        raise RuntimeError(
            f"trio-websocket {version('trio-websocket')} lacks {', '.join(missing)}, which the trio-websocket "
            "transport relies on; install the version pyproject.toml allows, or run with --transport wsproto"
        )


class _OpenWebSocket(WSConnection):
    """wsproto's `WSConnection` for a connection whose handshake is done, reading through a `FrameReader`.

    trio-websocket takes a `WSConnection`; the one wsproto makes carries an
    HTTP handshake machine for life (2 KiB per idle connection) and asks it for
    events on every read. This one is the open `Connection` alone, and parses
    the common frames itself (`incoming.FrameReader`).
    """

    def __init__(self, connection: Connection, limit: int, trailing: bytes = b"") -> None:
        # (no super().__init__: it would build the handshake machine)
        self.client = False
        self.connection: Connection = connection
        self._frames = FrameReader(connection, limit, trailing)
        self._received = self._frames.feed(b"")
        self.peer: TrioWebsocketPeer | None = None
        """Once set (by the read loop), whole text messages go straight to its hub."""

    @property
    def state(self) -> ConnectionState:
        return self.connection.state

    def send(self, event: Event) -> bytes:
        return self.connection.send(event)

    def receive_data(self, data: bytes | None) -> None:
        received, peer = self._received, self.peer
        for event in self._frames.feed(data):
            if peer is not None and not received and type(event) is str:
                # The common case, straight to the hub: no event object, no handler. (Only while nothing else
                # waits for `events`, so that answers keep the order of what the client sent.)
                peer.hub.receive_text(peer.connection_id, event)
            else:
                received.append(event)

    def events(self) -> Generator[Event, None, None]:
        received, self._received = self._received, []
        for event in received:
            yield TextMessage(data=event) if isinstance(event, str) else event


class _SocketStream(trio.abc.HalfCloseableStream):
    """The connection's socket as trio-websocket reads and writes it.

    Reads mark the peer as heard from (keepalive). Writes are handed to the
    peer's ordered write side at once and return without waiting: the
    peer's writer task drains a full socket. Closing it does not close the
    socket: `lifecycle` does that, gracefully or not.
    """

    __slots__ = ("_closed", "_peer", "_raw")

    def __init__(self, raw: RawSocket | None) -> None:
        self._raw = raw
        self._peer: TrioWebsocketPeer | None = None
        self._closed = False

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._closed or self._raw is None:
            raise trio.ClosedResourceError("the stream is closed")
        data = await self._raw.receive(max_bytes or RECEIVE_SIZE)
        if self._peer is not None:
            self._peer.heard = True
        return data

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self._closed:
            raise trio.ClosedResourceError("the stream is closed")
        if self._peer is None or not self._peer.write_frames(bytes(data)):
            raise trio.BrokenResourceError("the connection is gone")

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def send_eof(self) -> None:
        if self._raw is not None:
            self._raw.shutdown_write()
        await trio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        self._closed = True
        await trio.lowlevel.checkpoint()


class _ServerConnection(WebSocketConnection):
    """trio-websocket, with whole messages handed to the hub and protocol errors answered with their code.

    What is ours lives in `peer`: one attribute. trio-websocket sets 24;
    at 30, CPython 3.11 stops sharing the dictionary's keys with the class
    and every idle connection pays 1.4 KiB more.
    """

    peer: TrioWebsocketPeer
    """Set by `TrioWebsocketPeer` as it makes the connection, before anything is read."""

    async def _handle_message_event(self, event: BytesMessage | TextMessage) -> None:
        peer = self.peer
        try:
            message = peer.assembler.add(event)
        except MessageTooBig as error:  # as trio-websocket's own handler answers it
            self._close_reason = CloseReason(closecodes.MESSAGE_TOO_BIG, str(error))
            await self._send(CloseConnection(code=closecodes.MESSAGE_TOO_BIG, reason=str(error)))
            peer.close(closecodes.MESSAGE_TOO_BIG, str(error))  # the peer's record of it (log line, metrics)
            self._reader_running = False
            return
        if message is not None:
            peer.deliver(message)

    async def _handle_close_connection_event(self, event: CloseConnection) -> None:
        peer = self.peer
        # Nothing more is queued from now on: the close frame trio-websocket sends is the last one.
        peer.close(event.code, event.reason or "")
        # trio-websocket drops the TCP connection when wsproto finds a protocol error (invalid UTF-8, an
        # unmasked frame...); RFC 6455 (7.1.7) asks for a close frame with its code (1002, 1007) first.
        if peer.connection.state is ConnectionState.OPEN:
            log.info("%s: closing with %d: %s", peer.remote, event.code, event.reason)
            await self._send(CloseConnection(code=event.code, reason=event.reason))
        await super()._handle_close_connection_event(event)


class TrioWebsocketPeer(SocketPeer):
    """One connection: trio-websocket's reader task reads, `SocketPeer` writes.

    trio-websocket would otherwise parse the request again, with its own
    (different) rules, and drop frames the client sent before our answer: it
    is handed a connection that is open already.
    """

    __slots__ = ("_websocket", "_ws")
    transport = "trio-websocket"

    def __init__(self, hub: Hub, limits: Limits, flusher: Flusher, raw: RawSocket, handshake: Handshake) -> None:
        connection = Connection(ConnectionType.SERVER)
        super().__init__(hub, raw, connection, flusher, limits)
        stream = _SocketStream(raw)
        stream._peer = self
        self._ws = _OpenWebSocket(connection, limits.max_message_size, handshake.trailing)
        self._websocket = websocket = _ServerConnection(
            stream, self._ws, max_message_size=limits.max_message_size, receive_buffer_size=RECEIVE_SIZE
        )
        websocket.peer = self
        websocket._connection_proposal = None  # no request to hand out: the handshake is done
        websocket._open_handshake.set()  # (nothing waits for it: its server side is not used)

    async def read_loop(self, connection: ConnectionId) -> None:
        self.connection_id = connection
        self._ws.peer = self
        await self._websocket._reader_task()

    def _begin_close(self, close: CloseRequest) -> None:
        if self.tasks is not None:
            self.tasks.start_soon(self._closing_handshake, close)

    async def _closing_handshake(self, close: CloseRequest) -> None:
        # aclose sends the close frame (through write_frames) and waits for the client's answer.
        await self._websocket.aclose(close.code, close.reason)

async def serve(
    hub: Hub, listener: Listener, limits: Limits,
    *, task_status: anyio.abc.TaskStatus[socketpeer.ConnectionEntry] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve WebSocket connections from ``listener`` until cancelled; started with ``TaskGroup.start``, it hands
    back the way to serve a connection accepted on another port (`socketpeer.serve`)."""
    check_private_names()
    await socketpeer.serve(hub, listener, limits, TrioWebsocketPeer, task_status=task_status)
