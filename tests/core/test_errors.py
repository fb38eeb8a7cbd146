"""Errors: a client's mistake gets an ``error`` event and the connection goes on; a driver's is `DriverError`."""

from __future__ import annotations

import pytest

from chatcore import Broadcast, ChatCore, DriverError
from corekit import assert_error, only_reply, send, start_room


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("not json", "invalid JSON"),
        ("{", "invalid JSON"),
        ("", "invalid JSON"),
        ("[" * 100_000 + "]" * 100_000, "nested deeper than 32"),
        ('{"a":' * 33 + "1" + "}" * 33, "nested deeper than 32"),
        ("[]", "JSON object"),
        ('"init"', "JSON object"),
        ("null", "JSON object"),
        ("42", "JSON object"),
        ("{}", '"type"'),
        ('{"type": 3}', '"type"'),
        ('{"type": null}', '"type"'),
        ('{"type": "dance"}', "unknown event type"),
        ('{"type": "INIT"}', "unknown event type"),
        ('{"type": "init", "joinKey": 5}', '"joinKey" must be a string'),
        ('{"type": "init", "joinKey": ["k"]}', '"joinKey" must be a string'),
    ],
)
def test_bad_input_before_init_is_answered_with_an_error(core: ChatCore, text: str, error: str) -> None:
    core.connect(1)
    assert_error(core.receive_text(1, text), 1, error)
    # ...and the connection stays usable.
    assert only_reply(send(core, 1, {"type": "init"}), 1)["type"] == "init"


@pytest.mark.parametrize(
    ("event", "error"),
    [
        ({"type": "talk"}, '"payload" must be a string'),
        ({"type": "talk", "payload": 5}, '"payload" must be a string'),
        ({"type": "talk", "payload": None}, '"payload" must be a string'),
        ({"type": "talk", "payload": {"html": "<b>"}}, '"payload" must be a string'),
        ({"type": "talk", "payload": "\ud800"}, "valid Unicode"),
        ({"type": "init"}, "already in a chat"),
        ({"type": "init", "joinKey": "key1"}, "already in a chat"),
        ({"type": "leave"}, "unknown event type"),
    ],
)
def test_bad_input_in_a_room_is_answered_and_the_room_goes_on(
    core: ChatCore, event: dict[str, object], error: str
) -> None:
    start_room(core, 1)
    assert_error(core.receive(1, event), 1, error)
    assert isinstance(send(core, 1, {"type": "talk", "payload": "still here"})[0], Broadcast)


def test_talk_before_init_is_an_error(core: ChatCore) -> None:
    core.connect(1)
    assert_error(send(core, 1, {"type": "talk", "payload": "hi"}), 1, 'send "init" before "talk"')


def test_binary_messages_are_answered_with_an_error(core: ChatCore) -> None:
    core.connect(1)
    assert_error(core.receive_binary(1, b"\x00\x01"), 1, "binary")


def test_events_for_unknown_connections_are_a_driver_bug(core: ChatCore) -> None:
    with pytest.raises(DriverError, match="not open"):
        core.receive_text(7, "{}")
    core.connect(7)
    with pytest.raises(DriverError, match="already open"):
        core.connect(7)
