"""The trio-websocket driver on trio-websocket's internals: an upgrade that drops a private name says so, and an
idle connection stays small."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from typing import Any, cast

import pytest
from trio_websocket import WebSocketConnection
from wsproto import WSConnection
from wsproto.connection import Connection, ConnectionType

from transports.websocket import trio_driver
from transports.websocket.incoming import FrameReader

SERVER = ConnectionType.SERVER


def test_the_installed_trio_websocket_has_every_private_name_the_driver_uses() -> None:
    trio_driver.check_private_names()


@pytest.mark.parametrize("name", trio_driver.PRIVATE_NAMES)
def test_a_missing_private_name_is_named_at_start_up(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    # An upgrade that drops it, whether it is a method or set by the constructor.
    construct = WebSocketConnection.__init__

    def construct_without(self: WebSocketConnection, *args: Any, **kwargs: Any) -> None:
        construct(self, *args, **kwargs)
        vars(self).pop(name, None)

    monkeypatch.setattr(WebSocketConnection, "__init__", construct_without)
    monkeypatch.delattr(WebSocketConnection, name, raising=False)
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
    def open_websocket() -> trio_driver._OpenWebSocket:
        return trio_driver._OpenWebSocket(None, FrameReader(Connection(SERVER), 9))  # type: ignore[arg-type]  # (never read)

    def plain() -> object:
        return WebSocketConnection(trio_driver._SocketStream(None), cast(WSConnection, open_websocket()))

    def ours() -> object:
        return trio_driver._websocket(trio_driver._SocketStream(None), open_websocket(), 9)

    plain()
    ours()  # (the classes' shared keys are made on the first instance)
    assert _bytes_each(ours) - _bytes_each(plain) < 200


def test_idle_connections_share_one_stand_in_for_trio_websockets_message_channel() -> None:
    # Nothing is ever queued on it (messages go to the hub): a memory channel per connection would be 1.6 KiB each.
    def ours() -> WebSocketConnection:
        open_websocket = trio_driver._OpenWebSocket(None, FrameReader(Connection(SERVER), 9))  # type: ignore[arg-type]
        return trio_driver._websocket(trio_driver._SocketStream(None), open_websocket, 9)

    channels: list[object] = [
        end for websocket in (ours(), ours()) for end in (websocket._send_channel, websocket._recv_channel)
    ]
    assert all(end is trio_driver._NO_MESSAGES for end in channels)


def test_idle_connections_share_one_stand_in_for_the_events_nothing_waits_for() -> None:
    def ours() -> WebSocketConnection:
        open_websocket = trio_driver._OpenWebSocket(None, FrameReader(Connection(SERVER), 9))  # type: ignore[arg-type]
        return trio_driver._websocket(trio_driver._SocketStream(None), open_websocket, 9)

    events: list[object] = [
        event for websocket in (ours(), ours())
        for event in (websocket._open_handshake, websocket._for_testing_peer_closed_connection)
    ]
    assert all(event is trio_driver._UNWATCHED for event in events)
