"""Durability: with a log the driver runs (a store), joins and talks wait for it, and idle rooms leave memory.

No event loop and no database: the tests play the log, answering each
request by hand or with a `MemoryLog`.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from chatcore import (
    Action,
    AddUser,
    Append,
    Appended,
    Broadcast,
    ChatCore,
    Close,
    CoreLimits,
    DriverError,
    Load,
    Loaded,
    LogFailed,
    LoggedTalk,
    MemoryLog,
    SavedRoom,
    Send,
    SessionState,
    UserAdded,
    problems,
)
from corekit import FakeClock, LocalChat, StoredChat, decoded, keys, send


@pytest.fixture
def core(clock: FakeClock) -> ChatCore:
    return StoredChat(clock=clock, new_join_key=keys().__next__, limits=CoreLimits(history_limit=3))


@pytest.fixture
def log() -> MemoryLog:
    """The reference log the tests answer with, when the answer is not the point."""
    return MemoryLog(history_limit=3)


def only(actions: list[Action], kind: type[Any]) -> Any:
    assert len(actions) == 1, actions
    assert isinstance(actions[0], kind), actions
    return actions[0]


def events(actions: list[Action]) -> list[dict[str, Any]]:
    return [decoded(action) for action in actions]


def create(core: ChatCore, log: MemoryLog, connection: int) -> str:
    """Start a room and let the log succeed; returns its key."""
    core.connect(connection)
    request = only(send(core, connection, {"type": "init", "render": "text"}), AddUser)
    reply = only(core.log_result(log.answer(request)), Send)
    join_key: str = decoded(reply)["joinKey"]
    return join_key


def talk(core: ChatCore, log: MemoryLog, connection: int, payload: str) -> list[Action]:
    """Talk and let the log succeed; returns the broadcasts."""
    request = only(send(core, connection, {"type": "talk", "payload": payload}), Append)
    return core.log_result(log.answer(request))


def test_a_new_room_is_shown_only_once_the_log_hands_out_its_first_user(core: ChatCore) -> None:
    core.connect(1)
    request = only(send(core, 1, {"type": "init"}), AddUser)
    assert (request.join_key, request.created) == ("key1", 1000.0)
    assert core.state_of(1) is SessionState.JOINING
    reply = only(core.log_result(UserAdded(request.ticket, 1)), Send)
    assert decoded(reply) == {"type": "init", "joinKey": "key1", "userId": 1}
    assert core.state_of(1) is SessionState.MEMBER
    assert core.pending_count == 0


def test_user_ids_are_the_ones_the_log_hands_out(core: ChatCore, log: MemoryLog) -> None:
    join_key = create(core, log, 1)
    core.connect(2)
    request = only(send(core, 2, {"type": "init", "joinKey": join_key}), AddUser)
    assert request.created is None
    assert decoded(only(core.log_result(UserAdded(request.ticket, 41)), Send))["userId"] == 41


def test_a_talk_is_broadcast_only_once_the_log_appended_it(core: ChatCore, log: MemoryLog, clock: FakeClock) -> None:
    join_key = create(core, log, 1)
    clock.now = 1001.5
    request = only(send(core, 1, {"type": "talk", "payload": "hi"}), Append)
    assert (request.join_key, request.user_id, request.time, request.payload) == (join_key, 1, 1001.5, "hi")
    broadcast = only(core.log_result(log.answer(request)), Broadcast)
    assert broadcast.recipients == (1,)
    assert decoded(broadcast) == {"type": "talk", "payload": "hi", "userId": 1, "time": 1001.5}


def test_a_talk_the_log_refuses_is_reported_to_its_sender_and_never_shown(core: ChatCore, log: MemoryLog) -> None:
    join_key = create(core, log, 1)
    core.connect(2)
    core.log_result(log.answer(only(send(core, 2, {"type": "init", "joinKey": join_key, "render": "text"}), AddUser)))
    request = only(send(core, 1, {"type": "talk", "payload": "lost"}), Append)
    error = only(core.log_result(LogFailed(request.ticket, "storage full")), Send)
    assert error.connection == 1
    assert decoded(error)["message"] == problems.TALK_NOT_SAVED.text
    assert "storage full" not in decoded(error)["message"]  # (the storage's reason is for the server's log)
    assert decoded(only(talk(core, log, 1, "kept"), Broadcast))["payload"] == "kept"
    core.connect(3)
    joined = only(send(core, 3, {"type": "init", "joinKey": join_key, "render": "text"}), AddUser)
    replay = events(core.log_result(log.answer(joined)))
    assert [event.get("payload") for event in replay] == [None, "kept"]


def test_an_idle_room_leaves_memory_and_is_loaded_on_join(core: ChatCore, log: MemoryLog) -> None:
    join_key = create(core, log, 1)
    talk(core, log, 1, "one")
    core.disconnect(1)
    assert core.room_count == 0
    core.connect(2)
    load = only(send(core, 2, {"type": "init", "joinKey": join_key, "render": "text"}), Load)
    assert (load.join_key, load.recent) == (join_key, 3)
    talks = (LoggedTalk(join_key, 8, 1, 1000.0, "<b>one</b>"), LoggedTalk(join_key, 9, 4, 1001.0, "two"))
    saved = SavedRoom(join_key, 9, talks)
    request = only(core.log_result(Loaded(load.ticket, saved)), AddUser)
    assert (request.join_key, request.created) == (join_key, None)
    replay = events(core.log_result(UserAdded(request.ticket, 5)))
    assert replay == [
        {"type": "init", "joinKey": join_key, "userId": 5},
        {"type": "talk", "payload": "<b>one</b>", "userId": 1, "time": 1000.0},
        {"type": "talk", "payload": "two", "userId": 4, "time": 1001.0},
    ]
    assert core.room_count == 1


def test_joiners_of_a_room_being_loaded_share_one_load(core: ChatCore) -> None:
    core.connect(1)
    core.connect(2)
    load = only(send(core, 1, {"type": "init", "joinKey": "old"}), Load)
    assert send(core, 2, {"type": "init", "joinKey": "old"}) == []
    requests = core.log_result(Loaded(load.ticket, SavedRoom("old", 0, ())))
    assert [type(request) for request in requests] == [AddUser, AddUser]
    first, second = requests
    assert isinstance(first, AddUser)
    assert isinstance(second, AddUser)
    assert decoded(only(core.log_result(UserAdded(first.ticket, 8)), Send))["userId"] == 8
    assert decoded(only(core.log_result(UserAdded(second.ticket, 9)), Send))["userId"] == 9


def test_an_unknown_key_is_not_found_and_the_connection_may_try_again(core: ChatCore) -> None:
    core.connect(1)
    load = only(send(core, 1, {"type": "init", "joinKey": "nope"}), Load)
    error = only(core.log_result(Loaded(load.ticket, None)), Send)
    assert decoded(error)["message"] == problems.NOT_FOUND.seed_text
    assert core.state_of(1) is SessionState.LOBBY
    assert isinstance(only(send(core, 1, {"type": "init"}), AddUser), AddUser)
    assert core.room_count == 1


def test_keys_longer_than_any_handed_out_are_not_looked_up(core: ChatCore) -> None:
    core.connect(1)
    error = only(send(core, 1, {"type": "init", "joinKey": "k" * 65}), Send)
    assert decoded(error)["message"] == problems.NOT_FOUND.seed_text


def test_a_failed_load_or_join_is_reported_and_leaves_nothing_behind(core: ChatCore) -> None:
    core.connect(1)
    load = only(send(core, 1, {"type": "init", "joinKey": "old"}), Load)
    error = only(core.log_result(LogFailed(load.ticket, "storage busy")), Send)
    assert decoded(error)["message"] == problems.OPEN_NOT_READ.text
    assert "storage busy" not in decoded(error)["message"]
    request = only(send(core, 1, {"type": "init"}), AddUser)
    error = only(core.log_result(LogFailed(request.ticket, "storage full")), Send)
    assert decoded(error)["message"] == problems.JOIN_NOT_SAVED.text
    assert core.room_count == 0
    assert core.pending_count == 0
    error = only(send(core, 1, {"type": "talk", "payload": "x"}), Send)
    assert decoded(error)["message"] == problems.NOT_IN_CHAT.text


def test_requests_sent_while_joining_are_handled_after_the_join_in_order(core: ChatCore) -> None:
    core.connect(1)
    request = only(send(core, 1, {"type": "init"}), AddUser)
    assert send(core, 1, {"type": "talk", "payload": "early"}) == []
    assert send(core, 1, {"type": "init"}) == []
    actions = core.log_result(UserAdded(request.ticket, 1))
    assert len(actions) == 2
    assert decoded(actions[0])["type"] == "init"
    append = actions[1]
    assert isinstance(append, Append)
    assert (append.join_key, append.user_id, append.payload) == ("key1", 1, "early")
    broadcast, error = core.log_result(Appended(append.ticket, LoggedTalk("key1", 1, 1, 1000.0, "early")))
    assert decoded(broadcast)["payload"] == "early"
    assert decoded(error)["message"] == problems.ALREADY_IN_CHAT.text


def test_answers_keep_the_order_of_requests_while_a_talk_is_with_the_log(clock: FakeClock, log: MemoryLog) -> None:
    limits = CoreLimits(message_burst=2, max_rate_strikes=1)
    core = StoredChat(clock=clock, new_join_key=keys().__next__, limits=limits)
    create(core, log, 1)
    clock.now += 10
    request = only(send(core, 1, {"type": "talk", "payload": "first"}), Append)
    assert core.receive_text(1, "not json") == []
    assert send(core, 1, {"type": "talk", "payload": "too fast"}) == []
    assert send(core, 1, {"type": "talk", "payload": "too fast"}) == []
    assert core.state_of(1) is SessionState.CLOSING
    actions = core.log_result(log.answer(request))
    assert [decoded(action)["payload"] for action in actions[:3]] == [
        "first",
        problems.NOT_JSON.text,
        problems.RATE_LIMITED.text,
    ]
    assert isinstance(actions[3], Close)
    assert actions[3].code == 1008
    assert len(actions) == 4


def test_a_backlog_that_keeps_growing_is_closed(clock: FakeClock) -> None:
    limits = CoreLimits(message_burst=2, max_rate_strikes=1)
    core = StoredChat(clock=clock, new_join_key=keys().__next__, limits=limits)
    core.connect(1)
    send(core, 1, {"type": "init"})
    for _ in range(4):
        clock.now += 10
        assert send(core, 1, {"type": "talk", "payload": "queued"}) == []
    close = only(send(core, 1, {"type": "talk", "payload": "one too many"}), Close)
    assert close.code == 1008
    assert "waiting" in close.reason
    assert send(core, 1, {"type": "talk", "payload": "ignored"}) == []


def test_a_room_stays_in_memory_while_a_talk_is_in_flight(core: ChatCore, log: MemoryLog) -> None:
    create(core, log, 1)
    request = only(send(core, 1, {"type": "talk", "payload": "last words"}), Append)
    core.disconnect(1)
    assert core.room_count == 1
    assert core.log_result(log.answer(request)) == []
    assert core.room_count == 0


def test_a_joiner_who_leaves_before_the_log_answers_gets_nothing(core: ChatCore, log: MemoryLog) -> None:
    join_key = create(core, log, 1)
    core.connect(2)
    request = only(send(core, 2, {"type": "init", "joinKey": join_key}), AddUser)
    core.disconnect(2)
    assert core.log_result(log.answer(request)) == []
    broadcast = only(talk(core, log, 1, "still here"), Broadcast)
    assert broadcast.recipients == (1,)


def test_a_waiter_who_leaves_during_a_load_leaves_no_room_behind(core: ChatCore) -> None:
    core.connect(1)
    load = only(send(core, 1, {"type": "init", "joinKey": "old"}), Load)
    core.disconnect(1)
    assert core.log_result(Loaded(load.ticket, SavedRoom("old", 0, ()))) == []
    assert core.room_count == 0


def test_a_memory_core_never_asks_the_driver(clock: FakeClock) -> None:
    core = LocalChat(clock=clock, new_join_key=keys().__next__)
    core.connect(1)
    reply = only(send(core, 1, {"type": "init"}), Send)
    assert json.loads(reply.message)["userId"] == 1
    assert isinstance(only(send(core, 1, {"type": "talk", "payload": "x"}), Broadcast), Broadcast)
    core.disconnect(1)
    assert core.room_count == 0  # its memory log has the room
    assert core.memory_log is not None
    assert core.memory_log.room_count == 1


def test_a_room_with_a_join_in_flight_stays_the_one_room_in_memory(core: ChatCore, log: MemoryLog) -> None:
    join_key = create(core, log, 1)
    core.connect(2)
    joining = only(send(core, 2, {"type": "init", "joinKey": join_key, "render": "text"}), AddUser)
    core.disconnect(1)
    core.log_result(log.answer(joining))
    core.connect(3)
    joining = only(send(core, 3, {"type": "init", "joinKey": join_key, "render": "text"}), AddUser)
    core.log_result(log.answer(joining))
    broadcast = only(talk(core, log, 3, "both of you"), Broadcast)
    assert broadcast.recipients == (2, 3)


def test_a_members_talks_go_to_the_log_together_and_what_follows_waits_for_them(
    core: ChatCore, log: MemoryLog
) -> None:
    create(core, log, 1)
    first = only(send(core, 1, {"type": "talk", "payload": "one"}), Append)
    second = only(send(core, 1, {"type": "talk", "payload": "two"}), Append)
    assert core.receive_text(1, "not json") == []
    assert decoded(only(core.log_result(log.answer(first)), Broadcast))["payload"] == "one"
    broadcast, error = core.log_result(log.answer(second))
    assert decoded(broadcast)["payload"] == "two"
    assert decoded(error)["message"] == problems.NOT_JSON.text
    assert isinstance(only(send(core, 1, {"type": "talk", "payload": "three"}), Append), Append)


@pytest.mark.parametrize(
    "wrong",
    [
        lambda ticket: UserAdded(ticket, 1),
        lambda ticket: Appended(ticket, LoggedTalk("old", 1, 1, 0.0, "x")),
        lambda ticket: LogFailed(ticket + 1, "no such request"),
    ],
)
def test_a_result_that_answers_no_request_of_its_kind_is_a_driver_error(core: ChatCore, wrong: Any) -> None:
    core.connect(1)
    load = only(send(core, 1, {"type": "init", "joinKey": "old"}), Load)
    with pytest.raises(DriverError):
        core.log_result(wrong(load.ticket))
    assert core.pending_count == 1  # unchanged: the right answer still works
    assert decoded(only(core.log_result(Loaded(load.ticket, None)), Send))["message"] == problems.NOT_FOUND.seed_text


def test_an_append_answered_for_another_room_is_a_driver_error(core: ChatCore, log: MemoryLog) -> None:
    create(core, log, 1)
    request = only(send(core, 1, {"type": "talk", "payload": "x"}), Append)
    with pytest.raises(DriverError, match="another room"):
        core.log_result(Appended(request.ticket, LoggedTalk("elsewhere", 1, 1, 0.0, "x")))
    assert isinstance(only(core.log_result(log.answer(request)), Broadcast), Broadcast)
