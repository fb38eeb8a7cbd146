"""The trio-websocket driver on trio-websocket's internals: an upgrade that drops a private name says so, and an
idle connection stays small."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable

import pytest
from trio_websocket import WebSocketConnection
from wsproto.connection import Connection, ConnectionType

from transports.websocket import trio_driver

SERVER = ConnectionType.SERVER


def test_the_installed_trio_websocket_has_every_private_name_the_driver_uses() -> None:
    trio_driver.check_private_names()


@pytest.mark.parametrize("name", ["_reader_task", "_handle_message_event", "_send"])
def test_a_missing_private_name_is_named_at_start_up(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.delattr(WebSocketConnection, name)
    with pytest.raises(RuntimeError, match=rf"trio-websocket \S+ lacks {name}\b.*--transport wsproto"):
        trio_driver.check_private_names()


def _bytes_each(make: Callable[[], object], count: int = 200) -> float:
    keep: list[object] = []
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        keep.extend(make() for _ in range(count))
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    return sum(stat.size_diff for stat in after.compare_to(before, "filename")) / count


def test_our_connection_costs_hardly_more_than_trio_websockets_own() -> None:
    # Python shares the keys of instance dictionaries only up to a point (30 attributes here): a few attributes
    # too many on a trio-websocket connection and every idle connection pays 1.4 KiB for a dictionary of its own.
    def plain() -> object:
        return WebSocketConnection(trio_driver._SocketStream(None), trio_driver._OpenWebSocket(Connection(SERVER), 9))

    def ours() -> object:
        websocket = trio_driver._ServerConnection(
            trio_driver._SocketStream(None), trio_driver._OpenWebSocket(Connection(SERVER), 9)
        )
        websocket.peer = None  # type: ignore[assignment]  # (what _Opening sets)
        return websocket

    plain()
    ours()  # (the classes' shared keys are made on the first instance)
    assert _bytes_each(ours) - _bytes_each(plain) < 200
