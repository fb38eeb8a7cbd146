"""A room's memory under endless churn: users join and leave forever, each a new one, while the room stays open.

What the process keeps per user must be bounded by the users connected plus
``remembered_users`` (the users without a connection whose names and tokens
a room kept in memory only remembers), not grow with every user that ever
joined.
"""

from __future__ import annotations

import gc
import json
import tracemalloc

import pytest

from chatcore import ChatCore, CoreLimits, PresenceHeard
from corekit import FakeClock, LocalChat, StoredChat, decoded, keys
from v2kit import Net

CHURN = 10_000
REMEMBERED = 50
MEMBER = 1
"""Stays in the room throughout, so that the core holds it."""
ONE_MEMBER = {"names": 1, "name_seq": 0, "local": 1, "remote": 0, "remote_users": 0}
"""What the room the core holds keeps per user, when only `MEMBER` is in it."""


def memory_core(remembered_users: int = REMEMBERED) -> ChatCore:
    return LocalChat(
        clock=FakeClock(), new_join_key=keys().__next__, limits=CoreLimits(remembered_users=remembered_users)
    )


def held_room_sizes(core: ChatCore, join_key: str) -> dict[str, int]:
    room = core._rooms[join_key]
    return {
        "names": len(room.names), "name_seq": len(room.name_seq), "local": len(room.local),
        "remote": len(room.remote), "remote_users": len(room.remote_users),
    }


def memory_log_sizes(core: ChatCore, join_key: str) -> dict[str, int]:
    assert isinstance(core, LocalChat)
    room = core.memory_log._rooms[join_key]
    return {"users": len(room.users), "tokens": len(room.tokens), "absent": len(room.absent)}


def churn(net: Net, join_key: str, first: int, count: int) -> None:
    """``count`` new version-2 users, connections ``first`` on, each joining with a name and leaving."""
    for connection in range(first, first + count):
        net.join(connection, joinKey=join_key, name=f"user {connection}")
        net.disconnect(connection)
        net.take(connection)
    net.take(MEMBER)


def test_a_room_kept_in_memory_keeps_the_connected_users_and_a_bounded_number_of_the_others() -> None:
    net = Net(memory_core())
    join_key = net.join(MEMBER, name="Stays")["joinKey"]
    churn(net, join_key, 10, CHURN)
    assert held_room_sizes(net.core, join_key) == ONE_MEMBER
    remembered = {"users": REMEMBERED + 1, "tokens": REMEMBERED + 1, "absent": REMEMBERED}  # (+ MEMBER)
    assert memory_log_sizes(net.core, join_key) == remembered


def test_a_room_with_an_external_log_keeps_only_the_names_of_its_connected_users() -> None:
    net = Net(StoredChat(clock=FakeClock(), new_join_key=keys().__next__))
    join_key = net.join(MEMBER, name="Stays")["joinKey"]
    churn(net, join_key, 10, CHURN)
    assert held_room_sizes(net.core, join_key) == ONE_MEMBER


def test_a_room_shared_with_other_processes_forgets_the_names_of_their_users_once_they_left() -> None:
    net = Net(ChatCore(clock=FakeClock(), new_join_key=keys().__next__))
    join_key = net.join(MEMBER, name="Stays")["joinKey"]
    seq = 0
    for user_id in range(2, 2 + CHURN):
        for here, name in ((True, f"user {user_id}"), (None, f"renamed {user_id}"), (False, None)):
            seq += 1
            net.do(net.core.log_result(PresenceHeard(join_key, seq, "other", user_id, here, name)))
        net.take(MEMBER)
    assert held_room_sizes(net.core, join_key) == ONE_MEMBER
    # Still told who comes, with the name the news gives.
    net.do(net.core.log_result(PresenceHeard(join_key, seq + 1, "other", 5, True, "Back")))
    assert net.take(MEMBER) == [{"type": "joined", "userId": 5, "name": "Back"}]


def test_a_user_within_the_bound_resumes_by_token_with_its_name() -> None:
    net = Net(memory_core())
    join_key = net.join(MEMBER, name="Stays")["joinKey"]
    ada = net.join(2, joinKey=join_key, name="Ada")
    net.disconnect(2)
    churn(net, join_key, 10, REMEMBERED - 1)  # Ada and REMEMBERED - 1 after her have left: all remembered
    again = net.join(3, joinKey=join_key, token=ada["token"])
    assert (again["resumed"], again["userId"], again["name"]) == (True, ada["userId"], "Ada")


def test_the_user_that_left_longest_ago_beyond_the_bound_joins_as_a_new_user() -> None:
    net = Net(memory_core())
    join_key = net.join(MEMBER, name="Stays")["joinKey"]
    ada = net.join(2, joinKey=join_key, name="Ada")
    net.disconnect(2)
    churn(net, join_key, 10, REMEMBERED)
    again = net.join(3, joinKey=join_key, token=ada["token"], name="Ada")
    assert again["resumed"] is False
    assert again["userId"] not in (ada["userId"], 1)
    assert again["token"] != ada["token"]


def test_a_connected_user_is_never_forgotten_however_many_come_and_go() -> None:
    net = Net(memory_core())
    join_key = net.join(MEMBER, name="Stays")["joinKey"]
    ada = net.join(2, joinKey=join_key, name="Ada")
    churn(net, join_key, 10, 3 * REMEMBERED)
    net.send(2, {"type": "name", "name": "Ada L."})
    net.disconnect(2)
    again = net.join(3, joinKey=join_key, token=ada["token"])
    assert (again["resumed"], again["userId"], again["name"]) == (True, ada["userId"], "Ada L.")


def test_coming_back_makes_a_user_the_most_recently_seen() -> None:
    net = Net(memory_core())
    join_key = net.join(MEMBER)["joinKey"]
    ada = net.join(2, joinKey=join_key, name="Ada")
    net.disconnect(2)
    churn(net, join_key, 10, REMEMBERED - 1)
    net.join(3, joinKey=join_key, token=ada["token"])
    net.disconnect(3)
    churn(net, join_key, 100, REMEMBERED - 1)  # more than REMEMBERED left since her first visit, not her second
    again = net.join(4, joinKey=join_key, token=ada["token"])
    assert (again["resumed"], again["userId"]) == (True, ada["userId"])


def test_remembering_no_user_means_no_token_resumes_once_its_user_left() -> None:
    net = Net(memory_core(remembered_users=0))
    join_key = net.join(MEMBER)["joinKey"]
    ada = net.join(2, joinKey=join_key, name="Ada")
    assert net.join(3, joinKey=join_key, token=ada["token"])["resumed"] is True  # while she is connected
    net.disconnect(2)
    net.disconnect(3)
    again = net.join(4, joinKey=join_key, token=ada["token"])
    assert again["resumed"] is False
    assert memory_log_sizes(net.core, join_key) == {"users": 2, "tokens": 2, "absent": 0}


def test_a_negative_bound_is_refused() -> None:
    with pytest.raises(ValueError, match="remembered_users"):
        CoreLimits(remembered_users=-1)


def _traced_after(core: ChatCore, join_key: str, first: int, count: int) -> int:
    """Churn ``count`` users through the room, dropping every action; the bytes traced afterwards."""
    for connection in range(first, first + count):
        core.connect(connection)
        core.receive_text(connection, json.dumps({"type": "init", "v": 2, "joinKey": join_key, "name": "someone"}))
        core.disconnect(connection)
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


def test_the_bytes_a_churning_room_holds_stop_growing_at_the_bound() -> None:
    core = memory_core()
    core.connect(MEMBER)
    reply = core.receive_text(MEMBER, json.dumps({"type": "init", "v": 2, "name": "Stays"}))
    join_key = decoded(reply[0])["joinKey"]
    tracemalloc.start()
    try:
        after_2k = _traced_after(core, join_key, 10, 2_000)
        after_20k = _traced_after(core, join_key, 10 + 2_000, 18_000)
    finally:
        tracemalloc.stop()
    # Unbounded, the 18,000 users more would hold some 6 MB (0.35 KiB each).
    assert after_20k - after_2k < 32 * 1024, after_20k - after_2k
