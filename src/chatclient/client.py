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
comes back, and once the join's replay is in (`last_offset` reaches
`Joined.offset`) sends what `resend` returns (talks the room has not stored
yet, each with its id: the room stores a talk once per user and id). Not
before: when the room did not take our token back we are a new user, and a
talk it stored before the drop is recognised as ours only in the replay.
"""

from __future__ import annotations

import enum
import json
import secrets
from dataclasses import dataclass
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


@dataclass(frozen=True, slots=True)
class Retry:
    """Internal news for the caller: the server could not store this pending talk now; send it again later."""

    id: str


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
        """The highest offset delivered to the application: no talk at or below it is delivered again."""
        self._auth = auth
        self._max_chars = max_message_chars
        self._earlier_users: set[int] = set()
        """Our user ids before resumes the room did not accept: their talks in a replay may be our pending ones."""
        self._prefix = id_prefix or secrets.token_urlsafe(6)
        self._sent = 0
        self._pending: dict[str, str] = {}
        """Talks sent (or to send) that the room has not stored: id → text, in the order they were written."""

    # What to send ---------------------------------------------------------------------------------------------

    def hello(self) -> dict[str, Any]:
        """The first event of a new connection: a join, or a resume once we have been in the room."""
        if self.state is not State.IDLE:
            raise RuntimeError(f"hello() on a {self.state.value} client: call connection_lost() first")
        self.state = State.JOINING
        event: dict[str, Any] = {"type": "init", "v": 2, "render": "text"}
        if self.join_key is not None:
            event["joinKey"] = self.join_key
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

    def request(self, kind: str, **fields: Any) -> dict[str, Any]:
        """Any other request of version 2 (``name``, ``history``, ``edit``, ``delete``, ``room``, ``lock``,
        ``remove``, ``role``, ``end``), with its fields as the protocol names them."""
        if self.state is not State.JOINED:
            raise RuntimeError(f"{kind}: not in the room ({self.state.value})")
        return {"type": kind, **fields}  # (a new name is ours once the room says so: `renamed`)

    # What comes back ------------------------------------------------------------------------------------------

    def receive(self, event: dict[str, Any]) -> list[Event | Stored | Retry]:
        """What ``event`` means: news for the application, and for the caller `Stored` (a talk of ours stored or
        refused) and `Retry` (one to send again later). An event it cannot read is left (nothing)."""
        try:
            return self._receive(event)
        except (KeyError, TypeError, ValueError):  # (a malformed event: not one our server sends)
            return []

    def _receive(self, event: dict[str, Any]) -> list[Event | Stored | Retry]:
        kind = event.get("type")
        if self.state is State.JOINING:
            if kind == "init":
                return [self._joined(event)]
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
        if kind == "talk":
            return self._talk(event)
        if kind == "error":
            refused = _refused(event)
            talk_id = refused.id
            if isinstance(talk_id, str) and talk_id in self._pending:
                if _retryable(refused) and refused.code != "rate-limited":
                    return [Retry(talk_id)]
                del self._pending[talk_id]
                return [Stored(talk_id, None, refused.message), refused]
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
            self.state = State.ENDED
            return Ended(reason or ("removed from this chat" if code == REMOVED else "this chat was ended"), code)
        self.connection_lost()
        return None

    def connection_lost(self) -> None:
        """The connection is gone: the next one starts with `hello` (a resume, once we have joined)."""
        if self.state is not State.ENDED:
            self.state = State.IDLE

    def _joined(self, event: dict[str, Any]) -> Joined:
        user_id = int(event["userId"])
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
        return Joined(
            self.join_key, self.user_id, self.name, str(event.get("role", "member")), members,
            bool(event.get("resumed")), int(event.get("offset", 0)), bool(event.get("older")),
            room.get("title"), bool(room.get("locked")),
        )

    def _talk(self, event: dict[str, Any]) -> list[Event | Stored | Retry]:
        talk = _talk(event)
        out: list[Event | Stored | Retry] = []
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
