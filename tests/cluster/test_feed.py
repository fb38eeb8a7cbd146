"""RoomFeed by hand: when a process must read a room's talks back from the shared log."""

from __future__ import annotations

from chatcore import Fill, LoggedTalk
from chatcore.feed import Lost, RoomFeed


def talk(offset: int, key: str = "k") -> LoggedTalk:
    return LoggedTalk(key, offset, 1, 0.0, f"m{offset}")


def loaded_feed(last_offset: int = 0) -> RoomFeed:
    feed = RoomFeed()
    assert feed.subscribed("k") == []  # the first subscription: the load that follows reads what came before
    assert feed.loaded("k", last_offset) == []
    return feed


def test_talks_in_order_need_nothing_read_back() -> None:
    feed = loaded_feed()
    assert [feed.heard(talk(n)) for n in (1, 2, 3)] == [[], [], []]
    assert feed.seen("k") == 3


def test_a_gap_asks_for_one_fill_and_its_answer_closes_it() -> None:
    feed = loaded_feed(2)
    assert feed.heard(talk(5)) == [Fill("k", 2)]
    assert feed.heard(talk(6)) == []  # one fill in flight per room
    assert feed.filled("k", 2, [talk(3), talk(4), talk(5)]) == []
    assert feed.seen("k") == 6


def test_talks_heard_between_subscribing_and_loading_are_checked_against_the_load() -> None:
    feed = RoomFeed()
    feed.subscribed("k")
    assert feed.heard(talk(4)) == []
    assert feed.heard(talk(6)) == []
    assert feed.loaded("k", 4) == [Fill("k", 4)]  # 5 was published before the load and after 4: not heard
    assert feed.filled("k", 4, [talk(5), talk(6)]) == []
    assert feed.seen("k") == 6


def test_a_subscription_renewed_after_a_reconnect_reads_back_what_it_may_have_missed() -> None:
    feed = loaded_feed(3)
    assert feed.subscribed("k") == [Fill("k", 3)]
    assert feed.subscribed("k") == []  # a second reconnect while that fill is out ...
    assert feed.filled("k", 3, []) == [Fill("k", 3)]  # ... reads once more when it returns


def test_a_subscription_renewed_before_the_load_answers_reads_back_after_it() -> None:
    feed = RoomFeed()
    assert feed.subscribed("k") == []
    assert feed.subscribed("k") == []  # a reconnect before the load answered: the load may have read before the gap
    assert feed.loaded("k", 3) == [Fill("k", 3)]
    assert feed.filled("k", 3, []) == []


def test_talks_the_log_no_longer_has_end_the_room_here() -> None:
    feed = loaded_feed(2)
    assert feed.heard(talk(9)) == [Fill("k", 2)]
    assert feed.filled("k", 2, [talk(7), talk(8), talk(9)]) == [Lost("k", 2, 7)]
    assert "k" not in feed


def test_a_fill_that_misses_a_talk_heard_before_it_means_the_log_lost_it() -> None:
    feed = loaded_feed(2)
    assert feed.heard(talk(5)) == [Fill("k", 2)]
    assert feed.filled("k", 2, []) == [Lost("k", 2, 5)]


def test_a_forgotten_room_ignores_late_talks_and_fills() -> None:
    feed = loaded_feed(1)
    feed.heard(talk(3))
    feed.forget("k")
    assert feed.heard(talk(4)) == []
    assert feed.filled("k", 1, [talk(2)]) == []
    assert feed.seen("k") is None
