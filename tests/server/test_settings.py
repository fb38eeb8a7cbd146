"""Every flag also from the environment (``CHAT_SERVER_<FLAG>``), ``--help`` and ``--version``."""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from websockets.exceptions import InvalidStatus

from chat_client import ChatClient
from chatcore import problems
from live import wait_until
from processes import CHAT_SERVER, children, server_process
from redis_server import RedisServer, free_port, redis_server
from transports import settings
from transports.cli import build_parser, config_from_args


def parse(*argv: str, **environ: str) -> argparse.Namespace:
    args, unknown = settings.parse_args(build_parser(), list(argv), environ)
    assert unknown == []
    return args


def run(*argv: str, **environ: str) -> subprocess.CompletedProcess[str]:
    """``chat-server`` with these variables added to a clean environment (no CHAT_SERVER_ one of the caller's)."""
    with tempfile.TemporaryDirectory() as data_home:
        env = {name: value for name, value in os.environ.items() if not name.startswith(settings.PREFIX)}
        env.update(XDG_DATA_HOME=data_home, COLUMNS="100", **environ)
        return subprocess.run([str(CHAT_SERVER), *argv], capture_output=True, text=True, timeout=60, env=env,
                              stdin=subprocess.DEVNULL)


@pytest.fixture
def environ(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """For `server_process`, which passes the test's environment on: no CHAT_SERVER_ variable but the test's."""
    for name in list(os.environ):
        if name.startswith(settings.PREFIX):
            monkeypatch.delenv(name)
    return monkeypatch


def test_each_flag_has_its_variable() -> None:
    names = {settings.env_name(action) for action in build_parser()._actions}
    assert {"CHAT_SERVER_WS_PORT", "CHAT_SERVER_REDIS", "CHAT_SERVER_ALLOW_ORIGIN", "CHAT_SERVER_LOG_FORMAT",
            "CHAT_SERVER_MAX_CONNECTIONS_PER_ADDRESS", "CHAT_SERVER_DB"} <= names
    assert "CHAT_SERVER_WORKER_ID" not in names  # the supervisor's own flag, hidden
    assert "CHAT_SERVER_HELP" not in names
    assert "CHAT_SERVER_VERSION" not in names


def test_a_variable_sets_its_flag_and_the_flag_wins() -> None:
    assert parse(CHAT_SERVER_WS_PORT="9001").ws_port == 9001
    assert parse("--ws-port", "9002", CHAT_SERVER_WS_PORT="9001").ws_port == 9002
    assert parse("--ws-port=9002", CHAT_SERVER_WS_PORT="9001").ws_port == 9002
    assert parse("--workers", "1", CHAT_SERVER_WORKERS="4").workers == 1  # (1 is the default: given all the same)
    args = parse(CHAT_SERVER_REDIS="redis://10.0.0.5:6379/0", CHAT_SERVER_REDIS_TIMEOUT="1.5",
                 CHAT_SERVER_TRANSPORT="wsproto", CHAT_SERVER_LOG_LEVEL="debug")
    config = config_from_args(args)
    assert config.redis is not None
    assert (config.redis.url, config.redis.timeout) == ("redis://10.0.0.5:6379/0", 1.5)
    assert config.transport.value == "wsproto"
    assert args.log_level == "DEBUG"
    assert parse(CHAT_SERVER_WS_PORT="").ws_port == 8001  # empty: unset


def test_a_repeatable_flag_takes_a_list_and_the_flag_replaces_it() -> None:
    origins = "https://a.example, http://b.lan:8000\thttps://c.example,"
    assert parse(CHAT_SERVER_ALLOW_ORIGIN=origins).allow_origin == [
        "https://a.example", "http://b.lan:8000", "https://c.example"]
    given = parse("--allow-origin", "https://d.example", CHAT_SERVER_ALLOW_ORIGIN=origins)
    assert given.allow_origin == ["https://d.example"]
    assert parse().allow_origin == []
    assert build_parser().get_default("allow_origin") == []  # (the default list is never filled in)


@pytest.mark.parametrize(("text", "expected"), [
    ("1", True), ("true", True), ("Yes", True), ("ON", True), ("0", False), ("false", False), ("no", False),
    ("off", False),
])
def test_on_off_flags_take_words(text: str, expected: bool) -> None:
    """No flag of chat-server is on/off yet; any added later reads these words."""
    parser = argparse.ArgumentParser(prog="chat-server")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--colour", action=argparse.BooleanOptionalAction, default=None)
    args, _ = settings.parse_args(parser, [], {"CHAT_SERVER_QUIET": text, "CHAT_SERVER_COLOUR": text})
    assert args.quiet is expected
    assert args.colour is expected
    args, _ = settings.parse_args(parser, ["--no-colour"], {"CHAT_SERVER_COLOUR": text})
    assert args.colour is False


def test_variables_no_flag_has_are_reported_except_kubernetes_service_links() -> None:
    environ = {"CHAT_SERVER_WSPORT": "9001", "CHAT_SERVER_SERVICE_HOST": "10.0.0.1",
               "CHAT_SERVER_PORT": "tcp://10.0.0.1:8000", "CHAT_SERVER_PORT_8000_TCP_ADDR": "10.0.0.1"}
    args, unknown = settings.parse_args(build_parser(), [], environ)
    assert unknown == ["CHAT_SERVER_WSPORT"]
    assert args.ws_port == 8001


@pytest.mark.parametrize(("name", "value", "says"), [
    ("CHAT_SERVER_WS_PORT", "eighty", "invalid value: 'eighty'"),
    ("CHAT_SERVER_WS_PORT", "70000", "must be 0-65535"),
    ("CHAT_SERVER_TRANSPORT", "tcp", "invalid choice: 'tcp'"),
    ("CHAT_SERVER_ALLOW_ORIGIN", "https://a.example,https://*.example", "must be an origin"),
    ("CHAT_SERVER_REDIS", "redis//:SECRET@10.0.0.5", "must be a redis://"),
    ("CHAT_SERVER_WORKERS", "0", "must be at least 1"),
])
def test_an_invalid_value_is_one_line_naming_the_variable(name: str, value: str, says: str) -> None:
    result = run(**{name: value})
    assert result.returncode == 2
    flag = "--" + name.removeprefix("CHAT_SERVER_").lower().replace("_", "-")
    assert result.stderr.startswith(f"chat-server: error: environment variable {name} ({flag}): ")
    assert result.stderr.count("\n") == 1
    assert says in result.stderr
    assert "SECRET" not in result.stderr  # a refused URL is not echoed: it may hold a password


def refused(*argv: str, **environ: str) -> str:
    """Run ``chat-server`` expecting it to refuse a setting at start: the one line it printed, all of stderr."""
    result = run("--http-port", "0", "--ws-port", "0", *argv, **environ)  # (free ports, should it start after all)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("chat-server: error: ")
    return result.stderr


def _is_numeric(action: argparse.Action) -> bool:
    """Whether the flag takes a number: one of a few, whatever its bounds."""
    for text in ["0", "1", "1024"]:
        try:
            if callable(action.type) and isinstance(action.type(text), int | float):
                return True
        except (argparse.ArgumentTypeError, ValueError, TypeError):
            pass
    return False


NUMERIC = [action for action in build_parser()._actions if _is_numeric(action)]
NUMERIC_FLAGS = [action.option_strings[-1] for action in NUMERIC]
NUMERIC_VARIABLES = [name for name in map(settings.env_name, NUMERIC) if name is not None]
NON_FINITE = ["nan", "inf", "-inf", "NaN", "INFINITY", "-Infinity", "+inf", " nan "]


def test_no_numeric_flag_or_variable_takes_a_non_finite_number(capsys: pytest.CaptureFixture[str]) -> None:
    """nan passes every comparison with a minimum, inf every wait: both would switch a limit off, or crash later."""
    # (the cases are derived from the parser: they must find the flags that take a fraction or a count)
    assert {"--rate", "--handshake-timeout", "--close-timeout", "--ping-interval", "--ping-timeout", "--db-timeout",
            "--drain-timeout", "--redis-timeout", "--presence-ttl", "--ws-port", "--workers", "--max-header-bytes",
            "--history-limit", "--worker-id"} <= set(NUMERIC_FLAGS)
    assert "CHAT_SERVER_CLOSE_TIMEOUT" in NUMERIC_VARIABLES
    assert "--host" not in NUMERIC_FLAGS
    for action in NUMERIC:
        flag, name = action.option_strings[-1], settings.env_name(action)
        for text in NON_FINITE:
            given: list[tuple[list[str], dict[str, str]]] = [([f"{flag}={text}"], {})]
            if name is not None:  # (a hidden flag has no variable)
                given.append(([], {name: text}))
            for argv, environ in given:
                with pytest.raises(SystemExit) as stopped:
                    settings.parse_args(build_parser(), argv, environ)
                assert stopped.value.code == 2, (argv, environ)
                error = capsys.readouterr().err
                assert error.count("\n") == 1, error
                assert f"invalid value: {text!r}: must be a " in error


def test_no_duration_overflows_the_clocks_under_it() -> None:
    """1e300 s is finite, and a socket timeout or a deadline that large overflows: refused like nan."""
    durations = [action.option_strings[-1] for action in NUMERIC if action.metavar == "SECONDS"]
    assert {"--redis-timeout", "--drain-timeout", "--db-timeout", "--presence-ttl", "--handshake-timeout",
            "--close-timeout", "--ping-interval", "--ping-timeout"} <= set(durations)
    for flag in durations:
        with pytest.raises(SystemExit):
            build_parser().parse_args([f"{flag}=1e300"])
        assert build_parser().parse_args([f"{flag}=1000"]) is not None
    error = refused("--redis-timeout=1e300", "--redis", "redis://127.0.0.1:1/0")
    assert error == "chat-server: error: argument --redis-timeout: must be more than 0, at most 1000000\n"


@pytest.mark.parametrize(("flag", "text"), [
    (flag, NON_FINITE[i % len(NON_FINITE)]) for i, flag in enumerate(NUMERIC_FLAGS)])
def test_a_non_finite_flag_stops_the_server_in_one_line(flag: str, text: str) -> None:
    error = refused(f"{flag}={text}")
    assert error.startswith(f"chat-server: error: argument {flag}: invalid value: {text!r}")


@pytest.mark.parametrize(("name", "text"), [
    (name, NON_FINITE[i % len(NON_FINITE)]) for i, name in enumerate(NUMERIC_VARIABLES)])
def test_a_non_finite_variable_stops_the_server_in_one_line(name: str, text: str) -> None:
    error = refused(**{name: text})
    assert f"environment variable {name} " in error
    assert f"invalid value: {text!r}" in error


PASSWORD = "Pw-s3cr3t"

BAD_REDIS_URLS = [
    ("redis://:pw@127.0.0.1:99999/0", "pw"),
    ("redis://:pw@127.0.0.1:abc/0", "pw"),
    ("redis://u:pw@[::1:1/0", "pw"),
    (f"redis://:{PASSWORD}@127.0.0.1:1/abc", PASSWORD),  # not a database number
    (f"redis://:{PASSWORD}@127.0.0.1:1/0?db=-1", PASSWORD),
    (f"redis://:{PASSWORD}@127.0.0.1:1?db=x", PASSWORD),
    (f"http://:{PASSWORD}@127.0.0.1:1/0", PASSWORD),
    (f"REDIS:/:{PASSWORD}@127.0.0.1:1/0", PASSWORD),
    (f"redis://:{PASSWORD}@127.0.0.1:1/0?no_such_option=1", PASSWORD),
    (f"redis://:{PASSWORD}@127.0.0.1:1/0?socket_timeout=nan", PASSWORD),
    (f"unix://?password={PASSWORD}", PASSWORD),  # no socket path
    (f"redis://127.0.0.1:{PASSWORD}/0?password={PASSWORD}", PASSWORD),
    (f"rediss://:{PASSWORD}@127.0.0.1:1/0?ssl_cert_reqs={PASSWORD}", PASSWORD),  # quoted by redis-py's error
]


@pytest.mark.parametrize("where", ["flag", "variable"])
@pytest.mark.parametrize(("url", "password"), BAD_REDIS_URLS)
def test_a_malformed_redis_url_stops_the_server_in_one_line_without_its_password(
    url: str, password: str, where: str
) -> None:
    error = refused("--redis", url) if where == "flag" else refused(CHAT_SERVER_REDIS=url)
    assert "--redis" in error
    assert password not in error  # (all of stderr)


@pytest.mark.parametrize("url", [
    "redis://localhost", "REDIS://localhost:6379", "rediss://user:p%40ss@10.0.0.5:6380/15", "redis://10.0.0.5/",
    "redis://[::1]:6379/0", "unix:///run/redis/redis.sock?db=2", "redis://h/0?socket_timeout=1.5",
])
def test_a_well_formed_redis_url_is_taken_as_it_is(url: str) -> None:
    assert parse("--redis", url).redis == url
    assert parse(CHAT_SERVER_REDIS=url).redis == url


def test_help_shows_each_variable_and_true_defaults() -> None:
    result = run("--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())  # (help is wrapped: one line, to read it whole)
    for action in build_parser()._actions:
        name = settings.env_name(action)
        if name is not None:
            assert f"env {name}]" in text
    assert "(default: None)" not in text
    assert "default: None" not in text
    assert not re.search(r"default: [^\]\)]*[\]\)] *[\[\(]default:", text)  # never two defaults for one flag
    # A flag whose help says its default in words keeps those words alone (the default value is None).
    assert re.search(r"\(default: [^)]*\) \[env CHAT_SERVER_PUBLIC_WS_PORT\]", text)
    assert "[default: 8001; env CHAT_SERVER_WS_PORT]" in text
    assert "[default: trio-websocket; env CHAT_SERVER_TRANSPORT]" in text
    assert "[env CHAT_SERVER_REDIS]" in text
    assert "CHAT_SERVER_ALLOW_ORIGIN=https://a.example,https://b.example" in text


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout == f"chat-server {importlib.metadata.version('trio-chat')}\n"


def test_a_server_takes_its_ports_and_origins_from_the_environment(environ: pytest.MonkeyPatch) -> None:
    port = free_port()
    environ.setenv("CHAT_SERVER_WS_PORT", str(port))
    environ.setenv("CHAT_SERVER_HTTP_PORT", "0")
    environ.setenv("CHAT_SERVER_ALLOW_ORIGIN", "https://a.example,http://b.lan:8000")
    with server_process() as server:
        assert server.ws_port == port
        for origin in ["https://a.example", "http://b.lan:8000"]:
            with ChatClient(f"ws://127.0.0.1:{port}/", origin=origin) as client:
                assert client.init()["userId"] >= 1
        with pytest.raises(InvalidStatus) as refused:
            ChatClient(f"ws://127.0.0.1:{port}/", origin="https://c.example")
        assert refused.value.response.status_code == 403
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=15) == 0
    with server_process("--ws-port", "0") as server:  # the flag wins
        assert server.ws_port != port
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=15) == 0


def test_workers_get_the_settings_of_the_environment(environ: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The supervisor passes its command line on; its environment goes along with it."""
    with redis_server(tmp_path) as redis:
        check_workers_settings(environ, redis)


def check_workers_settings(environ: pytest.MonkeyPatch, redis: RedisServer) -> None:
    for name, value in {"REDIS": redis.url, "WORKERS": "2", "LOG_FORMAT": "json", "MAX_PAYLOAD_CHARS": "5",
                        "HTTP_PORT": "0", "WS_PORT": "0", "PING_INTERVAL": "0"}.items():
        environ.setenv(settings.PREFIX + name, value)
    with server_process(start_new_session=True) as server:  # (its own process group, as systemd starts it)
        wait_until(lambda: len(children(server.process.pid)) == 2)
        url = f"ws://127.0.0.1:{server.ws_port}/"
        served_by: set[int] = set()

        def connect_and_talk() -> bool:
            with ChatClient(url) as client:
                client.init()
                client.talk("sixsix")  # one more than CHAT_SERVER_MAX_PAYLOAD_CHARS
                assert client.recv()["message"] == problems.TOO_LONG.format(limit=5).text
            for line in list(server.log):
                entry = json.loads(line)
                if entry.get("event") == "opened":
                    served_by.add(entry["worker"])
            return served_by == {1, 2}

        wait_until(connect_and_talk, timeout=20)  # the kernel spreads connections: both workers get some
        workers = children(server.process.pid)

        # The unit's ExecReload: SIGHUP to the main process, which passes it on. Each process takes it, none stops.
        server.process.send_signal(signal.SIGHUP)
        wait_until(lambda: len([line for line in list(server.log) if "SIGHUP" in line]) == 3)
        assert children(server.process.pid) == workers
        with ChatClient(url) as client:
            assert client.init()["userId"] == 1
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=30) == 0
        entries = [json.loads(line) for line in server.whole_log().splitlines()]
    assert {entry.get("worker") for entry in entries} == {None, 1, 2}  # the supervisor's lines, each worker's


def test_an_unknown_variable_is_warned_about(environ: pytest.MonkeyPatch) -> None:
    environ.setenv("CHAT_SERVER_WSPORT", "9001")
    with server_process("--http-port", "0", "--ws-port", "0") as server:
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=15) == 0
        text = server.whole_log()
    assert "WARNING transports.cli: ignored CHAT_SERVER_WSPORT: no flag has it" in text


def test_sighup_does_not_stop_the_server() -> None:
    """``systemctl reload`` sends SIGHUP (the unit's ExecReload): by default it would end the process."""
    with server_process("--http-port", "0", "--ws-port", "0") as server:
        with ChatClient(f"ws://127.0.0.1:{server.ws_port}/") as client:
            client.init()
            server.process.send_signal(signal.SIGHUP)
            wait_until(lambda: any("SIGHUP" in line for line in server.log))
            client.talk("still here")
            assert client.recv()["payload"] == "still here"
        assert server.process.poll() is None
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=15) == 0


def test_the_module_and_the_script_read_the_same_variables() -> None:
    env = {**os.environ, "CHAT_SERVER_WS_PORT": "nope"}
    result = subprocess.run([sys.executable, "-m", "transports"], capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 2
    assert "CHAT_SERVER_WS_PORT" in result.stderr
