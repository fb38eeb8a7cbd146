"""Rooms in a real SQLite file: restarts, idle rooms, database faults, backups."""

from __future__ import annotations

import resource
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from chat_client import ChatClient
from chatcore import ChatCore, CoreLimits, problems
from live import LiveServer, live_server, wait_until
from processes import CHAT_SERVER, server_process
from transports.config import ServerConfig
from transports.storage.sqlschema import SCHEMA_VERSION


def room_count(live: LiveServer) -> int:
    """Rooms the server holds in memory."""
    core = live.running.hub.app
    assert isinstance(core, ChatCore)
    count: int = live.call(lambda: core.room_count)
    return count


def history(client: ChatClient, count: int) -> list[tuple[str, int]]:
    events = [client.recv() for _ in range(count)]
    assert all(event["type"] == "talk" for event in events), events
    return [(event["payload"], event["userId"]) for event in events]


def test_rooms_users_and_messages_survive_a_restart(server_config: ServerConfig) -> None:
    with live_server(server_config) as first, ChatClient(first.ws_url) as alice, ChatClient(first.ws_url) as bob:
        join_key = alice.init()["joinKey"]
        assert bob.init(join_key)["userId"] == 2
        alice.talk("<b>before</b> the restart")
        assert history(bob, 1) == [("<b>before</b> the restart", 1)]
        bob.talk("ok")
        assert history(alice, 2) == [("<b>before</b> the restart", 1), ("ok", 2)]
    with live_server(server_config) as second, ChatClient(second.ws_url) as carol, \
            ChatClient(second.ws_url) as seed_page:
        assert carol.init(join_key)["userId"] == 3
        assert history(carol, 2) == [("<b>before</b> the restart", 1), ("ok", 2)]
        assert seed_page.init(join_key, renders_text=False)["userId"] == 4
        assert history(seed_page, 2)[0] == ("&lt;b&gt;before&lt;/b&gt; the restart", 1)


def test_version_2_tokens_names_talk_ids_and_history_survive_a_restart(server_config: ServerConfig) -> None:
    def join(client: ChatClient, **fields: object) -> dict[str, Any]:
        client.send({"type": "init", "v": 2, "render": "text", **fields})
        reply = client.recv()
        assert reply["type"] == "init", reply
        return reply

    def next_of(client: ChatClient, kind: str) -> dict[str, Any]:
        """The next event of this kind (presence events before it are skipped)."""
        while (event := client.recv())["type"] != kind:
            assert event["type"] in {"joined", "left", "renamed"}, event
        return event

    with live_server(server_config) as first, ChatClient(first.ws_url) as ada:
        joined = join(ada, name="Ada")
        join_key, token = joined["joinKey"], joined["token"]
        for n in range(1, 5):
            ada.send({"type": "talk", "payload": f"talk {n}", "id": f"m{n}"})
            assert next_of(ada, "talk")["offset"] == n
        ada.send({"type": "name", "name": "Ada L."})
        assert next_of(ada, "renamed") == {"type": "renamed", "userId": 1, "name": "Ada L."}
    with live_server(server_config) as second, ChatClient(second.ws_url) as ada, \
            ChatClient(second.ws_url) as seed_page:
        again = join(ada, joinKey=join_key, token=token, after=4)
        assert (again["userId"], again["resumed"], again["name"], again["offset"]) == (1, True, "Ada L.", 4)
        assert seed_page.init(join_key)["userId"] == 2
        assert [talk["payload"] for talk in seed_page.talks_until_quiet(0.3)] == [f"talk {n}" for n in range(1, 5)]
        ada.send({"type": "talk", "payload": "talk 2, sent again", "id": "m2"})  # after a reconnect, say
        resent = next_of(ada, "talk")
        assert (resent["offset"], resent["payload"], resent["name"], resent["id"]) == (2, "talk 2", "Ada", "m2")
        ada.send({"type": "history", "before": 4, "limit": 2})
        page = next_of(ada, "history")
        assert ([talk["offset"] for talk in page["talks"]], page["older"]) == ([2, 3], True)
        ada.send({"type": "talk", "payload": "talk 5"})
        fifth = next_of(ada, "talk")
        assert (fifth["offset"], fifth["name"]) == (5, "Ada L.")
        # The seed page was not sent the resent talk, nor anything but the seed's fields.
        assert seed_page.recv() == {"type": "talk", "payload": "talk 5", "userId": 1, "time": fifth["time"]}


def test_a_room_nobody_is_in_leaves_memory_and_comes_back_on_join(server: LiveServer) -> None:
    keys = []
    for n in range(30):
        with ChatClient(server.ws_url) as client:
            keys.append(client.init()["joinKey"])
            client.talk(f"room {n}")
            client.recv()
    wait_until(lambda: server.connection_count() == 0)
    wait_until(lambda: room_count(server) == 0)
    with ChatClient(server.ws_url) as returning:
        assert returning.init(keys[7])["userId"] == 2
        assert history(returning, 1) == [("room 7", 1)]
        assert room_count(server) == 1


def test_a_joiner_gets_the_latest_messages_up_to_the_history_limit(start_server: Callable[..., LiveServer]) -> None:
    live = start_server(core_limits=CoreLimits(history_limit=3, messages_per_second=1000, message_burst=1000))
    with ChatClient(live.ws_url) as talker:
        join_key = talker.init()["joinKey"]
        for n in range(10):
            talker.talk(str(n))
            talker.recv()
    wait_until(lambda: room_count(live) == 0)
    with ChatClient(live.ws_url) as joiner:
        joiner.init(join_key)
        assert [payload for payload, _ in history(joiner, 3)] == ["7", "8", "9"]


def test_a_locked_database_gives_a_clear_error_and_loses_nothing_shown(
    start_server: Callable[..., LiveServer], caplog: pytest.LogCaptureFixture
) -> None:
    live = start_server(database_timeout=0.2)
    assert live.config.database is not None
    with ChatClient(live.ws_url) as alice, ChatClient(live.ws_url) as bob:
        join_key = alice.init()["joinKey"]
        bob.init(join_key)
        other_process = sqlite3.connect(live.config.database, isolation_level=None)
        other_process.execute("BEGIN EXCLUSIVE")
        alice.talk("while locked")
        error = alice.recv()
        assert error["type"] == "error"
        assert error["message"] == problems.TALK_NOT_SAVED.text
        other_process.execute("ROLLBACK")
        other_process.close()
        alice.talk("after")
        assert alice.recv()["payload"] == "after"
        assert bob.recv()["payload"] == "after"  # bob never saw the message that was not stored
    assert any("could not store a message" in r.getMessage() and r.levelname == "ERROR" for r in caplog.records)
    assert not any(join_key in r.getMessage() for r in caplog.records)  # the room is named by a hash of its key
    with ChatClient(live.ws_url) as carol:
        carol.init(join_key)
        assert history(carol, 1) == [("after", 1)]


def test_a_full_disk_gives_a_clear_error_and_everything_shown_survives(tmp_path: Path) -> None:
    """The server's files may not grow past 512 KiB (RLIMIT_FSIZE: writes fail as on a full disk)."""
    db = tmp_path / "chat.db"

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (512 * 1024, 512 * 1024))

    args = ("--db", str(db), "--http-port", "0", "--ws-port", "0", "--rate", "1000", "--burst", "1000")
    seen: list[str] = []
    with server_process(*args, preexec_fn=small_files) as server:
        url = f"ws://127.0.0.1:{server.ws_port}/"
        with ChatClient(url) as writer, ChatClient(url) as reader:
            join_key = writer.init()["joinKey"]
            reader.init(join_key)
            for n in range(400):
                writer.talk(f"{n:04} " + "x" * 2000)
                reply = writer.recv()
                if reply["type"] == "error":
                    break
                seen.append(reply["payload"])
                assert reader.recv()["payload"] == reply["payload"]
            else:
                pytest.fail("the database never filled up")
            assert reply["message"] == problems.TALK_NOT_SAVED.text
            assert len(seen) > 10
            # The server goes on serving: still open, and answers with the same clear error.
            writer.talk("still full")
            assert writer.recv()["type"] == "error"
        server.process.terminate()
        assert server.process.wait(timeout=15) == 0
        log = server.whole_log()
    assert "could not store a message" in log
    assert "Traceback" not in log
    with server_process("--db", str(db), "--http-port", "0", "--ws-port", "0") as server, \
            ChatClient(f"ws://127.0.0.1:{server.ws_port}/") as joiner:
        joiner.init(join_key)
        assert [payload for payload, _ in history(joiner, len(seen))] == seen
        with pytest.raises(TimeoutError):
            joiner.recv(timeout=0.5)


def test_a_file_that_is_not_a_database_stops_the_server_with_a_clear_message(tmp_path: Path) -> None:
    db = tmp_path / "chat.db"
    db.write_bytes(b"this is not a database\n" * 100)
    result = subprocess.run([str(CHAT_SERVER), "--db", str(db)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert f"chat-server: error: cannot use {db}: file is not a database" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_database_from_a_newer_server_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "chat.db"
    with sqlite3.connect(db) as connection:
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    result = subprocess.run([str(CHAT_SERVER), "--db", str(db)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "newer than this server's" in result.stderr


def test_two_servers_cannot_share_one_database(tmp_path: Path) -> None:
    db = tmp_path / "chat.db"
    with server_process("--db", str(db), "--http-port", "0", "--ws-port", "0") as server:
        result = subprocess.run(
            [str(CHAT_SERVER), "--db", str(db), "--http-port", "0", "--ws-port", "0"],
            capture_output=True, text=True, timeout=30,
        )
        assert result.returncode == 2
        assert f"{db} is in use by another chat server (pid {server.process.pid})" in result.stderr


def test_the_default_database_is_created_in_the_users_data_folder(tmp_path: Path) -> None:
    with server_process("--http-port", "0", "--ws-port", "0", data_home=tmp_path) as server:
        with ChatClient(f"ws://127.0.0.1:{server.ws_port}/") as client:
            client.init()
        assert any(f"rooms stored in {tmp_path}/chat-server/chat.db" in line for line in server.log)
    with sqlite3.connect(tmp_path / "chat-server" / "chat.db") as connection:
        assert connection.execute("SELECT count(*) FROM rooms").fetchone() == (1,)


def test_memory_mode_writes_no_file(tmp_path: Path) -> None:
    with server_process("--db", ":memory:", "--http-port", "0", "--ws-port", "0", data_home=tmp_path) as server:
        with ChatClient(f"ws://127.0.0.1:{server.ws_port}/") as client:
            client.init()
            client.talk("gone with the process")
            client.recv()
        assert any("rooms kept in memory only" in line for line in server.log)
    assert list(tmp_path.iterdir()) == []


def test_the_readme_backup_command_copies_a_live_database(server: LiveServer, tmp_path: Path) -> None:
    assert server.config.database is not None
    with ChatClient(server.ws_url) as client:
        join_key = client.init()["joinKey"]
        client.talk("worth keeping")
        client.recv()
        backup = tmp_path / "backup.db"
        backup_command = Path(sys.executable).parent / "chat-server-backup"
        done = subprocess.run([str(backup_command), "--db", str(server.config.database), str(backup)],
                              check=True, timeout=30, capture_output=True, text=True)
        assert done.stdout == f"copied {server.config.database} to {backup}: 1 rooms\n"
    with server_process("--db", str(backup), "--http-port", "0", "--ws-port", "0") as restored, \
            ChatClient(f"ws://127.0.0.1:{restored.ws_port}/") as client:
        client.init(join_key)
        assert history(client, 1) == [("worth keeping", 1)]

