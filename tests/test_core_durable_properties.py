"""Property-based tests of a durable core: random joins, talks, leaves, store results, failures and crashes.

The test plays the store itself — a dict answering the core's `Store` and
`Load` actions in order, or failing them — and checks what every connection
was shown against what the store holds:

- nothing is shown before it is stored;
- a joiner is replayed exactly the room's latest stored talks, then shown
  every talk stored after, in the store's order;
- user ids are never handed out twice in a room, across crashes too;
- an idle core holds no room in memory.

A crash drops the core, its connections and every unanswered action, and
starts a new core on the same store.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

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
    StorageResult,
    Store,
    Stored,
)

HISTORY_LIMIT = 3
MAX_OPEN = 6


@dataclass
class StoredRoom:
    last_user_id: int = 0
    talks: list[SavedTalk] = field(default_factory=list)


@dataclass
class Viewer:
    """What one connection was shown: its room and user id once answered, and the talks since."""

    room: str | None = None
    user_id: int | None = None
    talks: list[SavedTalk] = field(default_factory=list)
    first: int = 0
    """Where in the room's stored talks what it was shown begins: its replay, then everything after."""


class DurableChat(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = 1_700_000_000.0
        self.keys = (f"key{n}" for n in range(1, 10_000))
        self.store: dict[str, StoredRoom] = {}
        self.handed_out: set[tuple[str, int]] = set()
        self.next_id = 1
        self.start()

    def start(self) -> None:
        limits = CoreLimits(history_limit=HISTORY_LIMIT, messages_per_second=1000, message_burst=1000)
        self.core = ChatCore(clock=self.clock, new_join_key=self.keys.__next__, limits=limits, durable=True)
        self.queue: deque[Store | Load] = deque()
        self.viewers: dict[int, Viewer] = {}

    def clock(self) -> float:
        self.now += 1
        return self.now

    # --- what the core asks for, and what it shows ----------------------------------------------

    def perform(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Store | Load):
                self.queue.append(action)
            elif isinstance(action, Broadcast):
                for recipient in action.recipients:
                    self.show(recipient, json.loads(action.message))
            elif isinstance(action, Send):
                self.show(action.connection, json.loads(action.message))
            elif isinstance(action, Close):
                self.viewers.pop(action.connection)
                self.perform(self.core.disconnect(action.connection))

    def show(self, connection: int, event: dict[str, Any]) -> None:
        viewer = self.viewers[connection]
        if event["type"] == "init":
            room, user_id = event["joinKey"], event["userId"]
            assert (room, user_id) not in self.handed_out, f"user id {user_id} handed out twice in {room}"
            assert self.store[room].last_user_id >= user_id, "a user id was shown before it was stored"
            self.handed_out.add((room, user_id))
            viewer.room, viewer.user_id = room, user_id
            viewer.first = max(0, len(self.store[room].talks) - HISTORY_LIMIT)
        elif event["type"] == "talk":
            assert viewer.room is not None, "a talk before the init answer"
            viewer.talks.append(SavedTalk(event["payload"], event["userId"], event["time"]))
            stored = self.store[viewer.room].talks
            assert viewer.talks[-1] in stored, "a talk was shown before it was stored"

    # --- rules -----------------------------------------------------------------------------------

    @precondition(lambda self: len(self.viewers) < MAX_OPEN)
    @rule()
    def connect(self) -> None:
        connection, self.next_id = self.next_id, self.next_id + 1
        self.viewers[connection] = Viewer()
        self.perform(self.core.connect(connection))

    @precondition(lambda self: self.viewers)
    @rule(data=st.data(), new=st.booleans(), unknown=st.sampled_from([False, False, False, True]))
    def init(self, data: st.DataObject, new: bool, unknown: bool) -> None:
        connection = data.draw(st.sampled_from(sorted(self.viewers)))
        event: dict[str, Any] = {"type": "init", "render": "text"}
        if not new:
            if unknown or not self.store:
                event["joinKey"] = "nobody-has-this-key"
            else:
                event["joinKey"] = data.draw(st.sampled_from(sorted(self.store)))
        self.perform(self.core.receive(connection, event))

    @precondition(lambda self: self.viewers)
    @rule(data=st.data(), payload=st.text(max_size=5))
    def talk(self, data: st.DataObject, payload: str) -> None:
        connection = data.draw(st.sampled_from(sorted(self.viewers)))
        self.perform(self.core.receive(connection, {"type": "talk", "payload": payload}))

    @precondition(lambda self: self.viewers)
    @rule(data=st.data())
    def disconnect(self, data: st.DataObject) -> None:
        connection = data.draw(st.sampled_from(sorted(self.viewers)))
        del self.viewers[connection]
        self.perform(self.core.disconnect(connection))

    @precondition(lambda self: self.queue)
    @rule(fail=st.sampled_from([False, False, False, True]))
    def store_answers(self, fail: bool) -> None:
        action = self.queue.popleft()
        result: StorageResult
        if fail:
            result = StorageFailed(action.ticket, "storage full")
        elif isinstance(action, Load):
            room = self.store.get(action.join_key)
            saved = None
            if room is not None:
                saved = SavedRoom(action.join_key, room.last_user_id, tuple(room.talks[-action.recent :]))
            result = Loaded(action.ticket, saved)
        else:
            self.apply(action.records)
            result = Stored(action.ticket)
        self.perform(self.core.storage_result(result))

    def apply(self, records: tuple[NewRoom | NewUser | NewTalk, ...]) -> None:
        for record in records:
            if isinstance(record, NewRoom):
                assert record.join_key not in self.store
                self.store[record.join_key] = StoredRoom()
            elif isinstance(record, NewUser):
                room = self.store[record.join_key]
                assert record.user_id > room.last_user_id, "a user id stored again"
                room.last_user_id = record.user_id
            else:
                self.store[record.join_key].talks.append(SavedTalk(record.payload, record.user_id, record.time))

    @precondition(lambda self: self.store)
    @rule(now=st.sampled_from([False, False, False, True]))
    def crash(self, now: bool) -> None:
        """The process dies (sometimes): unanswered actions are lost, a new core starts on the same store."""
        if now:
            self.start()

    # --- invariants ------------------------------------------------------------------------------

    @invariant()
    def members_see_every_stored_talk_in_order(self) -> None:
        """The latest talks as their replay, then every talk stored since, nothing missing or extra."""
        for viewer in self.viewers.values():
            if viewer.room is not None:
                assert viewer.talks == self.store[viewer.room].talks[viewer.first :]

    @invariant()
    def an_idle_core_holds_no_room(self) -> None:
        if not self.viewers and not self.queue:
            assert self.core.room_count == 0
            assert self.core.pending_count == 0


def test_random_durable_sequences_keep_the_invariants() -> None:
    run_state_machine_as_test(
        DurableChat,
        settings=settings(max_examples=200, stateful_step_count=80, deadline=None, derandomize=True, database=None),
    )
