"""Connects an application (the chat core, or echo) to live connections.

The hub owns the table of open peers and performs the actions the
application returns; both transports share it. The room log's actions it
hands, all of them and nothing else, to the backend the process gives it
(``submit``); the backend feeds its results to `Hub.log_result`.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol, assert_never

import anyio
import anyio.lowlevel

from chatcore import (
    Action,
    Append,
    Broadcast,
    Close,
    ConnectionId,
    LogAction,
    LogFailed,
    LogResult,
    Send,
    Wake,
    closecodes,
)
from chatcore.results import INCONSISTENT

from ..config import Limits
from ..http.admission import ConnectionSlots
from ..http.answers import Refusal
from ..http.origin import OriginPolicy
from ..http.proxies import Forwarded, TrustedProxies
from ..net.tasks import open_task_group
from ..websocket.framing import Outgoing
from ..websocket.handshake import Handshake
from ..websocket.peer import Peer
from .counts import Counts, close_code
from .keepalive import keepalive

logger = logging.getLogger(__name__)


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
    def log_result(self, result: LogResult) -> Iterable[HubAction]: ...
    def settle(self) -> Iterable[HubAction]: ...


class Hub:
    """Open connections of one server, and the application they talk to.

    ``submit`` takes the application's room-log actions (`chatcore.actions.LogAction`) to the backend: memory,
    SQLite or Redis, the hub cannot tell. An application without a room log (echo) has none.
    """

    def __init__(
        self, app: App, limits: Limits, origins: OriginPolicy, submit: Callable[[LogAction], None] | None = None,
        proxies: TrustedProxies | None = None,
    ) -> None:
        self.app = app
        self._submit = submit or _no_log
        self._limits = limits
        self.origins = origins
        self._peers: dict[ConnectionId, Peer] = {}
        self._ids = itertools.count(1)
        self._slots = ConnectionSlots(limits, proxies)
        self._shutting_down = False
        self._shutdown_close = (closecodes.GOING_AWAY, "server shutting down")
        self._all_closed = anyio.Event()
        self._wake_at: float | None = None
        """When the application asked to be settled (`chatcore.actions.Wake`), the soonest; on the loop's clock."""
        self._woken = anyio.Event()
        self.counts = Counts()
        """What the metrics count: plain integers, an increment per action."""

    @property
    def connection_count(self) -> int:
        """Open WebSocket connections."""
        return len(self._peers)

    @property
    def slots_taken(self) -> int:
        """Connections counted against the limits: open ones, and those still in their handshake."""
        return self._slots.taken

    def admit(self, address: str) -> None:
        """Take a slot for a new connection from ``address``, or raise `Refusal` (503, 429) to refuse it.

        A slot is taken from the connection's first byte, so handshakes that
        never come count too, and held until `release`. Once shutting down, every new connection gets 503.
        """
        if self._shutting_down:
            raise Refusal(503, "server shutting down")
        self._slots.take(address)

    def count_refusal(self, status: int) -> None:
        """A handshake was refused with ``status`` (metrics)."""
        self.counts.refused[status] += 1

    def forwarded(self, address: str, handshake: Handshake) -> Forwarded | None:
        """For a connection from a trusted proxy: what the proxy says of its client; None for any other."""
        return self._slots.proxies.resolve(address, handshake.forwarding)

    def admit_client(self, client: str) -> None:
        """Take the per-address slot of the client a trusted proxy forwards for, or raise `Refusal` (429).

        (`admit` took only a slot in the total for the proxy's connection.)
        """
        self._slots.take_client(client)

    def check_origin(self, handshake: Handshake, forwarded: Forwarded | None = None) -> None:
        """Raise `Refusal` (403) unless the page that sent ``handshake`` may open a socket."""
        if not self.origins.allows(handshake.origin, handshake.host, forwarded, handshake.authority):
            raise Refusal(403, "origin not allowed")

    def release(self, address: str, client: str | None = None) -> None:
        """Give back a slot that `admit` granted, and the one `admit_client` granted ``client``."""
        self._slots.give_back(address)
        if client is not None:
            self._slots.give_back_client(client)

    def open(self, peer: Peer) -> ConnectionId:
        """Register a connection whose handshake is complete (its slot reserved)."""
        connection = next(self._ids)
        self._peers[connection] = peer
        try:
            self.perform(self.app.connect(connection))
        except BaseException:
            del self._peers[connection]
            raise
        self.counts.opened += 1
        if self._shutting_down:
            peer.close(*self._shutdown_close)
        return connection

    def receive_text(self, connection: ConnectionId, text: str) -> None:
        self.counts.received += 1
        self.perform(self.app.receive_text(connection, text))

    def receive_binary(self, connection: ConnectionId, data: bytes) -> None:
        self.counts.received += 1
        self.perform(self.app.receive_binary(connection, data))

    def log_result(self, result: LogResult) -> None:
        if isinstance(result, LogFailed):  # (the client is told only to try again; why is for the log)
            level = logging.WARNING if result.reason == INCONSISTENT else logging.DEBUG  # (else the store said why)
            logger.log(level, "storage could not do a request (%s); its client was told to try again", result.reason)
        self.perform(self.app.log_result(result))

    def closed(self, connection: ConnectionId) -> None:
        """Forget a connection that has ended, however it ended."""
        del self._peers[connection]
        self.perform(self.app.disconnect(connection))
        if self._shutting_down and not self._peers:
            self._all_closed.set()

    def perform(self, actions: Iterable[HubAction]) -> None:
        peers = self._peers
        for action in actions:
            if isinstance(action, Broadcast):
                frame = Outgoing(action.message).frame()  # framed once for the whole room
                for recipient in action.recipients:
                    peers[recipient].send_frame(frame)
                self.counts.delivered += len(action.recipients)
            elif isinstance(action, Append):  # (the most frequent log action: one per talk)
                self._submit(action)
            elif isinstance(action, Send):
                peers[action.connection].send(Outgoing(action.message))
                self.counts.delivered += 1
            elif isinstance(action, SendBinary):
                peers[action.connection].send(Outgoing(action.data))
                self.counts.delivered += 1
            elif isinstance(action, Close):
                peer = peers[action.connection]
                logger.info("%s: closing with %d: %s", peer.remote, action.code, action.reason)
                peer.close(action.code, action.reason)
            elif isinstance(action, LogAction):
                self._submit(action)
            elif isinstance(action, Wake):
                self._wake(action.delay)
            else:
                assert_never(action)

    def _wake(self, delay: float) -> None:
        at = anyio.current_time() + delay
        if self._wake_at is None or at < self._wake_at:
            self._wake_at = at
            self._woken.set()

    async def settling(self) -> None:
        """Call the application's ``settle`` whenever a `Wake` it returned says, until cancelled (graces of users
        who left: `chatcore.graces`). One call per turn, each ending a bounded number of them, with a checkpoint
        between two."""
        while True:
            self._woken = anyio.Event()
            at = self._wake_at
            if at is None:
                await self._woken.wait()
                continue
            with anyio.move_on_after(at - anyio.current_time()):
                await self._woken.wait()
                continue  # (asked for sooner)
            self._wake_at = None
            self.perform(self.app.settle())
            await anyio.lowlevel.checkpoint()

    async def keepalive(self) -> None:
        """Ping every peer now and then; drop those that do not answer (`runtime.keepalive`)."""
        await keepalive(self._peers, self._limits.ping_interval, self._limits.ping_timeout)

    async def shutdown(self, grace: float) -> None:
        """Close every connection with 1001 and wait up to ``grace`` seconds for them to end."""
        self.begin_shutdown(closecodes.GOING_AWAY, "server shutting down")
        for peer in list(self._peers.values()):
            peer.close(closecodes.GOING_AWAY, "server shutting down")
        with anyio.move_on_after(grace):
            await self.all_closed()

    def begin_shutdown(self, code: int, reason: str) -> None:
        """Refuse new connections (503) from now on, and close with ``code`` any that completes its handshake."""
        self._shutting_down = True
        self._shutdown_close = (code, reason)

    def open_connections(self) -> list[ConnectionId]:
        return list(self._peers)

    def close_connection(self, connection: ConnectionId, code: int, reason: str) -> None:
        """Close ``connection`` with ``code``, if it is still open (and not closing already)."""
        peer = self._peers.get(connection)
        if peer is not None:
            peer.close(code, reason)

    async def all_closed(self) -> None:
        """Once shutting down: wait until no connection is open."""
        while self._peers:
            if self._all_closed.is_set():
                self._all_closed = anyio.Event()
            await self._all_closed.wait()

    def cut(self, why: str) -> None:
        """End every open connection now, without waiting for its closing handshake."""
        for peer in list(self._peers.values()):
            peer.drop(why)

    async def serve(self, peer: Peer) -> bool:
        """Run one open connection until it ends; True if it ended gracefully, False if it was cut.

        A bug in the application while reading closes the connection with 1011
        and is logged here; a bug anywhere else propagates to the caller
        (`lifecycle.serve_connection`), after the connection is forgotten.
        """
        connection = self.open(peer)
        opened = anyio.current_time()
        logger.info("%s: connection opened (%s)", peer.remote, peer.transport,
                    extra={"event": "opened", "address": peer.address, "port": peer.port, "transport": peer.transport})
        vanished = False  # the client went away without a close frame
        try:
            async with open_task_group() as tasks:
                peer.start(tasks)
                try:
                    await peer.read_loop(connection)
                except Exception:
                    logger.exception("%s: internal error; closing with 1011", peer.remote)
                    peer.close(closecodes.INTERNAL_ERROR, "internal error", discard=True)
                else:
                    vanished = peer.closing is None
                    peer.close(closecodes.NORMAL, "")
        finally:
            code = close_code(peer, vanished)
            _log_closed(peer, anyio.current_time() - opened, code)
            self.counts.ended(peer, code)
            self.closed(connection)
        return peer.ended_gracefully


def _log_closed(peer: Peer, duration: float, code: int) -> None:
    """One INFO line per connection that ends: who, on which transport, for how long, with which close code.

    Never what was said, nor the room (its join key lets anyone in).
    """
    graceful = peer.ended_gracefully
    logger.info("%s: connection closed with %d after %.3f s (%s)%s", peer.remote, code, duration, peer.transport,
                "" if graceful else "; cut", extra={
                    "event": "closed", "address": peer.address, "port": peer.port, "transport": peer.transport,
                    "duration": round(duration, 3), "close_code": code, "graceful": graceful})


def _no_log(action: LogAction) -> None:
    raise RuntimeError(f"the application asked for storage ({type(action).__name__}), but the server has none")
