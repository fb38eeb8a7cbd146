"""The protocol page (docs/protocol.md), checked against the code: every event it shows is one a client may send
(the server reads it without an error) or one the server sends (its type, and no field the server never puts on
it); and every type and field a version-2 client is sent is on the page."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

from chatcore.wire import dialects, seed, v2
from chatcore.wire.errors import ProtocolError
from corekit import FakeClock, LocalChat, keys
from v2kit import Net

PAGE = Path(__file__).parents[2] / "docs" / "protocol.md"


def examples() -> list[dict[str, Any]]:
    """Every JSON object on the page that has a ``type``: in ```json blocks and in `backticks`."""
    text = PAGE.read_text()
    found: list[dict[str, Any]] = []
    decoder = json.JSONDecoder()
    for block in re.findall(r"```json\n(.*?)```", text, re.S):
        rest = block.strip()
        while rest:
            event, end = decoder.raw_decode(rest)
            found.append(event)
            rest = rest[end:].strip()
    for inline in re.findall(r"`(\{\"type\".*?\})`", text):
        try:
            found.append(json.loads(inline))
        except ValueError:  # (a shape with placeholders: {"type": "talk", "payload": TEXT, …})
            continue
    return found


def sent_to_version_2() -> dict[str, set[str]]:
    """Every type of event a version-2 client is sent in a session that makes each of them, and its fields."""
    clock = FakeClock()
    net = Net(LocalChat(clock=clock, new_join_key=keys().__next__))
    fields: dict[str, set[str]] = defaultdict(set)

    def heard(connection: int) -> list[dict[str, Any]]:
        events = net.take(connection)
        for event in events:
            fields[event["type"]] |= event.keys()
        return events

    owner = net.join(1, name="Bob")
    fields["init"] |= owner.keys()
    room = owner["joinKey"]
    ada = net.join(2, joinKey=room, name="Ada")
    fields["init"] |= ada.keys()
    steps: list[tuple[int, dict[str, Any]]] = [
        (2, {"type": "talk", "payload": "hello", "id": "m-1"}),
        (2, {"type": "typing"}),
        (2, {"type": "name", "name": "Ada L."}),
        (2, {"type": "edit", "offset": 1, "payload": "hello!"}),
        (1, {"type": "room", "title": "Math 7B"}),
        (1, {"type": "lock", "locked": True}),
        (1, {"type": "lock", "locked": False}),
        (1, {"type": "role", "userId": 2, "role": "moderator"}),
        (2, {"type": "talk", "payload": "oops"}),
        (2, {"type": "delete", "offset": 2}),
        (2, {"type": "history", "before": 3, "limit": 5}),
        (2, {"type": "talk", "payload": 5, "id": "m-2"}),
        (2, {"type": "end"}),
    ]
    for connection, event in steps:
        net.send(connection, event)
        heard(1)
        heard(2)
    cy = net.join(3, joinKey=room)
    fields["init"] |= cy.keys()
    heard(1)
    net.disconnect(3)
    heard(1)
    net.send(1, {"type": "remove", "userId": 3, "ban": True})
    heard(1)
    net.send(1, {"type": "end"})
    heard(1)
    return dict(fields)


def test_every_event_on_the_page_is_one_a_client_sends_or_one_the_server_sends() -> None:
    sent = sent_to_version_2()
    shown = examples()
    assert len(shown) >= 20
    for event in shown:
        if _read_by_the_server(event):
            continue
        kind = event["type"]
        assert kind in sent, f"the page shows a {kind!r} event the server never sends: {event}"
        assert event.keys() <= sent[kind] | {"deleted", "verified", "edited"}, (event, sent[kind])


def test_every_type_and_field_a_version_2_client_is_sent_is_on_the_page() -> None:
    text = PAGE.read_text()
    for kind, fields in sent_to_version_2().items():
        assert f'"type": "{kind}"' in text, kind
        for field in fields:
            assert f"`{field}`" in text or f'"{field}"' in text, (kind, field)


REQUESTS = {
    "init": {"v", "joinKey", "name", "token", "after", "render", "auth"}, "talk": {"payload", "id"}, "name": {"name"},
    "history": {"before", "limit"}, "edit": {"offset", "payload"}, "delete": {"offset"}, "room": {"title"},
    "lock": {"locked"}, "remove": {"userId", "ban"}, "role": {"userId", "role"}, "end": set(), "typing": set(),
}
"""The fields of each request a client sends (the rest of an event: the server's)."""


def _read_by_the_server(event: dict[str, Any]) -> bool:
    """Whether ``event`` is a request: only a request's fields, and the server reads it without an error."""
    kind = event.get("type")
    if kind not in REQUESTS or not event.keys() - {"type"} <= REQUESTS[kind]:
        return False
    try:
        dialects.parse(dialects.LOBBY if kind == "init" else v2.TEXT, event, 10_000)
    except ProtocolError:
        return False
    return True


def test_the_seed_events_on_the_page_are_the_seeds() -> None:
    assert json.loads(seed.init_event("K", 3)).keys() == {"type", "joinKey", "userId"}
    assert json.loads(seed.error_event("x")).keys() == {"type", "message", "payload"}
    assert '{"type": "error", "message": M, "payload": M}' in PAGE.read_text()
