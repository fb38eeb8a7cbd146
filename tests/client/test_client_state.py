"""chatclient's `Client`, the state machine alone: plain pytest, no network, no event loop."""

from __future__ import annotations

from typing import Any

import pytest

from chatclient import Client, Deleted, Edited, Ended, Joined, MemberJoined, Refused, State, Talk
from chatclient.client import Stored


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
