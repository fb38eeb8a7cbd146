"""``typing`` in the pure core: told to the room's other version-2 members at most once every 2 s per user, never
stored; a small one told is outside the talk rate, one dropped by the interval or a big one counted (a flood is
closed as any flood); seed clients never see it; other processes hear of it through the log's notice."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chatcore import ChatCore, CoreLimits, PresenceHeard, Typing, TypingHeard, closecodes, problems
from chatcore.typers import TYPING_INTERVAL, TYPING_MAX_CHARS
from corekit import FakeClock, LocalChat, keys, v2_error
from v2kit import Net

TYPING = {"type": "typing"}
BIG_TYPING = {"type": "typing", "pad": "x" * 10_000}


@pytest.fixture
def net(core: ChatCore) -> Net:
    return Net(core)


@pytest.fixture
def shared(clock: FakeClock) -> Net:
    """A core whose log the test answers (`Net.answer`), every notice kept (`Net.shared`)."""
    return Net(ChatCore(clock=clock, new_join_key=keys().__next__))


def told(net: Net) -> list[Typing]:
    return [action for action in net.shared if isinstance(action, Typing)]


def typings(events: list[dict[str, Any]]) -> list[int]:
    return [event["userId"] for event in events if event["type"] == "typing"]


def presence_kinds(events: list[dict[str, Any]]) -> list[tuple[str, int]]:
    return [(event["type"], event["userId"]) for event in events if event["type"] in {"joined", "left"}]


def room_of_three(net: Net) -> str:
    """Ada (1), Bob (2) and Cy (3), each on one connection, their inboxes emptied."""
    room = net.join(1, name="Ada")["joinKey"]
    net.join(2, joinKey=room, name="Bob")
    net.join(3, joinKey=room, name="Cy", render="text")
    for connection in (1, 2, 3):
        net.take(connection)
    assert isinstance(room, str)
    return room


def test_the_other_version_2_members_are_told_and_the_typer_is_not(net: Net) -> None:
    room_of_three(net)
    net.send(2, TYPING)
    assert net.take(1) == [{"type": "typing", "userId": 2}]
    assert net.take(3) == [{"type": "typing", "userId": 2}]  # (a text client: the same event)
    assert net.take(2) == []


def test_the_typers_other_connections_are_not_told(net: Net) -> None:
    first = net.join(1, name="Ada")
    room = first["joinKey"]
    again = net.join(2, joinKey=room, token=first["token"])
    assert again["userId"] == first["userId"]  # (two tabs of one user)
    net.join(3, joinKey=room, name="Bob")
    for connection in (1, 2, 3):
        net.take(connection)
    net.send(2, TYPING)
    assert typings(net.take(3)) == [first["userId"]]
    assert net.take(1) == []
    assert net.take(2) == []


def test_seed_members_are_never_told(net: Net) -> None:
    room = net.join(1)["joinKey"]
    net.connect(2)
    net.send(2, {"type": "init", "joinKey": room})
    net.join(3, joinKey=room)
    for connection in (1, 2, 3):
        net.take(connection)
    net.send(1, TYPING)
    assert net.take(2) == []
    assert typings(net.take(3)) == [1]


def test_a_seed_connection_that_sends_typing_gets_what_the_seed_says_of_any_unknown_request(net: Net) -> None:
    room = net.join(1)["joinKey"]
    net.connect(2)
    net.send(2, {"type": "init", "joinKey": room})
    net.take(1)
    net.take(2)
    net.send(2, {"type": "whatever"})
    unknown = net.take(2)
    net.send(2, TYPING)
    assert net.take(2) == unknown
    assert unknown[0]["type"] == "error"
    assert unknown[0].keys() == {"type", "message", "payload"}  # (the seed's error, no more)
    assert net.take(1) == []


def test_a_connection_with_no_init_read_gets_the_seeds_error_for_an_unknown_kind(net: Net) -> None:
    net.connect(1)
    net.send(1, {"type": "whatever"})
    unknown = net.take(1)
    assert unknown[0].keys() == {"type", "message", "payload"}
    net.send(1, TYPING)
    assert net.take(1) == unknown
    net.send(1, {"type": "init", "v": 2, "name": 5})  # (malformed: not read)
    assert net.take(1)[0]["code"] == "bad-request"
    net.send(1, TYPING)
    assert net.take(1) == unknown


def test_at_most_one_every_2_seconds_per_user_whatever_its_connections(shared: Net, clock: FakeClock) -> None:
    net = shared
    first = net.join(1, name="Ada")
    room = first["joinKey"]
    net.join(2, joinKey=room, token=first["token"])
    net.join(3, joinKey=room, name="Bob")
    for connection in (1, 2, 3):
        net.take(connection)
    net.send(1, TYPING)
    clock.now += 0.5
    net.send(1, TYPING)
    net.send(2, TYPING)  # (the same user's other tab)
    clock.now += 1.25
    net.send(2, TYPING)
    assert typings(net.take(3)) == [1]
    assert told(net) == [Typing(room, 1)]
    clock.now += 0.25  # 2 s after the first: the next goes through
    assert clock.now == 1000.0 + TYPING_INTERVAL
    net.send(2, TYPING)
    assert typings(net.take(3)) == [1]
    assert told(net) == [Typing(room, 1)] * 2
    assert net.take(1) == net.take(2) == []


def test_each_user_has_an_interval_of_its_own(net: Net, clock: FakeClock) -> None:
    room_of_three(net)
    net.send(1, TYPING)
    net.send(2, TYPING)
    assert typings(net.take(3)) == [1, 2]


def test_a_clock_that_steps_back_lets_the_next_one_through(net: Net, clock: FakeClock) -> None:
    room_of_three(net)
    net.send(1, TYPING)
    clock.now -= 3600
    net.send(1, TYPING)
    assert typings(net.take(2)) == [1, 1]


def test_typing_is_not_stored(net: Net, clock: FakeClock) -> None:
    room = room_of_three(net)
    net.send(1, TYPING)
    net.send(1, {"type": "talk", "payload": "hi"})
    joiner = net.join(4, joinKey=room)
    assert joiner["offset"] == 1
    assert [event["type"] for event in net.take(4)] == ["talk"]
    net.send(4, {"type": "history"})
    (history,) = net.take(4)
    assert [talk["type"] for talk in history["talks"]] == ["talk"]


def test_typing_is_outside_the_talk_rate(clock: FakeClock) -> None:
    limits = CoreLimits(messages_per_second=0.001, message_burst=3, max_rate_strikes=1)
    net = Net(LocalChat(clock=clock, new_join_key=keys().__next__, limits=limits))
    room = net.join(1)["joinKey"]  # (the init takes one of the 3)
    net.join(2, joinKey=room)
    net.take(1)
    for _ in range(50):
        net.send(1, TYPING)
        clock.now += TYPING_INTERVAL
    assert typings(net.take(2)) == [1] * 50
    net.send(1, {"type": "talk", "payload": "one"})
    net.send(1, {"type": "talk", "payload": "two"})
    assert [event.get("payload") for event in net.take(1)] == ["one", "two"]
    assert 1 not in net.closed


def test_a_flood_of_typing_is_refused_for_rate_and_closed_like_any_flood(clock: FakeClock) -> None:
    limits = CoreLimits(messages_per_second=1.0, message_burst=5, max_rate_strikes=3)
    net = Net(LocalChat(clock=clock, new_join_key=keys().__next__, limits=limits))
    room = net.join(1)["joinKey"]  # (the init takes one of the 5)
    net.join(2, joinKey=room)
    net.take(1)
    for _ in range(50):  # the clock stands still: one is told, the rest dropped by the interval, and charged
        net.send(1, TYPING)
    assert typings(net.take(2)) == [1]
    assert net.take(1) == [v2_error(problems.RATE_LIMITED, request="typing")] * 3
    assert net.closed[1] == closecodes.POLICY_VIOLATION
    assert net.reasons[1] == "message rate limit exceeded"


@pytest.mark.parametrize("decoded", [False, True], ids=["text", "decoded-by-the-driver"])
def test_a_big_typing_is_charged_to_the_rate_as_any_request(clock: FakeClock, decoded: bool) -> None:
    limits = CoreLimits(messages_per_second=0.001, message_burst=2, max_rate_strikes=5)
    net = Net(LocalChat(clock=clock, new_join_key=keys().__next__, limits=limits))
    room = net.join(1)["joinKey"]  # (the init takes one of the 2)
    net.join(2, joinKey=room)
    net.take(1)
    assert len(json.dumps(TYPING)) <= TYPING_MAX_CHARS < len(json.dumps(BIG_TYPING))
    if decoded:
        net.do(net.core.receive(1, BIG_TYPING))
    else:
        net.send(1, BIG_TYPING)
    assert typings(net.take(2)) == [1]  # (told all the same: the first in its interval)
    net.send(1, {"type": "talk", "payload": "the bucket is empty"})
    assert net.take(1) == [v2_error(problems.RATE_LIMITED)]


def test_only_the_typings_told_leave_the_bucket_as_it_was(clock: FakeClock) -> None:
    limits = CoreLimits(messages_per_second=0.001, message_burst=3, max_rate_strikes=5)
    net = Net(LocalChat(clock=clock, new_join_key=keys().__next__, limits=limits))
    room = net.join(1)["joinKey"]  # (the init takes one of the 3)
    net.join(2, joinKey=room)
    net.take(1)
    net.send(1, TYPING)  # told: not charged
    net.do(net.core.receive(1, TYPING))  # (decoded by the driver) dropped by the interval: charged
    clock.now += TYPING_INTERVAL
    net.do(net.core.receive(1, TYPING))  # told: not charged
    assert typings(net.take(2)) == [1, 1]
    assert net.take(1) == []
    net.send(1, {"type": "talk", "payload": "the last one in the bucket"})
    net.send(1, {"type": "talk", "payload": "none left"})
    assert [event.get("payload") for event in net.take(1)] == ["the last one in the bucket", problems.RATE_LIMITED.text]


def test_typing_while_the_talks_before_it_are_with_the_log_is_told_at_once(shared: Net) -> None:
    net = shared
    room = net.join(1)["joinKey"]
    net.join(2, joinKey=room)
    net.send(1, {"type": "talk", "payload": "waiting for the log"})
    net.send(1, TYPING)
    assert typings(net.take(2)) == [1]
    net.answer()
    assert [event["type"] for event in net.take(2)] == ["talk"]


def test_a_version_2_connection_in_no_room_is_told_it_is_not_in_a_chat(shared: Net) -> None:
    net = shared
    net.connect(1)
    net.send(1, {"type": "init", "v": 2, "joinKey": "nowhere"})
    net.answer()
    (refused,) = net.take(1)
    assert refused["code"] == "not-found"
    net.send(1, TYPING)
    assert net.take(1) == [v2_error(problems.NOT_IN_CHAT, request="typing")]
    assert told(net) == []


def test_typing_sent_while_joining_is_told_once_joined(shared: Net) -> None:
    net = shared
    room = net.join(1)["joinKey"]
    net.take(1)
    net.connect(2)
    net.send(2, {"type": "init", "v": 2, "joinKey": room})
    net.send(2, TYPING)
    assert net.take(1) == []
    net.answer()
    assert [event["type"] for event in net.take(1)] == ["joined", "typing"]
    assert [event["type"] for event in net.take(2)] == ["init"]


def test_typing_sent_while_joining_counts_against_the_rate(clock: FakeClock) -> None:
    limits = CoreLimits(messages_per_second=0.001, message_burst=2, max_rate_strikes=5)
    net = Net(ChatCore(clock=clock, new_join_key=keys().__next__, limits=limits))
    room = net.join(1)["joinKey"]
    net.connect(2)
    net.send(2, {"type": "init", "v": 2, "joinKey": room})  # (one of the 2)
    net.send(2, TYPING)  # (the other: in no room yet, it is taken as any request)
    net.answer()
    assert typings(net.take(1)) == [2]
    net.take(2)
    net.send(2, {"type": "talk", "payload": "none left"})
    assert net.take(2) == [v2_error(problems.RATE_LIMITED)]


def test_a_closing_connections_typing_is_dropped(clock: FakeClock) -> None:
    limits = CoreLimits(messages_per_second=0.001, message_burst=1, max_rate_strikes=1)
    net = Net(LocalChat(clock=clock, new_join_key=keys().__next__, limits=limits))
    room = net.join(1)["joinKey"]
    net.join(2, joinKey=room)
    net.take(1)
    net.take(2)
    for _ in range(3):
        net.send(2, {"type": "talk", "payload": "too fast"})
    assert 2 in net.closed
    net.send(2, TYPING)
    assert net.take(1) == []


# Other processes (a shared log)


def test_the_shared_log_is_told_once_per_typing_told(shared: Net) -> None:
    room = room_of_three(shared)
    shared.send(1, TYPING)
    shared.send(1, TYPING)
    assert told(shared) == [Typing(room, 1)]


def test_the_typing_of_a_lone_member_still_goes_to_the_other_processes(shared: Net) -> None:
    room = shared.join(1)["joinKey"]
    shared.send(1, TYPING)
    assert shared.take(1) == []
    assert told(shared) == [Typing(room, 1)]


def test_typing_heard_from_another_process_is_told_to_the_members_here_but_the_users_own(
    net: Net, clock: FakeClock
) -> None:
    first = net.join(1, name="Ada")
    room = first["joinKey"]
    net.join(2, joinKey=room, name="Bob")
    net.connect(3)
    net.send(3, {"type": "init", "joinKey": room})  # a seed member
    for connection in (1, 2, 3):
        net.take(connection)
    net.do(net.core.log_result(TypingHeard(room, "elsewhere", 1)))
    assert net.take(2) == [{"type": "typing", "userId": 1}]
    assert net.take(1) == net.take(3) == []
    net.do(net.core.log_result(TypingHeard("not-held", "elsewhere", 1)))  # (a room not held here: nothing)
    assert net.take(2) == []


def test_typing_heard_starts_the_users_interval_here_and_is_never_dropped(shared: Net, clock: FakeClock) -> None:
    net = shared
    room = room_of_three(net)
    net.do(net.core.log_result(TypingHeard(room, "elsewhere", 1)))
    clock.now += 1
    net.send(1, TYPING)  # (the same user, here: within the interval of what was heard)
    net.do(net.core.log_result(TypingHeard(room, "elsewhere", 1)))  # (the other process kept to its interval)
    assert typings(net.take(2)) == [1, 1]
    assert told(net) == []


def test_typing_heard_of_a_user_not_in_the_room_is_dropped_and_kept_nowhere(net: Net) -> None:
    room = room_of_three(net)
    net.do(net.core.log_result(TypingHeard(room, "elsewhere", 9)))  # (its presence news lost, or it left since)
    assert net.take(1) == net.take(2) == []
    assert 9 not in net.core._rooms[room].typed


def test_a_users_typing_time_goes_with_the_user(net: Net) -> None:
    room = room_of_three(net)
    net.do(net.core.log_result(PresenceHeard(room, 1, "elsewhere", 9, True, "Di")))
    net.send(2, TYPING)
    net.do(net.core.log_result(TypingHeard(room, "elsewhere", 9)))
    assert typings(net.take(1)) == [2, 9]
    held = net.core._rooms[room]
    assert set(held.typed) == {2, 9}
    net.disconnect(2)
    net.do(net.core.log_result(PresenceHeard(room, 2, "elsewhere", 9, False, None)))
    assert presence_kinds(net.take(1)) == [("left", 2), ("left", 9)]
    assert held.typed == {}
