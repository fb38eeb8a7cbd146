"""A bounded queue of outgoing data for one connection."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CloseRequest:
    """Finish the connection with this WebSocket close code and reason."""

    code: int
    reason: str


class Outbox:
    """Frames waiting to be written, bounded by their total size.

    Producers never wait: `put` refuses what does not fit, and the caller
    decides what refusal means (we close the connection). The consumer is
    told through `_notify` when the queue stops being empty or a close is
    requested, and takes everything queued at once, so writes coalesce.

    A connection's `Peer` is its own outbox (a subclass), so that queueing a
    frame for one member of a broadcast touches one object (with
    `SocketPeer.send_frame`'s inlined path: 8% less CPU per delivery at
    10000 connections in rooms of 10, 4% at 1000).
    """

    __slots__ = ("_close", "_items", "_limit", "_size")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._items: list[bytes] = []
        self._size = 0
        self._close: CloseRequest | None = None

    @property
    def closing(self) -> CloseRequest | None:
        """The close requested, if any."""
        return self._close

    @property
    def queued(self) -> bool:
        """Whether frames wait to be taken."""
        return bool(self._items)

    def put(self, frame: bytes) -> bool:
        """Queue one frame; False when closing or when it would overflow the bound."""
        if self._close is not None:
            return False
        items = self._items
        size = len(frame)
        if items and self._size + size > self._limit:
            return False  # one frame larger than the bound still goes through an empty queue
        items.append(frame)
        self._size += size
        if len(items) == 1:
            self._notify()
        return True

    def request_close(self, code: int, reason: str, *, discard: bool = False) -> bool:
        """Ask the consumer to close after what is queued (or instead of it, with ``discard``).

        Returns False if a close was already requested.
        """
        if self._close is not None:
            return False
        if discard:
            self._items = []
            self._size = 0
        self._close = CloseRequest(code, reason)
        self._notify()
        return True

    def take(self) -> list[bytes]:
        """Everything queued, oldest first; the queue is empty after."""
        items, self._items, self._size = self._items, [], 0
        return items

    def _notify(self) -> None:
        """The queue stopped being empty, or a close was requested: the consumer has work."""
