"""The default transport: trio-websocket does the WebSocket protocol.

trio-websocket parses what clients send and runs the protocol's own
exchanges (answering pings, the closing handshake). What it runs on is ours,
through its public constructor: `_SocketStream` gives it the connection's
non-blocking socket, and everything it writes joins the ordered write side
both drivers share (`socketpeer`), where broadcasts are written by one task
for all connections. For wsproto's `WSConnection` it takes `_OpenWebSocket`,
which has the same public face (``client``, ``state``, ``send``,
``receive_data``, ``events``) over the connection's `FrameReader` (and the
open `Connection` it makes only when something needs one): that is where
the client's messages leave for the hub, as they are parsed, in the reader
task and in order with the pings and the close trio-websocket is handed,
with no channel to a second task. Under trio even the reader task mostly
sleeps: the task that watches the sockets (`readiness`) reads for it while it
waits (`TrioWebsocketPeer.read_inline`), and wakes it only for what it must
act on (a ping, a close, a fragment, a backlog, the end).

The reader task itself is the connection's read loop, not a task of its
own: there is no public way to do that, so it takes a private name; the
others keep an idle connection small (what it never uses is dropped or
shared by all connections). All are listed in `PRIVATE_NAMES`,
each with its reason; `check_private_names` fails at start-up, naming the
attribute, if an upgrade removed one. What no check can see is how the
reader treats the events it is handed (pings answered, a close answered and
the stream closed, `aclose` waiting for the client's close): the dependency
is pinned below its next minor version for that.
"""

from __future__ import annotations

import logging
from collections.abc import Coroutine, Generator, Iterator
from importlib.metadata import version
from typing import Any, cast

import anyio
import anyio.abc
import trio
from trio_websocket import WebSocketConnection
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import BytesMessage, CloseConnection, Event, Ping, TextMessage

from chatcore import ConnectionId, closecodes

from ..config import Limits
from ..net.listener import Listener
from ..net.rawsocket import RawSocket
from . import socketpeer
from .handshake import Handshake
from .host import Host
from .incoming import FrameReader, MessageTooBig
from .lifecycle import RECEIVE_SIZE
from .outbox import CloseRequest
from .socketpeer import Flusher, SocketPeer

logger = logging.getLogger(__name__)

PRIVATE_NAMES = (
    "_reader_task",  # our read loop: only its own serve/open functions run it, as a task, after their handshake
    "_connection_proposal",  # set to None: frees a Future we never use (0.4 KiB an idle connection); no public way
    "_send_channel",  # both ends of its message channel, which no message takes (`_NoMessages`: 1.6 KiB less an idle
    "_recv_channel",  # connection); it has no way to be given one
    "_open_handshake",  # two events nothing waits for on our connections (`_Unwatched`: 0.5 KiB less an idle
    "_for_testing_peer_closed_connection",  # connection); it has no way to be given them
)
"""trio-websocket's private attributes this module relies on (0.12), each with what it does for us."""


def check_private_names() -> None:
    """Raise `RuntimeError` naming any of `PRIVATE_NAMES` that trio-websocket no longer has."""
    probe = WebSocketConnection(_SocketStream(None), WSConnection(ConnectionType.SERVER))
    missing = [name for name in PRIVATE_NAMES if not hasattr(probe, name)]
    if missing:
        raise RuntimeError(
            f"trio-websocket {version('trio-websocket')} lacks {', '.join(missing)}, which the trio-websocket "
            "transport relies on; install the version pyproject.toml allows, or run with --transport wsproto"
        )


class _OpenWebSocket:
    """What trio-websocket takes for wsproto's `WSConnection`: a connection whose handshake is done, whose
    messages go to the hub.

    The `WSConnection` wsproto makes carries an HTTP handshake machine for
    life (2 KiB per idle connection) and asks it for events on every read.
    This is the open `Connection` alone (made when first needed), read
    through a `FrameReader`, with the public face trio-websocket uses. Whole text messages go straight to
    the hub as they are parsed; every other message, fragment by fragment,
    when trio-websocket's reader asks for `events`, which hands it only what
    it has to act on: pings, pongs, the close.
    """

    __slots__ = ("_frames", "_received", "peer")

    client = False

    def __init__(self, peer: TrioWebsocketPeer, frames: FrameReader) -> None:
        self.peer = peer
        self._frames = frames
        self._received = frames.feed(b"")

    @property
    def state(self) -> ConnectionState:
        return self._frames.state

    def send(self, event: Event) -> bytes:
        return self._frames.connection.send(event)

    def receive_data(self, data: bytes | None) -> None:
        if data is FED:
            return
        received, peer = self._received, self.peer
        for event in self._frames.feed(data):
            if not received and type(event) is str:
                # The common case, straight to the hub: no event object. (Only while nothing else waits for
                # `events`, so that answers keep the order of what the client sent.)
                peer.hub.receive_text(peer.connection_id, event)
            else:
                received.append(event)

    @property
    def pending(self) -> bool:
        """Whether what was received holds something for trio-websocket's reader (`events`)."""
        return bool(self._received)

    def events(self) -> Iterator[Event]:
        if not self._received:
            return iter(())  # the common case: the read brought whole text messages, handed over already
        return self._events()

    def _events(self) -> Generator[Event, None, None]:
        # A generator: what the client sent is handled in its order, each ping or close by trio-websocket before
        # the messages after it.
        received, self._received = self._received, []
        peer, frames = self.peer, self._frames
        for event in received:
            if isinstance(event, str):
                peer.hub.receive_text(peer.connection_id, event)
            elif isinstance(event, TextMessage | BytesMessage):
                self._add_fragment(event)
            elif isinstance(event, CloseConnection):
                self._on_close(event)
                yield event
            elif frames.state is ConnectionState.OPEN or not isinstance(event, Ping):
                yield event  # (a ping once either side's close is out goes unanswered: wsproto refuses a pong)

    def _add_fragment(self, event: TextMessage | BytesMessage) -> None:
        peer = self.peer
        try:
            message = peer.assembler.add(event)
        except MessageTooBig as error:
            # Answered as trio-websocket's own handler does (if the client's close came first, this answers it), unless
            # our close is out already. What follows goes nowhere (the assembler stays over its limit).
            if self._frames.state in (ConnectionState.OPEN, ConnectionState.REMOTE_CLOSING):
                peer.write_frames(self._frames.connection.send(
                    CloseConnection(code=closecodes.MESSAGE_TOO_BIG, reason=str(error))
                ))
            peer.close(closecodes.MESSAGE_TOO_BIG, str(error))  # the peer's record of it (log line, metrics)
            return
        if message is not None:
            peer.deliver(message)

    def _on_close(self, event: CloseConnection) -> None:
        peer = self.peer
        # Nothing more is queued from now on: the close frame trio-websocket sends is the last one.
        peer.close(event.code, event.reason or "")
        # trio-websocket drops the TCP connection when wsproto finds a protocol error (invalid UTF-8, an
        # unmasked frame...); RFC 6455 (7.1.7) asks for a close frame with its code (1002, 1007) first.
        if self._frames.state is ConnectionState.OPEN:
            logger.info("%s: closing with %d: %s", peer.remote, event.code, event.reason)
            peer.write_frames(self._frames.connection.send(CloseConnection(code=event.code, reason=event.reason)))


FED = b"(read, and handed to the hub already)"
"""What the stream gives trio-websocket's reader for bytes read while it waited (`TrioWebsocketPeer.read_inline`):
they went through `_OpenWebSocket.receive_data` already, which takes this as nothing new."""


class _NoMessages:
    """Both ends of trio-websocket's message channel, for connections whose messages go to the hub.

    trio-websocket queues the messages it parses in a memory channel for
    ``get_message``; `_OpenWebSocket` hands it no message and nothing calls
    ``get_message``, so all it does with the channel is close it (with a
    checkpoint, as trio's does). One of these, shared, stands in for a channel
    per connection.
    """

    __slots__ = ()

    async def __aenter__(self) -> _NoMessages:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()

    async def send(self, message: object) -> None:
        raise RuntimeError("trio-websocket was handed a message: messages go to the hub")

    async def receive(self) -> str | bytes:
        raise trio.EndOfChannel


_NO_MESSAGES = _NoMessages()


class _Unwatched:
    """trio-websocket's events that nothing waits for on connections it is handed open.

    ``_open_handshake`` is set by handshake events it is never handed, and
    waited for only by its own serve and connect functions;
    ``_for_testing_peer_closed_connection`` is its own tests'. One of these,
    shared, stands in for both on every connection (a `trio.Event` with its
    set of waiters is 0.27 KiB).
    """

    __slots__ = ()

    def set(self) -> None:
        pass

    async def wait(self) -> None:
        raise RuntimeError("trio-websocket waits for an event the trio-websocket transport does not keep")


_UNWATCHED = _Unwatched()


def _websocket(stream: _SocketStream, ws: _OpenWebSocket, limit: int) -> WebSocketConnection:
    """trio-websocket's connection over ``ws``, already open: our handshake came first."""
    # (The cast: trio-websocket's constructor names `WSConnection`, and uses only what `_OpenWebSocket` has too.)
    websocket = WebSocketConnection(
        stream, cast(WSConnection, ws), max_message_size=limit, receive_buffer_size=RECEIVE_SIZE
    )
    websocket._connection_proposal = None
    websocket._send_channel = cast("trio.MemorySendChannel[str | bytes]", _NO_MESSAGES)
    websocket._recv_channel = cast("trio.MemoryReceiveChannel[str | bytes]", _NO_MESSAGES)
    websocket._open_handshake = websocket._for_testing_peer_closed_connection = cast(trio.Event, _UNWATCHED)
    return websocket


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
        raw, peer = self._raw, self._peer
        if self._closed or raw is None:
            raise trio.ClosedResourceError("the stream is closed")
        while True:  # (`raw.receive` inlined: one coroutine less kept by an idle connection)
            await raw.wait_readable(None if peer is None else peer.read_inline)
            if peer is not None and peer.fed:  # read while we waited, and handed over already
                peer.fed = False
                return FED
            data = raw.receive_now(max_bytes or RECEIVE_SIZE)
            if data is not None:
                break
        if peer is not None:
            peer.heard = True
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


class TrioWebsocketPeer(SocketPeer):
    """One connection: trio-websocket's reader task reads, `SocketPeer` writes.

    trio-websocket would otherwise parse the request again, with its own
    (different) rules, and drop frames the client sent before our answer: it
    is handed a connection that is open already.
    """

    __slots__ = ("_websocket", "_ws", "fed")
    transport = "trio-websocket"

    def __init__(self, hub: Host, limits: Limits, flusher: Flusher, raw: RawSocket, handshake: Handshake) -> None:
        super().__init__(hub, raw, FrameReader(None, limits.max_message_size, handshake.trailing), flusher, limits)
        stream = _SocketStream(raw)
        stream._peer = self
        self._ws = _OpenWebSocket(self, self.frames)
        self._websocket = _websocket(stream, self._ws, limits.max_message_size)
        self.fed = False
        """Whether bytes were read while the reader waited (`read_inline`), for it to act on what they held."""

    def read_inline(self) -> bool:
        """Read while trio-websocket's reader waits (done by the task that watches the sockets, under trio): whole
        text messages go to the hub; whether the reader may wait on (nothing in what came needs it)."""
        ws, raw = self._ws, self.raw
        if ws.state is ConnectionState.CLOSED or raw.backlog:
            return False  # (the reader reads itself)
        data = raw.receive_now(RECEIVE_SIZE)
        if data is None:
            return True
        if not data:
            return False  # the end: the reader reads it again, and sees it
        self.heard = True
        ws.receive_data(data)
        if ws.pending or raw.backlog:
            self.fed = True
            return False
        return True

    def read_loop(self, connection: ConnectionId) -> Coroutine[Any, Any, None]:
        # trio-websocket's reader itself, not a coroutine awaiting it: one coroutine less kept by an idle connection.
        self.connection_id = connection
        return self._websocket._reader_task()

    def _begin_close(self, close: CloseRequest) -> None:
        if self.tasks is not None:
            self.tasks.start_soon(self._closing_handshake, close)

    async def _closing_handshake(self, close: CloseRequest) -> None:
        # aclose sends the close frame (through write_frames) and waits for the client's answer.
        await self._websocket.aclose(close.code, close.reason)

async def serve(
    hub: Host, listener: Listener, limits: Limits,
    *, task_status: anyio.abc.TaskStatus[socketpeer.ConnectionEntry] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve WebSocket connections from ``listener`` until cancelled; started with ``TaskGroup.start``, it hands
    back the way to serve a connection accepted on another port (`socketpeer.serve`)."""
    check_private_names()
    await socketpeer.serve(hub, listener, limits, TrioWebsocketPeer, task_status=task_status)
