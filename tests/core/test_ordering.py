"""Ordering: every talk takes one way, through the room's log, and is shown in offset order, each once.

The state machine at the end plays a log shared with other processes: it
applies the core's requests in order, appends talks of its own ("foreign"
talks, as another process would), delivers its answers in order but the
notices of foreign talks in any order, fails requests and crashes the core.
Whatever happens, each connection is shown its room's talks gap-free, in
offset order, each once, its replay included; and once everything has been
delivered, every member has seen its room up to the log's last offset.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from chatcore import (
    Action,
    AddUser,
    Append,
    Appended,
    Broadcast,
    ChatCore,
    Close,
    CoreLimits,
    Fill,
    Forget,
    KeyTaken,
    Load,
    Loaded,
    LogFailed,
    LoggedTalk,
    LogRequest,
    LogResult,
    MemoryLog,
    SavedRoom,
    Send,
    Subscribe,
    TalkArrived,
    UserAdded,
)
from corekit import FakeClock, StoredChat, decoded, keys, send

HISTORY_LIMIT = 3
MAX_OPEN = 6


def member_of(core: ChatCore, log: MemoryLog, connection: int, join_key: str | None = None) -> list[Action]:
    """Connect and join (or start) a room, the log answering; the actions of the answer."""
    core.connect(connection)
    event: dict[str, Any] = {"type": "init", "render": "text"}
    if join_key is not None:
        event["joinKey"] = join_key
    actions = send(core, connection, event)
    while actions and isinstance(actions[0], AddUser | Load):
        actions = core.log_result(log.answer(actions[0]))
    return actions


def test_the_memory_log_numbers_a_rooms_talks_from_one_without_gaps() -> None:
    log = MemoryLog(history_limit=2)
    log.answer(AddUser(1, "a", created=0.0))
    log.answer(AddUser(2, "b", created=0.0))
    offsets = [log.answer(Append(3 + n, key, 1, 0.0, "x")) for n, key in enumerate("aabab")]
    assert [(r.talk.join_key, r.talk.offset) for r in offsets if isinstance(r, Appended)] == [
        ("a", 1), ("a", 2), ("b", 1), ("a", 3), ("b", 2),
    ]
    loaded = log.answer(Load(9, "a", 10))
    assert isinstance(loaded, Loaded)
    assert loaded.room is not None
    assert loaded.room.last_offset == 3
    assert [talk.offset for talk in loaded.room.talks] == [2, 3]  # the history limit


def test_the_memory_log_hands_out_user_ids_and_refuses_a_taken_key() -> None:
    log = MemoryLog(history_limit=2)
    assert log.answer(AddUser(1, "a", created=0.0)) == UserAdded(1, 1)
    assert log.answer(AddUser(2, "a", created=None)) == UserAdded(2, 2)
    assert log.answer(AddUser(3, "a", created=0.0)) == KeyTaken(3)
    assert isinstance(log.answer(AddUser(4, "nope", created=None)), LogFailed)
    assert log.answer(Load(5, "nope", 1)) == Loaded(5, None)


def test_talks_appended_elsewhere_are_shown_like_our_own() -> None:
    core = StoredChat(clock=FakeClock(), new_join_key=keys().__next__)
    log = MemoryLog(HISTORY_LIMIT)
    member_of(core, log, 1)
    foreign = LoggedTalk("key1", 1, 77, 5.0, "from another process")
    broadcast = core.log_result(TalkArrived(foreign))
    assert [decoded(action) for action in broadcast] == [
        {"type": "talk", "payload": "from another process", "userId": 77, "time": 5.0}
    ]
    assert core.log_result(TalkArrived(foreign)) == []  # seen already: not shown twice


def test_a_talk_that_arrives_before_an_earlier_one_waits_for_it() -> None:
    core = StoredChat(clock=FakeClock(), new_join_key=keys().__next__)
    member_of(core, MemoryLog(HISTORY_LIMIT), 1)
    talks = [LoggedTalk("key1", offset, 2, 0.0, f"t{offset}") for offset in (1, 2, 3)]
    assert core.log_result(TalkArrived(talks[2])) == [Fill("key1", 0)]  # the log is asked for the gap
    assert core.log_result(TalkArrived(talks[1])) == []
    shown = core.log_result(TalkArrived(talks[0]))
    assert [decoded(action)["payload"] for action in shown] == ["t1", "t2", "t3"]


def test_talks_of_a_room_nobody_here_is_in_are_left_to_the_log() -> None:
    core = StoredChat(clock=FakeClock(), new_join_key=keys().__next__)
    assert core.log_result(TalkArrived(LoggedTalk("elsewhere", 1, 1, 0.0, "x"))) == []
    assert core.room_count == 0


def test_a_talk_appended_while_its_room_loads_is_in_the_joiners_view() -> None:
    core = StoredChat(clock=FakeClock(), new_join_key=keys().__next__)
    core.connect(1)
    load = send(core, 1, {"type": "init", "joinKey": "old", "render": "text"})[0]
    assert isinstance(load, Load)
    # Another process appends offset 3 after the log read the room (2 talks) but before we got the answer.
    assert core.log_result(TalkArrived(LoggedTalk("old", 3, 9, 3.0, "three"))) == []
    saved = SavedRoom("old", 2, (LoggedTalk("old", 1, 9, 1.0, "one"), LoggedTalk("old", 2, 9, 2.0, "two")))
    add_user = core.log_result(Loaded(load.ticket, saved))[0]
    assert isinstance(add_user, AddUser)
    shown = [decoded(action) for action in core.log_result(UserAdded(add_user.ticket, 10))]
    assert [event.get("payload") for event in shown] == [None, "one", "two", "three"]


def test_a_joiners_replay_is_the_latest_talks_up_to_what_members_were_shown() -> None:
    core = StoredChat(clock=FakeClock(), new_join_key=keys().__next__,
                    limits=CoreLimits(history_limit=2))
    log = MemoryLog(2)
    member_of(core, log, 1)
    for offset in (1, 2, 3):
        core.log_result(TalkArrived(LoggedTalk("key1", offset, 5, 0.0, f"t{offset}")))
    core.log_result(TalkArrived(LoggedTalk("key1", 5, 5, 0.0, "t5")))  # 4 has not arrived: 5 is not shown
    log.answer(AddUser(90, "key1", None))
    replay = [decoded(action).get("payload") for action in member_of(core, log, 2, "key1")]
    assert replay == [None, "t2", "t3"]


# --- The shared log, played by the test ----------------------------------------------------------


@dataclass
class LogRoom:
    last_user_id: int = 0
    talks: list[LoggedTalk] = field(default_factory=list)


@dataclass
class Viewer:
    """What one connection was shown: its room once answered, and the offsets of the talks since."""

    room: str | None = None
    offsets: list[int] = field(default_factory=list)
    """Every talk shown, replay included."""
    replayed: int = 0
    """How many of them came as the replay after the init answer."""


class SharedLogChat(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = 1_700_000_000.0
        self.keys = (f"key{n // 2}" for n in range(2, 20_000))  # every key twice: the second one is taken
        self.log: dict[str, LogRoom] = {}
        self.handed_out: set[tuple[str, int]] = set()
        self.next_connection = 1
        self.payloads = 0
        self.start()

    def start(self) -> None:
        limits = CoreLimits(history_limit=HISTORY_LIMIT, messages_per_second=1000, message_burst=1000)
        self.core = StoredChat(clock=self.clock, new_join_key=self.keys.__next__, limits=limits)
        self.requests: deque[LogRequest] = deque()
        self.answers: deque[LogResult] = deque()
        self.notices: list[TalkArrived] = []
        self.viewers: dict[int, Viewer] = {}

    def clock(self) -> float:
        self.now += 1
        return self.now

    def perform(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, AddUser | Append | Load):
                self.requests.append(action)
            elif isinstance(action, Broadcast):
                for recipient in action.recipients:
                    self.show(recipient, json.loads(action.message), replay=False)
            elif isinstance(action, Send):
                self.show(action.connection, json.loads(action.message), replay=True)
            elif isinstance(action, Close):
                self.viewers.pop(action.connection)
                self.perform(self.core.disconnect(action.connection))

    def show(self, connection: int, event: dict[str, Any], *, replay: bool) -> None:
        viewer = self.viewers[connection]
        if event["type"] == "init":
            room, user_id = event["joinKey"], event["userId"]
            assert (room, user_id) not in self.handed_out, f"user id {user_id} handed out twice in {room}"
            assert self.log[room].last_user_id >= user_id, "a user id the log never handed out"
            self.handed_out.add((room, user_id))
            viewer.room = room
        elif event["type"] == "talk":
            assert viewer.room is not None, "a talk before the init answer"
            # Payloads are unique: the talk, and so its offset, is looked up in the log.
            talk = next(talk for talk in self.log[viewer.room].talks if talk.payload == event["payload"])
            assert (talk.user_id, talk.time) == (event["userId"], event["time"])
            if replay:
                assert viewer.replayed == len(viewer.offsets), "a replayed talk after a live one"
                viewer.replayed += 1
            viewer.offsets.append(talk.offset)

    # --- clients ---------------------------------------------------------------------------------

    @precondition(lambda self: len(self.viewers) < MAX_OPEN)
    @rule()
    def connect(self) -> None:
        connection, self.next_connection = self.next_connection, self.next_connection + 1
        self.viewers[connection] = Viewer()
        self.perform(self.core.connect(connection))

    @precondition(lambda self: self.viewers)
    @rule(data=st.data(), new=st.booleans(), unknown=st.sampled_from([False, False, False, True]))
    def init(self, data: st.DataObject, new: bool, unknown: bool) -> None:
        connection = data.draw(st.sampled_from(sorted(self.viewers)))
        event: dict[str, Any] = {"type": "init", "render": "text"}
        if not new:
            event["joinKey"] = "nobody-has-this-key" if unknown or not self.log else data.draw(
                st.sampled_from(sorted(self.log))
            )
        self.perform(self.core.receive(connection, event))

    @precondition(lambda self: self.viewers)
    @rule(data=st.data())
    def talk(self, data: st.DataObject) -> None:
        connection = data.draw(st.sampled_from(sorted(self.viewers)))
        self.perform(self.core.receive(connection, {"type": "talk", "payload": self.new_payload()}))

    @precondition(lambda self: self.viewers)
    @rule(data=st.data())
    def disconnect(self, data: st.DataObject) -> None:
        connection = data.draw(st.sampled_from(sorted(self.viewers)))
        del self.viewers[connection]
        self.perform(self.core.disconnect(connection))

    # --- the log ---------------------------------------------------------------------------------

    def new_payload(self) -> str:
        self.payloads += 1
        return str(self.payloads)

    def append(self, join_key: str, user_id: int, time: float, payload: str) -> LoggedTalk:
        room = self.log[join_key]
        talk = LoggedTalk(join_key, len(room.talks) + 1, user_id, time, payload)
        room.talks.append(talk)
        return talk

    @precondition(lambda self: self.requests)
    @rule(fail=st.sampled_from([False, False, False, True]))
    def log_applies(self, fail: bool) -> None:
        """The log does the oldest request; its answer is delivered later, in order."""
        request = self.requests.popleft()
        result: LogResult
        if fail:
            result = LogFailed(request.ticket, "storage full")
        elif isinstance(request, Load):
            room = self.log.get(request.join_key)
            saved = None
            if room is not None:
                recent = tuple(room.talks[-request.recent :]) if request.recent else ()
                saved = SavedRoom(request.join_key, len(room.talks), recent)
            result = Loaded(request.ticket, saved)
        elif isinstance(request, AddUser):
            if request.created is not None and request.join_key in self.log:
                result = KeyTaken(request.ticket)
            else:
                room = self.log.setdefault(request.join_key, LogRoom())
                room.last_user_id += 1
                result = UserAdded(request.ticket, room.last_user_id)
        else:
            assert isinstance(request, Append)  # (seed clients only: no renames, no history)
            talk = self.append(request.join_key, request.user_id, request.time, request.payload)
            result = Appended(request.ticket, talk)
        self.answers.append(result)

    @precondition(lambda self: self.answers)
    @rule()
    def answer_arrives(self) -> None:
        self.perform(self.core.log_result(self.answers.popleft()))

    @precondition(lambda self: self.log)
    @rule(data=st.data())
    def another_process_talks(self, data: st.DataObject) -> None:
        join_key = data.draw(st.sampled_from(sorted(self.log)))
        talk = self.append(join_key, 1_000, self.clock(), self.new_payload())
        self.notices.append(TalkArrived(talk))

    @precondition(lambda self: self.notices)
    @rule(data=st.data())
    def notice_arrives(self, data: st.DataObject) -> None:
        """Notices of talks appended elsewhere come in any order, with the answers or between them."""
        notice = self.notices.pop(data.draw(st.integers(0, len(self.notices) - 1)))
        self.perform(self.core.log_result(notice))

    @precondition(lambda self: self.log)
    @rule(now=st.sampled_from([False, False, False, True]))
    def crash(self, now: bool) -> None:
        """The process dies (sometimes): what was not answered is lost, a new core starts on the same log."""
        if now:
            self.start()

    # --- invariants ------------------------------------------------------------------------------

    @invariant()
    def every_viewer_sees_its_rooms_talks_gap_free_in_order_each_once(self) -> None:
        for viewer in self.viewers.values():
            offsets = viewer.offsets
            if not offsets:
                continue
            assert offsets == list(range(offsets[0], offsets[0] + len(offsets))), offsets
            if viewer.replayed:
                # The replay is the latest talks up to where the room had been shown, as many as the limit keeps.
                assert offsets[0] == max(1, offsets[viewer.replayed - 1] - HISTORY_LIMIT + 1), offsets
            else:
                assert offsets[0] == 1, "nothing replayed, so the room had shown nothing: its first talk comes next"

    @invariant()
    def once_everything_arrived_every_member_is_up_to_date(self) -> None:
        if self.requests or self.answers or self.notices:
            return
        for viewer in self.viewers.values():
            if viewer.room is not None:
                talks = self.log[viewer.room].talks
                if talks:
                    assert viewer.offsets, "a member that was shown nothing of its room"
                    assert viewer.offsets[-1] == len(talks), "a member that missed the latest talks"
        assert self.core.pending_count == 0
        if not self.viewers:
            assert self.core.room_count == 0


def test_random_shared_log_sequences_keep_the_offset_invariants() -> None:
    run_state_machine_as_test(
        SharedLogChat,
        settings=settings(max_examples=250, stateful_step_count=80, deadline=None, derandomize=True, database=None),
    )


def test_a_room_let_go_while_its_creation_was_answered_leaves_no_feed_behind() -> None:
    core = ChatCore(clock=FakeClock(), new_join_key=keys().__next__)
    core.connect(1)
    subscribe, add = send(core, 1, {"type": "init"})
    assert isinstance(add, AddUser)
    assert subscribe == Subscribe(add.join_key)
    core.disconnect(1)  # before the log answers: the new room is let go as soon as it is
    assert core.log_result(UserAdded(add.ticket, 1)) == [Forget(add.join_key)]
    assert add.join_key not in core._held._feed  # a talk heard for it now would be ignored
    assert core.log_result(TalkArrived(LoggedTalk(add.join_key, 1, 1, 0.0, "late"))) == []
