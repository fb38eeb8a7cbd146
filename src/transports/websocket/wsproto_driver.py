"""Our own socket loop: wsproto's sans-IO connection over anyio sockets, built for throughput.

Connections are plain non-blocking sockets (`rawsocket`): one task per
connection reads and parses, and the write side is `socketpeer`'s (one
`Flusher` task writes every connection with something queued). Runs under
trio (the default) and, through anyio, under asyncio too.
"""

from __future__ import annotations

import logging

from wsproto import ConnectionType
from wsproto.connection import Connection, ConnectionState
from wsproto.events import BytesMessage, CloseConnection, Event, Ping, TextMessage
from wsproto.frame_protocol import CloseReason

from chatcore import closecodes

from ..config import Limits
from ..net.listener import Listener
from ..net.rawsocket import RawSocket
from ..runtime.hub import Hub
from . import socketpeer
from .handshake import Handshake
from .incoming import Assembler, FrameReader, MessageTooBig
from .outbox import CloseRequest
from .peer import Peer
from .socketpeer import Flusher, SocketPeer

log = logging.getLogger(__name__)

RECEIVE_SIZE = 65536


class WsprotoPeer(SocketPeer):
    """One connection: reads whole messages for the hub, writes through `SocketPeer`."""

    __slots__ = ("_assembler", "_connection", "_frames", "_hub", "_pings", "_raw")

    def __init__(
        self, hub: Hub, raw: RawSocket, connection: Connection, limits: Limits, flusher: Flusher, trailing: bytes
    ) -> None:
        self._hub = hub
        self._raw = raw
        self._connection = connection
        self._frames = FrameReader(connection, limits.max_message_size, trailing)
        self._pings = 0
        self._assembler = Assembler(limits.max_message_size)
        super().__init__(raw.sock, flusher, limits, raw.address, raw.port)

    def send_control(self, frame: bytes) -> None:
        """Queue an already-framed control frame (a ping or pong); dropped once closing."""
        self.put(frame)

    def _begin_close(self, close: CloseRequest) -> None:
        if self._connection.state not in (ConnectionState.OPEN, ConnectionState.REMOTE_CLOSING):
            return
        if close.code == CloseReason.NO_STATUS_RCVD:
            # Answering a close that carried no code: the answer carries none either.
            self.write_frames(self._connection.send(CloseConnection(code=CloseReason.NO_STATUS_RCVD)))
        else:
            self.write_frames(self._connection.send(CloseConnection(code=close.code, reason=close.reason)))

    def _send_ping(self) -> None:
        if self._connection.state is ConnectionState.OPEN:
            self._pings += 1
            self.send_control(self._connection.send(Ping(payload=str(self._pings).encode())))

    async def read_loop(self, connection_id: int) -> None:
        """Feed the hub whole messages until the connection closes."""
        receive, feed = self._raw.receive, self._frames.feed
        received = feed(b"")  # what came with the handshake
        while self._process(connection_id, received):
            data = await receive(RECEIVE_SIZE)
            self.heard = True
            received = feed(data or None)  # None: the peer has gone

    def _process(self, connection_id: int, received: list[str | Event]) -> bool:
        """Handle what was parsed; False once nothing more should be read."""
        for event in received:
            if type(event) is str:  # a whole text message, the common case
                self._hub.receive_text(connection_id, event)
            elif isinstance(event, TextMessage | BytesMessage):
                if not self._add_fragment(connection_id, event):
                    return False
            elif isinstance(event, Ping):
                if self._connection.state is ConnectionState.OPEN:
                    self.send_control(self._connection.send(event.response()))
            elif isinstance(event, CloseConnection):
                self._on_close(event)
                return False
        return True

    def _add_fragment(self, connection_id: int, event: TextMessage | BytesMessage) -> bool:
        try:
            message = self._assembler.add(event)
        except MessageTooBig as error:
            self.close(closecodes.MESSAGE_TOO_BIG, str(error))
            return False
        if message is None:
            return True
        if isinstance(message, str):
            self._hub.receive_text(connection_id, message)
        else:
            self._hub.receive_binary(connection_id, message)
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
        connection = Connection(ConnectionType.SERVER)
        self._peer = WsprotoPeer(hub, raw, connection, limits, flusher, handshake.trailing)
        self._greeting = handshake.accept_response()

    async def __aenter__(self) -> Peer:
        greeting, self._greeting = self._greeting, b""
        await self._peer._raw.send_all(greeting)
        return self._peer

    async def __aexit__(self, *exc_info: object) -> None:
        pass


async def serve(hub: Hub, listener: Listener, limits: Limits) -> None:
    """Serve WebSocket connections from ``listener`` until it stops accepting and they have ended, or cancelled."""
    await socketpeer.serve(hub, listener, limits, _Opening)
