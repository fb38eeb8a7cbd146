"""A bounded queue of outgoing data for one connection."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

import anyio

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class CloseRequest:
    """Finish the connection with this WebSocket close code and reason."""

    code: int
    reason: str


class Outbox(Generic[T]):
    """Items waiting to be written, bounded by their total size.

    Producers never wait: `put` refuses what does not fit, and the caller
    decides what refusal means (we close the connection). One consumer
    takes everything queued at once, so writes coalesce.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._items: list[T] = []
        self._size = 0
        self._close: CloseRequest | None = None
        self._wakeup = anyio.Event()

    @property
    def closing(self) -> bool:
        return self._close is not None

    @property
    def size(self) -> int:
        return self._size

    def put(self, item: T, size: int) -> bool:
        """Queue one item; False when closing or when it would overflow the bound."""
        if self._close is not None:
            return False
        # One item larger than the bound still goes through an empty queue.
        if self._items and self._size + size > self._limit:
            return False
        self._items.append(item)
        self._size += size
        self._wakeup.set()
        return True

    def request_close(self, code: int, reason: str, *, discard: bool = False) -> bool:
        """Ask the consumer to close after what is queued (or instead of it, with ``discard``).

        Returns False if a close was already requested.
        """
        if self._close is not None:
            return False
        if discard:
            self._items.clear()
            self._size = 0
        self._close = CloseRequest(code, reason)
        self._wakeup.set()
        return True

    async def take(self) -> tuple[list[T], CloseRequest | None]:
        """Wait for items or a close request; return all queued items and the request, if any."""
        while not self._items and self._close is None:
            self._wakeup = anyio.Event()
            await self._wakeup.wait()
        items, self._items, self._size = self._items, [], 0
        return items, self._close
