"""Protocol version 2 in the pure core: names, presence, talk ids, resume and history; seed clients never see it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chatcore import (
    AddUser,
    ChatCore,
    Close,
    CoreLimits,
    Forget,
    NameSaved,
    PresenceHeard,
    Rename,
    UserAdded,
    closecodes,
    problems,
)
from chatcore.core import ROOM_LOST_REASON
from chatcore.problems import Problem
from chatcore.wire.v2 import HISTORY_MAX
from corekit import FakeClock, LocalChat, StoredChat, keys, v2_error
from v2kit import Net

SEED_TALK_FIELDS = {"type", "payload", "userId", "time"}


@pytest.fixture
def net(core: ChatCore) -> Net:
    return Net(core)


def talks(events: list[dict[str, Any]]) -> list[tuple[int, str]]:
    return [(event["offset"], event["payload"]) for event in events if event["type"] == "talk"]


def say(net: Net, connection: int, *payloads: str, ids: bool = False) -> None:
    for n, payload in enumerate(payloads):
        event = {"type": "talk", "payload": payload}
        if ids:
            event["id"] = f"{connection}-{n}-{payload}"
        net.send(connection, event)


# init


def test_the_init_reply_has_every_version_2_field(net: Net) -> None:
    reply = net.join(1, name="  Ada  ")
    assert reply.keys() == {
        "type", "joinKey", "userId", "v", "token", "name", "members", "resumed", "offset", "older", "role", "room",
        "maxPayloadChars",
    }
    assert reply["v"] == 2
    assert reply["userId"] == 1
    assert reply["name"] == "Ada"
    assert isinstance(reply["token"], str)
    assert len(reply["token"]) >= 16
    assert reply["members"] == [{"userId": 1, "name": "Ada", "role": "owner"}]
    assert (reply["role"], reply["room"]) == ("owner", {"title": None, "locked": False})
    assert (reply["resumed"], reply["offset"], reply["older"]) == (False, 0, False)
    assert reply["maxPayloadChars"] == 10_000  # (the core's default limit)


def test_tokens_differ_for_every_user(net: Net) -> None:
    first = net.join(1)
    second = net.join(2, joinKey=first["joinKey"])
    assert first["token"] != second["token"]


@pytest.mark.parametrize(
    ("init", "complaint"),
    [
        ({"v": 3}, problems.BAD_VERSION.format(versions="the original, 2")),
        ({"v": "2"}, problems.BAD_VERSION.format(versions="the original, 2")),
        ({"v": True}, problems.BAD_VERSION.format(versions="the original, 2")),
        ({"v": 2, "name": ""}, problems.NAME_LENGTH.format(limit=32)),
        ({"v": 2, "name": "   "}, problems.NAME_LENGTH.format(limit=32)),
        ({"v": 2, "name": "x" * 33}, problems.NAME_LENGTH.format(limit=32)),
        ({"v": 2, "name": "a\nb"}, problems.NAME_CONTROL),
        ({"v": 2, "name": "a\u0007"}, problems.NAME_CONTROL),
        ({"v": 2, "name": 7}, problems.NAME_NOT_TEXT),
        ({"v": 2, "token": 7}, problems.BAD_REJOIN),
        ({"v": 2, "after": -1}, problems.BAD_RESUME_POINT),
        ({"v": 2, "after": 1.5}, problems.BAD_RESUME_POINT),
        ({"v": 2, "after": True}, problems.BAD_RESUME_POINT),
    ],
)
def test_a_bad_init_field_is_an_error_and_the_connection_may_try_again(
    net: Net, init: dict[str, Any], complaint: Problem
) -> None:
    net.connect(1)
    net.send(1, {"type": "init", **init})
    (error,) = net.take(1)
    assert error["type"] == "error"
    assert (error["message"], error["code"]) == (complaint.text, complaint.code)  # (in the version asked for)
    net.send(1, {"type": "init", "v": 2, "name": "Ada"})
    (reply,) = net.take(1)
    assert (reply["type"], reply["userId"]) == ("init", 1)


def test_a_name_of_32_characters_after_trimming_is_accepted(net: Net) -> None:
    assert net.join(1, name=" " + "é" * 32 + " ")["name"] == "é" * 32


# Seed clients in a version-2 room


def test_seed_clients_see_only_seed_events_with_seed_fields(net: Net) -> None:
    room = net.join(1, name="Ada")["joinKey"]
    say(net, 1, "before", ids=True)
    net.connect(2)
    net.send(2, {"type": "init", "joinKey": room})
    net.join(3, joinKey=room, name="Cy")
    net.send(1, {"type": "name", "name": "Ada L"})
    say(net, 1, "after", ids=True)
    net.send(2, {"type": "talk", "payload": "from seed", "id": "ignored"})
    net.send(2, {"type": "name", "name": "Nope"})
    net.disconnect(3)
    seen = net.take(2)
    assert [event["type"] for event in seen] == ["init", "talk", "talk", "talk", "error"]
    assert seen[0].keys() == {"type", "joinKey", "userId"}
    assert all(event.keys() == SEED_TALK_FIELDS for event in seen[1:4])
    assert seen[4].keys() == {"type", "message", "payload"}
    ada = net.take(1)
    assert [event["type"] for event in ada] == [
        "talk", "joined", "joined", "renamed", "talk", "talk", "left"
    ]
    assert ada[1] == {"type": "joined", "userId": 2, "name": None}


def test_seed_clients_get_seed_errors_even_for_version_2_requests(net: Net) -> None:
    net.connect(1)
    net.send(1, {"type": "history", "before": 1})
    (error,) = net.take(1)
    text = problems.UNKNOWN_REQUEST.text
    assert error == {"type": "error", "message": text, "payload": text}


# Talks and their ids


def test_a_talk_carries_offset_name_and_id(net: Net) -> None:
    net.join(1, name="Ada")
    net.send(1, {"type": "talk", "payload": "hi", "id": "m1"})
    net.send(1, {"type": "talk", "payload": "no id"})
    first, second = net.take(1)
    assert first == {
        "type": "talk", "payload": "hi", "userId": 1, "time": first["time"], "offset": 1, "name": "Ada", "id": "m1"
    }
    assert "id" not in second
    assert second["offset"] == 2


def test_a_resent_id_is_answered_with_the_original_to_the_sender_only(net: Net) -> None:
    room = net.join(1, name="Ada")["joinKey"]
    net.join(2, joinKey=room)
    net.send(1, {"type": "talk", "payload": "hi", "id": "m1"})
    net.take(1), net.take(2)
    net.send(1, {"type": "talk", "payload": "hi again", "id": "m1"})
    (answer,) = net.take(1)
    assert (answer["offset"], answer["payload"]) == (1, "hi")
    assert net.take(2) == []
    say(net, 1, "next")
    assert talks(net.take(2)) == [(2, "next")]


def test_ids_are_per_user(net: Net) -> None:
    room = net.join(1)["joinKey"]
    net.join(2, joinKey=room)
    net.send(1, {"type": "talk", "payload": "a", "id": "same"})
    net.send(2, {"type": "talk", "payload": "b", "id": "same"})
    assert talks(net.take(1)) == [(1, "a"), (2, "b")]


def test_a_resend_on_a_new_connection_of_the_same_user_is_not_stored_again(net: Net) -> None:
    first = net.join(1)
    net.send(1, {"type": "talk", "payload": "hi", "id": "m1"})
    net.disconnect(1)
    net.join(2, joinKey=first["joinKey"], token=first["token"], after=1)
    net.send(2, {"type": "talk", "payload": "hi", "id": "m1"})
    assert talks(net.take(2)) == [(1, "hi")]
    say(net, 2, "next")
    assert talks(net.take(2)) == [(2, "next")]


@pytest.mark.parametrize("talk_id", ["", "x" * 65, "a\nb", 5])
def test_a_bad_id_is_an_error(net: Net, talk_id: object) -> None:
    net.join(1)
    net.send(1, {"type": "talk", "payload": "hi", "id": talk_id})
    (error,) = net.take(1)
    assert error["type"] == "error"
    assert error["message"] == problems.BAD_TALK_ID.format(limit=64).text


def test_a_refused_talk_is_named_by_its_id(clock: FakeClock) -> None:
    core = LocalChat(clock=clock, new_join_key=keys().__next__, limits=CoreLimits(max_payload_chars=5, message_burst=2))
    net = Net(core)
    net.join(1)
    net.send(1, {"type": "talk", "payload": "too long", "id": "long"})
    net.send(1, {"type": "talk", "payload": "ok", "id": "fast"})
    (too_long, too_fast) = net.take(1)
    assert too_long["type"] == "error"
    assert too_long["id"] == "long"
    assert (too_long["message"], too_long["code"]) == (problems.TOO_LONG.format(limit=5).text, "too-long")
    assert too_fast["type"] == "error"
    assert too_fast["id"] == "fast"
    assert (too_fast["message"], too_fast["code"]) == (problems.RATE_LIMITED.text, "rate-limited")


def test_an_error_for_a_talk_without_id_has_no_id(net: Net) -> None:
    net.join(1)
    net.send(1, {"type": "talk", "payload": 5})
    (error,) = net.take(1)
    assert error == v2_error(problems.MESSAGE_NOT_TEXT)


# Names


def test_a_rename_is_announced_to_every_version_2_member_and_names_later_talks(net: Net) -> None:
    room = net.join(1, name="Ada")["joinKey"]
    net.join(2, joinKey=room, name="Bob")
    net.take(1)
    say(net, 1, "before")
    net.send(1, {"type": "name", "name": " Ada L. "})
    say(net, 1, "after")
    for connection in (1, 2):
        events = net.take(connection)
        assert [(e["type"], e.get("name")) for e in events] == [
            ("talk", "Ada"), ("renamed", "Ada L."), ("talk", "Ada L.")
        ]
    net.join(3, joinKey=room)
    assert [e["name"] for e in net.take(3)] == ["Ada", "Ada L."]  # a talk keeps the name it was sent with


def test_a_talk_sent_right_after_a_rename_carries_the_new_name(clock: FakeClock) -> None:
    """A talk does not overtake the rename sent before it: it waits for the log's answer, then carries the name."""
    net = Net(StoredChat(clock=clock, new_join_key=keys().__next__))
    room = net.join(1, name="Bob")["joinKey"]
    net.join(2, joinKey=room)
    net.take(1)
    net.take(2)
    net.send(1, {"type": "name", "name": "Robert"})
    say(net, 1, "renamed")
    assert [type(request) for request in net.waiting] == [Rename]  # the talk waits for the rename's answer
    net.answer()
    assert [(e["type"], e.get("name")) for e in net.take(2)] == [("renamed", "Robert"), ("talk", "Robert")]


def test_a_bad_rename_is_an_error_and_changes_nothing(net: Net) -> None:
    net.join(1, name="Ada")
    net.send(1, {"type": "name", "name": "\t"})
    (error,) = net.take(1)
    assert error["type"] == "error"
    say(net, 1, "hi")
    assert net.take(1)[0]["name"] == "Ada"


def test_names_and_payloads_are_escaped_for_markup_clients_only(net: Net) -> None:
    room = net.join(1, name="<b>Ada</b>", render="text")["joinKey"]
    markup = net.join(2, joinKey=room)
    assert markup["members"][0]["name"] == "&lt;b&gt;Ada&lt;/b&gt;"
    say(net, 1, "<i>hi</i>")
    (talk,) = net.take(2)
    assert (talk["payload"], talk["name"]) == ("&lt;i&gt;hi&lt;/i&gt;", "&lt;b&gt;Ada&lt;/b&gt;")
    assert net.take(1)[-1]["payload"] == "<i>hi</i>"


# Presence


def test_joined_and_left_follow_a_users_first_and_last_connection(net: Net) -> None:
    ada = net.join(1, name="Ada")
    room = ada["joinKey"]
    bob = net.join(2, joinKey=room, name="Bob")
    assert bob["members"] == [
        {"userId": 1, "name": "Ada", "role": "owner"}, {"userId": 2, "name": "Bob", "role": "member"}
    ]
    assert net.take(1) == [{"type": "joined", "userId": 2, "name": "Bob"}]
    assert net.take(2) == []  # not told of its own arrival
    again = net.join(3, joinKey=room, token=bob["token"])  # Bob's second tab
    assert again["resumed"]
    assert again["userId"] == 2
    assert net.take(1) == []
    net.disconnect(2)
    assert net.take(1) == []
    net.disconnect(3)
    assert net.take(1) == [{"type": "left", "userId": 2}]


# Resume


def test_a_token_resumes_its_user_with_its_name(net: Net) -> None:
    first = net.join(1, name="Ada")
    net.disconnect(1)
    again = net.join(2, joinKey=first["joinKey"], token=first["token"])
    assert (again["userId"], again["name"], again["resumed"], again["token"]) == (1, "Ada", True, first["token"])


def test_a_name_given_with_a_token_replaces_the_kept_one(net: Net) -> None:
    first = net.join(1, name="Ada")
    again = net.join(2, joinKey=first["joinKey"], token=first["token"], name="Ada 2")
    assert (again["userId"], again["name"]) == (1, "Ada 2")


@pytest.mark.parametrize("token", ["unknown-token-0123456789", "", "x" * 1000])
def test_an_unknown_token_joins_as_a_new_user(net: Net, token: str) -> None:
    room = net.join(1)["joinKey"]
    again = net.join(2, joinKey=room, token=token)
    assert (again["userId"], again["resumed"]) == (2, False)
    assert again["token"] != token


def test_a_token_of_another_room_joins_as_a_new_user(net: Net) -> None:
    elsewhere = net.join(1)
    room = net.join(2)["joinKey"]
    net.join(3, joinKey=room)
    again = net.join(4, joinKey=room, token=elsewhere["token"])
    assert (again["userId"], again["resumed"]) == (3, False)


def test_a_token_with_a_new_room_is_ignored(net: Net) -> None:
    first = net.join(1)
    again = net.join(2, token=first["token"])
    assert again["joinKey"] != first["joinKey"]
    assert not again["resumed"]


def test_after_replays_exactly_the_later_talks(net: Net) -> None:
    room = net.join(1)["joinKey"]
    say(net, 1, "a", "b", "c", "d")
    reply = net.join(2, joinKey=room, after=2)
    assert (reply["offset"], reply["older"]) == (4, False)
    assert talks(net.take(2)) == [(3, "c"), (4, "d")]
    net.join(3, joinKey=room, after=4)
    assert net.take(3) == []


def test_a_resume_beyond_the_replay_gets_the_latest_and_is_told_of_older_ones(clock: FakeClock) -> None:
    net = Net(LocalChat(clock=clock, new_join_key=keys().__next__, limits=CoreLimits(history_limit=3)))
    room = net.join(1)["joinKey"]
    say(net, 1, *"abcdefg")
    reply = net.join(2, joinKey=room, after=1)
    assert (reply["offset"], reply["older"]) == (7, True)
    assert talks(net.take(2)) == [(5, "e"), (6, "f"), (7, "g")]
    assert net.join(3, joinKey=room, after=4)["older"] is False
    assert net.join(4, joinKey=room)["older"] is True


# History


def test_history_pages_back_to_the_beginning(net: Net) -> None:
    room = net.join(1)["joinKey"]
    say(net, 1, *"abcdefg")
    net.join(2, joinKey=room)
    net.take(2)
    net.send(2, {"type": "history", "before": 6, "limit": 3})
    (page,) = net.take(2)
    assert page["type"] == "history"
    assert page["before"] == 6
    assert page["older"] is True
    assert talks(page["talks"]) == [(3, "c"), (4, "d"), (5, "e")]
    assert all("name" in talk and "offset" in talk for talk in page["talks"])
    net.send(2, {"type": "history", "before": 3, "limit": 3})
    (page,) = net.take(2)
    assert talks(page["talks"]) == [(1, "a"), (2, "b")]
    assert page["older"] is False
    net.send(2, {"type": "history"})
    (page,) = net.take(2)
    assert page["before"] == 8
    assert len(page["talks"]) == 7
    assert page["older"] is False


def test_history_is_cut_to_its_maximum(clock: FakeClock) -> None:
    limits = CoreLimits(messages_per_second=1e9, message_burst=10**6)
    net = Net(LocalChat(clock=clock, new_join_key=keys().__next__, limits=limits))
    net.join(1)
    say(net, 1, *[str(n) for n in range(HISTORY_MAX + 10)])
    net.take(1)
    net.send(1, {"type": "history", "limit": 10**6})
    (page,) = net.take(1)
    assert len(page["talks"]) == HISTORY_MAX
    assert page["older"] is True


@pytest.mark.parametrize("request_", [{"before": 0}, {"before": "1"}, {"limit": 0}, {"limit": 2.5}])
def test_a_bad_history_request_is_an_error(net: Net, request_: dict[str, Any]) -> None:
    net.join(1)
    net.send(1, {"type": "history", **request_})
    (error,) = net.take(1)
    assert error["type"] == "error"


def test_version_2_requests_before_init_are_errors(net: Net) -> None:
    net.connect(1)
    net.send(1, {"type": "init", "v": 2, "joinKey": "missing"})
    (error,) = net.take(1)
    assert error == v2_error(problems.NOT_FOUND)
    for event in ({"type": "name", "name": "Ada"}, {"type": "history"}, {"type": "talk", "payload": "x", "id": "i"}):
        net.send(1, event)
        (error,) = net.take(1)
        assert error["type"] == "error"
        assert error["message"] == problems.NOT_IN_CHAT.text


# With a log shared by several processes


def shared_core(clock: FakeClock) -> ChatCore:
    return StoredChat(clock=clock, new_join_key=keys().__next__)


def test_a_join_answered_after_its_room_was_lost_reconnects_like_the_rooms_members(clock: FakeClock) -> None:
    core = shared_core(clock)
    core.connect(1)
    (add,) = core.receive_text(1, json.dumps({"type": "init", "v": 2}))
    assert isinstance(add, AddUser)
    assert core.room_lost(add.join_key, "lost") == [Forget(add.join_key)]
    actions = core.log_result(UserAdded(add.ticket, 1))
    assert actions == [Close(1, closecodes.SERVICE_RESTART, ROOM_LOST_REASON)]
    assert core.rooms_held == ()


def test_a_name_taken_by_the_log_for_a_joiner_that_left_is_shown(clock: FakeClock) -> None:
    net = Net(StoredChat(clock=clock, new_join_key=keys().__next__))
    first = net.join(1, name="Ada")
    net.join(2, joinKey=first["joinKey"], name="Bob")
    net.connect(3)
    net.send(3, {"type": "init", "v": 2, "joinKey": first["joinKey"], "token": first["token"], "name": "Bea"})
    net.disconnect(3)
    net.take(2)
    net.answer()
    assert net.take(2) == [{"type": "renamed", "userId": 1, "name": "Bea"}]


def test_older_news_of_a_name_does_not_undo_a_later_rename(clock: FakeClock) -> None:
    core = shared_core(clock)
    net = Net(core)
    core.connect(1)
    (add,) = core.receive_text(1, json.dumps({"type": "init", "v": 2, "name": "Ada"}))
    assert isinstance(add, AddUser)
    net.do(core.log_result(UserAdded(add.ticket, 1, False, "Ada")))
    net.take(1)
    (rename,) = core.receive_text(1, json.dumps({"type": "name", "name": "Mine"}))
    assert isinstance(rename, Rename)
    net.do(core.log_result(NameSaved(rename.ticket, seq=3)))
    assert net.take(1) == [{"type": "renamed", "userId": 1, "name": "Mine"}]
    # Another process renamed the same user (its other tab) just before: news number 2 arrives late.
    net.do(core.log_result(PresenceHeard(add.join_key, 2, "other", 1, None, "Theirs")))
    net.do(core.log_result(PresenceHeard(add.join_key, 4, "other", 2, True, "Cy")))
    assert net.take(1) == [{"type": "joined", "userId": 2, "name": "Cy"}]
    (append,) = core.receive_text(1, json.dumps({"type": "talk", "payload": "x"}))
    assert isinstance(append, AddUser | Rename) is False
    assert getattr(append, "name", None) == "Mine"
