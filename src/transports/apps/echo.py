"""A plain WebSocket echo application, for protocol-conformance testing of a transport."""

from __future__ import annotations

from chatcore import ConnectionId, DriverError, LogResult, Send

from ..runtime.hub import HubAction, SendBinary


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

    def log_result(self, result: LogResult) -> list[HubAction]:
        raise DriverError("the echo application keeps no log")

    def settle(self) -> list[HubAction]:
        return []  # (it never asks: no presence)
