"""chatclient's `Client`, the state machine alone: plain pytest, no network, no event loop."""

from __future__ import annotations

from typing import Any

import pytest

from chatclient import Client, Deleted, Edited, Ended, Joined, MemberJoined, Refused, State, Talk
from chatclient.client import RETRYABLE, Ask, Stored
from chatcore import problems


def reply(**fields: Any) -> dict[str, Any]:
    return {"type": "init", "joinKey": "K", "userId": 3, "v": 2, "token": "T" * 32, "name": "Ada",
            "members": [{"userId": 1, "name": "Bob", "role": "owner"}, {"userId": 3, "name": "Ada"}],
            "resumed": False, "offset": 2, "older": False, "role": "member",
            "room": {"title": "Math", "locked": False}, **fields}


def talk(offset: int, user: int = 1, **fields: Any) -> dict[str, Any]:
    return {"type": "talk", "payload": f"t{offset}", "userId": user, "time": 1.5, "offset": offset,
            "name": None, **fields}


def joined(client: Client, **fields: Any) -> Joined:
    client.hello()
    (news,) = client.receive(reply(**fields))
    assert isinstance(news, Joined)
    return news


def test_the_first_hello_starts_or_joins_and_a_later_one_resumes() -> None:
    starter = Client(name="Ada")
    assert starter.hello() == {"type": "init", "v": 2, "render": "text", "name": "Ada"}
    client = Client("K")
    assert client.hello() == {"type": "init", "v": 2, "render": "text", "joinKey": "K"}
    client.receive(reply())
    client.receive(talk(1))
    client.receive(talk(2))
    client.connection_lost()
    assert client.hello() == {"type": "init", "v": 2, "render": "text", "joinKey": "K", "token": "T" * 32,
                              "after": 2, "name": "Ada"}


def test_hello_is_refused_while_a_connection_is_live() -> None:
    client = Client()
    client.hello()
    with pytest.raises(RuntimeError):
        client.hello()


def test_the_init_reply_reads_as_joined() -> None:
    news = joined(Client("K"))
    assert news.join_key == "K"
    assert news.user_id == 3
    assert news.name == "Ada"
    assert news.offset == 2
    assert [m.user_id for m in news.members] == [1, 3]
    assert news.members[0].role == "owner"
    assert news.title == "Math"
    assert not news.locked
    assert not news.resumed


def test_talks_reach_the_application_once_in_offset_order_across_a_resume() -> None:
    client = Client("K")
    joined(client)
    got = [n for offset in (1, 2, 3) for n in client.receive(talk(offset))]
    client.connection_lost()
    client.hello()
    client.receive(reply(resumed=True, offset=5))
    got += [n for offset in (3, 4, 5) for n in client.receive(talk(offset))]  # (3: a repeat)
    assert [t.offset for t in got if isinstance(t, Talk)] == [1, 2, 3, 4, 5]
    assert client.last_offset == 5


def test_a_talk_stays_pending_until_its_echo_and_is_sent_again_after_a_reconnect() -> None:
    client = Client("K", id_prefix="p")
    joined(client)
    talk_id, event = client.talk("hello")
    assert event == {"type": "talk", "payload": "hello", "id": talk_id}
    client.connection_lost()
    second, unsent = client.talk("while away")
    assert unsent is None
    assert client.pending == 2
    client.hello()
    client.receive(reply(resumed=True))
    assert client.resend() == [event, {"type": "talk", "payload": "while away", "id": second}]
    news = client.receive(talk(3, user=3, id=talk_id, payload="hello"))
    stored = [n for n in news if isinstance(n, Stored)]
    assert stored[0].id == talk_id
    assert stored[0].talk is not None
    assert stored[0].talk.offset == 3
    assert client.pending == 1
    # the room's answer to a resend of a talk it had: delivered already, only the sender learns it is stored
    again = client.receive(talk(3, user=3, id=talk_id, payload="hello"))
    assert again == []
    late = client.receive(talk(2, user=3, id=second, payload="while away"))
    assert [type(n) for n in late] == [Stored]
    assert client.pending == 0


def test_another_users_talk_with_our_id_does_not_settle_ours() -> None:
    client = Client("K", id_prefix="p")
    joined(client)
    talk_id, _ = client.talk("mine")
    news = client.receive(talk(3, user=1, id=talk_id))
    assert [type(n) for n in news] == [Talk]
    assert client.pending == 1


def test_a_refused_talk_is_settled_as_refused() -> None:
    client = Client("K")
    joined(client)
    talk_id, _ = client.talk("x" * 20000)
    news = client.receive({"type": "error", "message": "too long", "payload": "too long", "id": talk_id})
    assert isinstance(news[0], Stored)
    assert news[0].talk is None
    assert news[0].refusal == "too long"
    assert news[1] == Refused("too long", talk_id)
    assert client.pending == 0


def test_a_join_refused_for_now_is_tried_again_and_one_refused_for_good_ends() -> None:
    client = Client("K")
    client.hello()
    news = client.receive({"type": "error", "message": "Not now.", "code": "unavailable"})
    assert news == [Refused("Not now.", code="unavailable")]
    assert client.state is State.IDLE
    client.hello()
    news = client.receive({"type": "error", "message": "could not join the chat (no code: an older server); try again"})
    assert isinstance(news[0], Refused)
    assert client.state is State.IDLE
    client.hello()
    assert client.receive({"type": "error", "message": "No such chat.", "code": "not-found"}) == [
        Ended("No such chat.", refusal="not-found")
    ]
    assert state_of(client) is State.ENDED


def state_of(client: Client) -> State:
    return client.state  # (read again: a check above narrowed the attribute for mypy)


@pytest.mark.parametrize("code", [4403, 4410])
def test_removed_or_ended_ends_the_session_other_closes_reconnect(code: int) -> None:
    client = Client("K")
    joined(client)
    ended = client.closed(code, "")
    assert isinstance(ended, Ended)
    assert ended.code == code
    assert client.state is State.ENDED
    other = Client("K")
    joined(other)
    assert other.closed(1012, "reconnect") is None
    assert other.state is State.IDLE


def test_a_resumes_replay_of_changes_below_after_reads_as_edits_and_deletions() -> None:
    client = Client("K")
    joined(client)
    for offset in (1, 2):
        client.receive(talk(offset))
    client.connection_lost()
    client.hello()
    client.receive(reply(resumed=True))
    edited = client.receive(talk(1, payload="new", edited=9.5))
    deleted = client.receive({"type": "talk", "offset": 2, "userId": 1, "time": 1.5, "deleted": True,
                              "payload": None, "name": None})
    assert edited == [Edited(1, "new", 9.5)]
    assert deleted == [Deleted(2, None)]


def test_room_news_reads_as_its_events_and_unknown_events_are_left() -> None:
    client = Client("K")
    joined(client)
    assert client.receive({"type": "joined", "userId": 4, "name": "Cy"}) == [MemberJoined(4, "Cy")]
    assert client.receive({"type": "typing", "userId": 4}) == []
    assert client.receive({"type": "deleted", "offset": 1, "by": 1}) == [Deleted(1, 1)]


def test_requests_need_the_room_and_a_name_is_ours_once_the_room_says_so() -> None:
    client = Client("K")
    with pytest.raises(RuntimeError):
        client.request("name", name="Bo")
    joined(client)
    assert client.request("name", name="x" * 40) == {"type": "name", "name": "x" * 40}
    client.receive({"type": "error", "message": "a name is 1 to 32 characters", "payload": "..."})
    assert client.name == "Ada"  # (refused: a later hello must not carry it, or the resume would be refused)
    client.request("name", name="Bo")
    client.receive({"type": "renamed", "userId": 1, "name": "Cy"})  # (someone else)
    client.receive({"type": "renamed", "userId": 3, "name": "Bo"})
    client.connection_lost()
    assert client.hello()["name"] == "Bo"


def test_a_talk_the_server_could_not_store_now_stays_pending_to_go_again() -> None:
    client = Client("K")
    joined(client)
    talk_id, _ = client.talk("hello")
    news = client.receive({"type": "error", "id": talk_id, "message": "Not saved.", "code": "unavailable"})
    assert [type(n).__name__ for n in news] == ["Retry"]
    assert client.talk_event(talk_id) == {"type": "talk", "payload": "hello", "id": talk_id}


def test_a_talk_too_long_for_the_server_is_refused_before_it_is_sent() -> None:
    client = Client("K", max_message_chars=100)
    joined(client)
    with pytest.raises(ValueError, match="too long"):
        client.talk("x" * 100)
    assert client.pending == 0
    client.talk("é" * 40)  # (characters, as the server counts them: not JSON's escapes)


def test_a_resume_the_room_did_not_accept_still_settles_our_earlier_users_talks() -> None:
    client = Client("K", id_prefix="p")
    joined(client)
    talk_id, _ = client.talk("sent just before the drop")
    client.connection_lost()
    client.hello()
    client.receive(reply(userId=9, resumed=False, offset=3))
    news = client.receive(talk(3, user=3, id=talk_id, payload="sent just before the drop"))
    assert [type(n).__name__ for n in news] == ["Stored", "Talk"]
    assert client.pending == 0


def test_a_talk_of_any_earlier_user_is_ours_after_resumes_the_room_did_not_accept_twice() -> None:
    """Cut off before the replay of a join as a new user, then a new user again: the replay then still holds our
    talk under our first user, and it is stored (not sent again, to be stored a second time)."""
    client = Client("K", id_prefix="p")
    joined(client)
    talk_id, _ = client.talk("sent just before the drop")
    client.connection_lost()
    client.hello()
    client.receive(reply(userId=9, resumed=False, offset=3))
    client.connection_lost()  # (before the replay)
    client.hello()
    client.receive(reply(userId=10, resumed=False, offset=3))
    news = client.receive(talk(3, user=3, id=talk_id, payload="sent just before the drop"))
    assert [type(n).__name__ for n in news] == ["Stored", "Talk"]
    assert client.pending == 0


def test_malformed_events_are_left() -> None:
    client = Client("K")
    joined(client)
    assert client.receive({"type": "talk", "offset": 4}) == []  # (no userId, no time)
    assert client.receive({"type": "deleted", "offset": "x"}) == []
    assert client.last_offset == 0


# A resume after more talks than the replay holds: the gap is filled by history pages ------------------------------


def page(request: Ask, first: int = 1) -> dict[str, Any]:
    """The server's answer to a ``history`` request, its log holding offsets from ``first`` on."""
    before, limit = request.event["before"], request.event["limit"]
    offsets = range(max(first, before - limit), before)
    return {"type": "history", "before": before, "talks": [talk(offset) for offset in offsets],
            "older": before - limit > first}


def away(client: Client, offset: int, *replay: dict[str, Any]) -> Ask:
    """Back after a drop: the room is at ``offset`` and replays ``replay``, which starts later than the last talk
    delivered; the client asks for a page of what is between."""
    client.connection_lost()
    assert client.hello()["after"] == client.last_offset
    news = client.receive(reply(resumed=True, offset=offset, older=True))
    assert isinstance(news[0], Joined)
    assert not news[0].older  # (nothing is left to page back for: the gap comes first)
    assert client.filling
    for event in replay:
        assert client.receive(event) == []  # (held)
    (request,) = news[1:]
    assert isinstance(request, Ask)
    return request


def delivered(news: list[Any]) -> list[int]:
    return [n.offset for n in news if isinstance(n, Talk)]


def fill(client: Client, request: Ask, first: int = 1) -> tuple[list[Any], list[Ask]]:
    """Answer each page the client asks for, until it asks for none: what came back, and what it asked."""
    news: list[Any] = []
    asked = [request]
    while True:
        out = client.receive(page(asked[-1], first))
        news += [n for n in out if not isinstance(n, Ask)]
        requests = [n for n in out if isinstance(n, Ask)]
        if not requests:
            return news, asked
        asked += requests


def in_room_at(offset: int) -> Client:
    client = Client("K", token="T" * 32, id_prefix="p")
    joined(client)
    for number in range(1, offset + 1):
        client.receive(talk(number))
    return client


def test_a_gap_of_one_page_is_delivered_before_the_replay() -> None:
    client = in_room_at(1)
    request = away(client, 11, talk(1, payload="new", edited=9.5), *(talk(o) for o in range(7, 12)))
    assert request.event == {"type": "history", "before": 12, "limit": 10}  # (the replay is not known yet)
    news = client.receive({**page(request), "talks": [talk(2), talk(3, deleted=True, payload=None),
                                                      *(talk(o) for o in range(4, 12))]})
    assert delivered(news) == list(range(2, 12))  # (7-11 once: from the replay, after the gap)
    assert news[1] == Talk(3, 1, None, None, 1.5, deleted=True)  # (a deleted talk keeps its place, as replayed)
    assert news[5] == Edited(1, "new", 9.5)  # (the replay's change below ``after``, where the replay was)
    assert not client.filling
    assert client.last_offset == 11


def test_a_gap_of_several_pages_is_asked_for_a_page_at_a_time_oldest_first() -> None:
    client = in_room_at(1)
    request = away(client, 500, *(talk(o) for o in range(496, 501)))
    news, asked = fill(client, request)
    assert [r.event for r in asked] == [
        {"type": "history", "before": 202, "limit": 200},
        {"type": "history", "before": 402, "limit": 200},
        {"type": "history", "before": 496, "limit": 94},  # (up to the replay, which the first answer came after)
    ]
    assert delivered(news) == list(range(2, 501))
    assert client.last_offset == 500
    assert not client.filling


def test_talks_and_news_arriving_live_during_the_fill_wait_for_it_and_come_in_their_order() -> None:
    client = in_room_at(1)
    request = away(client, 500, *(talk(o) for o in range(496, 501)))
    first = client.receive(page(request))
    assert delivered(first) == list(range(2, 202))
    (second,) = [n for n in first if isinstance(n, Ask)]
    for live in (talk(501), {"type": "joined", "userId": 4, "name": "Cy"},
                 {"type": "edited", "offset": 300, "payload": "fixed", "edited": 9.5}, talk(502)):
        assert client.receive(live) == []
    assert client.filling
    news, _ = fill(client, second)
    assert delivered(news) == list(range(202, 503))
    after_gap = news[news.index(next(n for n in news if isinstance(n, Talk) and n.offset == 500)) + 1:]
    assert after_gap == [Talk(501, 1, None, "t501", 1.5), MemberJoined(4, "Cy"), Edited(300, "fixed", 9.5),
                         Talk(502, 1, None, "t502", 1.5)]


def test_a_drop_during_the_fill_resumes_after_the_last_talk_delivered() -> None:
    client = in_room_at(1)
    talk_id, _ = client.talk("sent just before the drop")
    request = away(client, 500, *(talk(o) for o in range(496, 501)))
    got = client.receive(page(request))
    client.connection_lost()  # (what it held is dropped: the next replay brings it again)
    assert not client.filling
    assert client.last_offset == 201
    request = away(client, 505, *(talk(o) for o in range(501, 506)))
    assert request.event == {"type": "history", "before": 402, "limit": 200}
    ours = {**page(request), "talks": [talk(o, user=3, id=talk_id) if o == 300 else talk(o) for o in range(202, 402)]}
    news = client.receive(ours)
    assert [n.id for n in news if isinstance(n, Stored)] == [talk_id]  # (stored before the drop: not sent again)
    assert client.resend() == []
    rest, _ = fill(client, next(n for n in news if isinstance(n, Ask)))
    assert delivered(got + news + rest) == list(range(2, 506))


def test_a_refused_page_ends_the_connection_and_the_next_resume_starts_after_the_last_talk_delivered() -> None:
    client = in_room_at(1)
    request = away(client, 500, *(talk(o) for o in range(496, 501)))
    got = client.receive(page(request))
    client.receive(talk(501))
    refusal = {"type": "error", "code": "unavailable", "message": "…", "payload": "…"}
    assert client.receive(refusal) == [Refused("…", None, "history", "unavailable")]
    assert client.state is State.IDLE  # (the caller closes this connection, and resumes on a new one)
    assert not client.filling
    assert client.last_offset == 201
    request = away(client, 501, *(talk(o) for o in range(497, 502)))
    news, _ = fill(client, request)
    assert delivered(got + news) == list(range(2, 502))


def test_what_the_log_no_longer_has_is_passed_over_and_what_it_has_is_delivered() -> None:
    # the room's log keeps only its replay (a room in memory): an empty page, then the gap's last page says so
    client = in_room_at(1)
    request = away(client, 1005, *(talk(o) for o in range(1001, 1006)))
    news, asked = fill(client, request, first=1001)
    assert [r.event for r in asked] == [{"type": "history", "before": 202, "limit": 200},
                                        {"type": "history", "before": 1001, "limit": 200}]
    assert delivered(news) == list(range(1001, 1006))
    assert client.last_offset == 1005
    # the log begins in the gap, further back than its last page: on a page at a time from there
    client = in_room_at(1)
    request = away(client, 1005, *(talk(o) for o in range(1001, 1006)))
    news, asked = fill(client, request, first=700)
    assert [r.event["before"] for r in asked] == [202, 1001, 402, 602, 802, 1001]
    assert delivered(news) == list(range(700, 1006))


def test_a_first_join_does_not_fill_older_talks_it_says_they_exist() -> None:
    client = Client("K")
    client.hello()
    news = client.receive(reply(offset=11, older=True))
    assert [type(n) for n in news] == [Joined]
    assert isinstance(news[0], Joined)
    assert news[0].older
    assert not client.filling


def test_the_client_retries_what_the_server_says_may_succeed_later_and_nothing_else() -> None:
    assert RETRYABLE == problems.RETRYABLE
    client = Client("K")
    joined(client)
    talk_id, _ = client.talk("x" * 20)
    news = client.receive({"type": "error", "message": "Too long.", "code": "too-long", "id": talk_id})
    assert news == [Stored(talk_id, None, "Too long.", "too-long"), Refused("Too long.", talk_id, None, "too-long")]
