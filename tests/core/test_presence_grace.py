"""Quiet presence in the pure core: a user whose last connection to a room drops is announced ``left`` (and the log
told, for the other processes) only once its grace is over without it coming back; the driver calls
`ChatCore.settle` when a `Wake` says. Removals and ends stay immediate; a grace of 0 is the old behaviour."""

from __future__ import annotations

from typing import Any

import pytest

from chatcore import ChatCore, CoreLimits, Forget, Presence, PresenceHeard, Wake, closecodes
from chatcore.control import End, Remove
from chatcore.results import ChangeArrived, LoggedChange, LoggedTalk, TalkArrived
from corekit import FakeClock, keys
from v2kit import Net

GRACE = 10.0


@pytest.fixture
def net(clock: FakeClock) -> Net:
    """A core with a grace of 10 s whose log the test answers, every notice and wake kept."""
    return Net(ChatCore(clock=clock, new_join_key=keys().__next__, limits=CoreLimits(presence_grace=GRACE)))


def presence(events: list[dict[str, Any]]) -> list[tuple[str, int]]:
    return [(event["type"], event["userId"]) for event in events if event["type"] in {"joined", "left", "renamed"}]


def notices(net: Net) -> list[Presence]:
    """The presence the log was told since the last call."""
    told = [action for action in net.shared if isinstance(action, Presence)]
    net.shared.clear()
    return told


def room_of_two(net: Net) -> tuple[str, dict[str, Any]]:
    """Ada (user 1, connection 1) and Bob (user 2, connection 2); Bob's init reply."""
    room = net.join(1, name="Ada")["joinKey"]
    bob = net.join(2, joinKey=room, name="Bob")
    net.take(1)
    net.take(2)
    notices(net)
    return str(room), bob


def settle(net: Net) -> None:
    net.do(net.core.settle())


def test_with_no_grace_left_is_announced_at_once_as_before(clock: FakeClock) -> None:
    net = Net(ChatCore(clock=clock, new_join_key=keys().__next__))
    room, _ = room_of_two(net)
    net.disconnect(2)
    assert presence(net.take(1)) == [("left", 2)]
    assert notices(net) == [Presence(room, 2, False, None)]
    assert net.wakes == []


def test_left_comes_only_once_the_grace_is_over(net: Net, clock: FakeClock) -> None:
    room, _ = room_of_two(net)
    net.disconnect(2)
    assert net.take(1) == []
    assert notices(net) == []  # (nor are the other processes told)
    assert net.wakes == [Wake(GRACE)]
    clock.now += GRACE - 1
    settle(net)  # (early: nothing yet, and when to call again)
    assert net.take(1) == []
    assert notices(net) == []
    assert net.wakes[-1] == Wake(1.0)
    clock.now += 1
    settle(net)
    assert net.take(1) == [{"type": "left", "userId": 2}]
    assert notices(net) == [Presence(room, 2, False, None)]
    settle(net)  # (once)
    assert net.take(1) == []
    assert notices(net) == []


def test_a_user_in_its_grace_is_still_a_member(net: Net) -> None:
    room, _ = room_of_two(net)
    net.disconnect(2)
    cy = net.join(3, joinKey=room, name="Cy")
    assert [member["userId"] for member in cy["members"]] == [1, 2, 3]


def test_coming_back_within_the_grace_shows_nothing(net: Net, clock: FakeClock) -> None:
    room, bob = room_of_two(net)
    net.disconnect(2)
    clock.now += GRACE / 2
    again = net.join(4, joinKey=room, token=bob["token"])
    assert (again["userId"], again["resumed"]) == (2, True)
    clock.now += GRACE
    settle(net)
    assert presence(net.take(1)) == []
    assert [notice.here for notice in notices(net)] == [True]  # (the log is told it is here: a new name travels)
    net.disconnect(4)  # a new grace, from now: the first one's end does not cut it short
    clock.now += GRACE - 1
    settle(net)
    assert net.take(1) == []
    clock.now += 1
    settle(net)
    assert net.take(1) == [{"type": "left", "userId": 2}]


def test_coming_back_within_the_grace_under_a_new_name_is_a_rename(net: Net, clock: FakeClock) -> None:
    room, bob = room_of_two(net)
    net.disconnect(2)
    net.join(4, joinKey=room, token=bob["token"], name="Robert")
    assert presence(net.take(1)) == [("renamed", 2)]


def test_the_last_connection_only_starts_a_grace(net: Net, clock: FakeClock) -> None:
    room, bob = room_of_two(net)
    net.join(4, joinKey=room, token=bob["token"])
    net.take(1)
    net.disconnect(2)
    assert net.wakes == []
    clock.now += GRACE
    settle(net)
    assert net.take(1) == []
    assert notices(net) == []


def test_the_room_is_held_while_a_user_is_in_its_grace(net: Net, clock: FakeClock) -> None:
    room = net.join(1)["joinKey"]
    net.disconnect(1)
    assert net.core.room_count == 1
    assert not [action for action in net.shared if isinstance(action, Forget)]
    clock.now += GRACE
    settle(net)
    assert net.core.room_count == 0
    assert net.shared[-2:] == [Presence(room, 1, False, None), Forget(room)]


def test_a_removed_user_is_announced_at_once(net: Net) -> None:
    room, _ = room_of_two(net)
    net.send(1, {"type": "remove", "userId": 2})
    net.answer()
    assert net.closed[2] == closecodes.REMOVED
    net.take(1)
    net.disconnect(2)
    assert net.take(1) == [{"type": "left", "userId": 2}]
    assert notices(net) == [Presence(room, 2, False, None)]


def test_removing_a_user_in_its_grace_ends_the_grace_at_once(net: Net, clock: FakeClock) -> None:
    room, _ = room_of_two(net)
    net.disconnect(2)
    net.send(1, {"type": "remove", "userId": 2, "ban": True})
    net.answer()
    assert presence(net.take(1)) == [("left", 2)]
    assert notices(net) == [Presence(room, 2, False, None)]
    clock.now += GRACE
    settle(net)
    assert net.take(1) == []
    assert notices(net) == []


@pytest.mark.parametrize("after_a_talk", [False, True], ids=["at-once", "due-after-a-talk-heard-later"])
def test_a_removal_from_another_process_that_ends_the_last_grace_lets_the_room_go(
    net: Net, clock: FakeClock, after_a_talk: bool
) -> None:
    room = net.join(1, name="Bob")["joinKey"]  # Bob, the only user here; Ada is on another process
    net.do(net.core.log_result(PresenceHeard(room, 1, "elsewhere", 2, True, "Ada")))
    net.take(1)
    net.disconnect(1)
    net.shared.clear()
    net.do(net.core.log_result(ChangeArrived(LoggedChange(room, 1, int(after_a_talk), 2, clock.now, Remove(1)))))
    if after_a_talk:  # (the removal waits for the talk it follows)
        assert net.shared == []
        assert net.core.room_count == 1
        net.do(net.core.log_result(TalkArrived(LoggedTalk(room, 1, 2, clock.now, "hi"))))
    assert net.shared == [Presence(room, 1, False, None), Forget(room)]
    assert net.core.room_count == 0


def test_an_end_tells_the_log_of_the_users_in_their_grace_at_once(net: Net, clock: FakeClock) -> None:
    room, _ = room_of_two(net)
    net.disconnect(2)
    net.do(net.core.log_result(ChangeArrived(LoggedChange(room, 1, 0, 0, clock.now, End()))))
    assert net.closed[1] == closecodes.ENDED
    assert notices(net) == [Presence(room, 2, False, None)]
    net.disconnect(1)  # (the room is gone: its members are not kept in a grace)
    assert notices(net) == [Presence(room, 1, False, None)]
    assert net.core.room_count == 0
    clock.now += GRACE
    settle(net)
    assert notices(net) == []


def test_a_lost_room_tells_the_log_of_the_users_in_their_grace_at_once(net: Net, clock: FakeClock) -> None:
    room, _ = room_of_two(net)
    net.disconnect(2)
    net.do(net.core.room_lost(room, "lost"))
    assert notices(net) == [Presence(room, 2, False, None)]
    net.disconnect(1)
    assert notices(net) == [Presence(room, 1, False, None)]
    clock.now += GRACE
    settle(net)
    assert notices(net) == []


def test_back_on_another_process_within_the_grace_shows_nothing(net: Net, clock: FakeClock) -> None:
    room, _ = room_of_two(net)
    net.disconnect(2)
    net.do(net.core.log_result(PresenceHeard(room, 1, "elsewhere", 2, True, "Bob")))
    clock.now += GRACE
    settle(net)
    assert net.take(1) == []  # (Bob is in the room, on the other process)
    assert notices(net) == [Presence(room, 2, False, None)]  # (but no longer here)
    net.do(net.core.log_result(PresenceHeard(room, 2, "elsewhere", 2, False, None)))
    assert net.take(1) == [{"type": "left", "userId": 2}]


def test_settle_is_bounded_and_asks_to_be_called_again_at_once(net: Net, clock: FakeClock) -> None:
    room = net.join(1)["joinKey"]
    for connection in range(2, 6):
        net.join(connection, joinKey=room)
    for connection in range(2, 6):
        net.disconnect(connection)
    net.take(1)
    clock.now += GRACE
    net.do(net.core.settle(limit=3))
    assert presence(net.take(1)) == [("left", 2), ("left", 3), ("left", 4)]
    assert net.wakes[-1] == Wake(0.0)
    settle(net)
    assert presence(net.take(1)) == [("left", 5)]


def test_a_clock_that_steps_back_ends_the_grace_rather_than_stretch_it(net: Net, clock: FakeClock) -> None:
    room_of_two(net)
    net.disconnect(2)
    clock.now -= 3600
    settle(net)
    assert net.take(1) == [{"type": "left", "userId": 2}]


def test_a_negative_grace_is_refused() -> None:
    with pytest.raises(ValueError, match="presence_grace"):
        CoreLimits(presence_grace=-1)
