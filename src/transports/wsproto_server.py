"""Our own socket loop: wsproto's sans-IO connection over anyio streams.

Runs under trio (the default) and, through anyio, under asyncio too.
"""

from __future__ import annotations

import contextlib
import logging
from functools import partial

import anyio
import anyio.abc
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    Pong,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)
from wsproto.frame_protocol import CloseReason
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from chatcore import closecodes

from .hub import REFUSAL_BODIES, Hub
from .limits import Limits
from .outbox import CloseRequest
from .peer import Peer, PeerGone
from .tcp import STREAM_ERRORS, remote_address, serve_tcp

log = logging.getLogger(__name__)

RECEIVE_SIZE = 65536


class WsprotoPeer(Peer[bytes]):
    """Queues ready-framed bytes, so one write carries many messages."""

    def __init__(
        self, stream: anyio.abc.ByteStream, ws: WSConnection, limits: Limits, address: str, remote: str
    ) -> None:
        super().__init__(limits, address, remote)
        self._stream = stream
        self._ws = ws
        self._pong = anyio.Event()
        self._pings = 0

    def send(self, message: str | bytes) -> None:
        # Once wsproto has seen a close or EOF it frames nothing more; the read loop is ending.
        if self._ws.state is ConnectionState.OPEN:
            super().send(message)

    def _encode(self, message: str | bytes) -> tuple[bytes, int]:
        event = TextMessage(data=message) if isinstance(message, str) else BytesMessage(data=message)
        frame = self._ws.send(event)
        return frame, len(frame)

    def send_control(self, frame: bytes) -> None:
        """Queue an already-framed control frame (a ping or pong); dropped once closing."""
        self.outbox.put(frame, len(frame))

    async def _ping(self) -> None:
        if self._ws.state is not ConnectionState.OPEN or self.outbox.closing:
            await anyio.sleep_forever()  # closing: the close timeout bounds what is left
        self._pings += 1
        self._pong = anyio.Event()
        self.send_control(self._ws.send(Ping(payload=str(self._pings).encode())))
        await self._pong.wait()

    def pong_received(self) -> None:
        self._pong.set()

    async def _write(self, batch: list[bytes]) -> None:
        try:
            await self._stream.send(b"".join(batch))
        except STREAM_ERRORS as error:
            raise PeerGone from error

    async def _finish(self, close: CloseRequest) -> None:
        if self._ws.state not in (ConnectionState.OPEN, ConnectionState.REMOTE_CLOSING):
            return
        if close.code == CloseReason.NO_STATUS_RCVD:
            # Answering a close that carried no code: the answer carries none either.
            frame = self._ws.send(CloseConnection(code=CloseReason.NO_STATUS_RCVD))
        else:
            frame = self._ws.send(CloseConnection(code=close.code, reason=close.reason))
        await self._write([frame])


class _Reader:
    """Turns incoming frames into whole messages for the hub."""

    def __init__(self, hub: Hub, stream: anyio.abc.ByteStream, ws: WSConnection, peer: WsprotoPeer, limits: Limits):
        self._hub = hub
        self._stream = stream
        self._ws = ws
        self._peer = peer
        self._max_message_size = limits.max_message_size
        self._text: list[str] = []
        self._binary: list[bytes] = []
        self._size = 0

    async def run(self, connection: int) -> None:
        while self._process_events(connection):
            try:
                data: bytes | None = await self._stream.receive(RECEIVE_SIZE)
            except STREAM_ERRORS:
                data = None
            self._ws.receive_data(data)

    def _process_events(self, connection: int) -> bool:
        """Handle what wsproto has parsed; False once nothing more should be read."""
        for event in self._ws.events():
            if isinstance(event, TextMessage | BytesMessage):
                if not self._add_fragment(connection, event):
                    return False
            elif isinstance(event, Ping):
                if self._ws.state is ConnectionState.OPEN:
                    self._peer.send_control(self._ws.send(event.response()))
            elif isinstance(event, Pong):
                self._peer.pong_received()
            elif isinstance(event, CloseConnection):
                self._on_close(event)
                return False
        return True

    def _add_fragment(self, connection: int, event: TextMessage | BytesMessage) -> bool:
        self._size += len(event.data)
        if self._size > self._max_message_size:
            self._peer.close(closecodes.MESSAGE_TOO_BIG, f"message larger than {self._max_message_size}")
            return False
        if isinstance(event, TextMessage):
            self._text.append(event.data)
        else:
            self._binary.append(bytes(event.data))
        if not event.message_finished:
            return True
        self._size = 0
        if isinstance(event, TextMessage):
            text, self._text = "".join(self._text), []
            self._hub.receive_text(connection, text)
        else:
            data, self._binary = b"".join(self._binary), []
            self._hub.receive_binary(connection, data)
        return True

    def _on_close(self, event: CloseConnection) -> None:
        state = self._ws.state
        if state is ConnectionState.REMOTE_CLOSING:
            # The client closes: answer with its code.
            answer = event.response()
            self._peer.close(answer.code, answer.reason or "")
        elif state is ConnectionState.OPEN:
            # wsproto found a protocol error (1002, 1007, ...) in what the client sent.
            log.info("%s: closing with %d: %s", self._peer.remote, event.code, event.reason)
            self._peer.close(event.code, event.reason or "")


async def _receive_request(stream: anyio.abc.ByteStream, ws: WSConnection, remote: str) -> Request | None:
    """Read the HTTP upgrade request; None if the client went away or got it wrong (then answered 400)."""
    while True:
        try:
            data = await stream.receive(RECEIVE_SIZE)
        except STREAM_ERRORS:
            return None
        try:
            ws.receive_data(data)
        except RemoteProtocolError as error:
            log.info("%s: refused handshake: %s", remote, error)
            await _reject(stream, ws, 400, b"not a WebSocket handshake\n")
            return None
        for event in ws.events():
            if isinstance(event, Request):
                return event


async def _reject(stream: anyio.abc.ByteStream, ws: WSConnection, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    try:
        response = ws.send(RejectConnection(status_code=status, headers=headers, has_body=True))
        response += ws.send(RejectData(data=body, body_finished=True))
    except LocalProtocolError:
        return  # the HTTP parser is past answering
    with contextlib.suppress(*STREAM_ERRORS):
        await stream.send(response)


def _header(request: Request, name: bytes) -> str | None:
    for key, value in request.extra_headers:
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


async def _handle(hub: Hub, limits: Limits, stream: anyio.abc.SocketStream) -> None:
    address, remote = remote_address(stream)
    async with stream:
        ws = WSConnection(ConnectionType.SERVER)
        request = None
        with anyio.move_on_after(limits.handshake_timeout) as waiting:
            request = await _receive_request(stream, ws, remote)
        if waiting.cancelled_caught:
            log.info("%s: no WebSocket handshake within %g s", remote, limits.handshake_timeout)
        if request is None:
            return
        refusal = hub.admit(address, _header(request, b"origin"), request.host)
        if refusal is not None:
            await _reject(stream, ws, refusal, REFUSAL_BODIES[refusal])
            return
        try:
            await stream.send(ws.send(AcceptConnection()))
        except STREAM_ERRORS:
            hub.release(address)
            return
        peer = WsprotoPeer(stream, ws, limits, address, remote)
        await hub.serve(peer, _Reader(hub, stream, ws, peer, limits).run)


async def serve(
    hub: Hub,
    host: str,
    port: int,
    limits: Limits,
    *,
    task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve WebSocket connections on ``host:port`` until cancelled; reports the bound port."""
    await serve_tcp(partial(_handle, hub, limits), host, port, task_status=task_status)
