"""A durable core: joins and talks wait for the store, idle rooms leave memory. No event loop, no database."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chatcore import Action, Broadcast, ChatCore, Close, CoreLimits, Send
from chatcore.storage import (
    Load,
    Loaded,
    NewRoom,
    NewTalk,
    NewUser,
    SavedRoom,
    SavedTalk,
    StorageFailed,
    Store,
    Stored,
)
from test_core import FakeClock, decoded, keys, send


@pytest.fixture
def core(clock: FakeClock) -> ChatCore:
    return ChatCore(clock=clock, new_join_key=keys().__next__, limits=CoreLimits(history_limit=3), durable=True)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def only(actions: list[Action], kind: type[Any]) -> Any:
    assert len(actions) == 1, actions
    assert isinstance(actions[0], kind), actions
    return actions[0]


def events(actions: list[Action]) -> list[dict[str, Any]]:
    return [decoded(action) for action in actions]


def create(core: ChatCore, connection: int) -> str:
    """Start a room and let the store succeed; returns its key."""
    core.connect(connection)
    store = only(send(core, connection, {"type": "init", "render": "text"}), Store)
    reply = only(core.storage_result(Stored(store.ticket)), Send)
    join_key: str = decoded(reply)["joinKey"]
    return join_key


def talk(core: ChatCore, connection: int, payload: str) -> list[Action]:
    """Talk and let the store succeed; returns the broadcasts."""
    store = only(send(core, connection, {"type": "talk", "payload": payload}), Store)
    return core.storage_result(Stored(store.ticket))


def test_a_new_room_is_shown_only_once_stored(core: ChatCore) -> None:
    core.connect(1)
    store = only(send(core, 1, {"type": "init"}), Store)
    assert store.records == (NewRoom("key1", 1000.0), NewUser("key1", 1))
    reply = only(core.storage_result(Stored(store.ticket)), Send)
    assert decoded(reply) == {"type": "init", "joinKey": "key1", "userId": 1}
    assert core.pending_count == 0


def test_a_talk_is_broadcast_only_once_stored(core: ChatCore, clock: FakeClock) -> None:
    join_key = create(core, 1)
    clock.now = 1001.5
    store = only(send(core, 1, {"type": "talk", "payload": "hi"}), Store)
    assert store.records == (NewTalk(join_key, 1, 1001.5, "hi"),)
    broadcast = only(core.storage_result(Stored(store.ticket)), Broadcast)
    assert broadcast.recipients == (1,)
    assert decoded(broadcast) == {"type": "talk", "payload": "hi", "userId": 1, "time": 1001.5}


def test_a_talk_the_store_refuses_is_reported_to_its_sender_and_never_shown(core: ChatCore) -> None:
    join_key = create(core, 1)
    core.connect(2)
    joined = only(send(core, 2, {"type": "init", "joinKey": join_key, "render": "text"}), Store)
    core.storage_result(Stored(joined.ticket))
    store = only(send(core, 1, {"type": "talk", "payload": "lost"}), Store)
    error = only(core.storage_result(StorageFailed(store.ticket, "storage full")), Send)
    assert error.connection == 1
    assert "not sent" in decoded(error)["message"]
    assert "storage full" in decoded(error)["message"]
    assert decoded(only(talk(core, 1, "kept"), Broadcast))["payload"] == "kept"
    core.connect(3)
    joined = only(send(core, 3, {"type": "init", "joinKey": join_key, "render": "text"}), Store)
    replay = events(core.storage_result(Stored(joined.ticket)))
    assert [event.get("payload") for event in replay] == [None, "kept"]


def test_an_idle_room_leaves_memory_and_is_loaded_on_join(core: ChatCore, clock: FakeClock) -> None:
    join_key = create(core, 1)
    talk(core, 1, "one")
    core.disconnect(1)
    assert core.room_count == 0
    core.connect(2)
    load = only(send(core, 2, {"type": "init", "joinKey": join_key, "render": "text"}), Load)
    assert load.join_key == join_key
    assert load.recent == 3
    saved = SavedRoom(join_key, 4, (SavedTalk("<b>one</b>", 1, 1000.0), SavedTalk("two", 4, 1001.0)))
    store = only(core.storage_result(Loaded(load.ticket, saved)), Store)
    assert store.records == (NewUser(join_key, 5),)
    replay = events(core.storage_result(Stored(store.ticket)))
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
    stores = [
        action
        for action in core.storage_result(Loaded(load.ticket, SavedRoom("old", 7, ())))
        if isinstance(action, Store)
    ]
    assert [store.records for store in stores] == [(NewUser("old", 8),), (NewUser("old", 9),)]
    assert decoded(only(core.storage_result(Stored(stores[1].ticket)), Send))["userId"] == 9
    assert decoded(only(core.storage_result(Stored(stores[0].ticket)), Send))["userId"] == 8


def test_an_unknown_key_is_not_found_and_the_connection_may_try_again(core: ChatCore) -> None:
    core.connect(1)
    load = only(send(core, 1, {"type": "init", "joinKey": "nope"}), Load)
    error = only(core.storage_result(Loaded(load.ticket, None)), Send)
    assert decoded(error)["message"] == "chat not found."
    assert isinstance(only(send(core, 1, {"type": "init"}), Store), Store)
    assert core.room_count == 1


def test_keys_longer_than_any_handed_out_are_not_looked_up(core: ChatCore) -> None:
    core.connect(1)
    error = only(send(core, 1, {"type": "init", "joinKey": "k" * 65}), Send)
    assert decoded(error)["message"] == "chat not found."


def test_a_failed_load_or_join_is_reported_and_leaves_nothing_behind(core: ChatCore) -> None:
    core.connect(1)
    load = only(send(core, 1, {"type": "init", "joinKey": "old"}), Load)
    error = only(core.storage_result(StorageFailed(load.ticket, "storage busy")), Send)
    assert "could not open the chat" in decoded(error)["message"]
    assert "storage busy" in decoded(error)["message"]
    store = only(send(core, 1, {"type": "init"}), Store)
    error = only(core.storage_result(StorageFailed(store.ticket, "storage full")), Send)
    assert "could not join" in decoded(error)["message"]
    assert core.room_count == 0
    assert core.pending_count == 0
    error = only(send(core, 1, {"type": "talk", "payload": "x"}), Send)
    assert "init" in decoded(error)["message"]


def test_requests_sent_while_joining_are_handled_after_the_join_in_order(core: ChatCore) -> None:
    core.connect(1)
    store = only(send(core, 1, {"type": "init"}), Store)
    assert send(core, 1, {"type": "talk", "payload": "early"}) == []
    assert send(core, 1, {"type": "init"}) == []
    actions = core.storage_result(Stored(store.ticket))
    assert len(actions) == 2
    assert decoded(actions[0])["type"] == "init"
    talk_store = actions[1]
    assert isinstance(talk_store, Store)
    assert talk_store.records == (NewTalk("key1", 1, 1000.0, "early"),)
    broadcast, error = core.storage_result(Stored(talk_store.ticket))
    assert decoded(broadcast)["payload"] == "early"
    assert "already in a chat" in decoded(error)["message"]


def test_answers_keep_the_order_of_requests_while_a_talk_is_with_the_store(clock: FakeClock) -> None:
    limits = CoreLimits(message_burst=2, max_rate_strikes=1)
    core = ChatCore(clock=clock, new_join_key=keys().__next__, limits=limits, durable=True)
    create(core, 1)
    clock.now += 10
    store = only(send(core, 1, {"type": "talk", "payload": "first"}), Store)
    assert core.receive_text(1, "not json") == []
    assert send(core, 1, {"type": "talk", "payload": "too fast"}) == []
    assert send(core, 1, {"type": "talk", "payload": "too fast"}) == []
    actions = core.storage_result(Stored(store.ticket))
    assert [decoded(action)["payload"] for action in actions[:3]] == [
        "first",
        "invalid JSON",
        "too many messages: slow down",
    ]
    assert isinstance(actions[3], Close)
    assert actions[3].code == 1008
    assert len(actions) == 4


def test_a_backlog_that_keeps_growing_is_closed(clock: FakeClock) -> None:
    limits = CoreLimits(message_burst=2, max_rate_strikes=1)
    core = ChatCore(clock=clock, new_join_key=keys().__next__, limits=limits, durable=True)
    core.connect(1)
    send(core, 1, {"type": "init"})
    for _ in range(4):
        clock.now += 10
        assert send(core, 1, {"type": "talk", "payload": "queued"}) == []
    close = only(send(core, 1, {"type": "talk", "payload": "one too many"}), Close)
    assert close.code == 1008
    assert "waiting" in close.reason


def test_a_room_stays_in_memory_while_a_talk_is_in_flight(core: ChatCore) -> None:
    create(core, 1)
    store = only(send(core, 1, {"type": "talk", "payload": "last words"}), Store)
    core.disconnect(1)
    assert core.room_count == 1
    assert core.storage_result(Stored(store.ticket)) == []
    assert core.room_count == 0


def test_a_joiner_who_leaves_before_the_store_answers_gets_nothing(core: ChatCore) -> None:
    join_key = create(core, 1)
    core.connect(2)
    store = only(send(core, 2, {"type": "init", "joinKey": join_key}), Store)
    core.disconnect(2)
    assert core.storage_result(Stored(store.ticket)) == []
    broadcast = only(talk(core, 1, "still here"), Broadcast)
    assert broadcast.recipients == (1,)


def test_a_waiter_who_leaves_during_a_load_leaves_no_room_behind(core: ChatCore) -> None:
    core.connect(1)
    load = only(send(core, 1, {"type": "init", "joinKey": "old"}), Load)
    core.disconnect(1)
    assert core.storage_result(Loaded(load.ticket, SavedRoom("old", 1, ()))) == []
    assert core.room_count == 0


def test_a_result_of_the_wrong_kind_is_a_driver_bug(core: ChatCore) -> None:
    core.connect(1)
    load = only(send(core, 1, {"type": "init", "joinKey": "old"}), Load)
    with pytest.raises(ValueError, match="load"):
        core.storage_result(Stored(load.ticket))


def test_a_memory_core_never_asks_a_store(clock: FakeClock) -> None:
    core = ChatCore(clock=clock, new_join_key=keys().__next__)
    core.connect(1)
    reply = only(send(core, 1, {"type": "init"}), Send)
    assert json.loads(reply.message)["userId"] == 1
    assert isinstance(only(send(core, 1, {"type": "talk", "payload": "x"}), Broadcast), Broadcast)
    core.disconnect(1)
    assert core.room_count == 1


def test_a_room_with_a_join_in_flight_stays_the_one_room_in_memory(core: ChatCore) -> None:
    join_key = create(core, 1)
    core.connect(2)
    joining = only(send(core, 2, {"type": "init", "joinKey": join_key, "render": "text"}), Store)
    core.disconnect(1)
    core.storage_result(Stored(joining.ticket))
    core.connect(3)
    joining = only(send(core, 3, {"type": "init", "joinKey": join_key, "render": "text"}), Store)
    core.storage_result(Stored(joining.ticket))
    broadcast = only(talk(core, 3, "both of you"), Broadcast)
    assert broadcast.recipients == (2, 3)


def test_a_members_talks_go_to_the_store_together_and_what_follows_waits_for_them(core: ChatCore) -> None:
    create(core, 1)
    first = only(send(core, 1, {"type": "talk", "payload": "one"}), Store)
    second = only(send(core, 1, {"type": "talk", "payload": "two"}), Store)
    assert core.receive_text(1, "not json") == []
    assert decoded(only(core.storage_result(Stored(first.ticket)), Broadcast))["payload"] == "one"
    broadcast, error = core.storage_result(Stored(second.ticket))
    assert decoded(broadcast)["payload"] == "two"
    assert decoded(error)["message"] == "invalid JSON"
    assert isinstance(only(send(core, 1, {"type": "talk", "payload": "three"}), Store), Store)
