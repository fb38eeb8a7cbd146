"""Sign-in tokens in the pure core: who may join or start rooms, one user per subject, the token's name.

The token itself is checked by the driver (``transports.identity``); here a table stands in for it.
"""

from __future__ import annotations

import pytest

from chatcore import LoggedTalk, PresenceHeard, PresenceSnapshot, TalkArrived, problems
from chatcore.identity import ALL, Identity, NameKey, SignIn, folded
from chatcore.problems import Problem
from corekit import FakeClock, LocalChat, StoredChat, keys
from v2kit import Net

TOKENS = {
    "teacher": Identity("t-1", "Ms. Lovelace", ALL, create=True),
    "student": Identity("s-1", "Ada"),
    "elsewhere": Identity("s-2", "Bo", frozenset({"no-such-room"})),
    "student, married": Identity("s-1", "Ada L."),
    "namesake": Identity("s-3", "ADA"),
}


def verify(token: str) -> Identity | Problem:
    return TOKENS.get(token, problems.SIGN_IN_REFUSED)


def net_with(clock: FakeClock, *, required: bool, name_key: NameKey = folded) -> Net:
    return Net(LocalChat(
        clock=clock, new_join_key=keys().__next__, sign_in=SignIn(verify, required), name_key=name_key
    ))


def refusal(net: Net, connection: int, **init: object) -> str:
    net.connect(connection)
    net.send(connection, {"type": "init", **init})
    (error,) = net.take(connection)
    assert error["type"] == "error", error
    return str(error["message"])


@pytest.mark.parametrize("required", [False, True])
def test_a_signed_in_user_is_one_user_on_every_device_with_the_tokens_name(clock: FakeClock, required: bool) -> None:
    net = net_with(clock, required=required)
    room = net.join(1, auth="teacher", name="someone else")["joinKey"]
    first = net.join(2, joinKey=room, auth="student")
    assert (first["userId"], first["name"]) == (2, "Ada")
    again = net.join(3, joinKey=room, auth="student")  # another device, no resume token
    assert (again["userId"], again["resumed"], again["name"]) == (2, True, "Ada")
    net.send(3, {"type": "name", "name": "Not Ada"})
    assert net.take(3)[-1]["code"] == "not-allowed"


def test_a_bad_token_is_refused_without_being_echoed(clock: FakeClock) -> None:
    net = net_with(clock, required=False)
    message = refusal(net, 1, v=2, auth="forged.token.text")
    assert message == problems.SIGN_IN_REFUSED.text
    assert "forged" not in message
    assert net.core.state_of(1).name == "LOBBY"


def test_required_sign_in_keeps_out_seed_clients_and_lets_only_creators_start_rooms(clock: FakeClock) -> None:
    net = net_with(clock, required=True)
    assert refusal(net, 1) == problems.SIGN_IN_NEEDED.text  # a seed client cannot present a token
    assert refusal(net, 2, v=2) == problems.SIGN_IN_NEEDED.text
    assert refusal(net, 3, v=2, auth="student") == problems.NO_CREATE.text
    room = net.join(4, auth="teacher")["joinKey"]
    assert refusal(net, 5, v=2, joinKey=room, auth="elsewhere") == problems.NOT_THIS_ROOM.text
    assert net.join(6, joinKey=room, auth="student")["name"] == "Ada"


def test_optional_sign_in_lets_anonymous_users_join_and_start_rooms(clock: FakeClock) -> None:
    net = net_with(clock, required=False)
    room = net.join(1, name="Anon")["joinKey"]
    assert net.join(2, joinKey=room, auth="student")["userId"] == 2
    net.connect(3)
    net.send(3, {"type": "init", "joinKey": room})
    assert net.take(3)[0]["type"] == "init"


def test_a_ban_of_a_signed_in_user_holds_on_every_device(clock: FakeClock) -> None:
    net = net_with(clock, required=False)
    room = net.join(1, auth="teacher")["joinKey"]
    student = net.join(2, joinKey=room, auth="student")
    net.send(1, {"type": "remove", "userId": student["userId"], "ban": True})
    assert refusal(net, 3, v=2, joinKey=room, auth="student") == problems.BANNED.text


def test_signed_in_users_are_marked_verified_for_version_2_clients_only(clock: FakeClock) -> None:
    net = net_with(clock, required=False)
    teacher = net.join(1, auth="teacher")
    room = teacher["joinKey"]
    assert teacher["verified"] is True
    net.connect(9)
    net.send(9, {"type": "init", "joinKey": room})  # a seed client
    assert "verified" not in net.take(9)[0]
    anon = net.join(2, joinKey=room, name="Anon")
    assert "verified" not in anon
    assert anon["members"] == [
        {"userId": 1, "name": "Ms. Lovelace", "role": "owner", "verified": True},
        {"userId": 2, "name": None, "role": "member"},  # the seed client
        {"userId": 3, "name": "Anon", "role": "member"},
    ]
    assert net.take(1)[-1] == {"type": "joined", "userId": 3, "name": "Anon"}
    net.join(3, joinKey=room, auth="student")
    joined = {"type": "joined", "userId": 4, "name": "Ada", "verified": True}
    assert net.take(1) == net.take(2) == [joined]
    assert net.take(9) == []
    net.send(1, {"type": "talk", "payload": "signed"})
    net.send(2, {"type": "talk", "payload": "anonymous"})
    heard = net.take(2)
    assert [talk.get("verified") for talk in heard] == [True, None]
    assert heard[0] == {
        "type": "talk", "payload": "signed", "userId": 1, "time": heard[0]["time"], "offset": 1,
        "name": "Ms. Lovelace", "verified": True,
    }
    assert all("verified" not in talk for talk in net.take(9))
    net.join(4, joinKey=room, name="Late")
    assert [talk.get("verified") for talk in net.take(4)] == [True, None]  # the replay
    net.send(4, {"type": "history"})
    (history,) = net.take(4)
    assert [talk.get("verified") for talk in history["talks"]] == [True, None]
    net.connect(10)
    net.send(10, {"type": "init", "joinKey": room})
    assert all("verified" not in event for event in net.take(10))  # a seed joiner's replay


def test_a_signed_in_user_resuming_with_its_token_alone_stays_verified(clock: FakeClock) -> None:
    net = net_with(clock, required=False)
    room = net.join(1, name="Anon")["joinKey"]
    signed = net.join(2, joinKey=room, auth="student")
    net.disconnect(2)
    again = net.join(3, joinKey=room, token=signed["token"])
    assert (again["userId"], again["resumed"], again.get("verified")) == (2, True, True)
    net.take(1)
    net.send(3, {"type": "talk", "payload": "still me"})
    assert net.take(1)[0]["verified"] is True


def test_users_signed_in_on_other_processes_are_marked_verified(clock: FakeClock) -> None:
    net = Net(StoredChat(clock=clock, new_join_key=keys().__next__, sign_in=SignIn(verify, False)))
    me = net.join(1, name="Me")
    room = me["joinKey"]
    net.do(net.core.log_result(PresenceHeard(room, 1, "other", 5, True, "Ada", verified=True)))
    net.do(net.core.log_result(PresenceHeard(room, 2, "other", 6, True, "Cy")))
    net.do(net.core.log_result(PresenceHeard(room, 3, "other", 5, None, "Ada L.", verified=True)))
    assert net.take(1) == [
        {"type": "joined", "userId": 5, "name": "Ada", "verified": True},
        {"type": "joined", "userId": 6, "name": "Cy"},
        {"type": "renamed", "userId": 5, "name": "Ada L.", "verified": True},
    ]
    net.do(net.core.log_result(
        PresenceSnapshot(room, 4, (("other", 6, "Cy"), ("other", 7, "Bo")), verified=frozenset({7}))
    ))
    assert net.take(1) == [
        {"type": "left", "userId": 5},
        {"type": "joined", "userId": 7, "name": "Bo", "verified": True},
    ]
    net.do(net.core.log_result(TalkArrived(LoggedTalk(room, 1, 7, 1.0, "hi", "Bo", verified=True))))
    assert net.take(1)[0]["verified"] is True
    late = net.join(2, joinKey=room)
    assert [member.get("verified") for member in late["members"]] == [None, None, None, True]


@pytest.mark.parametrize("name", ["Ada", "ada", "ADA", "\uff21\uff24\uff21", " \uff41da "])
def test_an_unsigned_user_cannot_join_with_a_signed_in_members_name(clock: FakeClock, name: str) -> None:
    net = net_with(clock, required=False)
    room = net.join(1, auth="teacher")["joinKey"]
    net.join(2, joinKey=room, auth="student")  # "Ada"
    assert refusal(net, 3, v=2, joinKey=room, name=name) == problems.TAKEN.text
    assert net.core.state_of(3).name == "LOBBY"
    assert net.join(4, joinKey=room, name="Adam")["name"] == "Adam"


def test_an_unsigned_user_cannot_take_a_signed_in_members_name_by_renaming(clock: FakeClock) -> None:
    net = net_with(clock, required=False)
    room = net.join(1, auth="teacher")["joinKey"]
    net.join(2, joinKey=room, auth="student")
    anon = net.join(3, joinKey=room, name="Anon")
    net.take(1)
    net.send(3, {"type": "name", "name": "\uff21\uff24\uff21"})
    assert [event["message"] for event in net.take(3)] == [problems.TAKEN.text]
    assert net.take(1) == []  # nobody was told of a rename
    net.send(3, {"type": "name", "name": "Grace"})
    assert net.take(3)[-1]["name"] == "Grace"
    assert refusal(net, 4, v=2, joinKey=room, token=anon["token"], name="ms. lovelace") == problems.TAKEN.text


def test_the_name_key_comes_from_outside_and_names_held_are_the_rooms_own(clock: FakeClock) -> None:
    # A stand-in for the confusables skeleton: the transports pass Unicode's (tests/transports/test_names.py).
    net = net_with(clock, required=False, name_key=lambda name: folded(name).replace("\u03b1", "a"))
    room = net.join(1, auth="teacher")["joinKey"]
    net.join(2, joinKey=room, auth="student")
    assert refusal(net, 3, v=2, joinKey=room, name="\u0391da") == problems.TAKEN.text  # a Greek capital alpha
    other = net.join(4, auth="teacher")["joinKey"]
    assert net.join(5, joinKey=other, name="Ada")["name"] == "Ada"  # no signed-in Ada there


def test_a_name_taken_before_its_signed_in_holder_came_stays_but_is_not_taken_again(clock: FakeClock) -> None:
    net = net_with(clock, required=False)
    room = net.join(1, auth="teacher")["joinKey"]
    early = net.join(2, joinKey=room, name="ada")
    assert net.join(3, joinKey=room, auth="student")["name"] == "Ada"  # the signed-in user wins
    net.disconnect(2)
    assert refusal(net, 4, v=2, joinKey=room, token=early["token"], name="ada") == problems.TAKEN.text
    assert net.join(5, joinKey=room, token=early["token"])["name"] == "ada"  # its kept name, not taken anew
    assert net.join(6, joinKey=room, auth="student")["name"] == "Ada"  # another device of the holder


def test_a_signed_in_user_resuming_with_its_token_alone_cannot_rename(clock: FakeClock) -> None:
    net = net_with(clock, required=False)
    room = net.join(1, name="Anon")["joinKey"]
    signed = net.join(2, joinKey=room, auth="student")
    net.disconnect(2)
    net.join(3, joinKey=room, token=signed["token"])
    net.take(1)
    net.send(3, {"type": "name", "name": "Mallory"})
    (error,) = net.take(3)
    assert (error["type"], error["message"]) == ("error", problems.NAME_FROM_SIGN_IN.text)
    assert net.take(1) == []  # nobody heard of a rename


def test_a_signed_in_user_resuming_by_its_token_alone_keeps_the_name_its_sign_in_gave(clock: FakeClock) -> None:
    net = net_with(clock, required=False)
    room = net.join(1, name="Anon")["joinKey"]
    signed = net.join(2, joinKey=room, auth="student")
    net.disconnect(2)
    again = net.join(3, joinKey=room, token=signed["token"], name="Mallory")
    assert (again["userId"], again["resumed"], again["name"], again.get("verified")) == (2, True, "Ada", True)
    assert net.join(4, joinKey=room, auth="student")["name"] == "Ada"


def test_a_name_stays_held_while_any_signed_in_member_holds_it(clock: FakeClock) -> None:
    net = net_with(clock, required=False)
    room = net.join(1, auth="teacher")["joinKey"]
    net.join(2, joinKey=room, auth="namesake")  # "ADA"
    net.join(3, joinKey=room, auth="student")  # "Ada": signed-in users are never refused a name
    assert net.join(4, joinKey=room, auth="student, married")["name"] == "Ada L."  # the sign-in moves its name
    assert refusal(net, 5, v=2, joinKey=room, name="ada") == problems.TAKEN.text  # the namesake still holds it
    assert refusal(net, 6, v=2, joinKey=room, name="ada l.") == problems.TAKEN.text


def test_a_resume_token_never_makes_or_moves_an_identity(clock: FakeClock) -> None:
    net = net_with(clock, required=False)
    room = net.join(1, name="Owner")["joinKey"]
    mallory = net.join(2, joinKey=room, name="Mallory")  # anonymous; her token stays in a shared computer's page
    grace = net.join(3, joinKey=room, auth="student", token=mallory["token"])
    assert (grace["userId"], grace["resumed"], grace["verified"]) == (3, False, True)
    back = net.join(4, joinKey=room, token=mallory["token"])
    assert (back["userId"], back["name"], back.get("verified")) == (2, "Mallory", None)
    assert net.join(5, joinKey=room, auth="student", token=mallory["token"])["userId"] == 3
