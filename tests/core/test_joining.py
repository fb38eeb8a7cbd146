"""Joining: a room is made by ``init``, joined by its key, and outlives its members."""

from __future__ import annotations

from chatcore import AddUser, Broadcast, ChatCore, CoreLimits, KeyTaken, Send, SessionState, problems
from chatcore.holdings import MAX_JOIN_KEY_ATTEMPTS
from corekit import (
    ESCAPED,
    MARKUP,
    FakeClock,
    LocalChat,
    StoredChat,
    assert_error,
    decoded,
    join_room,
    keys,
    only_reply,
    send,
    start_room,
)


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
    core = LocalChat(clock=FakeClock(), new_join_key=drawn.__next__)
    assert start_room(core, 1) == "same"
    assert start_room(core, 2) == "other"


def test_join_replies_init_with_the_next_user_id(core: ChatCore) -> None:
    join_key = start_room(core, 1)
    reply = only_reply(join_room(core, 2, join_key), 2)
    assert reply == {"type": "init", "joinKey": join_key, "userId": 2}


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
    core = LocalChat(clock=FakeClock(), new_join_key=keys().__next__, limits=CoreLimits(history_limit=2))
    join_key = start_room(core, 1)
    for text in ["one", "two", "three"]:
        send(core, 1, {"type": "talk", "payload": text})
    events = [decoded(action) for action in join_room(core, 2, join_key)]
    assert [e["payload"] for e in events[1:]] == ["two", "three"]


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
    assert_error(send(core, 2, {"type": "init", "joinKey": "nope"}), 2, problems.NOT_FOUND)
    assert only_reply(send(core, 2, {"type": "init", "joinKey": join_key}), 2)["userId"] == 2


def test_replay_is_escaped_for_markup_renderers_only(core: ChatCore) -> None:
    join_key = start_room(core, 1, render="text")
    send(core, 1, {"type": "talk", "payload": MARKUP})
    legacy = [decoded(a) for a in join_room(core, 2, join_key)]
    modern = [decoded(a) for a in join_room(core, 3, join_key, render="text")]
    assert legacy[1]["payload"] == ESCAPED
    assert modern[1]["payload"] == MARKUP


def test_a_connection_moves_from_lobby_to_member_and_back_to_lobby_when_its_join_fails(core: ChatCore) -> None:
    core.connect(1)
    assert core.state_of(1) is SessionState.LOBBY
    assert_error(send(core, 1, {"type": "init", "joinKey": "nope"}), 1, problems.NOT_FOUND)
    assert core.state_of(1) is SessionState.LOBBY
    send(core, 1, {"type": "init"})
    assert core.state_of(1) is SessionState.MEMBER


def test_a_taken_key_is_drawn_again_even_when_its_room_is_not_in_memory() -> None:
    drawn = iter(["same", "same", "other"])
    core = LocalChat(clock=FakeClock(), new_join_key=drawn.__next__)
    assert start_room(core, 1) == "same"
    core.disconnect(1)
    assert core.room_count == 0  # only the log knows "same" now
    assert start_room(core, 2) == "other"


def test_a_log_that_keeps_saying_key_taken_ends_in_an_error_not_a_loop() -> None:
    core = StoredChat(clock=FakeClock(), new_join_key=keys().__next__)
    core.connect(1)
    actions = send(core, 1, {"type": "init"})
    for _ in range(MAX_JOIN_KEY_ATTEMPTS - 1):
        (request,) = actions
        assert isinstance(request, AddUser)
        assert request.created is not None
        actions = core.log_result(KeyTaken(request.ticket))
    (request,) = actions
    assert isinstance(request, AddUser)
    assert_error(core.log_result(KeyTaken(request.ticket)), 1, problems.NO_FREE_KEY)
    assert core.state_of(1) is SessionState.LOBBY
    assert core.room_count == 0
