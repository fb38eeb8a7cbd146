"""What the core asks its driver to do: small frozen dataclasses, performed elsewhere."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from .storage import Load, Store

ConnectionId: TypeAlias = int
"""Opaque id the driver gives each connection; the core never interprets it."""


@dataclass(frozen=True, slots=True)
class Send:
    """Send one text message (a JSON event) to one connection."""

    connection: ConnectionId
    message: str


@dataclass(frozen=True, slots=True)
class Broadcast:
    """Send one text message to every member of a room.

    The message is encoded once; a driver can frame it once and write the
    same bytes to every recipient.
    """

    room: str
    recipients: tuple[ConnectionId, ...]
    message: str


@dataclass(frozen=True, slots=True)
class Close:
    """Close one connection with a WebSocket close code and reason."""

    connection: ConnectionId
    code: int
    reason: str


Action: TypeAlias = Send | Broadcast | Close | Store | Load
"""`Store` and `Load` come only from a durable core (see `chatcore.storage`)."""
