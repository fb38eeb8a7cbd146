"""``chat-client`` as a user runs it, in a pipe against a real server; and the client's state machine stays pure."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import chatclient
from chat_client import V2Client
from chatclient import cli
from chatcore import problems
from live import ROOT, TEST_LIMITS, live_server
from transports.config import ServerConfig, Transport

PURE = ("client.py", "events.py", "__init__.py")
FORBIDDEN = {"trio", "anyio", "asyncio", "wsproto", "trio_websocket", "websockets", "socket", "selectors", "time",
             "threading", "os", "transports"}


def command(*args: str, stdin: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "chatclient", *args], input=stdin, capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.fixture(params=[t.value for t in Transport])
def config(request: pytest.FixtureRequest, tmp_path: Path) -> ServerConfig:
    return ServerConfig(transport=Transport(request.param), http_port=0, ws_port=0, limits=TEST_LIMITS,
                        shutdown_grace=2.0, database=tmp_path / "chat.db")


def test_a_pipe_starts_a_room_sends_its_lines_and_leaves_once_they_are_stored(config: ServerConfig) -> None:
    with live_server(config) as live:
        done = command(live.ws_url, "--name", "Bot", stdin="homework: page 12\n\nexercise 3\n")
        assert done.returncode == 0, done.stderr
        assert "chat started; join key: " in done.stderr
        join_key = done.stderr.split("join key: ", 1)[1].split()[0].rstrip(";")
        assert done.stdout.splitlines() == ["Bot: homework: page 12", "Bot: exercise 3"]  # (empty lines not sent)
        with V2Client(live.ws_url) as reader:
            reader.join(join_key)
            assert [e["payload"] for e in reader.until_quiet() if e["type"] == "talk"] == [
                "homework: page 12", "exercise 3"]


def test_json_mode_prints_one_event_per_line_and_joins_by_key(config: ServerConfig) -> None:
    with live_server(config) as live, V2Client(live.ws_url) as host:
        join_key = host.join(name="Teacher")["joinKey"]
        host.send({"type": "talk", "payload": "welcome"})
        done = command(live.ws_url, "--join", join_key, "--name", "Ada", "--json", stdin="hi\n")
        assert done.returncode == 0, done.stderr
        events = [json.loads(line) for line in done.stdout.splitlines()]
        talks = [(e["name"], e["payload"], e["offset"]) for e in events if e["event"] == "Talk"]
        assert talks == [("Teacher", "welcome", 1), ("Ada", "hi", 2)]
        assert events[0]["event"] == "Joined"
        assert events[0]["join_key"] == join_key


def test_a_room_that_does_not_exist_is_said_in_one_line_and_exit_code_1(config: ServerConfig) -> None:
    with live_server(config) as live:
        for key in ("nosuchroom", "-Gd-KmcZaU"):  # (a join key may begin with "-", as the server's often do)
            done = command(live.ws_url, "--join", key, stdin="")
            assert done.returncode == 1, done.stderr
            assert done.stderr.strip() == f"chat-client: {problems.NOT_FOUND.text}"


def test_a_join_key_or_a_name_beginning_with_a_dash_is_the_option_s_value() -> None:
    read = cli.arguments(["--join", "-Gd-Km", "ws://127.0.0.1:8001/", "--name", "-Ada-", "--json"])
    assert (read.url, read.join, read.name, read.json) == ("ws://127.0.0.1:8001/", "-Gd-Km", "-Ada-", True)
    assert cli.arguments(["ws://h/", "--join=-x"]).join == "-x"
    with pytest.raises(SystemExit):
        cli.arguments(["ws://h/", "--join"])  # (no value: the usage, as before)


def test_the_client_state_machine_imports_no_io_loop_or_clock() -> None:
    package = Path(chatclient.__file__).parent
    for name in PURE:
        tree = ast.parse((package / name).read_text())
        imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                    for alias in node.names}
        imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                     if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module}
        assert not imported & FORBIDDEN, name


def test_a_removal_is_said_in_one_line_and_exit_code_1(config: ServerConfig) -> None:
    with live_server(config) as live, V2Client(live.ws_url) as owner:
        join_key = owner.join(name="Teacher")["joinKey"]
        process = subprocess.Popen(
            [sys.executable, "-m", "chatclient", live.ws_url, "--join", join_key, "--name", "Pest"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])},
        )
        try:
            assert process.stdin is not None
            process.stdin.write("first\n")
            process.stdin.flush()
            joined = owner.wait_for("joined", name="Pest")
            owner.wait_for("talk", payload="first")
            owner.send({"type": "remove", "userId": joined["userId"]})
            process.wait(timeout=20)  # (its input still open: the removal alone ends it)
            assert process.stdout is not None
            assert process.stderr is not None
            out, err = process.stdout.read(), process.stderr.read()
        finally:
            process.kill()
            for stream in (process.stdin, process.stdout, process.stderr):
                if stream is not None:
                    stream.close()
        assert process.returncode == 1
        assert err.strip().splitlines()[-1] == "chat-client: removed from this chat"
        assert "Traceback" not in err
        assert out.splitlines()[0] == "Pest: first"
