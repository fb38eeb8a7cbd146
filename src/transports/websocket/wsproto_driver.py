"""Our own socket loop: wsproto's sans-IO connection over anyio sockets, built for throughput.

Connections are plain non-blocking sockets (`rawsocket`). A broadcast is
framed once (`Outgoing`) and the same bytes are queued for
every member. One `Flusher` task per server then writes, with one
non-blocking ``send`` per connection, everything queued for it since the
last round: no task switch per message per member, and writes coalesce.
Only a connection whose socket is full gets its writer task involved,
waiting for it to drain. Runs under trio (the default) and, through anyio,
under asyncio too.
"""

from __future__ import annotations

import logging
from functools import partial

import anyio
import anyio.abc
from wsproto import ConnectionType
from wsproto.connection import Connection, ConnectionState
from wsproto.events import BytesMessage, CloseConnection, Ping, Pong, TextMessage
from wsproto.frame_protocol import CloseReason

from chatcore import closecodes

from ..config import Limits
from ..net.listener import Listener
from ..net.rawsocket import RawSocket, serve_raw_tcp
from ..runtime.hub import Hub
from .framing import Outgoing
from .handshake import Handshake
from .lifecycle import serve_connection
from .outbox import CloseRequest
from .peer import Peer

log = logging.getLogger(__name__)

RECEIVE_SIZE = 65536


class Flusher:
    """Writes every peer with something queued, once per scheduling round."""

    def __init__(self) -> None:
        self._dirty: list[WsprotoPeer] = []
        self._wakeup = anyio.Event()

    def mark(self, peer: WsprotoPeer) -> None:
        if not self._dirty:
            self._wakeup.set()
        self._dirty.append(peer)

    async def run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup = anyio.Event()
            dirty, self._dirty = self._dirty, []
            for peer in dirty:
                try:
                    peer.flush()
                except Exception:
                    peer.fail("writing")  # ends that connection; the others are still written


class WsprotoPeer(Peer):
    """One connection: reads whole messages for the hub; queues ready-made frames and
    writes them straight to the non-blocking socket.

    A writer task exists only while the socket is full or a close is due:
    an idle connection costs no task for writing.
    """

    __slots__ = (
        "_binary", "_connection", "_flusher", "_gone", "_hub", "_max_message_size", "_pings", "_raw", "_size",
        "_socket", "_text", "_unsent", "_writer_running",
    )

    def __init__(self, hub: Hub, raw: RawSocket, connection: Connection, limits: Limits, flusher: Flusher) -> None:
        self._hub = hub
        self._raw = raw
        self._socket = raw.sock
        self._connection = connection
        self._flusher = flusher
        self._unsent: memoryview | None = None  # what the socket did not take; the writer task owns it
        self._gone = False
        self._writer_running = False
        self._pings = 0
        self._max_message_size = limits.max_message_size
        self._text: list[str] | None = None  # fragments of an unfinished message, if any
        self._binary: list[bytes] | None = None
        self._size = 0
        super().__init__(limits, raw.address, raw.port)

    def send(self, message: Outgoing) -> None:
        # Once wsproto has seen a close or EOF it frames nothing more; the read loop is ending.
        if self._connection.state is ConnectionState.OPEN:
            super().send(message)

    def send_control(self, frame: bytes) -> None:
        """Queue an already-framed control frame (a ping or pong); dropped once closing."""
        self.outbox.put(frame)

    def start(self, tasks: anyio.abc.TaskGroup) -> None:
        super().start(tasks)
        if self.outbox.closing is not None:  # closed before it started: shutting down
            self._need_writer()

    def _wake(self) -> None:
        if self.outbox.closing is not None or self._unsent is not None:
            self._need_writer()
        else:
            self._flusher.mark(self)

    def _need_writer(self) -> None:
        if not self._writer_running and self.tasks is not None:
            self._writer_running = True
            self.tasks.start_soon(self._write)

    def flush(self) -> None:
        """Write everything queued, as far as the socket takes it now."""
        if self._unsent is not None or self._gone:
            return  # the writer task sends it, in order, once the socket drains
        items = self.outbox.take()
        if items:
            self._write_now(items[0] if len(items) == 1 else b"".join(items))

    def _write_now(self, data: bytes | memoryview) -> None:
        try:
            sent = self._socket.send(data)
        except BlockingIOError:
            sent = 0
        except OSError as error:
            self._gone = True
            self.drop(f"write failed: {error}")
            return
        if sent < len(data):
            self._unsent = memoryview(data)[sent:]
            self._need_writer()

    async def _write(self) -> None:
        """Drain a full socket, and finish the connection once a close is due."""
        try:
            await self._drain()
            close = self.outbox.closing
            if close is not None and not self._gone:
                self.flush()
                await self._drain()
                frame = self._close_frame(close)
                if frame and not self._gone:
                    self._write_now(frame)
                    await self._drain()
        finally:
            self._writer_running = False

    async def _drain(self) -> None:
        """Wait for the socket to take what it left, then what queued meanwhile."""
        while self._unsent is not None and not self._gone:
            await anyio.wait_writable(self._socket)
            unsent, self._unsent = self._unsent, None
            self._write_now(unsent)
            if self._unsent is None:
                self.flush()

    def _close_frame(self, close: CloseRequest) -> bytes:
        if self._connection.state not in (ConnectionState.OPEN, ConnectionState.REMOTE_CLOSING):
            return b""
        if close.code == CloseReason.NO_STATUS_RCVD:
            # Answering a close that carried no code: the answer carries none either.
            return self._connection.send(CloseConnection(code=CloseReason.NO_STATUS_RCVD))
        return self._connection.send(CloseConnection(code=close.code, reason=close.reason))

    def _send_ping(self) -> None:
        if self._connection.state is ConnectionState.OPEN:
            self._pings += 1
            self.send_control(self._connection.send(Ping(payload=str(self._pings).encode())))

    async def read_loop(self, connection_id: int) -> None:
        """Feed the hub whole messages until the connection closes."""
        receive = self._raw.receive
        while self._process_events(connection_id):
            data = await receive(RECEIVE_SIZE)
            self._connection.receive_data(data or None)  # None: the peer has gone

    def _process_events(self, connection_id: int) -> bool:
        """Handle what wsproto has parsed; False once nothing more should be read."""
        for event in self._connection.events():
            if isinstance(event, TextMessage | BytesMessage):
                if not self._add_fragment(connection_id, event):
                    return False
            elif isinstance(event, Ping):
                if self._connection.state is ConnectionState.OPEN:
                    self.send_control(self._connection.send(event.response()))
            elif isinstance(event, Pong):
                self.pong_received()
            elif isinstance(event, CloseConnection):
                self._on_close(event)
                return False
        return True

    def _add_fragment(self, connection_id: int, event: TextMessage | BytesMessage) -> bool:
        self._size += len(event.data)
        if self._size > self._max_message_size:
            self.close(closecodes.MESSAGE_TOO_BIG, f"Exceeded maximum message size: {self._max_message_size} bytes")
            return False
        if isinstance(event, TextMessage):
            if self._text is None:
                if event.message_finished:  # the common case: a whole message in one frame
                    self._size = 0
                    self._hub.receive_text(connection_id, event.data)
                    return True
                self._text = []
            self._text.append(event.data)
            if event.message_finished:
                text, self._text, self._size = "".join(self._text), None, 0
                self._hub.receive_text(connection_id, text)
        else:
            if self._binary is None:
                self._binary = []
            self._binary.append(bytes(event.data))
            if event.message_finished:
                data, self._binary, self._size = b"".join(self._binary), None, 0
                self._hub.receive_binary(connection_id, data)
        return True

    def _on_close(self, event: CloseConnection) -> None:
        state = self._connection.state
        if state is ConnectionState.REMOTE_CLOSING:
            # The client closes: answer with its code.
            answer = event.response()
            self.close(answer.code, answer.reason or "")
        elif state is ConnectionState.OPEN:
            # wsproto found a protocol error (1002, 1007, ...) in what the client sent.
            log.info("%s: closing with %d: %s", self.remote, event.code, event.reason)
            self.close(event.code, event.reason or "")


class _Opening:
    """Opens the WebSocket of an accepted handshake: entering sends the 101 and gives the peer.

    A small object rather than a generator-based context manager: it lives
    as long as the connection, and idle connections are what memory is
    counted in.
    """

    __slots__ = ("_greeting", "_peer")

    def __init__(self, hub: Hub, limits: Limits, flusher: Flusher, raw: RawSocket, handshake: Handshake) -> None:
        connection = Connection(ConnectionType.SERVER, trailing_data=handshake.trailing)
        self._peer = WsprotoPeer(hub, raw, connection, limits, flusher)
        self._greeting = handshake.accept_response()

    async def __aenter__(self) -> Peer:
        greeting, self._greeting = self._greeting, b""
        await self._peer._raw.send_all(greeting)
        return self._peer

    async def __aexit__(self, *exc_info: object) -> None:
        pass


async def serve(hub: Hub, listener: Listener, limits: Limits) -> None:
    """Serve WebSocket connections from ``listener`` until it stops accepting and they have ended, or cancelled."""
    flusher = Flusher()
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(flusher.run)
        opening = partial(_Opening, hub, limits, flusher)
        await serve_raw_tcp(partial(serve_connection, hub=hub, limits=limits, accept=opening), listener)
        tasks.cancel_scope.cancel()
