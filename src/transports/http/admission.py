"""Connections counted against ``--max-connections`` and ``--max-connections-per-address``.

A connection takes its slot at its first byte, by its TCP address. A
connection from a trusted proxy (``--trusted-proxy``) is different: the
proxy is not one client, so at first it takes only a slot in the total;
once its request head is read, it takes the per-address slot of the client
the proxy forwards for (`take_client`), or of the proxy itself when the
proxy names no client it can be believed about.
"""

from __future__ import annotations

from collections import Counter

from ..config import Limits
from .answers import Refusal
from .proxies import TrustedProxies


class ConnectionSlots:
    """One slot per connection, in total and per client address; a server has its own."""

    __slots__ = ("_limits", "_per_address", "proxies", "taken")

    def __init__(self, limits: Limits, proxies: TrustedProxies | None = None) -> None:
        self._limits = limits
        self._per_address: Counter[str] = Counter()
        self.proxies = proxies or TrustedProxies()
        self.taken = 0
        """Slots in use."""

    def take(self, address: str) -> None:
        """Take a slot for a connection from ``address``, or raise `Refusal` (503 full, 429 this address).

        From a trusted proxy: a slot in the total only; `take_client` follows once the client is known.
        """
        if self.taken >= self._limits.max_connections:
            raise Refusal(503, f"server full ({self.taken} connections open)")
        if not self.proxies.trusts(address):
            self.take_client(address)
        self.taken += 1

    def take_client(self, address: str) -> None:
        """Take the per-address slot of a client a trusted proxy forwards for, or raise `Refusal` (429)."""
        if self._per_address[address] >= self._limits.max_connections_per_address:
            raise Refusal(429, "too many connections from your address")
        self._per_address[address] += 1

    def give_back(self, address: str) -> None:
        """Free a slot that `take` gave."""
        self.taken -= 1
        if not self.proxies.trusts(address):
            self.give_back_client(address)

    def give_back_client(self, address: str) -> None:
        """Free a slot that `take_client` gave."""
        self._per_address[address] -= 1
        if not self._per_address[address]:
            del self._per_address[address]
