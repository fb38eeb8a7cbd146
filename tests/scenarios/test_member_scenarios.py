"""What both clients of protocol version 2 promise a member of a room, written once: each scenario runs with the
member under test driven as our page in Chromium and as a chatclient session (``conftest.py``: ``member``), the
other members being chatclient sessions, against a ``chat-server`` process on loopback with its rooms in SQLite."""

from __future__ import annotations

import time
from collections.abc import Callable

from members import ClientMember, Member, Outcome, Said, room_log
from processes import RestartableServer
from tcp_proxy import TcpProxy

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


def test_joining_a_room_that_does_not_exist_ends_for_good(member: Member, network: TcpProxy) -> None:
    member.join("no-such-chat", "Ada")
    assert member.wait_until_out() is Outcome.CANNOT_JOIN
    assert not member.can_talk()
    time.sleep(3 * SETTLE)  # longer than either client's first pause before reconnecting
    assert network.accepted == 1  # it asked once, and did not try again
    assert member.joins() == 0


def test_a_server_restart_shows_every_talk_once_in_order_and_stores_every_talk_once(
    member: Member, others: Callable[[], ClientMember], chat_server: RestartableServer, network: TcpProxy
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
    bob.close()

    network.hold(links=True)  # Ada's way back waits until Cy has said what he says while she is away
    chat_server.stop()
    chat_server.start()
    cy = others()
    cy.join(member.join_key, "Cy")
    away = [Said("Cy", f"while Ada was away {number}") for number in (1, 2, 3)]
    for said in away:
        cy.say(said.text)
    cy.wait_until_sent()
    member.say("right after the restart")  # (she is not back yet: it goes once she is)
    assert member.joins() == 1
    network.release()

    expected = [*before, *away, Said("Ada", "right after the restart")]
    for anyone in (member, cy):
        assert anyone.wait_for_talks(len(expected)) == expected
    member.wait_until_sent()
    time.sleep(SETTLE)
    assert member.talks() == cy.talks() == room_log(chat_server.ws_url, member.join_key) == expected
    assert member.joins() == 2  # back once,
    assert member.user_id == 1  # as the same user


def test_a_member_away_for_more_talks_than_the_replay_holds_is_shown_every_one(
    member: Member, others: Callable[[], ClientMember], network: TcpProxy, history_limit: int
) -> None:
    member.start("Ada")
    bob = others()
    bob.join(member.join_key, "Bob")
    member.say("before")
    bob.wait_for_talks(1)

    network.hold(links=True)
    network.sever(refuse_new=False)  # (its way back is held, not refused: no growing pause to wait out)
    away = [Said("Bob", f"while Ada was away {number}") for number in range(1, 2 * history_limit + 1)]
    for said in away:
        bob.say(said.text)
    bob.wait_until_sent()
    network.release()

    expected = [Said("Ada", "before"), *away]
    assert member.wait_for_talks(len(expected)) == expected
    time.sleep(SETTLE)
    assert member.talks() == expected
    assert member.joins() == 2


def test_a_member_the_owner_removes_is_out_and_stays_out(
    member: Member, others: Callable[[], ClientMember], network: TcpProxy
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
    assert network.accepted == 1  # no new connection (not banned: one would have been let back in)
    assert member.joins() == 1
    assert owner.members() == ["Owner"]


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
