"""A member of a room as a scenario sees it (`Member`), and its two drivers: our page in Chromium (`PageMember`) and
a ``chatclient`` session (`ClientMember`); `room_log` reads what the room stored, with a client of neither kind.

The scenarios (``tests/scenarios``) are written once against `Member`; each driver does a step the way its client's
user does it (the page: typing, clicking, reading the screen; chatclient: its API and its events).
"""

from __future__ import annotations

import enum
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

import anyio
from anyio.abc import TaskStatus
from anyio.from_thread import start_blocking_portal
from playwright.sync_api import Browser
from playwright.sync_api import TimeoutError as PlaywrightTimeout

import chatclient.trio
from chat_client import V2Client
from chat_page import ChatPage
from chatclient import Ended, Event, Joined, MemberJoined, MemberLeft, Removed, Renamed, Talk
from chatclient.client import ENDED, REMOVED
from chatclient.session import Chat, SessionEnded

WAIT = 8.0
"""Seconds any one wait of a scenario may take (a reconnection after a server restart included)."""
HISTORY_PAGE = 4
"""Talks per ``history`` request of `ClientMember` (small: a few pages to walk back)."""


@dataclass(frozen=True)
class Said:
    """A talk as a member is shown it: who (their name, or "user N") and what."""

    sender: str
    text: str


class Outcome(enum.Enum):
    """Why a member is out of its room for good."""

    CANNOT_JOIN = "cannot join"
    """The join was refused for good (no such chat, a locked room, a ban): it does not try again."""
    REMOVED = "removed"
    ENDED = "ended"


class Member(Protocol):
    """One member of one room, as both clients promise it behaves."""

    def start(self, name: str) -> None:
        """Start a new room (returns once in it)."""

    def join(self, join_key: str, name: str) -> None:
        """Join the room ``join_key``: returns once in it, or once the join has failed for good (`out`)."""

    @property
    def join_key(self) -> str: ...

    @property
    def user_id(self) -> int: ...

    def say(self, text: str) -> None:
        """Send a talk (without waiting for the room to store it: while away, it goes once back)."""

    def talks(self) -> list[Said]:
        """Every talk shown, in the order shown (older ones fetched with `load_older` first)."""

    def wait_for_talks(self, count: int) -> list[Said]:
        """Once at least ``count`` talks are shown: `talks`."""

    def wait_until_sent(self) -> None:
        """Every talk said so far is stored (none refused)."""

    def members(self) -> list[str]:
        """Who is online, by name, in user id order (this member too)."""

    def wait_for_members(self, names: list[str]) -> None: ...

    def load_older(self) -> None:
        """Fetch older talks than the join's replay brought, back to the room's first."""

    def joins(self) -> int:
        """How many times this member has been let into the room (each reconnection is one more)."""

    def can_talk(self) -> bool:
        """Whether it still takes talks to send."""

    def wait_until_out(self) -> Outcome:
        """Once out of the room for good: why."""

    def close(self) -> None: ...


def _sender(user_id: object, name: object) -> str:
    return name if isinstance(name, str) and name else f"user {user_id}"


# ---- the page ----------------------------------------------------------------------------------------------------

_SAID = "ps => ps.map(p => [p.querySelector('.sender').textContent, p.querySelector('.text').textContent])"
_STOPPED = {"not-found": Outcome.CANNOT_JOIN, "refused": Outcome.CANNOT_JOIN, "removed": Outcome.REMOVED,
            "ended": Outcome.ENDED}
"""The page's states (``<body data-state>``) once it stays away, and what they mean."""


class PageMember:
    """Our page in a browser context of its own (a user of its own), as its user works it."""

    def __init__(self, browser: Browser, url: str) -> None:
        self._url = url
        self.chat = ChatPage(browser)
        self.chat.context.set_default_timeout(WAIT * 1000)
        self.page = self.chat.page

    def start(self, name: str) -> None:
        self.chat.open(self._url, name=name)
        self._wait_for_state(["live"])

    def join(self, join_key: str, name: str) -> None:
        self.chat.open(f"{self._url}?join={join_key}", name=name)
        self._wait_for_state(["live", *_STOPPED])

    @property
    def join_key(self) -> str:
        return parse_qs(urlsplit(self.chat.join_link()).query)["join"][0]

    @property
    def user_id(self) -> int:
        return int(self.chat.user_id())

    def say(self, text: str) -> None:
        self.chat.send_with_enter(text)

    def talks(self) -> list[Said]:
        shown = self.page.eval_on_selector_all("#message-wrapper p.message[data-offset]", _SAID)
        return [Said(sender, text) for sender, text in shown]

    def wait_for_talks(self, count: int) -> list[Said]:
        self.page.wait_for_function(
            "n => document.querySelectorAll('#message-wrapper p.message[data-offset]').length >= n", arg=count
        )
        return self.talks()

    def wait_until_sent(self) -> None:
        self.chat.wait_until_nothing_pending()
        assert self.page.locator("#message-wrapper p.message.failed").count() == 0

    def members(self) -> list[str]:
        return self.page.locator("#members .member .member-name").all_inner_texts()

    def wait_for_members(self, names: list[str]) -> None:
        self.page.wait_for_function(
            "want => JSON.stringify(Array.from(document.querySelectorAll('#members .member .member-name'),"
            " m => m.innerText)) === JSON.stringify(want)",
            arg=names,
        )

    def load_older(self) -> None:
        """Click "Load older messages" while it is there (the page may fetch older ones by itself, too)."""
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            self.page.wait_for_function(
                "() => document.getElementById('older').hidden || !document.getElementById('load-older').disabled"
            )
            if self.page.locator("#older").is_hidden():
                return
            try:
                self.page.locator("#older:not([hidden]) #load-older:enabled").click(timeout=1000)
            except PlaywrightTimeout:
                continue  # (the page's own fetch went first)
        raise AssertionError("older messages still to load")

    def joins(self) -> int:
        return len(self.chat.received_events("init"))

    def can_talk(self) -> bool:
        return self.page.locator("#message-input").is_enabled() and self.page.locator("#send-button").is_enabled()

    def wait_until_out(self) -> Outcome:
        return _STOPPED[self._wait_for_state(list(_STOPPED))]

    def _wait_for_state(self, states: list[str]) -> str:
        self.page.wait_for_function("states => states.includes(document.body.dataset.state)", arg=states)
        state: str = self.page.evaluate("document.body.dataset.state")
        return state

    def close(self) -> None:
        try:
            assert self.chat.script_errors == []
        finally:
            self.chat.close()


# ---- chatclient ----------------------------------------------------------------------------------------------------

_ENDED = {None: Outcome.CANNOT_JOIN, REMOVED: Outcome.REMOVED, ENDED: Outcome.ENDED}
"""What an `Ended`'s close code means (None: a join refused for good)."""


class ClientMember:
    """A ``chatclient.trio`` session, its event loop in a thread of its own; what it hears, kept in order."""

    def __init__(self, ws_url: str) -> None:
        self._url = ws_url
        self._stack = ExitStack()
        self._portal = self._stack.enter_context(start_blocking_portal(backend="trio"))
        self._changed = threading.Condition()
        self._events: list[Event] = []
        self._earlier: list[Talk] = []
        """Older talks fetched with ``history``, oldest first."""
        self._chat: Chat | None = None
        self._refused: str | None = None
        self._over = False
        self._session: Future[None] | None = None
        self._sends: list[Future[Talk]] = []

    # joining

    def start(self, name: str) -> None:
        self._enter(None, name)
        assert self._chat is not None, f"could not start a room: {self._refused}"

    def join(self, join_key: str, name: str) -> None:
        self._enter(join_key, name)

    def _enter(self, join_key: str | None, name: str) -> None:
        try:
            self._session, _ = self._portal.start_task(self._run, join_key, name)
        except SessionEnded as refused:
            self._refused = str(refused)

    async def _run(self, join_key: str | None, name: str, *, task_status: TaskStatus[None]) -> None:
        try:
            with anyio.CancelScope(deadline=anyio.current_time() + WAIT) as joining:
                async with chatclient.trio.connect(self._url, join_key, name=name) as chat:
                    joining.deadline = math.inf  # (the deadline was the join's)
                    self._chat = chat
                    task_status.started()
                    async for event in chat:
                        self._record(event)
            assert not joining.cancelled_caught, "no answer to the join"
        finally:
            with self._changed:
                self._over = True
                self._changed.notify_all()

    def _record(self, event: Event) -> None:
        with self._changed:
            self._events.append(event)
            self._changed.notify_all()

    @property
    def chat(self) -> Chat:
        assert self._chat is not None, f"not in a room: {self._refused}"
        return self._chat

    @property
    def join_key(self) -> str:
        key = self.chat.join_key
        assert key is not None
        return key

    @property
    def user_id(self) -> int:
        user_id = self.chat.user_id
        assert user_id is not None
        return user_id

    # talking

    def say(self, text: str) -> None:
        self._sends.append(self._portal.start_task_soon(self.chat.send, text))

    def talks(self) -> list[Said]:
        with self._changed:
            live = [event for event in self._events if isinstance(event, Talk)]
            return [Said(_sender(t.user_id, t.name), t.payload or "") for t in self._earlier + live]

    def wait_for_talks(self, count: int) -> list[Said]:
        self._wait(lambda: len(self.talks()) >= count, f"{count} talks")
        return self.talks()

    def wait_until_sent(self) -> None:
        for sending in self._sends:
            sending.result(timeout=WAIT)  # (raises what send raised: a refusal, the session's end)

    def members(self) -> list[str]:
        """Who is online: the latest `Joined`'s list, and the news since."""
        online: dict[int, str | None] = {}
        with self._changed:
            for event in self._events:
                if isinstance(event, Joined):
                    online = {member.user_id: member.name for member in event.members}
                elif isinstance(event, MemberJoined | Renamed):
                    online[event.user_id] = event.name
                elif isinstance(event, MemberLeft | Removed):
                    online.pop(event.user_id, None)
        return [_sender(user_id, online[user_id]) for user_id in sorted(online)]

    def wait_for_members(self, names: list[str]) -> None:
        self._wait(lambda: self.members() == names, f"members {names}")

    def load_older(self) -> None:
        """Ask for older talks (`Chat.history`), a page at a time, while the room says there are some."""
        joined = self.chat.joined
        assert joined is not None
        if not joined.older:
            return

        async def walk_back() -> None:
            with anyio.fail_after(WAIT):
                shown = [talk.offset for talk in self._earlier] + [
                    event.offset for event in self._events if isinstance(event, Talk)
                ]
                before = min(shown, default=joined.offset + 1)
                while True:
                    page = await self.chat.history(before=before, limit=HISTORY_PAGE)
                    with self._changed:
                        self._earlier[:0] = page.talks
                    if not page.older or not page.talks:
                        return
                    before = page.talks[0].offset

        self._portal.call(walk_back)

    def remove(self, user_id: int) -> None:
        """Remove a member from the room (not banned: it could come back, if it tried)."""

        async def remove() -> None:
            await self.chat.request("remove", userId=user_id)

        self._portal.call(remove)

    # the end

    def joins(self) -> int:
        with self._changed:
            return sum(isinstance(event, Joined) for event in self._events)

    def can_talk(self) -> bool:
        return self._chat is not None and self._chat.ended is None and not self._over

    def wait_until_out(self) -> Outcome:
        if self._refused is not None:
            return Outcome.CANNOT_JOIN
        self._wait(lambda: self._over, "the session's end")
        ended = [event for event in self._events if isinstance(event, Ended)]
        assert ended, "the session ended without saying why"
        return _ENDED[ended[-1].code]

    def _wait(self, condition: Callable[[], bool], what: str) -> None:
        with self._changed:
            self._changed.wait_for(lambda: condition() or self._over, timeout=WAIT)
            assert condition(), f"waited for {what}; heard {self._events}"

    def close(self) -> None:
        with self._stack:
            if self._chat is not None and not self._over:
                self._portal.call(self._chat.leave)
            if self._session is not None:
                self._session.result(timeout=WAIT)  # (what the session raised, if it failed)


# ---- the room itself ---------------------------------------------------------------------------------------------


def room_log(ws_url: str, join_key: str) -> list[Said]:
    """Every talk the room stored, oldest first, read by a newcomer (python-websockets: neither client)."""
    with V2Client(ws_url) as reader:
        reply = reader.join(join_key)
        stored: dict[int, dict[str, Any]] = {}
        while max(stored, default=0) < reply["offset"]:
            talk = reader.wait_for("talk")
            stored[talk["offset"]] = talk
        older = bool(reply.get("older"))
        while older:
            reader.send({"type": "history", "before": min(stored), "limit": 200})
            page = reader.wait_for("history")
            stored.update((talk["offset"], talk) for talk in page["talks"])
            older = bool(page["older"]) and bool(page["talks"])
    assert sorted(stored) == list(range(1, len(stored) + 1)), "offsets with gaps"
    return [Said(_sender(t["userId"], t.get("name")), t["payload"]) for _, t in sorted(stored.items())]
