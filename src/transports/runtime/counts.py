"""What the hub counts for the metrics: plain integers, one increment per action, read at scrape time.

The hot path pays an attribute increment (no lock, no label lookup); the
Prometheus side (`ops.metrics`) turns these into counters when scraped.
"""

from __future__ import annotations

from collections import Counter

from ..websocket.peer import SLOW_READER_REASON, Peer

ABNORMAL_CLOSURE = 1006
"""The code of a connection that ended without a close frame (RFC 6455, 7.1.5): never sent, only counted."""


class Counts:
    """Counters of one hub (one server), since it started."""

    __slots__ = ("closes", "delivered", "opened", "received", "refused", "slow_readers")

    def __init__(self) -> None:
        self.received = 0
        """WebSocket messages received from clients (text or binary, valid or not)."""
        self.delivered = 0
        """Messages queued to clients: one per recipient of a broadcast, one per message sent to one client."""
        self.opened = 0
        """Connections whose WebSocket handshake completed."""
        self.refused: Counter[int] = Counter()
        """Handshakes refused, by HTTP status."""
        self.closes: Counter[int] = Counter()
        """Connections ended, by close code: ours if we closed first, the client's if it did, 1006 without one."""
        self.slow_readers = 0
        """Connections closed (1008) because they read too slowly: their outbox overflowed."""

    def ended(self, peer: Peer, code: int) -> None:
        """Count a connection that has ended with close ``code`` (`close_code`)."""
        self.closes[code] += 1
        closing = peer.closing
        if closing is not None and closing.reason == SLOW_READER_REASON:
            self.slow_readers += 1


def close_code(peer: Peer, vanished: bool) -> int:
    """How an ended connection closed: ours if we closed first, the client's if it did, 1006 without a close frame.

    ``vanished``: its read loop ended without a close frame.
    """
    closing = peer.closing
    return ABNORMAL_CLOSURE if vanished or closing is None else closing.code
