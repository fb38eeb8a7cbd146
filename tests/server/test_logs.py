"""The server's log (``--log-format``): one JSON object per line, a line per connection, nothing a client said."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from chat_client import ChatClient, V2Client
from chatcore import AddUser, Append, History, Rename
from chatcore.actions import Moderate
from chatcore.control import Edit
from live import wait_until
from processes import server_process
from redis_server import redis_server
from transports.cli import build_parser
from transports.config import Transport
from transports.logs import JsonFormatter, room_hash
from transports.storage.sqlite import _summary


def parse_log(text: str) -> list[dict[str, Any]]:
    """Every line of a JSON log, each of which must be one JSON object with the four fields every line has."""
    entries = []
    for line in text.splitlines():
        entry = json.loads(line)
        assert isinstance(entry, dict), line
        assert {"time", "level", "logger", "message"} <= set(entry), line
        entries.append(entry)
    return entries


@pytest.mark.parametrize("store", ["sqlite", "redis"])
def test_a_json_log_has_a_line_per_connection_and_nothing_a_client_said(
    transport: Transport, store: str, tmp_path: Path
) -> None:
    secret = secrets.token_hex(4)  # in every name, payload and talk id: found in the log only if one leaked
    name, new_name, payload, talk_id = f"Ada {secret}", f"Ada L. {secret}", f"hello {secret}", f"m-{secret}"
    args = ["--transport", transport.value, "--http-port", "0", "--ws-port", "0", "--log-format", "json",
            "--log-level", "DEBUG"]
    with ExitStack() as stack:
        if store == "redis":
            args += ["--redis", stack.enter_context(redis_server(tmp_path)).url]
        text, join_key, token = converse(args, name, new_name, payload, talk_id, secret)
    for leak in (join_key, token, secret):
        assert leak not in text
    check_connection_lines(parse_log(text), transport)


def converse(
    args: list[str], name: str, new_name: str, payload: str, talk_id: str, secret: str
) -> tuple[str, str, str]:
    """A version-2 conversation, with a seed member, a resume, a rename and a history request; the server's log,
    the room's join key and the token."""
    with server_process(*args) as server:
        url = f"ws://127.0.0.1:{server.ws_port}/"
        with V2Client(url) as alice:
            reply = alice.join(name=name)
            join_key, token = reply["joinKey"], reply["token"]
            alice.send({"type": "talk", "payload": payload, "id": talk_id})
            assert alice.wait_for("talk")["payload"] == payload
            with ChatClient(url) as seed:  # a seed client in the same room: talks with a userId field
                seed.init(join_key, renders_text=False)
                seed.send({"type": "talk", "payload": f"seed {payload}", "userId": "2"})
                assert alice.wait_for("talk", payload=f"seed {payload}")
        with V2Client(url) as again:  # the same user, back with its token; a new name, a history request
            assert again.join(join_key, token=token, name=new_name)["resumed"] is True
            again.send({"type": "name", "name": new_name})
            again.wait_for("renamed")
            again.send({"type": "history", "before": 2, "limit": 10})
            again.wait_for("history")
            again.send({"type": "init", "joinKey": "no such room " + secret})  # refused: already in a chat
            again.wait_for("error")
            lingering = ChatClient(url)  # still open at shutdown, as is `again`
            lingering.init(join_key)
            server.process.send_signal(signal.SIGTERM)
            assert server.process.wait(timeout=15) == 0
            lingering.close()
        return server.whole_log(), join_key, token


def check_connection_lines(entries: list[dict[str, Any]], transport: Transport) -> None:
    text = "\n".join(map(str, entries))
    assert not any("traceback" in entry for entry in entries), text
    opened = [entry for entry in entries if entry.get("event") == "opened"]
    closed = [entry for entry in entries if entry.get("event") == "closed"]
    assert len(opened) == len(closed) == 4, text
    for entry in opened + closed:
        assert entry["level"] == "INFO"
        assert entry["address"] == "127.0.0.1"
        assert isinstance(entry["port"], int)
        assert entry["transport"] == transport.value
    for entry in closed:
        assert isinstance(entry["duration"], float)
        assert 0 <= entry["duration"] < 30
        assert "connection closed with" in entry["message"]
    codes = sorted(entry["close_code"] for entry in closed)
    assert codes[:2] == [1000, 1000]
    assert codes[2] == codes[3] in (1001, 1012)  # the two open at SIGTERM: going away, or drained (restart)


def test_a_connection_that_vanishes_is_logged_with_1006() -> None:
    with server_process("--http-port", "0", "--ws-port", "0", "--log-format", "json") as server:
        client = ChatClient(f"ws://127.0.0.1:{server.ws_port}/")
        client.init()
        client.vanish()  # no close frame: the TCP connection just ends
        wait_until(lambda: any('"event": "closed"' in line for line in server.log))
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=15) == 0
        entries = parse_log(server.whole_log())
        client.close()
    (closed,) = [entry for entry in entries if entry.get("event") == "closed"]
    assert closed["close_code"] == 1006


def test_the_text_log_says_the_same_in_words() -> None:
    with server_process("--http-port", "0", "--ws-port", "0", "--transport", "wsproto") as server:
        with ChatClient(f"ws://127.0.0.1:{server.ws_port}/") as client:
            client.init()
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=15) == 0
        text = server.whole_log()
    assert " INFO transports.runtime.hub: 127.0.0.1:" in text
    assert "connection opened (wsproto)" in text
    assert "connection closed with 1000 after " in text


def test_a_traceback_stays_inside_its_json_object() -> None:
    try:
        raise RuntimeError("a bug")
    except RuntimeError:
        record = logging.LogRecord("transports.x", logging.ERROR, __file__, 1, "internal error: %s", ("boom",),
                                   sys.exc_info())
    record.address = "192.0.2.1"
    line = JsonFormatter(worker=2).format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "internal error: boom"
    assert (entry["level"], entry["logger"], entry["worker"], entry["address"]) == ("ERROR", "transports.x", 2,
                                                                                    "192.0.2.1")
    assert entry["time"].endswith("Z")
    assert "RuntimeError: a bug" in entry["traceback"]


def test_storage_errors_name_rooms_by_a_hash_of_their_key() -> None:
    key = "Qx8-secret-join-key"
    requests: list[Append | AddUser | Rename | History | Moderate] = [
        Append(1, key, 1, 0.0, "payload text", "Ada", "m-1"), AddUser(2, key, 1.0, name="Ada"),
        Rename(3, key, 1, "Ada"), History(4, key, 10, 5), Moderate(5, key, 1, 0.0, Edit(1, "payload text")),
    ]
    for request in requests:
        summary = _summary(request)
        assert key not in summary
        assert "Ada" not in summary
        assert "payload" not in summary
        assert room_hash(key) in summary
    assert room_hash(key) == hashlib.sha256(key.encode()).hexdigest()[:8]


@pytest.mark.parametrize("level", ["debug", "DEBUG"])
def test_the_log_level_takes_any_case(level: str) -> None:
    assert build_parser().parse_args(["--log-level", level]).log_level == "DEBUG"


def test_a_setting_that_cannot_work_is_one_json_line_too() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with tempfile.TemporaryDirectory() as data_home:
            result = subprocess.run(
                [sys.executable, "-m", "transports", "--log-format", "json", "--ws-port", str(port),
                 "--http-port", "0"],
                capture_output=True, text=True, timeout=60, env={**os.environ, "XDG_DATA_HOME": data_home},
            )
    assert result.returncode == 2
    errors = [entry for entry in parse_log(result.stderr) if entry["level"] == "ERROR"]
    assert [entry["message"] for entry in errors] == [
        f"chat-server: error: port {port} is already in use on 127.0.0.1 (--ws-port): stop what uses it, or pick "
        "another port (--ws-port 0 takes any free one)"]


def test_a_malformed_page_request_is_logged_without_what_it_quoted() -> None:
    """h11's errors quote the request line or header they refuse: a join link may be in either."""
    secret = secrets.token_hex(8)
    requests = [f"GET /?join={secret} HTTP/1.1 more\r\nHost: x\r\n\r\n",
                f"GET / HTTP/1.1\r\nHost: x\r\nReferer: http://x/?join={secret}\x00\r\n\r\n",
                f"GET / HTTP/1.1\r\nHost: x\r\nReferer http://x/?join={secret}\r\n\r\n"]
    with server_process("--http-port", "0", "--ws-port", "0") as server:
        for request in requests:
            with socket.create_connection(("127.0.0.1", server.http_port), timeout=5) as connection:
                connection.sendall(request.encode())
                assert connection.recv(100).startswith(b"HTTP/1.1 400 ")
        wait_until(lambda: sum("bad HTTP request" in line for line in list(server.log)) == len(requests))
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=15) == 0
        text = server.whole_log()
    assert secret not in text
    assert "bad HTTP request (400): illegal request line" in text
