"""The default transport: trio-websocket does the WebSocket protocol."""

from __future__ import annotations

import logging
from functools import partial

import trio
from trio_websocket import ConnectionClosed, Endpoint, WebSocketConnection, WebSocketRequest, serve_websocket

from .hub import REFUSAL_BODIES, Hub
from .limits import Limits
from .outbox import CloseRequest
from .peer import Peer, PeerGone

log = logging.getLogger(__name__)


class TrioWebsocketPeer(Peer[str | bytes]):
    """Queues whole messages; trio-websocket frames them as it writes."""

    def __init__(self, websocket: WebSocketConnection, limits: Limits, address: str, remote: str) -> None:
        super().__init__(limits, address, remote)
        self._websocket = websocket

    def _encode(self, message: str | bytes) -> tuple[str | bytes, int]:
        return message, len(message)

    async def _write(self, batch: list[str | bytes]) -> None:
        try:
            for message in batch:
                await self._websocket.send_message(message)
        except (ConnectionClosed, trio.BrokenResourceError, trio.ClosedResourceError) as error:
            raise PeerGone from error

    async def _finish(self, close: CloseRequest) -> None:
        try:
            await self._websocket.aclose(close.code, close.reason)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as error:
            raise PeerGone from error

    async def _ping(self) -> None:
        try:
            await self._websocket.ping()
        except (ConnectionClosed, trio.BrokenResourceError, trio.ClosedResourceError):
            await trio.sleep_forever()  # the read loop is ending the connection


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
    address = str(remote.address) if isinstance(remote, Endpoint) else str(remote)
    headers = dict(request.headers)
    origin, host = headers.get(b"origin"), headers.get(b"host")
    refusal = hub.admit(
        address,
        origin.decode("latin-1") if origin is not None else None,
        host.decode("latin-1") if host is not None else None,
    )
    if refusal is not None:
        await request.reject(refusal, body=REFUSAL_BODIES[refusal])
        return
    try:
        websocket = await request.accept()
    except BaseException:
        hub.release(address)
        raise
    peer = TrioWebsocketPeer(websocket, limits, address, f"{address}:{getattr(remote, 'port', '?')}")
    await hub.serve(peer, partial(_read_loop, hub, websocket))


async def serve(
    hub: Hub,
    host: str,
    port: int,
    limits: Limits,
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve WebSocket connections on ``host:port`` until cancelled; reports the bound port."""
    async with trio.open_nursery() as nursery:
        server = await nursery.start(
            partial(
                serve_websocket,
                partial(_handle, hub, limits),
                host,
                port,
                None,
                max_message_size=limits.max_message_size,
                connect_timeout=limits.handshake_timeout,
                disconnect_timeout=limits.close_timeout,
            )
        )
        task_status.started(server.port)
