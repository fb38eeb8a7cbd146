"""Protocol version 2, opt-in: names, presence, ids on talks, resume and history (docs/protocol.md).

A client opts in with ``"v": 2`` in its ``init``; every other client sees
only the seed's events and fields (`chatcore.wire.seed`, frozen). What
version 2 adds, client → server: fields on ``init`` (``name``, ``token``,
``after``), an ``id`` on ``talk``, and the ``name``, ``history`` and ``typing`` events;
server → client: fields on ``init``, ``talk`` and ``error``, and the
``joined``, ``left``, ``renamed``, ``history`` and ``typing`` events. Nothing here
holds state; `chatcore.core` decides who gets what, and `V2Dialect` is how a
version-2 connection reads and writes.
"""

from __future__ import annotations

import html
import unicodedata
from collections.abc import Collection, Sequence
from typing import Any

from .. import problems
from ..control.state import (
    MAX_TITLE_CHARS,
    NEVER_CHANGED,
    Change,
    Delete,
    Edit,
    End,
    Lock,
    Remove,
    RoomControl,
    SetRole,
    Title,
)
from ..problems import Problem
from . import seed
from .dialect import (
    ChangeFields,
    ChangeRequest,
    Dialect,
    HistoryRequest,
    InitRequest,
    NameRequest,
    Request,
    TalkFields,
    TalkRequest,
    TypingRequest,
    Welcome,
)
from .errors import ProtocolError
from .jsontext import encode, is_encodable, number, string

VERSION = 2
MAX_NAME_CHARS = 32
MAX_TALK_ID_CHARS = 64
MAX_TOKEN_CHARS = 256
"""Longer tokens are never handed out, so they are not looked up."""
MAX_AUTH_CHARS = 8192
"""Longer sign-in tokens are refused unread."""
HISTORY_DEFAULT = 50
HISTORY_MAX = 200
"""Most talks one ``history`` answer holds; a larger ``limit`` is cut to it."""


class V2Dialect(Dialect):
    """Protocol version 2: the seed's events and fields, and what this module's docstring lists."""

    resumes = True
    announces_presence = True
    has_talk_ids = True
    shows_changes = True
    tells_typing = True

    def parse(self, event: object, max_payload_chars: int) -> Request:
        if not isinstance(event, dict):
            return seed.MARKUP.parse(event, max_payload_chars)  # (the seed's error for it)
        kind = event.get("type")
        if kind == "talk":
            talk_id = event.get("id")
            if talk_id is not None and not _is_talk_id(talk_id):
                raise ProtocolError(problems.BAD_TALK_ID.format(limit=MAX_TALK_ID_CHARS))
            try:
                return TalkRequest(seed.valid_payload(event.get("payload"), max_payload_chars), talk_id)
            except ProtocolError as error:
                raise ProtocolError(error.problem, talk_id) from None
        if kind == "name":
            try:
                return NameRequest(valid_name(event.get("name")))
            except ProtocolError as error:
                raise ProtocolError(error.problem, request=kind) from None
        if kind == "history":
            before = event.get("before")
            if before is not None and not _is_count(before, minimum=1):
                raise ProtocolError(problems.BAD_BEFORE, request=kind)
            limit = event.get("limit", HISTORY_DEFAULT)
            if not _is_count(limit, minimum=1):
                raise ProtocolError(problems.BAD_LIMIT, request=kind)
            return HistoryRequest(before, min(limit, HISTORY_MAX))
        if kind == "typing":
            return TYPING
        if kind in _CHANGES:
            try:
                return ChangeRequest(_CHANGES[kind](event, max_payload_chars))
            except ProtocolError as error:
                raise ProtocolError(error.problem, request=kind) from None
        if isinstance(kind, str) and kind != "init":
            raise ProtocolError(problems.UNKNOWN_REQUEST)
        return seed.MARKUP.parse(event, max_payload_chars)  # an init (without "v": the seed's), or no "type" string

    def talk_event(self, talk: TalkFields) -> str:
        if talk.payload is None:
            return deleted_talk_event(talk.offset, talk.user_id, talk.time)
        return talk_event(
            talk.payload, talk.user_id, talk.time, talk.offset, talk.name, talk.talk_id, escape_html=self.escape_html,
            edited=talk.edited, verified=talk.verified,
        )

    def replayed(self, welcome: Welcome) -> Sequence[Any]:
        """The talks after ``after``; and before them, those at or below it that were edited or deleted (the
        client may have their old text), as they are now."""
        after = welcome.after
        if after is None:
            return welcome.history
        return [
            talk for talk in welcome.history
            if talk.offset > after or talk.payload is None or talk.edited is not None
        ]

    def init_event(self, welcome: Welcome) -> str:
        after = welcome.after or 0
        first = next((talk.offset for talk in welcome.history if talk.offset > after), welcome.last_offset + 1)
        assert welcome.token is not None
        return init_event(
            welcome.join_key, welcome.user_id, token=welcome.token, name=welcome.name, members=welcome.members,
            resumed=welcome.resumed, offset=welcome.last_offset, older=first > after + 1,
            escape_html=self.escape_html, control=welcome.control, verified=welcome.verified,
            max_payload_chars=welcome.max_payload_chars,
        )

    def error_event(self, problem: Problem, talk_id: str | None = None, request: str | None = None) -> str:
        return error_event(problem, talk_id, request)

    def change_event(self, entry: ChangeFields, control: RoomControl) -> str | None:
        return change_event(entry, control, self.escape_html)

    def refused_talk_id(self, event: object) -> str | None:
        if isinstance(event, dict) and event.get("type") == "talk":
            talk_id = event.get("id")
            if isinstance(talk_id, str) and len(talk_id) <= MAX_TALK_ID_CHARS:
                return talk_id
        return None

    def refused_request(self, event: object) -> str | None:
        if isinstance(event, dict):
            kind = event.get("type")
            if isinstance(kind, str) and kind in _NAMED_REQUESTS:
                return kind
        return None

    def presence_event(self, kind: str, user_id: int, name: str | None, verified: bool = False) -> str:
        if kind == "joined":
            return joined_event(user_id, name, escape_html=self.escape_html, verified=verified)
        if kind == "left":
            return left_event(user_id)
        return renamed_event(user_id, name, escape_html=self.escape_html, verified=verified)

    def history_event(self, before: int, talks: Sequence[str], older: bool) -> str:
        return history_event(before, talks, older)

    def typing_event(self, user_id: int) -> str:
        return typing_event(user_id)


TYPING = TypingRequest()
TEXT = V2Dialect(escape_html=False)
MARKUP = V2Dialect(escape_html=True)


def parse_init(event: dict[str, Any]) -> InitRequest:
    """A version-2 ``init`` (``"v"`` is 2: `chatcore.wire.dialects` checked it)."""
    join_key = event.get("joinKey")
    if join_key is not None and not isinstance(join_key, str):
        raise ProtocolError(problems.BAD_JOIN_KEY)
    name = event.get("name")
    if name is not None:
        name = valid_name(name)
    token = event.get("token")
    if token is not None and not isinstance(token, str):
        raise ProtocolError(problems.BAD_REJOIN)
    after = event.get("after")
    if after is not None and not _is_count(after, minimum=0):
        raise ProtocolError(problems.BAD_RESUME_POINT)
    usable_token = token if token and join_key is not None and len(token) <= MAX_TOKEN_CHARS else None
    auth = event.get("auth")
    if auth is not None and (not isinstance(auth, str) or not 1 <= len(auth) <= MAX_AUTH_CHARS):
        raise ProtocolError(problems.BAD_SIGN_IN_FORM.format(limit=MAX_AUTH_CHARS))
    dialect = TEXT if event.get("render") == "text" else MARKUP
    return InitRequest(join_key, dialect, name, usable_token, after, auth)


def _edit(event: dict[str, Any], max_payload_chars: int) -> Change:
    return Edit(_offset(event), seed.valid_payload(event.get("payload"), max_payload_chars))


def _delete(event: dict[str, Any], max_payload_chars: int) -> Change:
    return Delete(_offset(event))


def _title(event: dict[str, Any], max_payload_chars: int) -> Change:
    if "title" not in event:
        raise ProtocolError(problems.NO_TITLE)
    title = event["title"]
    if title is None:
        return Title(None)
    if not isinstance(title, str):
        raise ProtocolError(problems.TITLE_NOT_TEXT)
    title = title.strip()
    if not 1 <= len(title) <= MAX_TITLE_CHARS:
        raise ProtocolError(problems.TITLE_LENGTH.format(limit=MAX_TITLE_CHARS))
    if any(unicodedata.category(char) in _CONTROL_CATEGORIES for char in title) or not is_encodable(title):
        raise ProtocolError(problems.TITLE_CONTROL)
    return Title(title)


_CONTROL_CATEGORIES = frozenset({"Cc", "Zl", "Zp"})
"""What a title may not hold: control characters and line or paragraph separators (emoji sequences joined
by zero-width joiners, no-break spaces and the like are fine)."""


def _lock(event: dict[str, Any], max_payload_chars: int) -> Change:
    locked = event.get("locked")
    if not isinstance(locked, bool):
        raise ProtocolError(problems.BAD_LOCK)
    return Lock(locked)


def _remove(event: dict[str, Any], max_payload_chars: int) -> Change:
    ban = event.get("ban", False)
    if not isinstance(ban, bool):
        raise ProtocolError(problems.BAD_BAN)
    return Remove(_user_id(event), ban)


def _role(event: dict[str, Any], max_payload_chars: int) -> Change:
    role = event.get("role")
    if role not in ("moderator", "member"):
        raise ProtocolError(problems.BAD_ROLE)
    return SetRole(_user_id(event), role == "moderator")


def _end(event: dict[str, Any], max_payload_chars: int) -> Change:
    return End()


_CHANGES = {"edit": _edit, "delete": _delete, "room": _title, "lock": _lock, "remove": _remove, "role": _role,
            "end": _end}
"""How each change of a room is read from its event (the key: its ``type``)."""
_NAMED_REQUESTS = frozenset({*_CHANGES, "name", "history", "typing"})
"""The requests whose refusals say which request they refuse (``request``); a talk's say its ``id``."""


def _offset(event: dict[str, Any]) -> int:
    offset = event.get("offset")
    if not _is_count(offset, minimum=1):
        raise ProtocolError(problems.BAD_MESSAGE_NUMBER)
    assert isinstance(offset, int)
    return offset


def _user_id(event: dict[str, Any]) -> int:
    user_id = event.get("userId")
    if not _is_count(user_id, minimum=1):
        raise ProtocolError(problems.BAD_MEMBER_NUMBER)
    assert isinstance(user_id, int)
    return user_id


def valid_name(name: object) -> str:
    """The name trimmed, or `ProtocolError`: 1 to 32 characters after trimming, no control characters."""
    if not isinstance(name, str):
        raise ProtocolError(problems.NAME_NOT_TEXT)
    name = name.strip()
    if not 1 <= len(name) <= MAX_NAME_CHARS:
        raise ProtocolError(problems.NAME_LENGTH.format(limit=MAX_NAME_CHARS))
    if not name.isprintable() or not is_encodable(name):
        raise ProtocolError(problems.NAME_CONTROL)
    return name


def _is_talk_id(value: object) -> bool:
    return (
        isinstance(value, str) and 1 <= len(value) <= MAX_TALK_ID_CHARS and value.isprintable()
        and is_encodable(value)
    )


def _is_count(value: object, *, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def shown(text: str | None, escape_html: bool) -> str | None:
    return html.escape(text) if escape_html and text is not None else text


# Server → client


def init_event(
    join_key: str, user_id: int, *, token: str, name: str | None, members: Sequence[tuple[int, str | None]],
    resumed: bool, offset: int, older: bool, escape_html: bool, control: RoomControl = NEVER_CHANGED,
    verified: Collection[int] = (), max_payload_chars: int | None = None,
) -> str:
    """The reply to a version-2 ``init``; ``verified``: the signed-in users among the joiner and the members (they
    are marked ``"verified": true``); ``max_payload_chars``: the longest talk the server takes, if it says."""
    event: dict[str, Any] = {
        "type": "init", "joinKey": join_key, "userId": user_id, "v": VERSION, "token": token,
        "name": shown(name, escape_html),
        "members": [
            _member(member, shown(member_name, escape_html), control.role(member), member in verified)
            for member, member_name in members
        ],
        "resumed": resumed, "offset": offset, "older": older, "role": control.role(user_id),
        "room": {"title": shown(control.title, escape_html), "locked": control.locked},
    }
    if max_payload_chars is not None:
        event["maxPayloadChars"] = max_payload_chars
    if user_id in verified:
        event["verified"] = True
    return encode(event)


def _member(user_id: int, name: str | None, role: str, verified: bool) -> dict[str, Any]:
    member: dict[str, Any] = {"userId": user_id, "name": name, "role": role}
    if verified:
        member["verified"] = True
    return member


def talk_event(
    payload: str, user_id: int, time: float, offset: int, name: str | None, talk_id: str | None, *, escape_html: bool,
    edited: float | None = None, verified: bool = False,
) -> str:
    """A talk for a version-2 client: the seed's fields, its offset, the sender's name and the sender's id; when its
    text was changed, when (``edited``); ``verified`` when its sender was signed in."""
    if escape_html:
        payload = html.escape(payload)
        name = shown(name, True)
    # Field by field, in the order a dict would have them: once per message, the hot path.
    text = (
        f'{{"type":"talk","payload":{string(payload)},"userId":{number(user_id)},"time":{number(time)},'
        f'"offset":{number(offset)},"name":{"null" if name is None else string(name)}'
    )
    if talk_id is not None:
        text += f',"id":{string(talk_id)}'
    if edited is not None:
        text += f',"edited":{number(edited)}'
    if verified:
        text += ',"verified":true'
    return text + "}"


def deleted_talk_event(offset: int, user_id: int, time: float) -> str:
    """A deleted talk, as replays and history show it: where it was, who sent it and when; nothing of it."""
    return encode({
        "type": "talk", "offset": offset, "userId": user_id, "time": time, "deleted": True, "payload": None,
        "name": None,
    })


def change_event(entry: ChangeFields, control: RoomControl, escape_html: bool) -> str | None:
    """A change of the room, as its version-2 members are told (None for an end: they are closed); ``control``:
    the room's state once it is applied."""
    change, by = entry.change, entry.by
    if isinstance(change, Edit):
        assert entry.talk is not None
        assert entry.talk.edited is not None
        return encode({
            "type": "edited", "offset": change.offset, "payload": shown(change.payload, escape_html),
            "edited": entry.talk.edited,
        })
    if isinstance(change, Delete):
        return encode({"type": "deleted", "offset": change.offset, "by": by})
    if isinstance(change, Title | Lock):
        return encode({"type": "room", "title": shown(control.title, escape_html), "locked": control.locked, "by": by})
    if isinstance(change, Remove):
        return encode({"type": "removed", "userId": change.user_id, "ban": change.ban, "by": by})
    if isinstance(change, SetRole):
        role = "moderator" if change.moderator else "member"
        return encode({"type": "role", "userId": change.user_id, "role": role, "by": by})
    return None


def joined_event(user_id: int, name: str | None, *, escape_html: bool, verified: bool = False) -> str:
    if verified:
        return encode({"type": "joined", "userId": user_id, "name": shown(name, escape_html), "verified": True})
    return encode({"type": "joined", "userId": user_id, "name": shown(name, escape_html)})


def typing_event(user_id: int) -> str:
    return encode({"type": "typing", "userId": user_id})


def left_event(user_id: int) -> str:
    return encode({"type": "left", "userId": user_id})


def renamed_event(user_id: int, name: str | None, *, escape_html: bool, verified: bool = False) -> str:
    if verified:
        return encode({"type": "renamed", "userId": user_id, "name": shown(name, escape_html), "verified": True})
    return encode({"type": "renamed", "userId": user_id, "name": shown(name, escape_html)})


def history_event(before: int, talks: Sequence[str], older: bool) -> str:
    """The answer to ``history``; ``talks`` are talk events already encoded for the client."""
    return f'{{"type":"history","before":{before},"talks":[{",".join(talks)}],"older":{"true" if older else "false"}}}'


def error_event(problem: Problem, talk_id: str | None, request: str | None = None) -> str:
    """An error for a version-2 client: the seed's fields, the problem's ``code``, and the ``id`` of the talk it
    refuses and the type of the request it refuses, when it says."""
    event: dict[str, Any] = {"type": "error", "message": problem.text, "payload": problem.text, "code": problem.code}
    if talk_id is not None:
        event["id"] = talk_id
    if request is not None:
        event["request"] = request
    return encode(event)
