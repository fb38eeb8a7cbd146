"""Talking: what a member sends, every member receives, as the seed protocol says."""

from __future__ import annotations

from chatcore import Action, Broadcast, ChatCore, Send
from corekit import ESCAPED, MARKUP, FakeClock, LocalChat, decoded, join_room, keys, only_reply, send, start_room


def test_talk_is_broadcast_to_every_member_including_the_sender(core: ChatCore) -> None:
    join_key = start_room(core, 1)
    join_room(core, 2, join_key)
    start_room(core, 3)  # another room hears nothing
    actions = send(core, 2, {"type": "talk", "payload": "hello"})
    assert len(actions) == 1
    broadcast = actions[0]
    assert isinstance(broadcast, Broadcast)
    assert broadcast.room == join_key
    assert sorted(broadcast.recipients) == [1, 2]
    assert decoded(broadcast) == {"type": "talk", "payload": "hello", "userId": 2, "time": 1000.0}


def test_the_user_id_a_client_sends_is_ignored(core: ChatCore) -> None:
    join_key = start_room(core, 1)
    join_room(core, 2, join_key)
    for claimed in ["1", 1, "admin", None]:
        event = decoded(send(core, 2, {"type": "talk", "payload": "x", "userId": claimed})[0])
        assert event["userId"] == 2


def test_time_comes_from_the_injected_clock(core: ChatCore, clock: FakeClock) -> None:
    start_room(core, 1)
    clock.now = 1234.5
    first = decoded(send(core, 1, {"type": "talk", "payload": "a"})[0])
    clock.now = 1240.25
    second = decoded(send(core, 1, {"type": "talk", "payload": "b"})[0])
    assert (first["time"], second["time"]) == (1234.5, 1240.25)


def test_receive_accepts_decoded_event_dicts(core: ChatCore) -> None:
    core.connect(1)
    assert only_reply(core.receive(1, {"type": "init"}), 1)["type"] == "init"


def test_payloads_travel_unchanged(core: ChatCore) -> None:
    start_room(core, 1, render="text")
    payload = '<img src=x onerror="alert(1)"> "quotes" \\ ünïcødé 🎉 \n'
    assert decoded(send(core, 1, {"type": "talk", "payload": payload})[0])["payload"] == payload


def test_server_events_are_compact_json(core: ChatCore) -> None:
    core.connect(1)
    action = send(core, 1, {"type": "init"})[0]
    assert isinstance(action, Send)
    assert action.message == '{"type":"init","joinKey":"key1","userId":1}'


def test_the_same_inputs_give_the_same_actions() -> None:
    def script() -> list[Action]:
        core = LocalChat(clock=FakeClock(), new_join_key=keys().__next__)
        out = []
        core.connect(1)
        out += send(core, 1, {"type": "init"})
        out += send(core, 1, {"type": "talk", "payload": "a"})
        core.connect(2)
        out += send(core, 2, {"type": "init", "joinKey": "key1"})
        out += core.receive_text(2, "junk")
        return out

    assert script() == script()


def test_clients_that_do_not_declare_text_rendering_get_escaped_payloads(core: ChatCore) -> None:
    join_key = start_room(core, 1, render="text")
    join_room(core, 2, join_key)  # a seed page: no render field
    join_room(core, 3, join_key, render="html")  # anything but "text" is treated as markup
    actions = send(core, 1, {"type": "talk", "payload": MARKUP})
    assert len(actions) == 2
    by_recipients = {action.recipients: decoded(action)["payload"] for action in actions
                     if isinstance(action, Broadcast)}
    assert by_recipients == {(1,): MARKUP, (2, 3): ESCAPED}


def test_a_room_of_one_kind_gets_one_broadcast(core: ChatCore) -> None:
    join_key = start_room(core, 1)
    join_room(core, 2, join_key)
    actions = send(core, 1, {"type": "talk", "payload": "<b>"})
    assert len(actions) == 1
    assert isinstance(actions[0], Broadcast)
    assert actions[0].recipients == (1, 2)
    assert decoded(actions[0])["payload"] == "&lt;b&gt;"
