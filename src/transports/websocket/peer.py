"""One connection as the hub sees it: the write side, its bounds and its keepalive state.

Queueing with its bound, the slow-reader policy, close deadlines and ping
bookkeeping live here once; each transport subclasses `Peer` with when it
writes (`_notify`, `start`) and how it pings.
"""

from __future__ import annotations

import logging
import math
from abc import ABC, abstractmethod
from typing import ClassVar

import anyio

from chatcore import ConnectionId, closecodes

from ..config import Limits
from ..net.tasks import TaskGroup
from ..net.tcp import format_remote
from .framing import Outgoing
from .outbox import Outbox

logger = logging.getLogger(__name__)

SLOW_READER_REASON = "outgoing buffer full: reading too slowly"


class Peer(Outbox, ABC):
    """The write side of one connection: its outbox (it is one), its bounds and its keepalive state."""

    __slots__ = (
        "_close_timeout", "_deadline", "_dropped", "address", "heard", "last_ping_at", "ping_sent_at", "port",
        "tasks",
    )

    transport: ClassVar[str] = "websocket"
    """How log lines name the WebSocket implementation (``--transport``) carrying this connection."""

    def __init__(self, limits: Limits, address: str, port: int) -> None:
        self.address = address
        """The client's IP address, as counted for the per-address limit."""
        self.port = port
        super().__init__(limits.outbox_bytes)
        self._deadline = math.inf  # for the whole connection, once a close is requested
        self._dropped = False
        self.ping_sent_at: float | None = None
        """When the unanswered ping went out (None: no ping outstanding)."""
        self.last_ping_at = anyio.current_time()
        self.heard = False
        """Whether anything arrived from the client since the last keepalive ping: the transport sets it."""
        self.tasks: TaskGroup | None = None
        """The connection's task group, while `Hub.serve` runs it; its cancel scope bounds the connection."""
        self._close_timeout = limits.close_timeout

    @property
    def remote(self) -> str:
        """How log lines name this peer."""
        return format_remote(self.address, self.port)

    def send(self, message: Outgoing) -> None:
        """Queue one WebSocket message (its shared frame); a reader that cannot keep up is closed."""
        self.send_frame(message.frame())

    def send_frame(self, frame: bytes) -> None:
        """Queue one whole frame, shared by a broadcast's members (nothing once closing); a reader that cannot
        keep up is closed."""
        if self.put(frame) or self._close is not None:
            return
        logger.warning("%s: closing with %d: %s", self.remote, closecodes.POLICY_VIOLATION, SLOW_READER_REASON)
        self.close(closecodes.POLICY_VIOLATION, SLOW_READER_REASON, discard=True)

    def close(self, code: int, reason: str, *, discard: bool = False) -> None:
        """Close after the queued data (or drop it, with ``discard``), within the close timeout."""
        if self.request_close(code, reason, discard=discard):
            self._deadline = min(self._deadline, anyio.current_time() + self._close_timeout)
            if self.tasks is not None:
                self.tasks.cancel_scope.deadline = self._deadline

    def drop(self, why: str) -> None:
        """End the connection now, without a closing handshake (it cannot be had)."""
        logger.info("%s: dropping the connection: %s", self.remote, why)
        self._cut()

    def fail(self, stage: str) -> None:
        """End the connection now for a bug of ours; call it from the ``except`` block that caught the bug."""
        logger.exception("%s: internal error while %s; connection ended", self.remote, stage)
        self._cut()

    def _cut(self) -> None:
        self._dropped = True
        if self.tasks is not None:
            self.tasks.cancel_scope.cancel()

    @property
    def ended_gracefully(self) -> bool:
        """After `Hub.serve`: False if the connection was dropped or its close ran out of time."""
        return not self._dropped and (self.tasks is None or not self.tasks.cancel_scope.cancel_called)

    def ping(self, now: float) -> None:
        """Send a keepalive ping: anything the client sends from now on (its pong, or any frame) answers it."""
        self.ping_sent_at = self.last_ping_at = now
        self.heard = False
        self._send_ping()

    def start(self, tasks: TaskGroup) -> None:
        """Begin writing; `Hub.serve` calls this once, with the connection's task group."""
        self.tasks = tasks
        tasks.cancel_scope.deadline = self._deadline
        if self._dropped:
            tasks.cancel_scope.cancel()

    @abstractmethod
    async def read_loop(self, connection: ConnectionId) -> None:
        """Feed the hub whole messages for ``connection`` until the connection closes."""

    @abstractmethod
    def _notify(self) -> None:
        """The outbox stopped being empty, or a close was requested."""

    @abstractmethod
    def data_waiting(self) -> bool:
        """Whether the client sent bytes we have not read yet (an answer to a ping, even if we are late)."""

    @abstractmethod
    def _send_ping(self) -> None:
        """Queue a ping frame."""
