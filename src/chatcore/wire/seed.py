"""The seed's wire format, frozen: the requests its clients make and the events they understand.

Every client written against the seed protocol must keep working unchanged
and never receive an event type or field it did not ask for, so nothing here
changes shape. Client events are untrusted JSON; every way they can be wrong
becomes a `ProtocolError` whose problem is sent back as an ``error`` event.
A later version of the protocol is a dialect in a module beside this one
(`chatcore.wire.dialects` registers it).
"""

from __future__ import annotations

import html

from .. import problems
from ..problems import Problem
from .dialect import Dialect, InitRequest, Request, TalkFields, TalkRequest, Welcome
from .errors import ProtocolError
from .jsontext import encode, is_encodable, number, string


class SeedDialect(Dialect):
    """The seed's protocol: ``init`` and ``talk`` in; ``init``, ``talk`` and ``error`` out, in the seed's shape.

    An ``init`` with ``"render": "text"`` declares that the client renders
    payloads as text; other clients (the seed page uses innerHTML) get
    payloads HTML-escaped. Any ``userId`` a client sends is ignored.
    """

    def parse(self, event: object, max_payload_chars: int) -> Request:
        if not isinstance(event, dict):
            raise ProtocolError(problems.NOT_AN_OBJECT)
        kind = event.get("type")
        if not isinstance(kind, str):
            raise ProtocolError(problems.NO_TYPE)
        if kind == "init":
            join_key = event.get("joinKey")
            if join_key is not None and not isinstance(join_key, str):
                raise ProtocolError(problems.BAD_JOIN_KEY)
            return InitRequest(join_key, TEXT if event.get("render") == "text" else MARKUP)
        if kind == "talk":
            return TalkRequest(valid_payload(event.get("payload"), max_payload_chars))
        raise ProtocolError(problems.UNKNOWN_REQUEST)

    def talk_event(self, talk: TalkFields) -> str:
        assert talk.payload is not None  # (never asked for a deleted talk: `Dialect.shows_changes`)
        return talk_event(talk.payload, talk.user_id, talk.time, escape_html=self.escape_html)

    def init_event(self, welcome: Welcome) -> str:
        return init_event(welcome.join_key, welcome.user_id)

    def error_event(self, problem: Problem, talk_id: str | None = None, request: str | None = None) -> str:
        return error_event(problem.text if problem.seed_text is None else problem.seed_text)


TEXT = SeedDialect(escape_html=False)
MARKUP = SeedDialect(escape_html=True)
"""The dialect of a connection before its first ``init``."""


def valid_payload(payload: object, max_payload_chars: int) -> str:
    """A talk's payload, or `ProtocolError`."""
    if not isinstance(payload, str):
        raise ProtocolError(problems.MESSAGE_NOT_TEXT)
    if len(payload) > max_payload_chars:
        raise ProtocolError(problems.TOO_LONG.format(limit=max_payload_chars))
    if not is_encodable(payload):
        raise ProtocolError(problems.NOT_UNICODE)
    return payload


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
    return f'{{"type":"talk","payload":{string(payload)},"userId":{number(user_id)},"time":{number(time)}}}'


def error_event(message: str) -> str:
    """An error; the text is in ``message`` (seed servers) and ``payload`` (seed clients)."""
    return encode({"type": "error", "message": message, "payload": message})
