"""Changes of a room heard from a shared log, by hand: the orderings several processes make possible.

With one process (the memory log) a log's answer always comes before its news; with several, a change made
elsewhere, retention's news, or a fill may reach a process at any point of its own requests. The cluster
simulation finds these orderings at random; here each one is written down.
"""

from __future__ import annotations

import json
from typing import Any

from chatcore import (
    Action,
    AddUser,
    Broadcast,
    ChatCore,
    Close,
    Fill,
    Filled,
    Forget,
    Load,
    Loaded,
    LoggedTalk,
    SavedRoom,
    Send,
    Subscribed,
    TalkArrived,
    UserAdded,
    closecodes,
)
from chatcore.control import End, Remove
from chatcore.problems import BANNED
from chatcore.results import ChangeArrived, Expired, LoggedChange


def talk(offset: int, payload: str | None = "hi") -> LoggedTalk:
    return LoggedTalk("k", offset, 1, float(offset), payload, None if payload is None else "Ada")


class Process:
    """A core whose log is the test: every log action it asks for is kept, every result given by hand."""

    def __init__(self) -> None:
        self.chat = ChatCore(clock=lambda: 1.0, new_join_key=lambda: "new")
        self.asked: list[Action] = []
        self.sent: dict[int, list[dict[str, Any]]] = {}
        self.closed: dict[int, int] = {}

    def take(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Send):
                self.sent.setdefault(action.connection, []).append(json.loads(action.message))
            elif isinstance(action, Broadcast):
                for connection in action.recipients:
                    self.sent.setdefault(connection, []).append(json.loads(action.message))
            elif isinstance(action, Close):
                self.closed[action.connection] = action.code
            else:
                self.asked.append(action)

    def join(self, connection: int, *, v2: bool = True) -> None:
        self.take(self.chat.connect(connection))
        init = {"type": "init", "joinKey": "k", **({"v": 2, "render": "text"} if v2 else {})}
        self.take(self.chat.receive_text(connection, json.dumps(init)))

    def answer(self, result: Any) -> None:
        self.take(self.chat.log_result(result))

    def last(self, kind: type[Any]) -> Any:
        return next(action for action in reversed(self.asked) if isinstance(action, kind))

    def loaded(self, room: SavedRoom) -> None:
        self.answer(Loaded(self.last(Load).ticket, room))


def test_a_user_the_log_added_before_a_ban_that_arrived_first_is_kept_out() -> None:
    process = Process()
    process.join(1)
    process.loaded(SavedRoom("k", 0, ()))
    ticket = process.last(AddUser).ticket
    process.answer(ChangeArrived(LoggedChange("k", 1, 0, 1, 2.0, Remove(2, ban=True))))  # (made elsewhere)
    process.answer(UserAdded(ticket, 2))
    assert process.sent[1] == [{"type": "error", "message": BANNED.text, "payload": BANNED.text, "code": "banned"}]
    assert "k" not in process.chat.rooms_held  # (nobody in it: let go)


def test_an_end_is_applied_even_if_changes_before_it_never_came() -> None:
    process = Process()
    process.join(1)
    process.loaded(SavedRoom("k", 0, ()))
    process.answer(UserAdded(process.last(AddUser).ticket, 2))
    process.answer(Subscribed("k"))
    process.answer(ChangeArrived(LoggedChange("k", 5, 3, 1, 9.0, End())))  # 1 to 4, and the talks, were missed
    assert process.closed == {1: closecodes.ENDED}
    assert process.asked[-1] == Forget("k")


def test_what_retention_erased_while_a_room_loaded_is_not_shown_after() -> None:
    process = Process()
    process.join(1)
    process.answer(Expired("k", 3))  # heard while the load was on its way: it read the room before
    process.loaded(SavedRoom("k", 4, tuple(talk(offset) for offset in range(1, 5))))
    process.answer(UserAdded(process.last(AddUser).ticket, 2))
    assert [event["offset"] for event in process.sent[1] if event["type"] == "talk"] == [3, 4]


def test_a_talk_delivered_after_retentions_news_does_not_join_the_history() -> None:
    process = Process()
    process.join(1)
    process.loaded(SavedRoom("k", 2, (talk(1), talk(2))))
    process.answer(UserAdded(process.last(AddUser).ticket, 2))
    process.answer(TalkArrived(talk(4)))  # 3 missed: a fill
    fill = process.last(Fill)
    process.answer(Expired("k", 4))
    process.answer(Filled("k", fill.after, (talk(3), talk(4))))
    process.join(2)
    process.answer(UserAdded(process.last(AddUser).ticket, 3))
    assert [event["offset"] for event in process.sent[2] if event["type"] == "talk"] == [4]


def test_a_talk_a_fill_brings_deleted_is_shown_as_deleted_and_not_to_seed_clients() -> None:
    process = Process()
    process.join(1)
    process.loaded(SavedRoom("k", 0, ()))
    process.answer(UserAdded(process.last(AddUser).ticket, 1))
    process.join(2, v2=False)
    process.answer(UserAdded(process.last(AddUser).ticket, 2))
    process.answer(TalkArrived(talk(2)))  # 1 missed: a fill, which finds it deleted meanwhile
    process.answer(Filled("k", process.last(Fill).after, (talk(1, None), talk(2))))
    assert [(event.get("deleted", False), event["offset"]) for event in process.sent[1] if event["type"] == "talk"] == [
        (True, 1), (False, 2)
    ]
    assert [event["payload"] for event in process.sent[2] if event["type"] == "talk"] == ["hi"]
