"""The default transport: trio-websocket does the WebSocket protocol."""

from __future__ import annotations

import contextlib
import logging
from functools import partial

import anyio.abc
import trio
from trio_websocket import ConnectionClosed, Endpoint, WebSocketConnection, WebSocketRequest
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import CloseConnection

from .hub import REFUSAL_BODIES, Hub
from .limits import Limits
from .peer import Peer

log = logging.getLogger(__name__)


class _ServerConnection(WebSocketConnection):
    """trio-websocket with two additions, both on its own internals (pinned by our tests).

    A protocol error is answered with its close code: trio-websocket drops the
    TCP connection when wsproto finds one (invalid UTF-8, an unmasked frame...),
    but RFC 6455 (7.1.7) asks for a close frame with 1002/1007 first.

    `send_frames` writes frames built elsewhere, so that a broadcast is framed
    once for a whole room and a batch of messages is one write.
    """

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
            log.info("%s: closing with %d: %s", self.remote, event.code, event.reason)
            with contextlib.suppress(ConnectionClosed):
                await self._send(CloseConnection(code=event.code, reason=event.reason))
        await super()._handle_close_connection_event(event)


class TrioWebsocketPeer(Peer):
    """Queues frames (a broadcast's are shared); a writer task writes each batch at once."""

    __slots__ = ("_ready", "_websocket")

    def __init__(self, websocket: _ServerConnection, limits: Limits, address: str, port: int) -> None:
        self._websocket = websocket
        self._ready = trio.Event()
        super().__init__(limits, address, port)

    def _wake(self) -> None:
        self._ready.set()

    def start(self, tasks: anyio.abc.TaskGroup) -> None:
        super().start(tasks)
        tasks.start_soon(self._write_loop)

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


async def _read_loop(hub: Hub, websocket: WebSocketConnection, connection: int) -> None:
    try:
        while True:
            message = await websocket.get_message()
            if isinstance(message, str):
                hub.receive_text(connection, message)
            else:
                hub.receive_binary(connection, message)
    except ConnectionClosed as closed:
        log.debug("connection %d closed: %s", connection, closed.reason)


async def _handle(hub: Hub, limits: Limits, request: WebSocketRequest) -> None:
    remote = request.remote
    address, port = (str(remote.address), remote.port) if isinstance(remote, Endpoint) else (str(remote), 0)
    origin = dict(request.headers).get(b"origin")
    # wsproto keeps Host out of the headers; trio-websocket has no accessor for its event's copy.
    host: str = request._event.host
    refusal = hub.admit(address, origin.decode("latin-1") if origin is not None else None, host)
    if refusal is not None:
        await request.reject(refusal, body=REFUSAL_BODIES[refusal])
        return
    try:
        websocket = await request.accept()
        assert isinstance(websocket, _ServerConnection)  # the request came from `_serve_stream`
    except BaseException:
        hub.release(address)
        raise
    peer = TrioWebsocketPeer(websocket, limits, address, port)
    await hub.serve(peer, partial(_read_loop, hub, websocket))


async def _serve_stream(hub: Hub, limits: Limits, stream: trio.SocketStream) -> None:
    """trio-websocket's own per-connection server loop, with `_ServerConnection`."""
    async with trio.open_nursery() as nursery:
        connection = _ServerConnection(
            stream, WSConnection(ConnectionType.SERVER), max_message_size=limits.max_message_size
        )
        nursery.start_soon(connection._reader_task)
        request = None
        with trio.move_on_after(limits.handshake_timeout):
            request = await connection._get_request()
        try:
            if request is None:
                log.info("%s: no WebSocket handshake within %g s", connection.remote, limits.handshake_timeout)
            else:
                await _handle(hub, limits, request)
        except (ConnectionClosed, trio.BrokenResourceError, trio.ClosedResourceError) as gone:
            log.debug("%s: gone during the handshake: %r", connection.remote, gone)
        finally:
            with trio.move_on_after(limits.close_timeout):
                await connection.aclose()
            nursery.cancel_scope.cancel()
            await stream.aclose()


async def serve(
    hub: Hub,
    host: str,
    port: int,
    limits: Limits,
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve WebSocket connections on ``host:port`` until cancelled; reports the bound port."""
    listeners = await trio.open_tcp_listeners(port, host=host)
    task_status.started(listeners[0].socket.getsockname()[1])
    await trio.serve_listeners(partial(_serve_stream, hub, limits), listeners)
