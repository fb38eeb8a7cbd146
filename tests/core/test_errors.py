"""Errors: a client's mistake gets an ``error`` event and the connection goes on; a driver's is `DriverError`."""

from __future__ import annotations

import json

import pytest

from chatcore import (
    AddUser,
    Append,
    Appended,
    Broadcast,
    ChatCore,
    DriverError,
    Fill,
    Filled,
    Forget,
    MemoryLog,
    Presence,
    Send,
    SessionState,
    Subscribe,
    TransitionError,
    UserAdded,
)
from chatcore.ratelimit import TokenBucket
from chatcore.rooms import Room
from chatcore.session import Session
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


def test_a_version_2_member_sending_json_that_is_not_an_object_gets_an_error_event(core: ChatCore) -> None:
    core.connect(1)
    send(core, 1, {"type": "init", "v": 2})
    for text in ("[1]", "5", '"talk"', "null"):
        (reply,) = core.receive_text(1, text)
        assert isinstance(reply, Send)
        assert json.loads(reply.message) == {
            "type": "error", "message": "an event must be a JSON object", "payload": "an event must be a JSON object",
        }


def test_an_illegal_session_transition_names_the_step_and_the_state() -> None:
    session = Session(TokenBucket(1.0, 1, 0.0))
    with pytest.raises(TransitionError, match="joined is not a transition from LOBBY"):
        session.joined(Room("k", 1), 1)
    assert session.state is SessionState.LOBBY


def test_the_memory_log_takes_every_log_action() -> None:
    log = MemoryLog(10)
    assert log.perform(Subscribe("k")) == []
    (added,) = log.perform(AddUser(1, "k", 5.0))
    assert added == UserAdded(1, 1)
    (appended,) = log.perform(Append(2, "k", 1, 6.0, "hi"))
    assert isinstance(appended, Appended)
    assert appended.talk.offset == 1
    assert log.perform(Fill("k", 0)) == [Filled("k", 0, (appended.talk,))]
    assert log.perform(Presence("k", 1, False, None)) == []
    assert log.perform(Forget("k")) == []
