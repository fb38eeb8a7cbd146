"""The chat core on its own: plain function calls, no event loop, no sockets."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from chatcore import Action, Broadcast, ChatCore, Close, Send


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def keys() -> Iterator[str]:
    n = 0
    while True:
        n += 1
        yield f"key{n}"


@pytest.fixture
def core() -> ChatCore:
    return ChatCore(clock=FakeClock(), new_join_key=keys().__next__)


def decoded(action: Action) -> dict[str, Any]:
    assert not isinstance(action, Close)
    event = json.loads(action.message)
    assert isinstance(event, dict)
    return event


def only_reply(actions: list[Action], connection: int) -> dict[str, Any]:
    assert len(actions) == 1
    action = actions[0]
    assert isinstance(action, Send)
    assert action.connection == connection
    return decoded(action)


def send(core: ChatCore, connection: int, event: object) -> list[Action]:
    return core.receive_text(connection, json.dumps(event))


def start_room(core: ChatCore, connection: int) -> str:
    core.connect(connection)
    reply = only_reply(send(core, connection, {"type": "init"}), connection)
    join_key = reply["joinKey"]
    assert isinstance(join_key, str)
    return join_key


def join_room(core: ChatCore, connection: int, join_key: str) -> list[Action]:
    core.connect(connection)
    return send(core, connection, {"type": "init", "joinKey": join_key})


def assert_error(actions: list[Action], connection: int, text: str) -> None:
    event = only_reply(actions, connection)
    assert event == {"type": "error", "message": event["message"], "payload": event["message"]}
    assert text in event["message"]


def test_init_creates_a_room_with_the_generated_key_and_first_user_id(core: ChatCore) -> None:
    core.connect(1)
    assert only_reply(send(core, 1, {"type": "init"}), 1) == {"type": "init", "joinKey": "key1", "userId": 1}
    assert core.room_count == 1


def test_each_init_without_key_creates_a_new_room(core: ChatCore) -> None:
    assert start_room(core, 1) == "key1"
    assert start_room(core, 2) == "key2"
    assert core.room_count == 2


def test_a_colliding_join_key_is_drawn_again() -> None:
    drawn = iter(["same", "same", "other"])
    core = ChatCore(clock=FakeClock(), new_join_key=drawn.__next__)
    assert start_room(core, 1) == "same"
    assert start_room(core, 2) == "other"


def test_join_replies_init_with_the_next_user_id(core: ChatCore) -> None:
    join_key = start_room(core, 1)
    reply = only_reply(join_room(core, 2, join_key), 2)
    assert reply == {"type": "init", "joinKey": join_key, "userId": 2}


def test_talk_is_broadcast_to_every_member_including_the_sender(core: ChatCore) -> None:
    join_key = start_room(core, 1)
    join_room(core, 2, join_key)
    start_room(core, 3)  # another room hears nothing
    actions = send(core, 2, {"type": "talk", "payload": "hello"})
    assert len(actions) == 1
    broadcast = actions[0]
    assert isinstance(broadcast, Broadcast)
    assert broadcast.room == join_key
    assert sorted(broadcast.recipients) == [1, 2]
    assert decoded(broadcast) == {"type": "talk", "payload": "hello", "userId": 2, "time": 1001.0}


def test_the_user_id_a_client_sends_is_ignored(core: ChatCore) -> None:
    join_key = start_room(core, 1)
    join_room(core, 2, join_key)
    for claimed in ["1", 1, "admin", None]:
        event = decoded(send(core, 2, {"type": "talk", "payload": "x", "userId": claimed})[0])
        assert event["userId"] == 2


def test_time_comes_from_the_injected_clock(core: ChatCore) -> None:
    start_room(core, 1)
    first = decoded(send(core, 1, {"type": "talk", "payload": "a"})[0])
    second = decoded(send(core, 1, {"type": "talk", "payload": "b"})[0])
    assert (first["time"], second["time"]) == (1001.0, 1002.0)


def test_a_joiner_gets_the_history_after_its_init_in_order(core: ChatCore) -> None:
    join_key = start_room(core, 1)
    for text in ["one", "two", "three"]:
        send(core, 1, {"type": "talk", "payload": text})
    actions = join_room(core, 2, join_key)
    assert all(isinstance(action, Send) and action.connection == 2 for action in actions)
    events = [decoded(action) for action in actions]
    assert events[0]["type"] == "init"
    assert [(e["type"], e["payload"], e["userId"]) for e in events[1:]] == [
        ("talk", "one", 1),
        ("talk", "two", 1),
        ("talk", "three", 1),
    ]


def test_history_keeps_only_the_most_recent_messages() -> None:
    core = ChatCore(clock=FakeClock(), new_join_key=keys().__next__, history_limit=2)
    join_key = start_room(core, 1)
    for text in ["one", "two", "three"]:
        send(core, 1, {"type": "talk", "payload": text})
    events = [decoded(action) for action in join_room(core, 2, join_key)]
    assert [e["payload"] for e in events[1:]] == ["two", "three"]


def test_a_negative_history_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="history_limit"):
        ChatCore(clock=FakeClock(), new_join_key=keys().__next__, history_limit=-1)


def test_user_ids_are_never_reused_after_members_leave(core: ChatCore) -> None:
    join_key = start_room(core, 1)
    seen = {1}
    for connection in range(2, 8):
        user_id = only_reply(join_room(core, connection, join_key), connection)["userId"]
        assert user_id not in seen
        seen.add(user_id)
        core.disconnect(connection)
    core.disconnect(1)
    assert only_reply(join_room(core, 99, join_key), 99)["userId"] == 8


def test_the_room_outlives_its_creator(core: ChatCore) -> None:
    join_key = start_room(core, 1)
    send(core, 1, {"type": "talk", "payload": "before leaving"})
    core.disconnect(1)
    events = [decoded(action) for action in join_room(core, 2, join_key)]
    assert events[0] == {"type": "init", "joinKey": join_key, "userId": 2}
    assert events[1]["payload"] == "before leaving"


def test_a_member_who_left_receives_nothing(core: ChatCore) -> None:
    join_key = start_room(core, 1)
    join_room(core, 2, join_key)
    core.disconnect(2)
    broadcast = send(core, 1, {"type": "talk", "payload": "x"})[0]
    assert isinstance(broadcast, Broadcast)
    assert broadcast.recipients == (1,)


def test_a_disconnect_before_init_leaves_no_trace(core: ChatCore) -> None:
    core.connect(1)
    assert core.disconnect(1) == []
    assert core.connection_count == 0
    assert core.room_count == 0


def test_unknown_join_key_is_an_error_and_init_can_be_retried(core: ChatCore) -> None:
    join_key = start_room(core, 1)
    core.connect(2)
    assert_error(send(core, 2, {"type": "init", "joinKey": "nope"}), 2, "chat not found.")
    assert only_reply(send(core, 2, {"type": "init", "joinKey": join_key}), 2)["userId"] == 2


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("not json", "invalid JSON"),
        ("{", "invalid JSON"),
        ("", "invalid JSON"),
        ("[" * 100_000 + "]" * 100_000, "invalid JSON"),
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


def test_receive_accepts_decoded_event_dicts(core: ChatCore) -> None:
    core.connect(1)
    assert only_reply(core.receive(1, {"type": "init"}), 1)["type"] == "init"


def test_payloads_travel_unchanged(core: ChatCore) -> None:
    start_room(core, 1)
    payload = '<img src=x onerror="alert(1)"> "quotes" \\ ünïcødé 🎉 \n'
    assert decoded(send(core, 1, {"type": "talk", "payload": payload})[0])["payload"] == payload


def test_server_events_are_compact_json(core: ChatCore) -> None:
    core.connect(1)
    action = send(core, 1, {"type": "init"})[0]
    assert isinstance(action, Send)
    assert action.message == '{"type":"init","joinKey":"key1","userId":1}'


def test_events_for_unknown_connections_are_a_driver_bug(core: ChatCore) -> None:
    with pytest.raises(ValueError, match="not open"):
        core.receive_text(7, "{}")
    core.connect(7)
    with pytest.raises(ValueError, match="already open"):
        core.connect(7)


def test_the_same_inputs_give_the_same_actions() -> None:
    def script() -> list[Action]:
        core = ChatCore(clock=FakeClock(), new_join_key=keys().__next__)
        out = []
        core.connect(1)
        out += send(core, 1, {"type": "init"})
        out += send(core, 1, {"type": "talk", "payload": "a"})
        core.connect(2)
        out += send(core, 2, {"type": "init", "joinKey": "key1"})
        out += core.receive_text(2, "junk")
        return out

    assert script() == script()
