"""The seed protocol's rooms and events, shared by the baseline and the peer servers.

Each server runs in its own process with one transport, so one registry of rooms
serves them all; ``Room`` is generic over the member type (a connection of that
transport), and each server says which one it keeps.
"""

from __future__ import annotations

import json
import secrets
import time
from collections import deque
from typing import Any, Generic, TypeVar

HISTORY_LIMIT = 1000  # the same bound as chat-server's --history-limit default

M = TypeVar("M")


class Room(Generic[M]):
    """Members, the last user id handed out, and the most recent messages (already encoded)."""

    def __init__(self, join_key: str) -> None:
        self.join_key = join_key
        self.members: set[M] = set()
        self.last_user_id = 0
        self.history: deque[str] = deque(maxlen=HISTORY_LIMIT)


ROOMS: dict[str, Room[Any]] = {}  # one process, one transport: members of one type, named by each server


def encode(event: dict[str, Any]) -> str:
    """Compact JSON, as the seed's clients expect it."""
    return json.dumps(event, separators=(",", ":"))


def error(message: str) -> str:
    """An ``error`` event; seed servers read ``message``, seed pages print ``payload``."""
    return encode({"type": "error", "message": message, "payload": message})


def decode(text: str | bytes) -> dict[str, Any]:
    """A client event as a dict; anything else becomes an empty (invalid) event."""
    try:
        event = json.loads(text)
    except ValueError:
        return {}
    return event if isinstance(event, dict) else {}


def new_room() -> Room[Any]:
    """A room under a fresh, unguessable join key."""
    room: Room[Any] = Room(secrets.token_urlsafe(12))
    ROOMS[room.join_key] = room
    return room


NOT_FOUND = error("chat not found.")
UNEXPECTED = error("expected one init, then talk events")


def room_for(event: dict[str, Any]) -> Room[Any] | None:
    """The room an ``init`` asks for: a new one without ``joinKey``, else the one with that key (None: not found)."""
    key = event.get("joinKey")
    return new_room() if key is None else ROOMS.get(key) if isinstance(key, str) else None


def new_user(room: Room[Any]) -> tuple[int, str]:
    """A user id never handed out in ``room`` before, and the ``init`` reply that tells it."""
    room.last_user_id += 1
    return room.last_user_id, encode({"type": "init", "joinKey": room.join_key, "userId": room.last_user_id})


def talk(room: Room[Any], user_id: int, payload: str) -> str:
    """A ``talk`` event, encoded once for every member and kept in the room's history."""
    message = encode({"type": "talk", "payload": payload, "userId": user_id, "time": time.time()})
    room.history.append(message)
    return message
