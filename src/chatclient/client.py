"""`Client`: one member's view of one room, as a state machine that does no I/O.

States and transitions::

    IDLE ──hello()──▶ JOINING ──init reply──▶ JOINED
      ▲                  │ refused: could not join (try again)      │
      └──────────────────┴──────── connection_lost() ◀──────────────┘
    any ──removed (4403), ended (4410), refused for good──▶ ENDED

On every new connection the caller sends `hello`'s event first; after the
first join it is a resume: the room's join key, our token, and ``after``, the
last offset delivered, so the room replays only what we have not seen. Then
it feeds each event it receives to `receive` and hands the application what
comes back, sends every `Ask` that comes back with it, and once the join's
replay is in (`last_offset` reaches `Joined.offset`) sends what `resend`
returns (talks the room has not stored yet, each with its id: the room stores
a talk once per user and id). Not before: when the room did not take our
token back we are a new user, and a talk it stored before the drop is
recognised as ours only in the replay.

A resume after more talks than the room replays (``--history-limit``) leaves
a gap: the replay starts after ``after + 1`` (the init reply says ``older``).
The client then fills it while `filling`: it asks for the missing talks with
``history`` requests (`Ask`), a page at a time, oldest first, delivers each
page's talks as it comes, and holds everything else it receives (the replay,
live news) until the gap is filled, then handles that as if it came then.
What the room's log no longer has (erased by retention, or never kept: a
room in memory keeps only its replay) is passed over. A refused page ends
the connection (the state is IDLE again): the next resume starts after the
last talk delivered. A drop does the same.
"""

from __future__ import annotations

import enum
import json
import secrets
from dataclasses import dataclass, field
from typing import Any

from .events import (
    Deleted,
    Edited,
    Ended,
    Event,
    History,
    Joined,
    Member,
    MemberJoined,
    MemberLeft,
    Refused,
    Removed,
    Renamed,
    RoleChanged,
    RoomChanged,
    Talk,
)

REMOVED, ENDED = 4403, 4410
"""Close codes that end a session for good: removed from the room, the room ended (and erased)."""
RETRYABLE = frozenset({"rate-limited", "unavailable"})
"""The codes of refusals the server may not repeat: the same request, sent again later, may succeed."""
MAX_MESSAGE_CHARS = 65536
"""The server's default ``--max-message-size``: a longer message would close the connection (1009)."""
HISTORY_PAGE = 200
"""Talks one ``history`` request filling a gap asks for at most: the most the server sends in one answer."""


class State(enum.Enum):
    IDLE = "idle"
    JOINING = "joining"
    JOINED = "joined"
    ENDED = "ended"


@dataclass(frozen=True, slots=True)
class Stored:
    """Internal news for the caller, not the application: a talk we sent is stored (or refused)."""

    id: str
    talk: Talk | None
    refusal: str | None = None
    code: str | None = None
    """The refusal's code (``too-long``, ``not-allowed`` …)."""


@dataclass(frozen=True, slots=True)
class Retry:
    """Internal news for the caller: the server could not store this pending talk now; send it again later."""

    id: str


@dataclass(frozen=True, slots=True)
class Ask:
    """Internal news for the caller: send this event now (a ``history`` request for talks a resume missed)."""

    event: dict[str, Any]


@dataclass(slots=True)
class _Gap:
    """The talks a resume's replay skipped, being fetched a page at a time, oldest first."""

    end: int
    """The last offset to fetch: the one before the replay's first talk. Until the first page's answer, which
    comes after the whole replay, the room's newest (the replay may be empty: ``--history-limit 0``)."""
    before: int = 0
    """The page asked for: talks below this offset."""
    probe: bool = False
    """That page is the gap's last one, asked for to see whether the log begins in it (a page found nothing)."""
    probed: bool = False
    held: list[dict[str, Any]] = field(default_factory=list)
    """Everything else received meanwhile (the replay, live news), in order: handled once the gap is filled."""


class Client:
    """A member of one room: what to send on connecting, what the room's events mean, what is still unsent.

    ``join_key`` None starts a new room on the first connection. ``token`` and
    ``after`` resume a user from an earlier session (both from `Joined` and
    `last_offset`).
    """

    def __init__(
        self,
        join_key: str | None = None,
        *,
        name: str | None = None,
        auth: str | None = None,
        token: str | None = None,
        after: int = 0,
        id_prefix: str | None = None,
        max_message_chars: int = MAX_MESSAGE_CHARS,
    ) -> None:
        self.state = State.IDLE
        self.join_key = join_key
        self.name = name
        self.token = token
        self.user_id: int | None = None
        self.last_offset = after
        """The highest offset delivered to the application (or passed over filling a gap: the room's log no longer
        has it): no talk at or below it is delivered again."""
        self._auth = auth
        self._max_chars = max_message_chars
        self._earlier_users: set[int] = set()
        """Our user ids before resumes the room did not accept: their talks in a replay may be our pending ones."""
        self._prefix = id_prefix or secrets.token_urlsafe(6)
        self._sent = 0
        self._pending: dict[str, str] = {}
        """Talks sent (or to send) that the room has not stored: id → text, in the order they were written."""
        self._resuming = False
        """The latest hello sent ``after``: a replay that starts later leaves a gap to fill."""
        self._gap: _Gap | None = None

    # What to send ---------------------------------------------------------------------------------------------

    def hello(self) -> dict[str, Any]:
        """The first event of a new connection: a join, or a resume once we have been in the room."""
        if self.state is not State.IDLE:
            raise RuntimeError(f"hello() on a {self.state.value} client: call connection_lost() first")
        self.state = State.JOINING
        event: dict[str, Any] = {"type": "init", "v": 2, "render": "text"}
        if self.join_key is not None:
            event["joinKey"] = self.join_key
        self._resuming = self.token is not None
        if self.token is not None:
            event["token"] = self.token
            event["after"] = self.last_offset
        if self.name is not None:
            event["name"] = self.name
        if self._auth is not None:
            event["auth"] = self._auth
        return event

    def talk(self, payload: str) -> tuple[str, dict[str, Any] | None]:
        """A new talk's id, and its event to send now (None when not joined: `resend` sends it once we are).

        `ValueError` if the message would be longer than the server takes (it would close the connection).
        """
        self._sent += 1
        talk_id = f"{self._prefix}-{self._sent}"
        event = {"type": "talk", "payload": payload, "id": talk_id}
        if len(encode(event)) > self._max_chars:
            raise ValueError(f"too long to send: the server takes messages of up to {self._max_chars} characters")
        self._pending[talk_id] = payload
        return talk_id, (event if self.state is State.JOINED else None)

    def talk_event(self, talk_id: str) -> dict[str, Any] | None:
        """A pending talk's event, to send again (None once the room stored or refused it)."""
        payload = self._pending.get(talk_id)
        return None if payload is None else {"type": "talk", "payload": payload, "id": talk_id}

    def resend(self) -> list[dict[str, Any]]:
        """The talks not stored yet, oldest first: send them once a (re)join's replay is in (`last_offset` reaches
        `Joined.offset`), before any new talk."""
        return [{"type": "talk", "payload": text, "id": talk_id} for talk_id, text in self._pending.items()]

    @property
    def pending(self) -> int:
        """How many talks the room has not stored yet."""
        return len(self._pending)

    @property
    def filling(self) -> bool:
        """Whether a resume's gap is being filled. Meanwhile send no request of your own (`request`): an answer to
        a ``history`` of yours could not be told from a page's (nor, from a server older than ``request`` on
        refusals, a refusal of one), and `resend` only once it is over (our talks stored before a drop may be in
        the gap)."""
        return self._gap is not None

    def request(self, kind: str, **fields: Any) -> dict[str, Any]:
        """Any other request of version 2 (``name``, ``history``, ``edit``, ``delete``, ``room``, ``lock``,
        ``remove``, ``role``, ``end``), with its fields as the protocol names them."""
        if self.state is not State.JOINED:
            raise RuntimeError(f"{kind}: not in the room ({self.state.value})")
        return {"type": kind, **fields}  # (a new name is ours once the room says so: `renamed`)

    # What comes back ------------------------------------------------------------------------------------------

    def receive(self, event: dict[str, Any]) -> list[Event | Stored | Retry | Ask]:
        """What ``event`` means: news for the application, and for the caller `Stored` (a talk of ours stored or
        refused), `Retry` (one to send again later) and `Ask` (an event to send now: a page of a gap). An event
        it cannot read is left (nothing)."""
        try:
            return self._receive(event)
        except (KeyError, TypeError, ValueError):  # (a malformed event: not one our server sends)
            return []

    def _receive(self, event: dict[str, Any]) -> list[Event | Stored | Retry | Ask]:
        kind = event.get("type")
        if self.state is State.JOINING:
            if kind == "init":
                return self._joined(event)
            if kind == "error":
                refused = _refused(event)
                if _retryable(refused):
                    self.state = State.IDLE  # (the connection stays usable: hello() again, later)
                    return [refused]
                self.state = State.ENDED
                return [Ended(refused.message, refusal=refused.code)]
            return []
        if self.state is not State.JOINED:
            return []
        if self._gap is not None:
            return self._filling(self._gap, event)
        if kind == "talk":
            return self._talk(event)
        if kind == "error":
            refused = _refused(event)
            talk_id = refused.id
            if isinstance(talk_id, str) and talk_id in self._pending:
                if _retryable(refused) and refused.code != "rate-limited":
                    return [Retry(talk_id)]
                del self._pending[talk_id]
                return [Stored(talk_id, None, refused.message, refused.code), refused]
            return [refused]
        if kind == "renamed" and event.get("userId") == self.user_id:
            self.name = event.get("name")
        if kind == "history":
            talks = tuple(_talk(t) for t in event.get("talks", ()) if isinstance(t, dict))
            return [History(event.get("before"), talks, bool(event.get("older")))]
        news = _NEWS.get(str(kind))
        return [news(event)] if news is not None else []  # (an event of a later version: not ours to read)

    def closed(self, code: int | None, reason: str = "") -> Ended | None:
        """The connection ended with this close code: `Ended` if the session is over, else reconnect."""
        if code in (REMOVED, ENDED):
            self.state, self._gap = State.ENDED, None
            return Ended(reason or ("removed from this chat" if code == REMOVED else "this chat was ended"), code)
        self.connection_lost()
        return None

    def connection_lost(self) -> None:
        """The connection is gone: the next one starts with `hello` (a resume, once we have joined)."""
        self._gap = None  # (what it held comes again: the next replay starts after the last talk delivered)
        if self.state is not State.ENDED:
            self.state = State.IDLE

    def _joined(self, event: dict[str, Any]) -> list[Event | Stored | Retry | Ask]:
        user_id = int(event["userId"])
        offset = int(event.get("offset", 0))
        older = bool(event.get("older"))
        gap = self._resuming and older and offset > self.last_offset
        if self.user_id is not None and user_id != self.user_id:
            self._earlier_users.add(self.user_id)  # (our token did not resume us: a new user)
        self.state = State.JOINED
        self.join_key = str(event["joinKey"])
        self.user_id = user_id
        self.token = event.get("token", self.token)
        self.name = event.get("name")
        room = event.get("room") or {}
        members = tuple(
            Member(int(m["userId"]), m.get("name"), m.get("role", "member"), bool(m.get("verified")))
            for m in event.get("members", ())
        )
        joined = Joined(
            self.join_key, self.user_id, self.name, str(event.get("role", "member")), members,
            bool(event.get("resumed")), offset, older and not gap, room.get("title"), bool(room.get("locked")),
        )
        if not gap:
            return [joined]
        self._gap = _Gap(offset)
        return [joined, self._ask(self._gap)]

    # Filling a resume's gap -----------------------------------------------------------------------------------

    def _filling(self, gap: _Gap, event: dict[str, Any]) -> list[Event | Stored | Retry | Ask]:
        kind = event.get("type")
        # Nothing else of ours is in flight that a history answer, or an error naming neither a talk nor a change,
        # could answer (`filling`): these are the page's.
        if kind == "history":
            return self._page(gap, event)
        if kind == "error" and event.get("id") is None and event.get("request") in (None, "history"):
            # Refused: resume on a new connection, after the last talk delivered.
            self.connection_lost()
            return [Refused(str(event.get("message", "")), None, "history", _refused(event).code)]
        gap.held.append(event)
        return []

    def _ask(self, gap: _Gap) -> Ask:
        """The next page: from the last offset delivered on (or, probing, the gap's last talks)."""
        start = self.last_offset
        if gap.probe:
            gap.before, limit = gap.end + 1, HISTORY_PAGE
        else:
            gap.before = min(start + 1 + HISTORY_PAGE, gap.end + 1)
            limit = gap.before - 1 - start
        return Ask({"type": "history", "before": gap.before, "limit": limit})

    def _page(self, gap: _Gap, event: dict[str, Any]) -> list[Event | Stored | Retry | Ask]:
        """A page's answer: its talks in the gap delivered, then the next page asked for, or what was held let go.

        A page holds every talk the log has between its bounds (its limit is their distance), so what it lacks
        there is gone (erased, or never kept), and is passed over: a later resume does not ask for it again."""
        start = self.last_offset
        replay = [offset for held in gap.held if held.get("type") == "talk"
                  and isinstance(offset := held.get("offset"), int) and offset > start]
        if replay:  # (all of it came before this answer: answers come in the order of the requests)
            gap.end = min(gap.end, min(replay) - 1)
        page = event.get("talks")
        talks = sorted(
            (talk for talk in (page if isinstance(page, list) else ()) if isinstance(talk, dict)
             and isinstance(talk.get("offset"), int) and start < talk["offset"] <= gap.end),
            key=lambda talk: int(talk["offset"]),
        )
        reach = gap.end if gap.probe else min(gap.before - 1, gap.end)
        if gap.probe and talks and event.get("older") is True:
            talks, reach = [], start  # (the log begins before this page, in the gap: fetch from the start on)
        out: list[Event | Stored | Retry | Ask] = []
        for talk in talks:
            try:
                out += self._talk(talk)
            except (KeyError, TypeError, ValueError):  # (an unreadable talk is left, as a live one would be)
                continue
        self.last_offset = max(self.last_offset, reach)
        if self.last_offset >= gap.end:
            self._gap = None
            for held in gap.held:
                out += self.receive(held)
            return out
        # After a page that found nothing (the log begins later), ask once for the gap's last page: when the log
        # begins in it (a room kept in memory keeps only its replay), that is the rest of the gap.
        gap.probe = not talks and not gap.probe and not gap.probed and gap.end - self.last_offset > HISTORY_PAGE
        gap.probed = gap.probed or gap.probe
        out.append(self._ask(gap))
        return out

    def _talk(self, event: dict[str, Any]) -> list[Event | Stored | Retry | Ask]:
        talk = _talk(event)
        out: list[Event | Stored | Retry | Ask] = []
        mine = talk.user_id == self.user_id or talk.user_id in self._earlier_users
        if mine and talk.id is not None and self._pending.pop(talk.id, None) is not None:
            out.append(Stored(talk.id, talk))
        if talk.offset > self.last_offset:
            self.last_offset = talk.offset
            out.append(talk)
        elif talk.deleted:  # (a resume's replay brings what changed at or below ``after`` as it is now)
            out.append(Deleted(talk.offset, None))
        elif talk.edited is not None and talk.payload is not None:
            out.append(Edited(talk.offset, talk.payload, talk.edited))
        return out  # (else a replay's repeat, or a resent talk answered again: delivered already)


def encode(event: dict[str, Any]) -> str:
    """An event as the text sent (what the server's ``--max-message-size`` counts: characters)."""
    return json.dumps(event, ensure_ascii=False)


def _refused(event: dict[str, Any]) -> Refused:
    code = event.get("code")
    return Refused(str(event.get("message", "")), event.get("id"), event.get("request"),
                   code if isinstance(code, str) else None)


def _retryable(refused: Refused) -> bool:
    """Whether the same request, sent again later, may succeed: the code says so (a server older than the codes:
    the text does)."""
    return refused.code in RETRYABLE if refused.code is not None else "try again" in refused.message


def _talk(event: dict[str, Any]) -> Talk:
    return Talk(
        int(event["offset"]), int(event["userId"]), event.get("name"), event.get("payload"), float(event["time"]),
        event.get("id"), event.get("edited"), bool(event.get("deleted")), bool(event.get("verified")),
    )


_NEWS: dict[str, Any] = {
    "joined": lambda e: MemberJoined(int(e["userId"]), e.get("name"), bool(e.get("verified"))),
    "left": lambda e: MemberLeft(int(e["userId"])),
    "renamed": lambda e: Renamed(int(e["userId"]), e.get("name"), bool(e.get("verified"))),
    "edited": lambda e: Edited(int(e["offset"]), str(e["payload"]), float(e["edited"])),
    "deleted": lambda e: Deleted(int(e["offset"]), int(e["by"])),
    "room": lambda e: RoomChanged(e.get("title"), bool(e.get("locked")), int(e["by"])),
    "removed": lambda e: Removed(int(e["userId"]), bool(e.get("ban")), int(e["by"])),
    "role": lambda e: RoleChanged(int(e["userId"]), str(e["role"]), int(e["by"])),
}
"""How each kind of room news reads (every one a version-2 member gets), by its ``type``."""
