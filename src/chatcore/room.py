"""One chat room: its members, the ids it has handed out, and its history."""

from __future__ import annotations

from collections import deque

from .actions import ConnectionId


class Room:
    """A room outlives its members; user ids are never reused within it."""

    def __init__(self, join_key: str, history_limit: int) -> None:
        self.join_key = join_key
        self.members: dict[ConnectionId, int] = {}
        self.history: deque[str] = deque(maxlen=history_limit)
        self._last_user_id = 0

    def add_member(self, connection: ConnectionId) -> int:
        """Admit a connection and return its new, never-used user id."""
        self._last_user_id += 1
        self.members[connection] = self._last_user_id
        return self._last_user_id

    def remove_member(self, connection: ConnectionId) -> None:
        del self.members[connection]

    def recipients(self) -> tuple[ConnectionId, ...]:
        return tuple(self.members)
