"""Rooms a teacher controls, in the pure core: owner and moderators, edit, delete, title, lock, remove, end, retention.

Each rule is judged by the log (`chatcore.control.judge`, here the memory log's) and applied in the log's order;
version-2 members are told, seed members never see a change, and a deleted talk's text is gone.
"""

from __future__ import annotations

from typing import Any

import pytest

from chatcore import ChatCore, CoreLimits, LoggedTalk, SessionState, closecodes, problems
from chatcore.actions import Moderate
from chatcore.control import OWNER, Delete, Edit, End, Lock, Remove, RoomControl, SetRole, TalkFacts, Title, judge
from chatcore.results import ChangeArrived, Changed, LoggedChange, TalkArrived
from corekit import FakeClock, LocalChat, keys, v2_error
from v2kit import Net


@pytest.fixture
def net(core: ChatCore) -> Net:
    return Net(core)


def class_of(net: Net, *, students: int = 1) -> str:
    """Connection 1 is the teacher (owner, user 1); connections 2, 3 … students (users 2, 3 …)."""
    room = net.join(1, name="Teacher")["joinKey"]
    for n in range(students):
        net.join(2 + n, joinKey=room, name=f"Student {n + 1}")
    for connection in range(1, 2 + students):
        net.take(connection)
    return str(room)


PRESENCE = {"joined", "left", "renamed"}


def say(net: Net, connection: int, payload: str) -> dict[str, Any]:
    net.take(connection)
    net.send(connection, {"type": "talk", "payload": payload})
    (talk,) = [event for event in net.take(connection) if event["type"] == "talk"]
    return talk


def ask(net: Net, connection: int, **event: Any) -> list[dict[str, Any]]:
    """Send a request; what the connection received then, but for presence news."""
    net.take(connection)
    net.send(connection, event)
    return [event for event in net.take(connection) if event["type"] not in PRESENCE]


def refused(net: Net, connection: int, **event: Any) -> str:
    (error,) = ask(net, connection, **event)
    assert error["type"] == "error", error
    assert error["request"] == event["type"]
    return str(error["message"])


def held_text(core: ChatCore) -> list[str | None]:
    """Every talk's text the memory log and the rooms in memory hold."""
    assert isinstance(core, LocalChat)
    texts = [talk.payload for room in core.memory_log._rooms.values() for talk in room.talks]
    texts += [talk.payload for room in core._held.rooms.values() for talk in room.history]
    return texts


# The rules, as the log judges them


def test_the_rules_table() -> None:
    control = RoomControl(moderators=frozenset({2}))
    own, others = TalkFacts(3, False), TalkFacts(4, False)
    assert judge(control, 3, Edit(1, "x"), talk=own) is None
    assert judge(control, 3, Edit(1, "x"), talk=others) == problems.EDIT_OWN_ONLY
    assert judge(control, OWNER, Edit(1, "x"), talk=others) == problems.EDIT_OWN_ONLY
    assert judge(control, 3, Edit(1, "x"), talk=TalkFacts(3, True)) == problems.MESSAGE_DELETED
    assert judge(control, 3, Edit(1, "x"), talk=None) == problems.NO_SUCH_MESSAGE
    assert judge(control, 3, Delete(1), talk=others) == problems.DELETE_OWN_ONLY
    assert judge(control, 2, Delete(1), talk=others) is None
    assert judge(control, 3, Title("x")) is not None
    assert judge(control, 2, Lock(True)) is None
    assert judge(control, 2, End()) == problems.OWNER_ONLY.format(doing="end it")
    assert judge(control, OWNER, End()) is None
    assert judge(control, 2, SetRole(3, True), last_user_id=4) == problems.OWNER_ONLY.format(doing="change roles")
    assert judge(control, OWNER, SetRole(OWNER, False), last_user_id=4) == problems.OWNER_ROLE
    assert judge(control, OWNER, SetRole(9, True), last_user_id=4) == problems.NO_SUCH_USER
    assert judge(control, 2, Remove(OWNER), last_user_id=4) == problems.REMOVE_OWNER
    assert judge(control, 2, Remove(2), last_user_id=4) == problems.REMOVE_SELF
    assert judge(control.after(SetRole(3, True), 1), 2, Remove(3), last_user_id=4) == (
        problems.OWNER_ONLY.format(doing="remove a moderator")
    )
    assert judge(control, OWNER, Remove(2, ban=True), last_user_id=4) is None
    assert judge(control, 3, Remove(4), last_user_id=4) == problems.STAFF_ONLY.format(doing="remove people")
    removed = control.after(Remove(2, ban=True), 1)
    assert (removed.moderators, removed.banned, removed.seq) == (frozenset(), frozenset({2}), 1)


# Owner and roles


def test_the_starter_owns_the_room_and_keeps_it_with_its_token(net: Net) -> None:
    first = net.join(1, name="Teacher")
    assert first["role"] == "owner"
    student = net.join(2, joinKey=first["joinKey"], name="Ada")
    assert student["role"] == "member"
    assert [member["role"] for member in student["members"]] == ["owner", "member"]
    other_device = net.join(3, joinKey=first["joinKey"], token=first["token"])
    assert (other_device["userId"], other_device["role"]) == (1, "owner")


def test_the_owner_makes_moderators_and_back_and_everyone_is_told(net: Net) -> None:
    room = class_of(net, students=2)
    net.connect(9)
    net.send(9, {"type": "init", "joinKey": room})  # a seed client
    for connection in (2, 3, 9):
        net.take(connection)
    ask(net, 1, type="role", userId=2, role="moderator")
    told = {"type": "role", "userId": 2, "role": "moderator", "by": 1}
    assert net.take(2) == net.take(3) == [told]
    assert net.take(9) == []
    assert net.join(4, joinKey=room)["members"][1]["role"] == "moderator"
    assert refused(net, 2, type="role", userId=3, role="moderator") == (
        problems.OWNER_ONLY.format(doing="change roles").text
    )
    assert ask(net, 1, type="role", userId=2, role="member")[0]["role"] == "member"


# Edit and delete


def test_a_user_edits_its_own_talk_and_every_replay_shows_the_latest_text(net: Net, clock: FakeClock) -> None:
    room = class_of(net)
    talk = say(net, 2, "2 + 2 = 5")
    net.take(1)
    clock.now += 5
    edited = ask(net, 2, type="edit", offset=talk["offset"], payload="2 + 2 = 4")
    assert edited == [{"type": "edited", "offset": talk["offset"], "payload": "2 + 2 = 4", "edited": clock.now}]
    assert net.take(1) == edited
    replay = net.join(5, joinKey=room)
    (shown,) = net.take(5)
    assert (shown["payload"], shown["edited"], shown["time"]) == ("2 + 2 = 4", clock.now, talk["time"])
    assert replay["offset"] == talk["offset"]
    net.connect(6)
    net.send(6, {"type": "init", "joinKey": room})
    assert [event.get("payload") for event in net.take(6)[1:]] == ["2 + 2 = 4"]  # a seed client: the latest text
    assert refused(net, 1, type="edit", offset=talk["offset"], payload="no") == problems.EDIT_OWN_ONLY.text
    assert "2 + 2 = 5" not in held_text(net.core)


def test_a_user_deletes_its_own_talk_staff_delete_anyones_and_the_text_is_gone(net: Net) -> None:
    room = class_of(net, students=2)
    mine = say(net, 2, "secret one")
    theirs = say(net, 3, "secret two")
    for connection in (1, 2, 3):
        net.take(connection)
    assert refused(net, 2, type="delete", offset=theirs["offset"]) == problems.DELETE_OWN_ONLY.text
    assert ask(net, 2, type="delete", offset=mine["offset"]) == [{"type": "deleted", "offset": mine["offset"], "by": 2}]
    assert net.take(1) == [{"type": "deleted", "offset": mine["offset"], "by": 2}]
    net.take(3)
    ask(net, 1, type="delete", offset=theirs["offset"])
    assert net.take(3) == [{"type": "deleted", "offset": theirs["offset"], "by": 1}]
    assert refused(net, 1, type="delete", offset=theirs["offset"]) == problems.MESSAGE_DELETED.text
    assert refused(net, 2, type="edit", offset=mine["offset"], payload="x") == problems.MESSAGE_DELETED.text
    assert not {"secret one", "secret two"} & set(filter(None, held_text(net.core)))
    net.join(5, joinKey=room)
    assert net.take(5)[0] == {
        "type": "talk", "offset": mine["offset"], "userId": 2, "time": mine["time"], "deleted": True,
        "payload": None, "name": None,
    }
    net.send(5, {"type": "history", "before": theirs["offset"] + 1})
    (history,) = net.take(5)
    assert [talk.get("deleted") for talk in history["talks"]] == [True, True]
    net.connect(6)
    net.send(6, {"type": "init", "joinKey": room})
    assert [event["type"] for event in net.take(6)] == ["init"]  # a seed client: deleted talks are absent


# Title and lock


def test_staff_set_and_clear_the_title_within_its_rules(net: Net) -> None:
    room = class_of(net)
    assert refused(net, 2, type="room", title="Mine") == problems.STAFF_ONLY.format(doing="set its title").text
    assert ask(net, 1, type="room", title="  Math 7B ") == [
        {"type": "room", "title": "Math 7B", "locked": False, "by": 1}
    ]
    assert net.take(2)[0]["title"] == "Math 7B"
    assert net.join(3, joinKey=room)["room"] == {"title": "Math 7B", "locked": False}
    assert refused(net, 1, type="room", title="x" * 65) == problems.TITLE_LENGTH.format(limit=64).text
    assert refused(net, 1, type="room", title="a\nb") == problems.TITLE_CONTROL.text
    assert ask(net, 1, type="room", title=None)[0]["title"] is None


def test_a_locked_room_keeps_new_users_out_and_lets_its_users_back(net: Net) -> None:
    room = class_of(net)
    student = net.join(7, joinKey=room)
    net.disconnect(7)
    assert ask(net, 1, type="lock", locked=True) == [{"type": "room", "title": None, "locked": True, "by": 1}]
    net.connect(3)
    net.send(3, {"type": "init", "v": 2, "joinKey": room, "name": "Late"})
    (error,) = net.take(3)
    assert error["type"] == "error"
    assert error["message"] == problems.LOCKED.text
    net.connect(4)
    net.send(4, {"type": "init", "joinKey": room})  # a seed client
    assert net.take(4) == [{"type": "error", "message": error["message"], "payload": error["message"]}]
    assert net.join(5, joinKey=room, token=student["token"])["userId"] == student["userId"]
    ask(net, 1, type="lock", locked=False)
    assert net.join(6, joinKey=room)["userId"] == 4  # the refused joins handed out no user id


# Remove, ban, end


def test_staff_remove_a_user_whose_connections_close_with_4403(net: Net) -> None:
    room = class_of(net, students=2)
    token = net.join(5, joinKey=room, name="Student 1 again")  # a second connection of a third user
    net.take(1)
    ask(net, 1, type="role", userId=2, role="moderator")
    for connection in (2, 3, 5):
        net.take(connection)
    assert refused(net, 2, type="remove", userId=1) == problems.REMOVE_OWNER.text
    assert net.take(2) == []
    ask(net, 2, type="remove", userId=token["userId"])
    assert net.closed[5] == closecodes.REMOVED
    assert net.reasons[5] == "removed from this chat"
    told = {"type": "removed", "userId": token["userId"], "ban": False, "by": 2}
    assert net.take(1) == net.take(3) == [told]
    assert net.take(5) == []
    back = net.join(6, joinKey=room, token=token["token"])  # without a ban, the token comes back
    assert back["userId"] == token["userId"]


def test_a_ban_keeps_the_token_out_for_good_and_takes_the_moderator_role(net: Net) -> None:
    room = class_of(net)
    student = net.join(3, joinKey=room)
    ask(net, 1, type="role", userId=student["userId"], role="moderator")
    ask(net, 1, type="remove", userId=student["userId"], ban=True)
    assert net.closed[3] == closecodes.REMOVED
    net.connect(4)
    net.send(4, {"type": "init", "v": 2, "joinKey": room, "token": student["token"]})
    assert net.take(4)[0]["message"] == problems.BANNED.text
    members = net.join(5, joinKey=room)["members"]
    assert all(member["role"] != "moderator" for member in members)


def test_the_owner_ends_the_room_every_connection_closes_with_4410_and_the_link_is_dead(net: Net) -> None:
    room = class_of(net)
    net.connect(3)
    net.send(3, {"type": "init", "joinKey": room})  # a seed client
    say(net, 2, "homework")
    assert refused(net, 2, type="end") == problems.OWNER_ONLY.format(doing="end it").text
    net.send(1, {"type": "end"})
    assert net.closed == {1: closecodes.ENDED, 2: closecodes.ENDED, 3: closecodes.ENDED}
    assert set(net.reasons.values()) == {"this chat was ended"}
    net.connect(4)
    net.send(4, {"type": "init", "v": 2, "joinKey": room})
    assert net.take(4)[-1]["message"] == problems.NOT_FOUND.text
    assert held_text(net.core) == []


# Shape, rate, order


def test_malformed_changes_are_refused_with_their_request_type(net: Net) -> None:
    room = class_of(net)
    assert refused(net, 1, type="delete", offset="7") == problems.BAD_MESSAGE_NUMBER.text
    assert refused(net, 1, type="lock", locked="yes") == problems.BAD_LOCK.text
    assert refused(net, 1, type="role", userId=2, role="owner") == problems.BAD_ROLE.text
    assert refused(net, 1, type="remove", userId=0) == problems.BAD_MEMBER_NUMBER.text
    assert refused(net, 1, type="remove", userId=2, ban=1) == problems.BAD_BAN.text
    assert refused(net, 1, type="edit", offset=99, payload="x") == problems.NO_SUCH_MESSAGE.text
    net.connect(9)
    net.send(9, {"type": "init", "joinKey": room})
    net.take(9)
    net.send(9, {"type": "end"})  # a seed client: no such request
    assert net.take(9)[0]["message"] == problems.UNKNOWN_REQUEST.text
    assert net.closed == {}


def test_changes_count_against_the_rate_limit(clock: FakeClock) -> None:
    net = Net(LocalChat(clock=clock, new_join_key=keys().__next__, limits=CoreLimits(message_burst=3)))
    class_of(net)
    for _ in range(3):
        ask(net, 1, type="lock", locked=True)
    (error,) = ask(net, 1, type="lock", locked=False)
    assert error["message"] == problems.RATE_LIMITED.text


def test_a_change_from_elsewhere_waits_for_the_talk_it_follows_and_for_the_changes_before_it(
    core: ChatCore, clock: FakeClock
) -> None:
    net = Net(core)
    room = class_of(net)
    talk = say(net, 2, "first")
    net.take(1)
    later = LoggedTalk(room, talk["offset"] + 1, 2, clock.now, "second")
    edit = LoggedChange(room, 2, later.offset, 2, clock.now, Edit(later.offset, "2nd"), later.edit("2nd", clock.now))
    title = LoggedChange(room, 1, talk["offset"], 1, clock.now, Title("Math"))
    net.do(core.log_result(ChangeArrived(edit)))  # before the talk it follows, and before change 1
    assert net.take(1) == []
    net.do(core.log_result(TalkArrived(later)))
    assert [event["type"] for event in net.take(1)] == ["talk"]
    net.do(core.log_result(ChangeArrived(title)))
    assert [event["type"] for event in net.take(1)] == ["room", "edited"]
    net.do(core.log_result(ChangeArrived(title)))  # heard again: applied once
    assert net.take(1) == []


# Retention


def test_retention_erases_old_talks_and_ends_rooms_quiet_since(net: Net, clock: FakeClock) -> None:
    quiet = class_of(net)
    busy = net.join(5, name="Other teacher")["joinKey"]
    say(net, 5, "old news")
    clock.now += 100
    say(net, 5, "fresh")
    net.do(net.core.expire(clock.now - 50))
    assert net.closed == {1: closecodes.ENDED, 2: closecodes.ENDED}
    net.join(6, joinKey=busy)
    assert [event["payload"] for event in net.take(6)] == ["fresh"]
    assert "old news" not in held_text(net.core)
    net.connect(7)
    net.send(7, {"type": "init", "v": 2, "joinKey": quiet})
    assert net.take(7)[-1]["message"] == problems.NOT_FOUND.text


def test_the_log_answers_its_own_change_numbered_after_its_latest_talk(clock: FakeClock) -> None:
    from chatcore import AddUser, Append, MemoryLog

    log = MemoryLog(10)
    log.answer(AddUser(1, "k", clock.now))
    log.answer(Append(2, "k", 1, clock.now, "hi"))
    answer = log.answer(Moderate(3, "k", 1, clock.now, Title("T")))
    assert answer == Changed(3, LoggedChange("k", 1, 1, 1, clock.now, Title("T")))


def test_a_join_asked_while_the_room_ends_is_told_it_is_gone(clock: FakeClock) -> None:
    from corekit import StoredChat

    net = Net(StoredChat(clock=clock, new_join_key=keys().__next__))
    room = net.join(1, name="Teacher")["joinKey"]
    net.send(1, {"type": "end"})
    net.connect(2)
    net.send(2, {"type": "init", "v": 2, "joinKey": room})
    net.answer()
    assert net.closed == {1: closecodes.ENDED}
    assert net.take(2) == [v2_error(problems.NOT_FOUND)]
    net.send(2, {"type": "init", "v": 2, "joinKey": room})
    net.answer()
    assert net.take(2)[-1]["message"] == problems.NOT_FOUND.text


def test_a_talk_deleted_before_it_reached_this_process_is_never_shown_to_seed_clients(
    net: Net, clock: FakeClock
) -> None:
    room = class_of(net)
    net.connect(9)
    net.send(9, {"type": "init", "joinKey": room})  # a seed client
    net.take(9)
    net.take(1)
    erased = LoggedTalk(room, 1, 2, clock.now, "gone").erased()
    net.do(net.core.log_result(TalkArrived(erased)))
    assert net.take(9) == []
    assert net.take(1) == [{
        "type": "talk", "offset": 1, "userId": 2, "time": clock.now, "deleted": True, "payload": None, "name": None,
    }]


def test_the_memory_log_never_forgets_the_owners_token_nor_a_banned_one(clock: FakeClock) -> None:
    net = Net(LocalChat(clock=clock, new_join_key=keys().__next__, limits=CoreLimits(remembered_users=1)))
    owner = net.join(1, name="Teacher")
    room = owner["joinKey"]
    banned = net.join(2, joinKey=room)
    net.send(1, {"type": "remove", "userId": banned["userId"], "ban": True})
    for connection in (1, 3, 4):
        if connection != 1:
            net.join(connection, joinKey=room)
        net.disconnect(connection)  # the owner leaves too, then more users than are remembered
    net.connect(5)
    net.send(5, {"type": "init", "v": 2, "joinKey": room, "token": banned["token"]})
    assert net.take(5)[0]["message"] == problems.BANNED.text
    assert net.join(6, joinKey=room, token=owner["token"])["role"] == "owner"


def test_a_join_the_log_took_before_a_ban_made_elsewhere_is_refused_as_the_log_would(clock: FakeClock) -> None:
    from corekit import StoredChat

    net = Net(StoredChat(clock=clock, new_join_key=keys().__next__))
    room = net.join(1, name="Teacher")["joinKey"]
    student = net.join(2, joinKey=room)
    net.disconnect(2)
    net.connect(3)
    net.send(3, {"type": "init", "v": 2, "joinKey": room, "token": student["token"]})
    ban = LoggedChange(room, 1, 0, 1, clock.now, Remove(student["userId"], ban=True))
    net.do(net.core.log_result(ChangeArrived(ban)))  # judged by the log after the join: told first
    net.answer()
    assert net.closed == {}
    assert net.take(3)[0]["message"] == problems.BANNED.text
    assert net.core.state_of(3) is SessionState.LOBBY


def test_a_change_refused_for_its_rate_says_which_request(clock: FakeClock) -> None:
    net = Net(LocalChat(clock=clock, new_join_key=keys().__next__, limits=CoreLimits(message_burst=1)))
    class_of(net)
    net.send(1, {"type": "lock", "locked": True})
    (error,) = ask(net, 1, type="delete", offset=1)
    assert (error["message"], error["request"]) == (problems.RATE_LIMITED.text, "delete")


def test_a_client_coming_back_after_an_offset_is_shown_what_changed_at_or_below_it(net: Net) -> None:
    room = class_of(net)
    kept, edited, deleted = (say(net, 2, text) for text in ("kept", "typo", "oops"))
    ask(net, 2, type="edit", offset=edited["offset"], payload="fixed")
    ask(net, 2, type="delete", offset=deleted["offset"])
    later = say(net, 2, "later")
    reply = net.join(5, joinKey=room, after=deleted["offset"])
    assert reply["older"] is False
    replay = net.take(5)
    assert [(talk["offset"], talk["payload"]) for talk in replay] == [
        (edited["offset"], "fixed"), (deleted["offset"], None), (later["offset"], "later"),
    ]
    assert kept["offset"] not in [talk["offset"] for talk in replay]


def test_a_title_may_hold_any_printable_text_but_no_line_break(net: Net) -> None:
    class_of(net)
    for title in ("👨\u200d👩\u200d👧 family", "Math\u00a07B", "数学"):
        assert ask(net, 1, type="room", title=title)[0]["title"] == title
    for title in ("a\u2028b", "a\tb"):
        assert refused(net, 1, type="room", title=title) == problems.TITLE_CONTROL.text
