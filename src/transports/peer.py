"""One connection as the hub sees it: a bounded outbox and a writer that drains it.

Each transport subclasses `Peer` with its own framing (`_encode`), writing
(`_write`) and closing handshake (`_finish`); queueing, bounds, the slow-reader
policy and close deadlines live here once.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from typing import Generic, TypeVar

import anyio

from chatcore import closecodes

from .limits import Limits
from .outbox import CloseRequest, Outbox

T = TypeVar("T")

log = logging.getLogger(__name__)

SLOW_READER_REASON = "outgoing buffer full: reading too slowly"


class PeerGone(Exception):
    """The connection can no longer be written to."""


class Peer(ABC, Generic[T]):
    """The write side of one connection."""

    def __init__(self, limits: Limits, address: str, remote: str) -> None:
        self.address = address
        """The client's IP address, as counted for the per-address limit."""
        self.remote = remote
        """How log lines name this peer."""
        self.outbox: Outbox[T] = Outbox(limits.outbox_bytes)
        # Bounds the whole connection once a close is requested; see `close`.
        self.scope = anyio.CancelScope()
        self._close_timeout = limits.close_timeout

    def send(self, message: str | bytes) -> None:
        """Queue one WebSocket message; a reader that cannot keep up is closed."""
        if self.outbox.closing:
            return
        item, size = self._encode(message)
        if self.outbox.put(item, size):
            return
        log.warning("%s: closing with %d: %s", self.remote, closecodes.POLICY_VIOLATION, SLOW_READER_REASON)
        self.close(closecodes.POLICY_VIOLATION, SLOW_READER_REASON, discard=True)

    def close(self, code: int, reason: str, *, discard: bool = False) -> None:
        """Close after the queued data (or drop it, with ``discard``), within the close timeout."""
        if self.outbox.request_close(code, reason, discard=discard):
            deadline = anyio.current_time() + self._close_timeout
            self.scope.deadline = min(self.scope.deadline, deadline)

    async def write_loop(self) -> None:
        """Drain the outbox until the connection is closed or broken."""
        try:
            while True:
                batch, close = await self.outbox.take()
                if batch:
                    await self._write(batch)
                if close is not None:
                    await self._finish(close)
                    return
        except PeerGone:
            self.scope.cancel()

    async def keepalive(self, interval: float, pong_timeout: float) -> None:
        """Ping every ``interval`` seconds; drop the connection if a pong takes over ``pong_timeout``."""
        while True:
            await anyio.sleep(interval)
            with anyio.move_on_after(pong_timeout) as waiting:
                await self._ping()
            if waiting.cancelled_caught:
                log.info("%s: no pong within %g s; dropping the connection", self.remote, pong_timeout)
                self.scope.cancel()
                return

    @abstractmethod
    async def _ping(self) -> None:
        """Send a ping and return when its pong arrives."""

    @abstractmethod
    def _encode(self, message: str | bytes) -> tuple[T, int]:
        """Turn a message into an outbox item and its size in bytes."""

    @abstractmethod
    async def _write(self, batch: list[T]) -> None:
        """Write queued items; raise `PeerGone` if the connection is broken."""

    @abstractmethod
    async def _finish(self, close: CloseRequest) -> None:
        """Start or answer the closing handshake; raise `PeerGone` if broken."""
