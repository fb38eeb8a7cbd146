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
    problems,
)
from chatcore.problems import Problem
from chatcore.ratelimit import TokenBucket
from chatcore.rooms import Room
from chatcore.session import Session
from corekit import assert_error, only_reply, send, start_room, v2_error


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("not json", problems.NOT_JSON),
        ("{", problems.NOT_JSON),
        ("", problems.NOT_JSON),
        ("[" * 100_000 + "]" * 100_000, problems.TOO_DEEP.format(depth=32)),
        ('{"a":' * 33 + "1" + "}" * 33, problems.TOO_DEEP.format(depth=32)),
        ("[]", problems.NOT_AN_OBJECT),
        ('"init"', problems.NOT_AN_OBJECT),
        ("null", problems.NOT_AN_OBJECT),
        ("42", problems.NOT_AN_OBJECT),
        ("{}", problems.NO_TYPE),
        ('{"type": 3}', problems.NO_TYPE),
        ('{"type": null}', problems.NO_TYPE),
        ('{"type": "dance"}', problems.UNKNOWN_REQUEST),
        ('{"type": "INIT"}', problems.UNKNOWN_REQUEST),
        ('{"type": "init", "joinKey": 5}', problems.BAD_JOIN_KEY),
        ('{"type": "init", "joinKey": ["k"]}', problems.BAD_JOIN_KEY),
    ],
)
def test_bad_input_before_init_is_answered_with_an_error(core: ChatCore, text: str, error: Problem) -> None:
    core.connect(1)
    assert_error(core.receive_text(1, text), 1, error)
    # ...and the connection stays usable.
    assert only_reply(send(core, 1, {"type": "init"}), 1)["type"] == "init"


@pytest.mark.parametrize(
    ("event", "error"),
    [
        ({"type": "talk"}, problems.MESSAGE_NOT_TEXT),
        ({"type": "talk", "payload": 5}, problems.MESSAGE_NOT_TEXT),
        ({"type": "talk", "payload": None}, problems.MESSAGE_NOT_TEXT),
        ({"type": "talk", "payload": {"html": "<b>"}}, problems.MESSAGE_NOT_TEXT),
        ({"type": "talk", "payload": "\ud800"}, problems.NOT_UNICODE),
        ({"type": "init"}, problems.ALREADY_IN_CHAT),
        ({"type": "init", "joinKey": "key1"}, problems.ALREADY_IN_CHAT),
        ({"type": "leave"}, problems.UNKNOWN_REQUEST),
    ],
)
def test_bad_input_in_a_room_is_answered_and_the_room_goes_on(
    core: ChatCore, event: dict[str, object], error: Problem
) -> None:
    start_room(core, 1)
    assert_error(core.receive(1, event), 1, error)
    assert isinstance(send(core, 1, {"type": "talk", "payload": "still here"})[0], Broadcast)


def test_talk_before_init_is_an_error(core: ChatCore) -> None:
    core.connect(1)
    assert_error(send(core, 1, {"type": "talk", "payload": "hi"}), 1, problems.NOT_IN_CHAT)


def test_binary_messages_are_answered_with_an_error(core: ChatCore) -> None:
    core.connect(1)
    assert_error(core.receive_binary(1, b"\x00\x01"), 1, problems.BINARY)


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
        assert json.loads(reply.message) == v2_error(problems.NOT_AN_OBJECT)


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
