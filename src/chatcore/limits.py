"""What one client may ask of the core, with the defaults."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CoreLimits:
    """Bounds the core enforces on every connection, and on what a room kept in memory remembers."""

    history_limit: int = 1000
    """Messages kept per room; a joiner gets these, oldest first."""
    max_payload_chars: int = 10_000
    """Longest talk payload, in characters; longer ones get an error event."""
    max_json_depth: int = 32
    """Deepest nesting of arrays and objects in one event; deeper ones get an error event."""
    messages_per_second: float = 10.0
    """Sustained rate of messages from one connection (token bucket refill)."""
    message_burst: int = 30
    """Messages one connection may send at once before the rate applies (bucket size)."""
    max_rate_strikes: int = 20
    """Consecutive messages refused for rate before the connection is closed with 1008."""
    remembered_users: int = 10_000
    """Without a store (the core's memory log): users with no connection whose name and resume token a room
    keeps. Beyond it, the one that left longest ago is forgotten: its token no longer resumes, it joins anew."""
    presence_grace: float = 0.0
    """Seconds a user whose last connection to a room here closed stays in the room before it is announced ``left``
    (`chatcore.graces`): one that comes back meanwhile, here or on another process, is never announced gone.
    0: at once. (The server's default is 10 s: ``--presence-grace``.)"""

    def __post_init__(self) -> None:
        for name in ("history_limit", "remembered_users"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        for name in ("max_payload_chars", "max_json_depth", "message_burst", "max_rate_strikes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.messages_per_second <= 0:
            raise ValueError("messages_per_second must be > 0")
        if not self.presence_grace >= 0:  # (nan too)
            raise ValueError("presence_grace must be >= 0")
