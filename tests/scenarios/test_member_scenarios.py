"""What both clients of protocol version 2 promise a member of a room, written once: each scenario runs with the
member under test driven as our page in Chromium and as a chatclient session (``conftest.py``: ``member``), the
other members being chatclient sessions, against a ``chat-server`` process on loopback with its rooms in SQLite."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

from members import ClientMember, Member, Outcome, Said, room_log
from processes import RestartableServer

SETTLE = 0.5
"""Seconds to let anything late (a duplicate, a reconnection) arrive before saying it did not."""


def test_starting_a_room_and_talking_with_a_second_member(
    member: Member, others: Callable[[], ClientMember], chat_server: RestartableServer
) -> None:
    member.start("Ada")
    assert member.join_key
    assert member.user_id == 1
    bob = others()
    bob.join(member.join_key, "Bob")
    assert bob.user_id == 2

    expected: list[Said] = []
    for speaker, line in [(member, "hello, I started this"), (bob, "hi Ada"), (member, "welcome, Bob")]:
        speaker.say(line)
        expected.append(Said("Ada" if speaker is member else "Bob", line))
        for listener in (member, bob):
            assert listener.wait_for_talks(len(expected)) == expected  # (each its own talk too)
    member.wait_until_sent()
    time.sleep(SETTLE)
    assert member.talks() == bob.talks() == room_log(chat_server.ws_url, member.join_key) == expected


def test_names_are_seen_by_the_others_on_talks_and_in_who_is_online(
    member: Member, others: Callable[[], ClientMember]
) -> None:
    bob = others()
    bob.start("Bob")
    member.join(bob.join_key, "Ada")
    assert member.join_key == bob.join_key
    for anyone in (member, bob):
        anyone.wait_for_members(["Bob", "Ada"])

    member.say("Ada here")
    assert bob.wait_for_talks(1) == [Said("Ada", "Ada here")]
    bob.say("hello Ada")
    assert member.wait_for_talks(2) == [Said("Ada", "Ada here"), Said("Bob", "hello Ada")]


def test_joining_a_room_that_does_not_exist_ends_for_good(
    member: Member, others: Callable[[], ClientMember]
) -> None:
    member.join("no-such-chat", "Ada")
    assert member.wait_until_out() is Outcome.CANNOT_JOIN
    assert member.joins() == 0
    assert not member.can_talk()
    # (Not a server out of reach: it serves whoever starts a room.)
    someone = others()
    someone.start("Someone")
    assert someone.user_id == 1


def test_a_server_restart_shows_every_talk_once_in_order_and_stores_every_talk_once(
    member: Member, others: Callable[[], ClientMember], chat_server: RestartableServer
) -> None:
    member.start("Ada")
    bob = others()
    bob.join(member.join_key, "Bob")
    before = [Said("Ada", "before 1"), Said("Bob", "before 2")]
    member.say("before 1")
    member.wait_for_talks(1)
    bob.say("before 2")
    for anyone in (member, bob):
        assert anyone.wait_for_talks(2) == before

    chat_server.stop()
    bob.say("while Ada was away 1")  # (sent once Bob is back: the room stores them then)
    bob.say("while Ada was away 2")
    chat_server.start()
    member.say("right after the restart")

    member.wait_until_sent()
    bob.wait_until_sent()
    for anyone in (member, bob):
        anyone.wait_for_talks(5)
    time.sleep(SETTLE)
    stored = room_log(chat_server.ws_url, member.join_key)
    assert member.talks() == bob.talks() == stored
    assert stored[:2] == before
    assert Counter(said.text for said in stored) == Counter(
        ["before 1", "before 2", "while Ada was away 1", "while Ada was away 2", "right after the restart"]
    )
    assert stored.index(Said("Bob", "while Ada was away 1")) < stored.index(Said("Bob", "while Ada was away 2"))
    assert member.joins() == 2  # back once,
    assert member.user_id == 1  # as the same user


def test_a_member_the_owner_removes_is_out_and_stays_out(
    member: Member, others: Callable[[], ClientMember]
) -> None:
    owner = others()
    owner.start("Owner")
    member.join(owner.join_key, "Guest")
    owner.wait_for_members(["Owner", "Guest"])

    owner.remove(member.user_id)
    assert member.wait_until_out() is Outcome.REMOVED
    assert not member.can_talk()
    owner.wait_for_members(["Owner"])
    time.sleep(3 * SETTLE)  # longer than either client's first pause before reconnecting
    assert member.joins() == 1
    assert owner.members() == ["Owner"]  # (not banned: had it come back, it would be listed again)


def test_talks_older_than_the_replay_are_paged_in(
    member: Member, others: Callable[[], ClientMember], history_limit: int
) -> None:
    bob = others()
    bob.start("Bob")
    count = 3 * history_limit
    for number in range(1, count + 1):
        bob.say(f"talk {number}")
    bob.wait_until_sent()

    member.join(bob.join_key, "Ada")
    member.wait_for_talks(history_limit)
    member.load_older()
    everything = [Said("Bob", f"talk {number}") for number in range(1, count + 1)]
    assert member.talks() == everything
    bob.say("and a new one")
    assert member.wait_for_talks(count + 1) == [*everything, Said("Bob", "and a new one")]
