"""Connects an application (the chat core, or echo) to live connections.

The hub owns the table of open peers and performs the actions the
application returns; both transports share it.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import anyio

from chatcore import Action, Broadcast, Close, ConnectionId, Send

from . import closecodes
from .peer import Peer

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SendBinary:
    """Send one binary message to one connection (the echo application only)."""

    connection: ConnectionId
    data: bytes


HubAction = Action | SendBinary


class App(Protocol):
    """What a transport drives: `chatcore.ChatCore` has exactly this shape."""

    def connect(self, connection: ConnectionId) -> Iterable[HubAction]: ...
    def disconnect(self, connection: ConnectionId) -> Iterable[HubAction]: ...
    def receive_text(self, connection: ConnectionId, text: str) -> Iterable[HubAction]: ...
    def receive_binary(self, connection: ConnectionId, data: bytes) -> Iterable[HubAction]: ...


class Hub:
    """Open connections of one server and the application they talk to."""

    def __init__(self, app: App) -> None:
        self._app = app
        self._peers: dict[ConnectionId, Peer[Any]] = {}
        self._ids = itertools.count(1)
        self._shutting_down = False
        self._all_closed = anyio.Event()

    @property
    def connection_count(self) -> int:
        return len(self._peers)

    def open(self, peer: Peer[Any]) -> ConnectionId:
        """Register a connection whose handshake is complete."""
        connection = next(self._ids)
        self._peers[connection] = peer
        self.perform(self._app.connect(connection))
        if self._shutting_down:
            peer.close(closecodes.GOING_AWAY, "server shutting down")
        return connection

    def receive_text(self, connection: ConnectionId, text: str) -> None:
        self.perform(self._app.receive_text(connection, text))

    def receive_binary(self, connection: ConnectionId, data: bytes) -> None:
        self.perform(self._app.receive_binary(connection, data))

    def closed(self, connection: ConnectionId) -> None:
        """Forget a connection that has ended, however it ended."""
        del self._peers[connection]
        self.perform(self._app.disconnect(connection))
        if self._shutting_down and not self._peers:
            self._all_closed.set()

    def perform(self, actions: Iterable[HubAction]) -> None:
        peers = self._peers
        for action in actions:
            if isinstance(action, Broadcast):
                for recipient in action.recipients:
                    peers[recipient].send(action.message)
            elif isinstance(action, Send):
                peers[action.connection].send(action.message)
            elif isinstance(action, SendBinary):
                peers[action.connection].send(action.data)
            elif isinstance(action, Close):
                peers[action.connection].close(action.code, action.reason)

    async def shutdown(self, grace: float) -> None:
        """Close every connection with 1001 and wait up to ``grace`` seconds for them to end."""
        self._shutting_down = True
        for peer in list(self._peers.values()):
            peer.close(closecodes.GOING_AWAY, "server shutting down")
        if not self._peers:
            return
        with anyio.move_on_after(grace):
            await self._all_closed.wait()

    async def serve(self, peer: Peer[Any], read_loop: Callable[[ConnectionId], Awaitable[None]]) -> None:
        """Run one connection: its writer, and ``read_loop`` feeding this hub, until both end.

        Never raises: a bug while serving one connection is logged and ends
        that connection only.
        """
        try:
            connection = self.open(peer)
        except Exception:
            log.exception("%s: internal error while opening", peer.remote)
            return
        try:
            with peer.scope:
                async with anyio.create_task_group() as tasks:
                    tasks.start_soon(peer.write_loop)
                    try:
                        await read_loop(connection)
                    except Exception:
                        log.exception("%s: internal error; closing with 1011", peer.remote)
                        peer.close(closecodes.INTERNAL_ERROR, "internal error", discard=True)
                    else:
                        peer.close(closecodes.NORMAL, "")
        except Exception:
            log.exception("%s: internal error", peer.remote)
        finally:
            self.closed(connection)
