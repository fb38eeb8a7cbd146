"""``--remembered-users`` on a real server keeping rooms in memory only: who can still resume by token."""

from __future__ import annotations

from contextlib import ExitStack

from chat_client import V2Client
from processes import server_process


def test_a_room_in_memory_remembers_the_users_that_left_last_and_no_more() -> None:
    with ExitStack() as stack:
        server = stack.enter_context(server_process(
            "--db", ":memory:", "--http-port", "0", "--ws-port", "0", "--ping-interval", "0",
            "--remembered-users", "1",
        ))
        url = f"ws://127.0.0.1:{server.ws_port}/"

        def client() -> V2Client:
            opened = V2Client(url)
            stack.callback(opened.close)
            return opened

        watcher = client()
        room = watcher.join(name="Watcher")["joinKey"]
        tokens: dict[str, str] = {}
        for name in ("Ada", "Bob"):
            visitor = client()
            joined = visitor.join(room, name=name)
            tokens[name] = joined["token"]
            visitor.close()
            watcher.wait_for("left", userId=joined["userId"])  # the server has seen it go
        bob = client().join(room, token=tokens["Bob"])
        assert (bob["resumed"], bob["name"]) == (True, "Bob")
        ada = client().join(room, token=tokens["Ada"])
        assert ada["resumed"] is False
        assert ada["name"] is None
