"""Connections counted against ``--max-connections`` and ``--max-connections-per-address``."""

from __future__ import annotations

from collections import Counter

from ..config import Limits
from ..websocket.handshake import Refusal


class ConnectionSlots:
    """One slot per connection, in total and per client address; a server has its own."""

    __slots__ = ("_limits", "_per_address", "taken")

    def __init__(self, limits: Limits) -> None:
        self._limits = limits
        self._per_address: Counter[str] = Counter()
        self.taken = 0
        """Slots in use."""

    def take(self, address: str) -> None:
        """Take a slot for a connection from ``address``, or raise `Refusal` (503 full, 429 this address)."""
        if self.taken >= self._limits.max_connections:
            raise Refusal(503, f"server full ({self.taken} connections open)")
        if self._per_address[address] >= self._limits.max_connections_per_address:
            raise Refusal(429, "too many connections from your address")
        self.taken += 1
        self._per_address[address] += 1

    def give_back(self, address: str) -> None:
        """Free a slot that `take` gave."""
        self.taken -= 1
        self._per_address[address] -= 1
        if not self._per_address[address]:
            del self._per_address[address]
