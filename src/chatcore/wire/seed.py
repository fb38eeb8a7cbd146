"""The seed's wire format, frozen: the requests its clients make and the events they understand.

Every client written against the seed protocol must keep working unchanged
and never receive an event type or field it did not ask for, so nothing here
changes shape. Client events are untrusted JSON; every way they can be wrong
becomes a `ProtocolError` whose message is sent back as an ``error`` event.
An opt-in extension of the protocol goes in a module beside this one.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

from ..errors import ProtocolError
from .jsontext import encode, is_encodable


@dataclass(frozen=True, slots=True)
class InitRequest:
    """``{"type": "init"}`` starts a room; with ``joinKey`` it joins one.

    ``"render": "text"`` declares that the client renders payloads as text;
    other clients (the seed page uses innerHTML) get payloads HTML-escaped.
    """

    join_key: str | None
    renders_text: bool


@dataclass(frozen=True, slots=True)
class TalkRequest:
    """``{"type": "talk", "payload": ...}``; any ``userId`` the client sends is ignored."""

    payload: str


Request = InitRequest | TalkRequest

def parse_request(event: object, max_payload_chars: int) -> Request:
    """Validate a decoded client event and return the request it makes."""
    if not isinstance(event, dict):
        raise ProtocolError("an event must be a JSON object")
    kind = event.get("type")
    if not isinstance(kind, str):
        raise ProtocolError('an event needs a "type" string')
    if kind == "init":
        join_key = event.get("joinKey")
        if join_key is not None and not isinstance(join_key, str):
            raise ProtocolError('"joinKey" must be a string')
        return InitRequest(join_key, renders_text=event.get("render") == "text")
    if kind == "talk":
        payload = event.get("payload")
        if not isinstance(payload, str):
            raise ProtocolError('"payload" must be a string')
        if len(payload) > max_payload_chars:
            raise ProtocolError(f'"payload" is longer than {max_payload_chars} characters')
        if not is_encodable(payload):
            raise ProtocolError('"payload" must be valid Unicode text')
        return TalkRequest(payload)
    raise ProtocolError('unknown event type; expected "init" or "talk"')


def init_event(join_key: str, user_id: int) -> str:
    """The reply to a successful ``init``."""
    return encode({"type": "init", "joinKey": join_key, "userId": user_id})


def talk_event(payload: str, user_id: int, time: float, *, escape_html: bool) -> str:
    """One chat message as broadcast to a room and replayed to joiners.

    With ``escape_html`` the payload is HTML-escaped, for clients that render
    it as markup (the seed page): markup then shows as text there too.
    """
    if escape_html:
        payload = html.escape(payload)
    return encode({"type": "talk", "payload": payload, "userId": user_id, "time": time})


def error_event(message: str) -> str:
    """An error; the text is in ``message`` (seed servers) and ``payload`` (seed clients)."""
    return encode({"type": "error", "message": message, "payload": message})
