"""What the core asks a store to keep or fetch, and what the store answers.

A durable core never shows anything it has not stored: it asks with `Store`
and `Load` actions and continues once the driver feeds the matching result
(`Stored`, `Loaded` or `StorageFailed`) back through
`ChatCore.storage_result`. Results must come back in the order the actions
were given.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

Ticket: TypeAlias = int
"""Pairs a result with the action that asked for it."""


@dataclass(frozen=True, slots=True)
class NewRoom:
    """A room was created; its user ids start at 0."""

    join_key: str
    created: float


@dataclass(frozen=True, slots=True)
class NewUser:
    """A room handed out ``user_id``; no later id may be lower or equal."""

    join_key: str
    user_id: int


@dataclass(frozen=True, slots=True)
class NewTalk:
    """A message was accepted in a room."""

    join_key: str
    user_id: int
    time: float
    payload: str


Record: TypeAlias = NewRoom | NewUser | NewTalk


@dataclass(frozen=True, slots=True)
class Store:
    """Make ``records`` durable, all or none, then answer `Stored` or `StorageFailed`."""

    ticket: Ticket
    records: tuple[Record, ...]


@dataclass(frozen=True, slots=True)
class Load:
    """Fetch a room and its ``recent`` latest talks, then answer `Loaded` or `StorageFailed`."""

    ticket: Ticket
    join_key: str
    recent: int


@dataclass(frozen=True, slots=True)
class SavedTalk:
    payload: str
    user_id: int
    time: float


@dataclass(frozen=True, slots=True)
class SavedRoom:
    """A room as stored: its last user id and its latest talks, oldest first."""

    join_key: str
    last_user_id: int
    talks: tuple[SavedTalk, ...]


@dataclass(frozen=True, slots=True)
class Stored:
    ticket: Ticket


@dataclass(frozen=True, slots=True)
class Loaded:
    """The room asked for, or None when no room has that key."""

    ticket: Ticket
    room: SavedRoom | None


@dataclass(frozen=True, slots=True)
class StorageFailed:
    """The store could not do it; ``reason`` is short and safe to show to clients."""

    ticket: Ticket
    reason: str


StorageResult: TypeAlias = Stored | Loaded | StorageFailed
