"""A plain WebSocket echo application, for protocol-conformance testing of a transport."""

from __future__ import annotations

from chatcore import ConnectionId, Send
from chatcore.storage import StorageResult

from .hub import HubAction, SendBinary


class EchoApp:
    """Sends every message back to its sender, text as text and binary as binary."""

    def connect(self, connection: ConnectionId) -> list[HubAction]:
        return []

    def disconnect(self, connection: ConnectionId) -> list[HubAction]:
        return []

    def receive_text(self, connection: ConnectionId, text: str) -> list[HubAction]:
        return [Send(connection, text)]

    def receive_binary(self, connection: ConnectionId, data: bytes) -> list[HubAction]:
        return [SendBinary(connection, data)]

    def storage_result(self, result: StorageResult) -> list[HubAction]:
        raise ValueError("the echo application stores nothing")
