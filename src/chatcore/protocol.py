"""The seed's wire format: decoding client events and encoding server events.

Client events are untrusted JSON; every way they can be wrong becomes a
`ProtocolError` whose message is sent back to the client as an ``error`` event.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from typing import Any


class ProtocolError(Exception):
    """A client event the server cannot accept; ``str(error)`` is shown to the client."""


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

_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def decode_text(text: str, max_depth: int) -> object:
    """Parse one text message as JSON, refusing nesting deeper than ``max_depth``."""
    if nesting_exceeds(text, max_depth):
        raise ProtocolError(f"JSON nested deeper than {max_depth} levels")
    try:
        return json.loads(text)
    except ValueError:
        raise ProtocolError("invalid JSON") from None


def nesting_exceeds(text: str, max_depth: int) -> bool:
    """Whether arrays and objects in ``text`` nest deeper than ``max_depth``.

    Checked before parsing, so that the parser never recurses deeply. Brackets
    inside strings do not count; malformed text is left for the parser.
    """
    if text.count("[") + text.count("{") <= max_depth:
        return False  # the common case, at C speed
    depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > max_depth:
                return True
        elif char in "]}":
            depth -= 1
    return False


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
        if not _is_encodable(payload):
            raise ProtocolError('"payload" must be valid Unicode text')
        return TalkRequest(payload)
    raise ProtocolError('unknown event type; expected "init" or "talk"')


def _is_encodable(text: str) -> bool:
    # JSON allows lone surrogates ("\ud800"); UTF-8 and so WebSocket text cannot carry them.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def encode(event: dict[str, Any]) -> str:
    """Encode a server event as compact JSON text."""
    return _encoder.encode(event)


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
