"""Limits the transports enforce on every connection, with their defaults (the core has its own)."""

from __future__ import annotations

from dataclasses import dataclass

from .handshake import MAX_HEADER_BYTES, MAX_HEADERS


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on what one connection may cost the server."""

    max_message_size: int = 64 * 1024
    """Largest incoming message, in characters (text) or bytes (binary); above it: close 1009."""
    outbox_bytes: int = 1024 * 1024
    """Outgoing data queued per connection; above it the connection is closed with 1008."""
    max_header_bytes: int = MAX_HEADER_BYTES
    """Largest request head (request line and headers) of a handshake or a page request; above it: HTTP 431."""
    max_headers: int = MAX_HEADERS
    """Most header fields in a handshake or a page request; above it: HTTP 431."""
    handshake_timeout: float = 10.0
    """Seconds a new TCP connection has to complete the WebSocket handshake."""
    close_timeout: float = 5.0
    """Seconds a closing connection has to finish the closing handshake before it is dropped."""
    max_connections: int = 10_000
    """Open WebSocket connections in total; more are refused with HTTP 503."""
    max_connections_per_address: int = 256
    """Open WebSocket connections from one client IP address; more are refused with HTTP 429."""
    ping_interval: float = 20.0
    """Seconds between keepalive pings on an idle or busy connection (0: no pings)."""
    ping_timeout: float = 20.0
    """Seconds a peer has to answer a ping before it is considered dead and dropped."""
