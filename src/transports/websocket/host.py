"""What a WebSocket connection needs of what runs it: the hub (`runtime.hub.Hub`), seen from below.

The WebSocket side never imports the hub: the handshake stage asks it for a
slot and a verdict, the open stage hands it the connection and then each
whole message. `Hub` has these methods; it satisfies `Host` by its shape.
"""

from __future__ import annotations

from typing import Protocol

from chatcore import ConnectionId

from ..http.proxies import Forwarded
from .handshake import Handshake
from .peer import Peer


class Host(Protocol):
    """The hub, as `lifecycle.serve_connection` and the peers of both transports call it."""

    def admit(self, address: str) -> None:
        """Take a slot for a new connection from ``address``, or raise `Refusal` (503, 429)."""

    def release(self, address: str, client: str | None = None) -> None:
        """Give back the slots `admit` and `admit_client` took."""

    def forwarded(self, address: str, handshake: Handshake) -> Forwarded | None:
        """What a trusted proxy says of its client; None for a connection from anyone else."""

    def admit_client(self, client: str) -> None:
        """Take the per-address slot of the client a trusted proxy forwards for, or raise `Refusal` (429)."""

    def check_origin(self, handshake: Handshake, forwarded: Forwarded | None = None) -> None:
        """Raise `Refusal` (403) unless the page that sent ``handshake`` may open a socket."""

    def count_refusal(self, status: int) -> None:
        """A handshake was refused with ``status``."""

    async def serve(self, peer: Peer) -> bool:
        """Run one open connection until it ends; True if it ended gracefully."""

    def receive_text(self, connection: ConnectionId, text: str) -> None:
        """A whole text message from ``connection``."""

    def receive_binary(self, connection: ConnectionId, data: bytes) -> None:
        """A whole binary message from ``connection``."""
