"""The server's explicit limits, with their defaults."""

from __future__ import annotations

from dataclasses import dataclass

from chatcore import DEFAULT_HISTORY_LIMIT


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on what one connection may cost the server."""

    max_message_size: int = 64 * 1024
    """Largest incoming message, in characters (text) or bytes (binary); above it: close 1009."""
    outbox_bytes: int = 1024 * 1024
    """Outgoing data queued per connection; above it the connection is closed with 1008."""
    handshake_timeout: float = 10.0
    """Seconds a new TCP connection has to complete the WebSocket handshake."""
    close_timeout: float = 5.0
    """Seconds a closing connection has to finish the closing handshake before it is dropped."""
    history_limit: int = DEFAULT_HISTORY_LIMIT
    """Messages kept per room and replayed to a joiner."""
