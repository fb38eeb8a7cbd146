"""The seed's wire format: decoding client events and encoding server events.

Client events are untrusted JSON; every way they can be wrong becomes a
`ProtocolError` whose message is sent back to the client as an ``error`` event.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


class ProtocolError(Exception):
    """A client event the server cannot accept; ``str(error)`` is shown to the client."""


@dataclass(frozen=True, slots=True)
class InitRequest:
    """``{"type": "init"}`` starts a room; with ``joinKey`` it joins one."""

    join_key: str | None


@dataclass(frozen=True, slots=True)
class TalkRequest:
    """``{"type": "talk", "payload": ...}``; any ``userId`` the client sends is ignored."""

    payload: str


Request = InitRequest | TalkRequest

_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def decode_text(text: str) -> object:
    """Parse one text message as JSON."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        # RecursionError: absurdly deep nesting must not escape as a crash.
        raise ProtocolError("invalid JSON") from None


def parse_request(event: object) -> Request:
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
        return InitRequest(join_key)
    if kind == "talk":
        payload = event.get("payload")
        if not isinstance(payload, str):
            raise ProtocolError('"payload" must be a string')
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


def talk_event(payload: str, user_id: int, time: float) -> str:
    """One chat message as broadcast to a room and replayed to joiners."""
    return encode({"type": "talk", "payload": payload, "userId": user_id, "time": time})


def error_event(message: str) -> str:
    """An error; the text is in ``message`` (seed servers) and ``payload`` (seed clients)."""
    return encode({"type": "error", "message": message, "payload": message})
