"""The chat core on its own: plain function calls, no event loop, no sockets."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from chatcore import Action, Broadcast, ChatCore, Close, CoreLimits, Send


class FakeClock:
    """Stands still until a test moves it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def keys() -> Iterator[str]:
    n = 0
    while True:
        n += 1
        yield f"key{n}"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def core(clock: FakeClock) -> ChatCore:
    return ChatCore(clock=clock, new_join_key=keys().__next__)


def decoded(action: Action) -> dict[str, Any]:
    assert isinstance(action, Send | Broadcast)
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


def start_room(core: ChatCore, connection: int, **init: object) -> str:
    core.connect(connection)
    reply = only_reply(send(core, connection, {"type": "init", **init}), connection)
    join_key = reply["joinKey"]
    assert isinstance(join_key, str)
    return join_key


def join_room(core: ChatCore, connection: int, join_key: str, **init: object) -> list[Action]:
    core.connect(connection)
    return send(core, connection, {"type": "init", "joinKey": join_key, **init})


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
    assert decoded(broadcast) == {"type": "talk", "payload": "hello", "userId": 2, "time": 1000.0}


def test_the_user_id_a_client_sends_is_ignored(core: ChatCore) -> None:
    join_key = start_room(core, 1)
    join_room(core, 2, join_key)
    for claimed in ["1", 1, "admin", None]:
        event = decoded(send(core, 2, {"type": "talk", "payload": "x", "userId": claimed})[0])
        assert event["userId"] == 2


def test_time_comes_from_the_injected_clock(core: ChatCore, clock: FakeClock) -> None:
    start_room(core, 1)
    clock.now = 1234.5
    first = decoded(send(core, 1, {"type": "talk", "payload": "a"})[0])
    clock.now = 1240.25
    second = decoded(send(core, 1, {"type": "talk", "payload": "b"})[0])
    assert (first["time"], second["time"]) == (1234.5, 1240.25)


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
    core = ChatCore(clock=FakeClock(), new_join_key=keys().__next__, limits=CoreLimits(history_limit=2))
    join_key = start_room(core, 1)
    for text in ["one", "two", "three"]:
        send(core, 1, {"type": "talk", "payload": text})
    events = [decoded(action) for action in join_room(core, 2, join_key)]
    assert [e["payload"] for e in events[1:]] == ["two", "three"]


@pytest.mark.parametrize(
    "bad",
    [{"history_limit": -1}, {"max_payload_chars": 0}, {"max_json_depth": 0}, {"messages_per_second": 0},
     {"message_burst": 0}, {"max_rate_strikes": 0}],
)
def test_nonsense_limits_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        CoreLimits(**bad)  # type: ignore[arg-type]


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


def test_receive_accepts_decoded_event_dicts(core: ChatCore) -> None:
    core.connect(1)
    assert only_reply(core.receive(1, {"type": "init"}), 1)["type"] == "init"


def test_payloads_travel_unchanged(core: ChatCore) -> None:
    start_room(core, 1, render="text")
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


def test_a_payload_up_to_the_limit_is_accepted_and_a_longer_one_refused() -> None:
    core = ChatCore(clock=FakeClock(), new_join_key=keys().__next__, limits=CoreLimits(max_payload_chars=10))
    start_room(core, 1)
    assert isinstance(send(core, 1, {"type": "talk", "payload": "x" * 10})[0], Broadcast)
    assert_error(send(core, 1, {"type": "talk", "payload": "x" * 11}), 1, "longer than 10 characters")


def test_nesting_up_to_the_limit_is_accepted() -> None:
    core = ChatCore(clock=FakeClock(), new_join_key=keys().__next__, limits=CoreLimits(max_json_depth=4))
    start_room(core, 1)
    # The event object itself is level 1.
    assert isinstance(send(core, 1, {"type": "talk", "payload": "x", "extra": [[[1]]]})[0], Broadcast)
    assert_error(send(core, 1, {"type": "talk", "payload": "x", "extra": [[[[1]]]]}), 1, "nested deeper than 4")


def test_brackets_inside_strings_are_not_nesting() -> None:
    core = ChatCore(clock=FakeClock(), new_join_key=keys().__next__, limits=CoreLimits(max_json_depth=4))
    start_room(core, 1, render="text")
    payload = '[{[{"\\"[[[[[[' * 10
    assert decoded(send(core, 1, {"type": "talk", "payload": payload})[0])["payload"] == payload


def test_the_rate_limit_answers_errors_then_closes_with_1008(clock: FakeClock) -> None:
    limits = CoreLimits(messages_per_second=2, message_burst=3, max_rate_strikes=2)
    core = ChatCore(clock=clock, new_join_key=keys().__next__, limits=limits)
    start_room(core, 1)  # the init took one token
    for _ in range(2):
        assert isinstance(send(core, 1, {"type": "talk", "payload": "x"})[0], Broadcast)
    assert_error(send(core, 1, {"type": "talk", "payload": "x"}), 1, "slow down")
    clock.now += 0.5  # one token back
    assert isinstance(send(core, 1, {"type": "talk", "payload": "x"})[0], Broadcast)
    assert_error(send(core, 1, {"type": "talk", "payload": "x"}), 1, "slow down")
    assert_error(core.receive_text(1, "garbage counts too"), 1, "slow down")
    assert core.receive_binary(1, b"x") == [Close(1, 1008, "message rate limit exceeded")]


def test_the_rate_limit_is_per_connection(clock: FakeClock) -> None:
    core = ChatCore(clock=clock, new_join_key=keys().__next__, limits=CoreLimits(message_burst=2))
    join_key = start_room(core, 1)
    send(core, 1, {"type": "talk", "payload": "x"})
    assert_error(send(core, 1, {"type": "talk", "payload": "x"}), 1, "slow down")
    join_room(core, 2, join_key)
    assert isinstance(send(core, 2, {"type": "talk", "payload": "x"})[0], Broadcast)


def test_a_backwards_clock_neither_refills_nor_breaks_the_bucket(clock: FakeClock) -> None:
    core = ChatCore(clock=clock, new_join_key=keys().__next__, limits=CoreLimits(message_burst=2))
    start_room(core, 1)
    send(core, 1, {"type": "talk", "payload": "x"})
    clock.now -= 3600
    assert_error(send(core, 1, {"type": "talk", "payload": "x"}), 1, "slow down")
    clock.now += 1
    assert isinstance(send(core, 1, {"type": "talk", "payload": "x"})[0], Broadcast)


MARKUP = '<img src=x onerror="alert(1)"> & \'quoted\''
ESCAPED = "&lt;img src=x onerror=&quot;alert(1)&quot;&gt; &amp; &#x27;quoted&#x27;"


def test_clients_that_do_not_declare_text_rendering_get_escaped_payloads(core: ChatCore) -> None:
    join_key = start_room(core, 1, render="text")
    join_room(core, 2, join_key)  # a seed page: no render field
    join_room(core, 3, join_key, render="html")  # anything but "text" is treated as markup
    actions = send(core, 1, {"type": "talk", "payload": MARKUP})
    assert len(actions) == 2
    by_recipients = {action.recipients: decoded(action)["payload"] for action in actions
                     if isinstance(action, Broadcast)}
    assert by_recipients == {(1,): MARKUP, (2, 3): ESCAPED}


def test_replay_is_escaped_for_markup_renderers_only(core: ChatCore) -> None:
    join_key = start_room(core, 1, render="text")
    send(core, 1, {"type": "talk", "payload": MARKUP})
    legacy = [decoded(a) for a in join_room(core, 2, join_key)]
    modern = [decoded(a) for a in join_room(core, 3, join_key, render="text")]
    assert legacy[1]["payload"] == ESCAPED
    assert modern[1]["payload"] == MARKUP


def test_a_room_of_one_kind_gets_one_broadcast(core: ChatCore) -> None:
    join_key = start_room(core, 1)
    join_room(core, 2, join_key)
    actions = send(core, 1, {"type": "talk", "payload": "<b>"})
    assert len(actions) == 1
    assert isinstance(actions[0], Broadcast)
    assert actions[0].recipients == (1, 2)
    assert decoded(actions[0])["payload"] == "&lt;b&gt;"
