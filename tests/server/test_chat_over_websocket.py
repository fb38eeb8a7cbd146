"""The chat end to end over loopback sockets, on each transport, with python-websockets as the client."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable

import pytest
from websockets.exceptions import ConnectionClosed

from chat_client import ChatClient
from chatcore import problems
from chatcore.problems import Problem
from live import LiveServer, wait_until

BAD_INPUTS = [
    ("not json", problems.NOT_JSON),
    ("[" * 50_000, problems.TOO_DEEP.format(depth=32)),
    ("[1, 2]", problems.NOT_AN_OBJECT),
    ("{}", problems.NO_TYPE),
    ('{"type": 7}', problems.NO_TYPE),
    ('{"type": "shout"}', problems.UNKNOWN_REQUEST),
    ('{"type": "init", "joinKey": 12}', problems.BAD_JOIN_KEY),
    ('{"type": "talk", "payload": "too early"}', problems.NOT_IN_CHAT),
]


def test_create_join_talk_and_replay(server: LiveServer) -> None:
    with ChatClient(server.ws_url) as alice:
        created = alice.init()
        assert created["userId"] == 1
        join_key = created["joinKey"]
        assert isinstance(join_key, str)
        assert len(join_key) >= 16
        alice.talk("first")
        assert alice.recv()["payload"] == "first"
        with ChatClient(server.ws_url) as bob:
            assert bob.init(join_key) == {"type": "init", "joinKey": join_key, "userId": 2}
            replayed = bob.recv()
            assert replayed["type"] == "talk"
            assert (replayed["payload"], replayed["userId"]) == ("first", 1)
            assert isinstance(replayed["time"], float)
            assert abs(replayed["time"] - time.time()) < 60
            bob.talk("hi alice")
            for member in (alice, bob):
                event = member.recv()
                assert (event["type"], event["payload"], event["userId"]) == ("talk", "hi alice", 2)


def test_everyone_sees_the_same_order(server: LiveServer) -> None:
    with ChatClient(server.ws_url) as a:
        join_key = a.init()["joinKey"]
        with ChatClient(server.ws_url) as b, ChatClient(server.ws_url) as c:
            b.init(join_key)
            c.init(join_key)
            for i in range(20):
                (a, b, c)[i % 3].talk(f"m{i}")
            streams = [[m.recv()["payload"] for _ in range(20)] for m in (a, b, c)]
            assert streams[0] == streams[1] == streams[2]
            assert sorted(streams[0]) == sorted(f"m{i}" for i in range(20))


def test_rooms_are_separate(server: LiveServer) -> None:
    with ChatClient(server.ws_url) as a, ChatClient(server.ws_url) as b:
        a.init()
        b.init()
        a.talk("only for room a")
        assert a.recv()["payload"] == "only for room a"
        b.talk("only for room b")
        assert b.recv()["payload"] == "only for room b"


def test_a_spoofed_user_id_is_ignored(server: LiveServer) -> None:
    with ChatClient(server.ws_url) as a:
        join_key = a.init()["joinKey"]
        with ChatClient(server.ws_url) as b:
            b.init(join_key)
            # Exactly what the seed page sends: its own idea of its id, as a string.
            b.send({"type": "talk", "payload": "I am user 1", "userId": "1"})
            assert a.recv()["userId"] == 2


def test_ids_are_unique_and_never_reused_and_the_room_outlives_its_creator(server: LiveServer) -> None:
    with ChatClient(server.ws_url) as creator:
        join_key = creator.init()["joinKey"]
        creator.talk("kept")
        creator.recv()
    ids = []
    for _ in range(3):
        with ChatClient(server.ws_url) as visitor:
            ids.append(visitor.init(join_key)["userId"])
            assert visitor.recv()["payload"] == "kept"
    assert ids == [2, 3, 4]


@pytest.mark.parametrize(("message", "error"), BAD_INPUTS)
def test_bad_input_gets_an_error_event_and_the_connection_stays_usable(
    server: LiveServer, message: str, error: Problem
) -> None:
    with ChatClient(server.ws_url) as client:
        client.send_raw(message)
        reply = client.recv()
        assert reply["type"] == "error"
        assert reply == {"type": "error", "message": error.text, "payload": error.text}  # (the seed's fields alone)
        client.init()
        client.talk("still works")
        assert client.recv()["payload"] == "still works"


def test_bad_input_inside_a_room(server: LiveServer) -> None:
    with ChatClient(server.ws_url) as client:
        client.init()
        for message, error in [
            ('{"type": "init"}', problems.ALREADY_IN_CHAT),
            ('{"type": "talk", "payload": 42}', problems.MESSAGE_NOT_TEXT),
            ('{"type": "talk"}', problems.MESSAGE_NOT_TEXT),
        ]:
            client.send_raw(message)
            assert client.recv()["payload"] == error.text
        client.send_raw(b"\x00binary")
        assert client.recv()["payload"] == problems.BINARY.text
        client.talk("fine")
        assert client.recv()["payload"] == "fine"


def test_unknown_join_key_is_an_error_then_a_new_init_works(server: LiveServer) -> None:
    with ChatClient(server.ws_url) as client:
        client.send({"type": "init", "joinKey": "no-such-room"})
        assert client.recv() == {"type": "error", "message": "chat not found.", "payload": "chat not found."}
        assert client.init()["userId"] == 1


def test_markup_reaches_text_renderers_unchanged_and_seed_pages_escaped(server: LiveServer) -> None:
    payload = '<img src=x onerror="alert(1)"><b>bold</b> & ünïcødé 🎉'
    escaped = "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&lt;b&gt;bold&lt;/b&gt; &amp; ünïcødé 🎉"
    with ChatClient(server.ws_url) as modern, ChatClient(server.ws_url) as legacy:
        join_key = modern.init()["joinKey"]
        legacy.init(join_key, renders_text=False)
        modern.talk(payload)
        assert modern.recv()["payload"] == payload
        assert legacy.recv()["payload"] == escaped
        with ChatClient(server.ws_url) as late_legacy:
            late_legacy.init(join_key, renders_text=False)
            assert late_legacy.recv()["payload"] == escaped


def test_a_message_above_the_size_limit_closes_with_1009(server: LiveServer) -> None:
    limit = server.config.limits.max_message_size
    with ChatClient(server.ws_url, max_size=None) as client:
        client.init()
        client.talk("x" * (limit + 1))
        with pytest.raises(ConnectionClosed) as closed:
            client.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1009


def test_a_fragmented_message_is_reassembled(server: LiveServer) -> None:
    with ChatClient(server.ws_url) as client:
        client.init()
        event = json.dumps({"type": "talk", "payload": "in three parts"})
        client.ws.send(iter([event[:5], event[5:12], event[12:]]))
        assert client.recv()["payload"] == "in three parts"


def test_connections_are_forgotten_when_clients_leave(server: LiveServer) -> None:
    clients = [ChatClient(server.ws_url) for _ in range(5)]
    join_key = clients[0].init()["joinKey"]
    for client in clients[1:]:
        client.init(join_key)
    wait_until(lambda: server.connection_count() == 5)
    for client in clients:
        client.close()
    wait_until(lambda: server.connection_count() == 0)


def test_shutdown_closes_clients_with_1001(start_server: Callable[..., LiveServer]) -> None:
    live = start_server()
    with ChatClient(live.ws_url) as client:
        client.init()
        live.call(live.running.stop)
        with pytest.raises(ConnectionClosed) as closed:
            client.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1001


def test_the_process_can_stop_accepting_while_open_connections_go_on(server: LiveServer) -> None:
    """The listeners belong to the process: closing them refuses newcomers and leaves everyone else talking."""
    with ChatClient(server.ws_url) as alice, ChatClient(server.ws_url) as bob:
        join_key = alice.init()["joinKey"]
        bob.init(join_key)
        for listener in server.running.listeners:
            server.call(listener.stop_accepting)
        wait_until(lambda: refused(server.running.ws_port) and refused(server.running.http_port))
        alice.talk("still here")
        assert bob.recv()["payload"] == "still here"
        assert alice.recv()["payload"] == "still here"


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False
