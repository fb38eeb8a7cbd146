"""Property-based tests of the chat core: random operation sequences checked against a small model.

A hypothesis state machine opens and closes connections and sends them valid
and invalid events; every action the core returns is checked against a model
of rooms, members, user ids and history that the test keeps itself.

The tests depend on no optional limit: the fake clock moves one second per
step, payloads stay short, and every talk payload is compared after
``html.unescape`` for clients whose init did not say ``"render": "text"``.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from chatcore import Action, Broadcast, ChatCore, Close, CoreLimits, Send
from corekit import LocalChat

T = TypeVar("T")

SERVER_EVENT_TYPES = {"init", "talk", "error"}
MAX_OPEN = 7

STATEFUL_SETTINGS = settings(
    max_examples=100,
    stateful_step_count=40,
    deadline=None,
    derandomize=True,
    database=None,
    report_multiple_bugs=False,  # shrink one failure, quickly
)
GIVEN_SETTINGS = settings(max_examples=150, deadline=None, derandomize=True, database=None)


# --- The core under test ----------------------------------------------------------------------------


class ManualClock:
    """Unix seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now

    def tick(self) -> None:
        self.now += 1.0  # generous: no rate limit can trigger


def join_keys() -> Iterator[str]:
    """Each key is offered twice, so every new room after the first sees a collision first."""
    n = 0
    while True:
        n += 1
        yield f"key{n}"
        yield f"key{n}"


def make_core(clock: Callable[[], float], history_limit: int) -> ChatCore:
    return LocalChat(clock=clock, new_join_key=join_keys().__next__, limits=CoreLimits(history_limit=history_limit))


# --- Strategies -----------------------------------------------------------------------------------

json_scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=10)
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=8,
)
non_strings = json_values.filter(lambda value: not isinstance(value, str))
non_string_join_keys = non_strings.filter(lambda value: value is not None)

payloads = (
    st.text(max_size=80)
    | st.text(alphabet="<>&\"';#x1 ", max_size=30)
    | st.sampled_from(
        ["", "&amp;", "<b>hi</b>", '<img src=x onerror="alert(1)">', "ünïcødé 🎉", "line\nbreak", "\\", "\x00"]
    )
)
lone_surrogates = st.sampled_from(["\ud800", "\udbff", "\udc00", "\udfff"])
surrogate_texts = st.tuples(st.text(max_size=10), lone_surrogates, st.text(max_size=10)).map("".join)


def nested(depth: int) -> object:
    value: object = "x"
    for _ in range(depth):
        value = [value]
    return value


def render_field(text: bool) -> dict[str, str]:
    return {"render": "text"} if text else {}


@st.composite
def bad_events(draw: st.DrawFn) -> object:
    """Decoded events that no connection, in any state, may have accepted."""
    return draw(
        st.one_of(
            json_values.filter(lambda value: not isinstance(value, dict)),
            st.dictionaries(st.text(max_size=8).filter(lambda key: key != "type"), json_values, max_size=3),
            st.fixed_dictionaries({"type": non_strings}),
            st.fixed_dictionaries(
                {"type": st.text(max_size=10).filter(lambda kind: kind not in ("init", "talk")) | lone_surrogates},
                optional={"payload": st.text(max_size=5), "joinKey": st.text(max_size=5)},
            ),
            st.sampled_from([{"type": "INIT"}, {"type": "Talk"}, {"type": "talk "}, {"type": ["init"]}]),
            st.fixed_dictionaries(
                {"type": st.just("init"), "joinKey": non_string_join_keys, "render": st.just("text")}
            ),
            st.fixed_dictionaries({"type": st.just("init"), "joinKey": surrogate_texts}),
            st.fixed_dictionaries({"type": st.just("talk")}, optional={"payload": non_strings}),
            st.fixed_dictionaries({"type": st.just("talk"), "payload": surrogate_texts}),
            st.integers(1, 60).map(lambda depth: {"type": "talk", "payload": nested(depth)}),
        )
    )


@dataclass(frozen=True)
class Incoming:
    """One message from a client, as text, as an already decoded event, or as binary data."""

    kind: str  # "text", "event" or "binary"
    value: Any

    def deliver(self, core: ChatCore, connection: int) -> list[Action]:
        if self.kind == "text":
            return core.receive_text(connection, self.value)
        if self.kind == "event":
            return core.receive(connection, self.value)
        return core.receive_binary(connection, self.value)


CHANNELS = st.sampled_from(["event", "ascii", "unicode"])


def encoded(event: object, channel: str) -> Incoming:
    """An event as the core may get it: decoded, or as JSON text (escaped to ASCII or not)."""
    if channel == "event":
        return Incoming("event", event)
    return Incoming("text", json.dumps(event, ensure_ascii=channel == "ascii"))


@st.composite
def bad_texts(draw: st.DrawFn) -> Incoming:
    """Text that is not one JSON value, or that nests too deep for anyone."""
    text = draw(
        st.one_of(
            st.text(max_size=20).map(lambda rest: "#" + rest),
            # A proper prefix of a JSON object is never valid JSON.
            st.tuples(st.just('{"type":"init","render":"text"}'), st.integers(1, 30)).map(lambda t: t[0][: -t[1]]),
            st.sampled_from(["", " ", "{", "}", "[", "{'type': 'init'}", '{"type":"init"}}', "tru", "\ud800"]),
            st.sampled_from([33, 1_000, 100_000]).map(lambda depth: "[" * depth + "]" * depth),
            st.sampled_from([40, 5_000]).map(
                lambda depth: '{"type":"talk","payload":' + "[" * depth + "]" * depth + "}"
            ),
            st.sampled_from([1_000, 100_000]).map(lambda depth: '{"a":' * depth + "1" + "}" * depth),
        )
    )
    return Incoming("text", text)


INDICES = st.integers(0, 255)
KEY_KINDS = st.sampled_from(["none", "known", "unknown"])
UNKNOWN_KEYS = st.text(max_size=10) | st.sampled_from(["", "KEY1", "key1 ", "key0", "key99"])

invalid_messages: st.SearchStrategy[Incoming] = st.one_of(
    st.tuples(bad_events(), CHANNELS).map(lambda pair: encoded(*pair)),
    bad_texts(),
    st.binary(max_size=40).map(lambda data: Incoming("binary", data)),
    st.just(Incoming("binary", b'{"type":"init","render":"text"}')),
)


# --- Checking what the core says ------------------------------------------------------------------


def check_server_message(message: str) -> dict[str, Any]:
    """Every message the core sends is one JSON object of a known type, and is valid UTF-8 text."""
    message.encode("utf-8")  # a WebSocket text frame cannot carry lone surrogates
    event = json.loads(message)
    assert isinstance(event, dict), message
    assert event.get("type") in SERVER_EVENT_TYPES, message
    if event["type"] == "error":
        assert isinstance(event.get("message"), str), message
        assert event.get("payload") == event["message"], message
    return event


def payload_matches(delivered: object, sent: str, renders_text: bool) -> bool:
    """A text client gets the payload unchanged; any other may get it HTML-escaped."""
    if renders_text:
        return delivered == sent
    return isinstance(delivered, str) and (delivered == sent or html.unescape(delivered) == sent)


@dataclass(frozen=True)
class TalkRecord:
    """One accepted talk, as the model remembers it."""

    payload: str
    user_id: int
    time: float
    messages: dict[bool, str]  # the exact text delivered, by the recipients' renders_text


@dataclass
class RoomModel:
    members: dict[int, int] = field(default_factory=dict)  # connection -> user id
    used_ids: set[int] = field(default_factory=set)
    history: list[TalkRecord] = field(default_factory=list)


@dataclass(frozen=True)
class Member:
    room: str
    user_id: int
    renders_text: bool


@dataclass
class Outcome:
    """The actions of one call, expanded: one delivery per recipient, and the connections closed."""

    deliveries: list[tuple[int, str, dict[str, Any]]]
    closed: list[int]
    broadcast_rooms: set[str]


class ChatModel(RuleBasedStateMachine):
    history_limit = 1000

    def __init__(self) -> None:
        super().__init__()
        self.clock = ManualClock()
        self.core = make_core(self.clock, self.history_limit)
        self.next_id = 1
        self.open: dict[int, Member | None] = {}
        self.closed_ids: list[int] = []
        self.rooms: dict[str, RoomModel] = {}

    # -- helpers --

    def idle(self) -> list[int]:
        return sorted(c for c, m in self.open.items() if m is None)

    def members(self) -> list[int]:
        return sorted(c for c, m in self.open.items() if m is not None)

    def pick(self, data: st.DataObject, choices: list[T]) -> T:
        # One fixed strategy for every pick: hypothesis need not build and validate a new one each step.
        return choices[data.draw(INDICES, label="index") % len(choices)]

    def forget(self, connection: int) -> None:
        member = self.open.pop(connection)
        if member is not None:
            del self.rooms[member.room].members[connection]
        self.closed_ids.append(connection)

    def observe(self, actions: list[Action]) -> Outcome:
        """Expand the actions and check what holds for all of them; a Close ends that connection."""
        deliveries: list[tuple[int, str, dict[str, Any]]] = []
        closed: list[int] = []
        rooms: set[str] = set()
        for action in actions:
            if isinstance(action, Close):
                assert action.connection in self.open, action
                assert action.connection not in closed, action
                closed.append(action.connection)
                continue
            if isinstance(action, Broadcast):
                rooms.add(action.room)
                targets = list(action.recipients)
            else:
                assert isinstance(action, Send), action
                targets = [action.connection]
            event = check_server_message(action.message)
            for target in targets:
                assert target in self.open, f"delivery to a connection not open: {action}"
                assert target not in closed, f"delivery to a connection closed: {action}"
                deliveries.append((target, action.message, event))
        for connection in closed:
            self.forget(connection)
            self.core.disconnect(connection)  # as a driver would
        return Outcome(deliveries, closed, rooms)

    def closed_instead(self, connection: int, outcome: Outcome) -> bool:
        """Whether the core closed the sender instead of answering; then nobody else hears of it."""
        if connection not in outcome.closed:
            return False
        assert outcome.closed == [connection]
        assert all(target == connection for target, _, _ in outcome.deliveries)
        assert all(event["type"] == "error" for _, _, event in outcome.deliveries)
        return True

    def expect_error(self, connection: int, actions: list[Action]) -> None:
        """Exactly one error event, to the sender only, and the connection stays open."""
        outcome = self.observe(actions)
        assert not outcome.closed, f"connection closed after an invalid event: {actions}"
        assert len(actions) == 1, actions
        assert isinstance(actions[0], Send), actions
        assert len(outcome.deliveries) == 1
        target, _, event = outcome.deliveries[0]
        assert target == connection
        assert event["type"] == "error", event

    def send_init(self, data: st.DataObject, connection: int, join_key: str | None) -> None:
        renders_text = data.draw(st.booleans(), label="renders_text")
        event: dict[str, Any] = {"type": "init", **render_field(renders_text)}
        if join_key is not None:
            event["joinKey"] = join_key
        incoming = encoded(event, data.draw(CHANNELS, label="channel"))
        actions = incoming.deliver(self.core, connection)
        if self.open[connection] is not None or (join_key is not None and join_key not in self.rooms):
            self.expect_error(connection, actions)
            return
        outcome = self.observe(actions)
        if self.closed_instead(connection, outcome):
            return
        assert not outcome.closed, actions
        assert not outcome.broadcast_rooms, actions
        assert all(isinstance(action, Send) for action in actions), actions
        assert all(target == connection for target, _, _ in outcome.deliveries), actions
        assert outcome.deliveries, actions
        reply = outcome.deliveries[0][2]
        assert reply["type"] == "init", reply
        key, user_id = reply.get("joinKey"), reply.get("userId")
        assert isinstance(key, str), reply
        assert type(user_id) is int, reply
        if join_key is None:
            assert key not in self.rooms, f"a new room got the key of an existing one: {key}"
            self.rooms[key] = RoomModel()
        else:
            assert key == join_key, reply
        room = self.rooms[key]
        assert user_id not in room.used_ids, f"user id {user_id} reused in room {key}"
        # The replay: the most recent N talks of the room, in the order they were delivered.
        replay = outcome.deliveries[1:]
        expected = room.history[-self.history_limit :] if self.history_limit else []
        assert len(replay) == len(expected), (len(replay), len(expected))
        for (_, message, event), talk in zip(replay, expected, strict=True):
            assert event["type"] == "talk", event
            assert (event.get("userId"), event.get("time")) == (talk.user_id, talk.time), (event, talk)
            assert payload_matches(event.get("payload"), talk.payload, renders_text), (event, talk)
            if renders_text in talk.messages:
                assert message == talk.messages[renders_text], (message, talk)
        room.used_ids.add(user_id)
        room.members[connection] = user_id
        self.open[connection] = Member(key, user_id, renders_text)

    def send_talk(self, data: st.DataObject, connection: int) -> None:
        payload = data.draw(payloads, label="payload")
        event: dict[str, Any] = {"type": "talk", "payload": payload}
        if data.draw(st.booleans(), label="bogus userId"):
            event["userId"] = data.draw(json_values, label="userId")
        actions = encoded(event, data.draw(CHANNELS, label="channel")).deliver(self.core, connection)
        member = self.open[connection]
        if member is None:
            self.expect_error(connection, actions)
            return
        outcome = self.observe(actions)
        if self.closed_instead(connection, outcome):
            return
        assert not outcome.closed, actions
        assert actions, "a talk from a member was not broadcast"
        assert all(isinstance(action, Broadcast) for action in actions), actions
        assert outcome.broadcast_rooms == {member.room}, actions
        room = self.rooms[member.room]
        # Delivered exactly once to each member present now, and to nobody else.
        assert sorted(target for target, _, _ in outcome.deliveries) == sorted(room.members), (actions, room)
        messages: dict[bool, str] = {}
        for target, message, event in outcome.deliveries:
            recipient = self.open[target]
            assert recipient is not None
            assert event["type"] == "talk", event
            assert event.get("userId") == member.user_id, event  # never the userId the client claimed
            assert event.get("time") == self.clock.now, event
            assert payload_matches(event.get("payload"), payload, recipient.renders_text), (event, payload)
            assert messages.setdefault(recipient.renders_text, message) == message, actions
        room.history.append(TalkRecord(payload, member.user_id, self.clock.now, messages))

    # -- rules --

    @precondition(lambda self: len(self.open) < MAX_OPEN)
    @rule()
    def connect(self) -> None:
        self.clock.tick()
        connection = self.next_id
        self.next_id += 1
        assert self.core.connect(connection) == []
        self.open[connection] = None

    @precondition(lambda self: len(self.open) < MAX_OPEN and self.closed_ids)
    @rule(data=st.data())
    def reconnect_with_a_closed_id(self, data: st.DataObject) -> None:
        """Ids are opaque to the core: one given back may be reused, and starts afresh."""
        self.clock.tick()
        connection = self.pick(data, self.closed_ids)
        self.closed_ids.remove(connection)
        assert self.core.connect(connection) == []
        self.open[connection] = None

    @precondition(lambda self: self.open)
    @rule(data=st.data())
    def disconnect(self, data: st.DataObject) -> None:
        self.clock.tick()
        connection = self.pick(data, sorted(self.open))
        self.observe(self.core.disconnect(connection))
        if connection in self.open:
            self.forget(connection)

    @precondition(lambda self: self.idle())
    @rule(data=st.data())
    def idle_connection_starts_a_room(self, data: st.DataObject) -> None:
        self.clock.tick()
        self.send_init(data, self.pick(data, self.idle()), None)

    @precondition(lambda self: self.idle() and self.rooms)
    @rule(data=st.data())
    def idle_connection_joins(self, data: st.DataObject) -> None:
        self.clock.tick()
        connection = self.pick(data, self.idle())
        self.send_init(data, connection, self.pick(data, sorted(self.rooms)))

    @precondition(lambda self: self.open)
    @rule(data=st.data())
    def any_connection_inits(self, data: st.DataObject) -> None:
        """Without a key, with a known one or with an unknown one; the model decides what must happen."""
        self.clock.tick()
        connection = self.pick(data, sorted(self.open))
        kind = data.draw(KEY_KINDS, label="key kind")
        if kind == "none":
            join_key = None
        elif kind == "known" and self.rooms:
            join_key = self.pick(data, sorted(self.rooms))
        else:
            join_key = data.draw(UNKNOWN_KEYS, label="joinKey")
        self.send_init(data, connection, join_key)

    @precondition(lambda self: self.open)
    @rule(data=st.data())
    def any_connection_talks(self, data: st.DataObject) -> None:
        self.clock.tick()
        self.send_talk(data, self.pick(data, sorted(self.open)))

    @precondition(lambda self: self.members())
    @rule(data=st.data(), count=st.integers(1, 4))
    def members_talk(self, data: st.DataObject, count: int) -> None:
        for _ in range(count):
            self.clock.tick()
            self.send_talk(data, self.pick(data, self.members()))

    @precondition(lambda self: self.open)
    @rule(data=st.data(), message=invalid_messages)
    def invalid_message(self, data: st.DataObject, message: Incoming) -> None:
        self.clock.tick()
        connection = self.pick(data, sorted(self.open))
        self.expect_error(connection, message.deliver(self.core, connection))

    @invariant()
    def counts_agree(self) -> None:
        assert self.core.connection_count == len(self.open)
        # Rooms in use are in memory; every room is in the core's memory log.
        assert self.core.room_count == sum(1 for room in self.rooms.values() if room.members)
        assert isinstance(self.core, LocalChat)
        assert self.core.memory_log.room_count == len(self.rooms)


@pytest.mark.parametrize("history_limit", [0, 3, 1000])
def test_random_operation_sequences_keep_the_invariants(history_limit: int) -> None:
    machine = type(f"ChatModelHistory{history_limit}", (ChatModel,), {"history_limit": history_limit})
    run_state_machine_as_test(machine, settings=STATEFUL_SETTINGS)


# --- Invalid input in isolation: many more of them, each from an idle and from a member connection -


@GIVEN_SETTINGS
@given(message=invalid_messages, payload=payloads)
def test_an_invalid_message_gets_exactly_one_error_and_the_connection_goes_on(message: Incoming, payload: str) -> None:
    clock = ManualClock()
    core = make_core(clock, 5)
    core.connect(1)
    core.connect(2)
    reply = core.receive(2, {"type": "init", "render": "text"})
    assert len(reply) == 1
    assert isinstance(reply[0], Send)
    join_key = check_server_message(reply[0].message)["joinKey"]
    for connection in (1, 2):
        clock.tick()
        actions = message.deliver(core, connection)
        assert len(actions) == 1, actions
        action = actions[0]
        assert isinstance(action, Send), actions
        assert action.connection == connection, actions
        assert check_server_message(action.message)["type"] == "error"
    clock.tick()
    # The member is still in its room, and the idle connection can still join it.
    broadcast = core.receive(2, {"type": "talk", "payload": payload})
    assert [(type(a), a.recipients) for a in broadcast if isinstance(a, Broadcast)] == [(Broadcast, (2,))]
    clock.tick()
    joined = core.receive(1, {"type": "init", "joinKey": join_key, "render": "text"})
    assert [json.loads(a.message)["type"] for a in joined if isinstance(a, Send)] == ["init", "talk"]
