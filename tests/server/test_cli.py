"""The ``chat-server`` command as a user runs it: a real process, real signals."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable

import pytest
from websockets.exceptions import ConnectionClosed

from chat_client import ChatClient
from live import SEED_CLIENT, LiveServer
from processes import CHAT_SERVER, server_process
from transports.cli import COLLECTOR_THRESHOLDS, build_parser, config_from_args
from transports.config import AppKind, Transport


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 1001), (signal.SIGTERM, 1012)])
def test_a_signal_closes_clients_and_exits_cleanly(transport: Transport, signum: int, code: int) -> None:
    """SIGINT (Ctrl-C) stops at once with 1001; SIGTERM drains with 1012 (tests/server/test_drain.py has more)."""
    with server_process("--transport", transport.value, "--http-port", "0", "--ws-port", "0") as server:
        assert any(transport.value in line for line in server.log)
        with ChatClient(f"ws://127.0.0.1:{server.ws_port}/") as client:
            client.init()
            server.process.send_signal(signum)
            with pytest.raises(ConnectionClosed) as closed:
                client.recv(timeout=10)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == code
        assert server.process.wait(timeout=15) == 0
        rest = server.whole_log()
        assert "Traceback" not in rest
        assert signal.Signals(signum).name in rest


def test_the_console_script_serves_page_and_socket_in_one_process() -> None:
    with server_process("--http-port", "0", "--ws-port", "0", command=[str(CHAT_SERVER)]) as server:
        connection = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=5)
        connection.request("GET", "/config.js")
        assert '"wsPath": "/ws"' in connection.getresponse().read().decode()  # the socket: on the page's port too
        connection.close()
        with ChatClient(f"ws://127.0.0.1:{server.ws_port}/") as client:
            assert client.init()["userId"] == 1
        with ChatClient(f"ws://127.0.0.1:{server.http_port}/ws") as client:
            assert client.init()["userId"] == 1
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=15) == 0


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_the_wsproto_transport_runs_on_asyncio_and_uvloop(loop: str) -> None:
    args = ["--transport", "wsproto", "--event-loop", loop, "--http-port", "0", "--ws-port", "0"]
    with server_process(*args) as server:
        with ChatClient(f"ws://127.0.0.1:{server.ws_port}/") as alice:
            join_key = alice.init()["joinKey"]
            with ChatClient(f"ws://127.0.0.1:{server.http_port}/ws") as bob:  # (the page's port takes it too)
                bob.init(join_key)
                bob.talk("on " + loop)
                assert alice.recv()["payload"] == "on " + loop
            server.process.send_signal(signal.SIGTERM)
            with pytest.raises(ConnectionClosed) as closed:
                alice.recv(timeout=10)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 1012  # drained
        assert server.process.wait(timeout=15) == 0


def test_event_loops_other_than_trio_need_the_wsproto_transport() -> None:
    result = subprocess.run([str(CHAT_SERVER), "--event-loop", "uvloop"], capture_output=True, text=True)
    assert result.returncode == 2
    assert "--transport wsproto" in result.stderr


def test_help_lists_the_flags() -> None:
    output = subprocess.run([str(CHAT_SERVER), "--help"], capture_output=True, text=True, check=True).stdout
    for flag in ["--transport", "--host", "--http-port", "--ws-port", "--web", "--app",
                 "--max-message-size", "--outbox-bytes", "--handshake-timeout", "--history-limit"]:
        assert flag in output
    assert "trio-websocket" in output
    assert "wsproto" in output


@pytest.mark.parametrize("args", [["--transport", "nope"], ["--ws-port", "70000"], ["--web", "/no/such/dir"]])
def test_bad_flags_are_refused(args: list[str]) -> None:
    result = subprocess.run([str(CHAT_SERVER), *args], capture_output=True, text=True)
    assert result.returncode == 2
    assert "error" in result.stderr


def test_the_unchanged_seed_client_works_on_default_ports(transport: Transport) -> None:
    """The seed's page hard-codes ws://localhost:8001/ and is served with ``--web`` on port 8000."""
    with server_process("--transport", transport.value, "--web", str(SEED_CLIENT)) as server:
        assert (server.http_port, server.ws_port) == (8000, 8001)
        connection = http.client.HTTPConnection("localhost", 8000, timeout=5)
        connection.request("GET", "/")
        assert connection.getresponse().read() == (SEED_CLIENT / "index.html").read_bytes()
        connection.close()
        # Exactly what the seed's main.js sends: init without a render flag, userId as a string.
        with ChatClient("ws://localhost:8001/") as first:
            join_key = first.init(renders_text=False)["joinKey"]
            with ChatClient("ws://localhost:8001/") as second:
                second.send({"type": "init", "joinKey": join_key})
                assert second.recv()["userId"] == 2
                second.send({"type": "talk", "payload": "hello", "userId": "2"})
                for member in (first, second):
                    event = member.recv()
                    assert set(event) == {"type", "payload", "userId", "time"}
                    assert (event["type"], event["payload"], event["userId"]) == ("talk", "hello", 2)
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=15) == 0


def test_echo_app_echoes_text_and_binary(start_server: Callable[..., LiveServer]) -> None:
    live = start_server(app=AppKind.ECHO)
    with ChatClient(live.ws_url) as client:
        messages: list[str | bytes] = ["hello", json.dumps({"type": "init"}), "ünïcødé", b"\x00\xffbinary", b""]
        for message in messages:
            client.send_raw(message)
            assert client.ws.recv(timeout=5) == message


def start_failure(*args: str, code: str | None = None) -> str:
    """Run ``chat-server`` expecting it to refuse to start; its stderr, which must be one line."""
    argv = [sys.executable, "-c", code, *args] if code else [sys.executable, "-m", "transports", *args]
    with tempfile.TemporaryDirectory() as data_home:
        env = {**os.environ, "XDG_DATA_HOME": data_home}
        result = subprocess.run(argv, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, env=env)
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if " INFO " not in line]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith("chat-server: error: ")
    return errors[0]


STARTUP_REFUSALS = {
    "--ws-port abc": "argument --ws-port: invalid value: 'abc': must be a whole number",
    "--ws-port 99999": "argument --ws-port: must be 0-65535 (0: any free port)",
    "--max-connections 0": "argument --max-connections: must be at least 1",
    "--rate 0": "argument --rate: must be at least 0.001",
    "--retention -1": "argument --retention: must be more than 0, at most 100000",
    "--presence-grace -1": "argument --presence-grace: must be 0 to 1000000",
    "--presence-grace soon": "argument --presence-grace: invalid value: 'soon': must be a number",
    "--transport foo": "argument --transport: invalid choice: 'foo' (choose from 'trio-websocket', 'wsproto')",
    "--log-level LOUD": "argument --log-level: invalid choice: 'LOUD' (choose from 'DEBUG', 'INFO', 'WARNING', "
                        "'ERROR')",
    "--web /nonexistent": "argument --web: /nonexistent is not a folder",
    "--allow-origin example.com": "argument --allow-origin: must be an origin as browsers send it: http://host:port or "
                                  "https://host, no path, no wildcard",
    "--trusted-proxy nope": "argument --trusted-proxy: must be an IP address (10.0.0.5, ::1) or a network (10.0.0.0/8)",
    "--workers 2": "--workers needs --redis: separate processes share rooms only through Redis",
    "--redis redis://127.0.0.1:1 --db a.db": "--redis and --db are two places to keep rooms: choose one",
    "--event-loop asyncio": "--event-loop asyncio and uvloop need --transport wsproto",
    "--tls-key k.pem": "--tls-key needs --tls-cert: the certificate it belongs to",
    "--tls-cert /nonexistent": "cannot use the TLS certificate (--tls-cert, --tls-key): no such file: /nonexistent",
    "--auth required": "--auth required needs --auth-key: the key that verifies the sign-in tokens",
    "--auth-issuer me": "--auth-issuer needs --auth-key: the key that verifies the sign-in tokens",
    "--auth-key /nonexistent": "cannot use the sign-in key (--auth-key): no such file: /nonexistent",
    "--host 192.0.2.1 --ws-port 0 --http-port 0": "cannot listen on 192.0.2.1: not an address of this machine (--host; "
                                                  "0.0.0.0 means every interface)",
    "--db /proc/chat.db --ws-port 0 --http-port 0": "cannot create /proc/chat.db.lock: No such file or directory "
                                                    "(--db: choose a folder this user may write in)",
}
"""Every way the server refuses to start, and the one line it says: which flag, what is wrong, what it takes (a
port in use and settings from the environment have tests of their own below and in test_settings.py)."""


@pytest.mark.parametrize("args", list(STARTUP_REFUSALS))
def test_every_refusal_to_start_is_one_line_naming_the_flag_and_what_it_takes(args: str) -> None:
    said = start_failure(*args.split()).removeprefix("chat-server: error: ")
    assert said == STARTUP_REFUSALS[args]
    assert "--" in said
    assert not re.search(r"Traceback|Error\b|\b(int|float|str|None|_[a-z]+)\b", said), said


def test_the_presence_grace_is_10_s_unless_given() -> None:
    parser = build_parser()
    assert config_from_args(parser.parse_args([])).core_limits.presence_grace == 10.0
    for given in ("0", "2.5"):
        config = config_from_args(parser.parse_args(["--presence-grace", given]))
        assert config.core_limits.presence_grace == float(given)


@pytest.mark.parametrize("flag", ["--ws-port", "--http-port"])
def test_a_port_in_use_is_one_line_naming_port_and_flag(transport: Transport, flag: str) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = str(taken.getsockname()[1])
        other = "--http-port" if flag == "--ws-port" else "--ws-port"
        error = start_failure("--transport", transport.value, "--db", ":memory:", flag, port, other, "0")
    assert f"port {port} is already in use" in error
    assert flag in error


@pytest.mark.parametrize("host", ["192.0.2.55", "no-such-host.invalid"])
def test_an_address_not_on_this_machine_is_one_line(transport: Transport, host: str) -> None:
    error = start_failure("--transport", transport.value, "--db", ":memory:", "--host", host,
                          "--http-port", "0", "--ws-port", "0")
    assert host in error
    assert "--host" in error


def test_a_missing_uvloop_says_which_extra_to_install() -> None:
    hide_uvloop = "import sys; sys.modules['uvloop'] = None; from transports.cli import main; main(sys.argv[1:])"
    error = start_failure("--transport", "wsproto", "--event-loop", "uvloop", code=hide_uvloop)
    assert "trio-chat[uvloop]" in error


@pytest.mark.parametrize("origin", ["https://chat.example.org/", "http://chat.lan:8000/x", "https://*.example.org",
                                    "http://chat.lan:99999", "null"])
def test_an_allowed_origin_that_could_never_match_is_refused(origin: str) -> None:
    result = subprocess.run([str(CHAT_SERVER), "--allow-origin", origin], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "--allow-origin" in result.stderr


def test_a_serving_process_runs_the_collector_with_a_young_generation_for_what_is_in_flight() -> None:
    # Up to where the event loop would start: that is where the server's process sets its collector.
    probe = (
        "import gc, anyio, sys\n"
        "from transports import cli\n"
        "anyio.run = lambda *args, **kwargs: print(list(gc.get_threshold()))\n"
        "cli.main(sys.argv[1:])\n"
    )
    shown = subprocess.run(
        [sys.executable, "-c", probe, "--ws-port", "0", "--http-port", "0"],
        capture_output=True, text=True, timeout=60, check=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert json.loads(shown.stdout) == list(COLLECTOR_THRESHOLDS) != [700, 10, 10]
