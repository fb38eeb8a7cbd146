"""Our own socket loop: wsproto's sans-IO connection over anyio sockets, built for throughput.

Connections are plain non-blocking sockets (`rawsocket`): one task per
connection reads and parses, and the write side is `socketpeer`'s (one
`Flusher` task writes every connection with something queued). Runs under
trio (the default) and, through anyio, under asyncio too.
"""

from __future__ import annotations

import logging

import anyio
import anyio.abc
from wsproto.connection import ConnectionState
from wsproto.events import BytesMessage, CloseConnection, Event, Ping, TextMessage
from wsproto.frame_protocol import CloseReason

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


class WsprotoPeer(SocketPeer):
    """One connection: reads and parses for the hub, writes through `SocketPeer`."""

    __slots__ = ("_reading",)
    transport = "wsproto"

    def __init__(self, hub: Host, limits: Limits, flusher: Flusher, raw: RawSocket, handshake: Handshake) -> None:
        super().__init__(hub, raw, FrameReader(None, limits.max_message_size, handshake.trailing), flusher, limits)
        self._reading = True

    def _begin_close(self, close: CloseRequest) -> None:
        if self.frames.state not in (ConnectionState.OPEN, ConnectionState.REMOTE_CLOSING):
            return
        if close.code == CloseReason.NO_STATUS_RCVD:
            # Answering a close that carried no code: the answer carries none either.
            self.write_frames(self.connection.send(CloseConnection(code=CloseReason.NO_STATUS_RCVD)))
        else:
            self.write_frames(self.connection.send(CloseConnection(code=close.code, reason=close.reason)))

    async def read_loop(self, connection: ConnectionId) -> None:
        """Feed the hub whole messages until the connection closes.

        Under trio the reads are mostly done while this waits, by the task that
        watches the sockets (`readiness`): `_read` is handed to it, and this is
        woken only to read a backlog, to find the end, or to stop.
        """
        self.connection_id = connection
        raw = self.raw
        self._reading = self._process(self.frames.feed(b""))  # what came with the handshake
        while self._reading:
            await raw.wait_readable(self._read)
            if self._reading:
                self._read()

    def _read(self) -> bool:
        """Read once and hand what came to the hub; whether the reader may wait now (nothing more is waiting)."""
        raw = self.raw
        data = raw.receive_now(RECEIVE_SIZE)
        if data is not None:
            self.heard = True
            if not self._process(self.frames.feed(data or None)):  # None: the peer has gone
                self._reading = False
        return self._reading and not raw.backlog

    def _process(self, received: list[str | Event]) -> bool:
        """Handle what was parsed; False once nothing more should be read."""
        for event in received:
            if type(event) is str:  # a whole text message, the common case
                self.hub.receive_text(self.connection_id, event)
            elif isinstance(event, TextMessage | BytesMessage):
                if not self._add_fragment(event):
                    return False
            elif isinstance(event, Ping):
                if self.connection.state is ConnectionState.OPEN:
                    self.put(self.connection.send(event.response()))
            elif isinstance(event, CloseConnection):
                self._on_close(event)
                return False
        return True

    def _add_fragment(self, event: TextMessage | BytesMessage) -> bool:
        try:
            message = self.assembler.add(event)
        except MessageTooBig as error:
            self.close(closecodes.MESSAGE_TOO_BIG, str(error))
            return False
        if message is not None:
            self.deliver(message)
        return True

    def _on_close(self, event: CloseConnection) -> None:
        state = self.connection.state
        if state is ConnectionState.REMOTE_CLOSING:
            # The client closes: answer with its code.
            answer = event.response()
            self.close(answer.code, answer.reason or "")
        elif state is ConnectionState.OPEN:
            # wsproto found a protocol error (1002, 1007, ...) in what the client sent.
            logger.info("%s: closing with %d: %s", self.remote, event.code, event.reason)
            self.close(event.code, event.reason or "")


async def serve(
    hub: Host, listener: Listener, limits: Limits,
    *, task_status: anyio.abc.TaskStatus[socketpeer.ConnectionEntry] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve WebSocket connections from ``listener`` until cancelled; started with ``TaskGroup.start``, it hands
    back the way to serve a connection accepted on another port (`socketpeer.serve`)."""
    await socketpeer.serve(hub, listener, limits, WsprotoPeer, task_status=task_status)
