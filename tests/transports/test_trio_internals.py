"""The trio-websocket driver relies on a few private names of trio-websocket: an upgrade that drops one says so."""

from __future__ import annotations

import pytest
from trio_websocket import WebSocketConnection

from transports.websocket import trio_driver


def test_the_installed_trio_websocket_has_every_private_name_the_driver_uses() -> None:
    trio_driver.check_private_names()


@pytest.mark.parametrize("name", ["_reader_task", "_handle_message_event", "_send"])
def test_a_missing_private_name_is_named_at_start_up(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.delattr(WebSocketConnection, name)
    with pytest.raises(RuntimeError, match=rf"trio-websocket \S+ lacks {name}\b.*--transport wsproto"):
        trio_driver.check_private_names()
