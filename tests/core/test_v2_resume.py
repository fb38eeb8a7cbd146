"""Hypothesis: a version-2 client that drops and resumes at random points ends with the room's sequence, once each.

The log answers when the schedule says (requests stay in flight across
disconnects), another member talks throughout, and the client's own messages
carry ids. A careful client (our page) resends what it has not seen once the
replay is in; a hasty one resends at once and relies on the server's ids.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from chatcore import CoreLimits
from corekit import FakeClock, StoredChat, keys
from v2kit import Net

WRITER = 1
STEPS = st.lists(
    st.sampled_from(["writer talks", "client talks", "answer one", "answer all", "drop", "lost talk", "resume"]),
    max_size=60,
)


@dataclass
class Client:
    """A version-2 client as our page is: what it has shown, by offset, and what it sent that is not shown yet."""

    careful: bool
    token: str = ""
    connection: int | None = None
    shown: dict[int, tuple[int, str]] = field(default_factory=dict)
    pending: dict[str, str] = field(default_factory=dict)
    sent_ids: list[str] = field(default_factory=list)

    @property
    def after(self) -> int:
        return max(self.shown, default=0)

    def read(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            if event["type"] != "talk":
                continue
            offset = event["offset"]
            if offset in self.shown:
                # Only the answer to a resend may repeat a talk, and then exactly as shown.
                assert not self.careful, event
                assert event.get("id") is not None
                assert self.shown[offset] == (event["userId"], event["payload"])
            else:
                assert offset == self.after + 1, (offset, self.after)  # in order, no gap
                self.shown[offset] = (event["userId"], event["payload"])
            self.pending.pop(event.get("id", ""), None)


def run(steps: list[str], careful: bool) -> None:
    core = StoredChat(
        clock=FakeClock(), new_join_key=keys().__next__,
        limits=CoreLimits(history_limit=10_000, messages_per_second=1e9, message_burst=10**9),
    )
    net = Net(core)
    room = net.join(WRITER)["joinKey"]
    client = Client(careful)
    connections = iter(range(10, 10**6))
    said = 0

    def resume() -> None:
        connection = next(connections)
        init: dict[str, Any] = {"joinKey": room, "after": client.after}
        if client.token:
            init["token"] = client.token
        reply = net.join(connection, **init)
        client.connection = connection
        if client.token:
            assert reply["resumed"]
            assert reply["userId"] == user_id
        client.token = reply["token"]
        if careful:
            client.read(net.take(connection))  # the replay first, then only what it did not show
        for talk_id, payload in list(client.pending.items()):
            net.send(connection, {"type": "talk", "payload": payload, "id": talk_id})

    resume()
    user_id = core._sessions[client.connection].user_id  # type: ignore[index]
    for step in steps:
        if step == "writer talks":
            net.send(WRITER, {"type": "talk", "payload": f"w{said}"})
            said += 1
        elif step == "client talks":
            talk_id = f"c{said}"
            said += 1
            client.pending[talk_id] = talk_id
            client.sent_ids.append(talk_id)
            if client.connection is not None:
                net.send(client.connection, {"type": "talk", "payload": talk_id, "id": talk_id})
        elif step == "answer one":
            net.answer(1)
        elif step == "answer all":
            net.answer()
        elif step == "lost talk" and client.connection is not None:
            # Sent as the connection died: the server never got it; the client resends it on resuming.
            talk_id = f"c{said}"
            said += 1
            client.pending[talk_id] = talk_id
            client.sent_ids.append(talk_id)
            client.read(net.take(client.connection))
            net.disconnect(client.connection)
            client.connection = None
        elif step == "drop" and client.connection is not None:
            client.read(net.take(client.connection))
            net.disconnect(client.connection)
            client.connection = None
        elif step == "resume" and client.connection is None:
            resume()
        if client.connection is not None:
            client.read(net.take(client.connection))
    if client.connection is None:
        resume()
    net.answer()
    assert client.connection is not None
    client.read(net.take(client.connection))

    assert client.pending == {}
    log = net.log
    assert log is not None
    stored = [talk for talk in log._rooms[room].talks]  # the room's whole sequence
    assert [talk.offset for talk in stored] == list(range(1, len(stored) + 1))
    assert client.shown == {talk.offset: (talk.user_id, talk.payload) for talk in stored}
    mine = [talk.talk_id for talk in stored if talk.user_id == user_id]
    assert sorted(mine, key=str) == sorted(set(client.sent_ids), key=str)  # each id once, none lost


@settings(max_examples=300, deadline=None)
@given(steps=STEPS)
def test_a_careful_client_sees_the_room_once_in_order(steps: list[str]) -> None:
    run(steps, careful=True)


@settings(max_examples=300, deadline=None)
@given(steps=STEPS)
def test_a_hasty_client_sees_the_room_in_order_and_repeats_only_answers_to_its_resends(steps: list[str]) -> None:
    run(steps, careful=False)
