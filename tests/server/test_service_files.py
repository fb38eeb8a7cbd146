"""deploy/: the systemd unit passes ``systemd-analyze verify``; the unit and the container files agree with the server.

Docker itself is not needed (nor, here, running): the Dockerfile and the compose file are read, their
settings parsed as the server parses them, and their health checks run against a real server.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest

from live import ROOT
from processes import CHAT_SERVER, server_process
from transports import settings
from transports.cli import build_parser
from transports.config import Limits, ServerConfig, default_database

DEPLOY = ROOT / "deploy"
UNIT = DEPLOY / "chat-server.service"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze") or "/usr/bin/systemd-analyze"
DEFAULTS = ServerConfig()
SCRIPT = next(iter(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]))  # chat-server


def stop_budget() -> float:
    """Seconds a stopping server may take before it is killed: its drain, close timeout, and the supervisor's 10 s."""
    parser = build_parser()
    drain = parser.get_default("drain_timeout") or 0.0  # (the flag, where the server has it)
    return float(drain) + Limits().close_timeout + 10.0


def check_settings(environ: dict[str, str]) -> argparse.Namespace:
    """The server reads these variables without a complaint (each is a setting, each value valid)."""
    assert environ, "no settings found"
    args, unknown = settings.parse_args(build_parser(), [], environ)
    assert unknown == []
    return args


def seconds(text: str) -> float:
    match = re.fullmatch(r"(\d+)\s*(s|sec|min)?", text.strip())
    assert match, text
    return int(match.group(1)) * (60 if match.group(2) == "min" else 1)


# ---------------------------------------------------------------------------------------------------------- systemd


def unit_entries() -> list[tuple[str, str, str]]:
    """(section, key, value) of every assignment in the unit, in order (a key may come back)."""
    entries, section = [], ""
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        entries.append((section, key, value))
    return entries


def unit_values(key: str) -> list[str]:
    return [value for _, name, value in unit_entries() if name == key]


def test_the_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    """On a copy whose ExecStart is this checkout's ``chat-server`` (verify wants the program to exist)."""
    assert Path(SYSTEMD_ANALYZE).exists(), "systemd-analyze is missing: scripts/test.sh installs it (Debian: systemd)"
    (exec_start,) = unit_values("ExecStart")
    copy = tmp_path / UNIT.name
    copy.write_text(UNIT.read_text().replace(f"ExecStart={exec_start}", f"ExecStart={CHAT_SERVER}"))
    result = subprocess.run([SYSTEMD_ANALYZE, "verify", "--man=no", str(copy)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # (an unknown or malformed line is only warned about)
    assert result.stdout == ""

    security = subprocess.run([SYSTEMD_ANALYZE, "security", "--offline=true", str(copy)], capture_output=True,
                              text=True, timeout=60)
    level = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", security.stdout)
    assert level, security.stdout + security.stderr
    assert float(level.group(1)) <= 2.0, security.stdout


def test_the_unit_runs_the_server_hardened_with_settings_from_the_environment() -> None:
    (exec_start,) = unit_values("ExecStart")
    assert Path(exec_start).name == SCRIPT
    # (to the process group: the workers of CHAT_SERVER_WORKERS too; test_settings checks they all take it)
    assert unit_values("ExecReload") == ["/bin/kill -HUP ${MAINPID}"]
    assert unit_values("KillSignal") == ["SIGTERM"]
    assert unit_values("KillMode") == ["mixed"]  # SIGTERM to the supervisor of --workers only: it stops the rest
    (timeout,) = unit_values("TimeoutStopSec")
    assert seconds(timeout) >= stop_budget()
    assert unit_values("RestartPreventExitStatus") == ["2"]
    for key, value in {"DynamicUser": "yes", "StateDirectory": "chat-server", "ProtectSystem": "strict",
                       "ProtectHome": "yes", "PrivateTmp": "yes", "NoNewPrivileges": "yes",
                       "CapabilityBoundingSet": ""}.items():
        assert unit_values(key) == [value], key
    assert set(unit_values("RestrictAddressFamilies")[0].split()) == {"AF_INET", "AF_INET6", "AF_UNIX"}
    assert "@system-service" in unit_values("SystemCallFilter")
    assert unit_values("EnvironmentFile") == ["-/etc/chat-server/env"]


def test_the_unit_keeps_rooms_in_its_state_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    environment = dict(value.split("=", 1) for value in unit_values("Environment"))
    assert environment["XDG_DATA_HOME"] == "%S"  # /var/lib for a system service
    monkeypatch.setenv("XDG_DATA_HOME", "/var/lib")
    assert default_database() == Path("/var/lib") / unit_values("StateDirectory")[0] / "chat.db"
    assert unit_values("WorkingDirectory") == ["%S/chat-server"]


def test_the_settings_the_unit_shows_are_settings() -> None:
    """The example lines of the unit's comments, as an /etc/chat-server/env would have them."""
    examples = re.findall(r"^#\s+(CHAT_SERVER_\w+)=(\S+)$", UNIT.read_text(), re.MULTILINE)
    args = check_settings(dict(examples))
    assert args.workers == 2


# ------------------------------------------------------------------------------------------------------- Dockerfile


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of deploy/Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", DEPLOY.joinpath("Dockerfile").read_text())
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instruction, _, arguments = line.partition(" ")
            found.append((instruction.upper(), arguments.strip()))
    return found


def instructions(name: str) -> list[str]:
    return [arguments for instruction, arguments in dockerfile() if instruction == name]


def docker_env() -> dict[str, str]:
    environment: dict[str, str] = {}
    for arguments in instructions("ENV"):
        environment.update(re.findall(r"(\w+)=(\S+)", arguments))
    return environment


def stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile's stages, each its instructions from its FROM on."""
    found: list[list[tuple[str, str]]] = []
    for instruction, arguments in dockerfile():
        if instruction == "FROM":
            found.append([])
        found[-1].append((instruction, arguments))
    return found


def test_the_image_is_slim_unprivileged_and_holds_only_the_server() -> None:
    build, image = stages()
    assert build[0] == ("FROM", "python:3.11-slim-bookworm AS build")
    assert image[0] == ("FROM", "python:3.11-slim-bookworm")  # (the same base: the venv's Python is the image's)
    # The build: the server's lock (no test tools: test_locks.py), hashes checked; then the project alone, built by
    # the locked hatchling: nothing unpinned. PyICU is compiled there, against Debian's ICU.
    runs = [arguments for instruction, arguments in build if instruction == "RUN"]
    locked, project = [run for run in runs if "pip install" in run]
    assert re.search(r"pip install --require-hashes -r /tmp/requirements\.txt( |$)", locked)
    assert re.search(r"pip install --no-deps --no-build-isolation /tmp/chat-server( |$)", project)
    assert any("libicu-dev" in run and "g++" in run for run in runs)
    copies = [arguments.split() for instruction, arguments in build if instruction == "COPY"]
    assert ["requirements/server.txt", "/tmp/requirements.txt"] in copies
    # the lock, and what the wheel is built from
    copied = {source for arguments in copies for source in arguments[:-1]}
    assert copied == {"requirements/server.txt", "pyproject.toml", "README.md", "src", "web"}
    allowed = {line[1:] for line in (ROOT / ".dockerignore").read_text().splitlines() if line.startswith("!")}
    assert copied <= allowed
    # The image: the build's environment and ICU's run-time library (bookworm's is ICU 72), no compiler, no sources.
    assert [arguments for instruction, arguments in image if instruction == "COPY"] == [
        "--from=build /opt/chat-server /opt/chat-server"
    ]
    (install,) = [arguments for instruction, arguments in image if instruction == "RUN" and "apt-get" in arguments]
    assert re.search(r"apt-get install -y --no-install-recommends libicu72 &&", install)
    assert "/opt/chat-server/bin:" in docker_env()["PATH"]
    (user,) = instructions("USER")
    assert user.split(":")[0] not in ("0", "root")


def test_the_image_runs_the_server_on_its_default_ports() -> None:
    assert instructions("ENTRYPOINT") == [json.dumps([SCRIPT])]
    assert instructions("CMD") == ["[]"]
    (exposed,) = instructions("EXPOSE")
    assert [int(port) for port in exposed.split()] == [DEFAULTS.http_port, DEFAULTS.ws_port]
    assert instructions("STOPSIGNAL") == ["SIGTERM"]
    environment = docker_env()
    args = check_settings({name: value for name, value in environment.items() if name.startswith(settings.PREFIX)})
    assert args.host == "0.0.0.0"
    (volume,) = instructions("VOLUME")
    home = os.environ.get("XDG_DATA_HOME")
    try:
        os.environ["XDG_DATA_HOME"] = environment["XDG_DATA_HOME"]
        assert default_database().parent == Path(json.loads(volume)[0])  # rooms in the volume
    finally:
        if home is None:
            del os.environ["XDG_DATA_HOME"]
        else:
            os.environ["XDG_DATA_HOME"] = home


def healthcheck_passes(command: list[str], http_port: int | None) -> bool:
    """Run a container's health check here (``python`` being this venv's), against a server on ``http_port``."""
    env = {**os.environ, "PATH": f"{CHAT_SERVER.parent}:{os.environ['PATH']}"}
    if http_port is not None:
        env["CHAT_SERVER_HTTP_PORT"] = str(http_port)
    return subprocess.run(command, env=env, capture_output=True, timeout=30).returncode == 0


def test_the_images_health_check_asks_the_server() -> None:
    (healthcheck,) = instructions("HEALTHCHECK")
    options, _, shell_command = healthcheck.partition(" CMD ")
    assert "--interval=" in options
    assert "/healthz" in shell_command
    assert f"'{DEFAULTS.http_port}'" in shell_command  # without CHAT_SERVER_HTTP_PORT: the default port
    command = ["sh", "-c", shell_command]
    with server_process("--http-port", "0", "--ws-port", "0") as server:
        assert healthcheck_passes(command, server.http_port)
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=15) == 0
    assert not healthcheck_passes(command, server.http_port)


# ---------------------------------------------------------------------------------------------------------- compose


def load_yaml(text: str) -> Any:
    """The block-style subset of YAML compose.yaml is written in: mappings, ``- `` lists, plain, quoted and
    JSON-like flow scalars, ``#`` comments. (PyYAML is not among the test tools; this is enough to check
    the file's structure, and refuses what it does not know.)"""
    lines = []
    for raw in text.splitlines():
        line = _uncomment(raw).rstrip()
        if line.strip():
            assert "\t" not in line[: len(line) - len(line.lstrip())], raw
            lines.append((len(line) - len(line.lstrip()), line.strip()))
    value, end = _block(lines, 0, 0)
    assert end == len(lines), f"unexpected indentation at {lines[end]}"
    return value


def _uncomment(line: str) -> str:
    quote = None
    for index, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char == "#" and (index == 0 or line[index - 1] == " "):
            return line[:index]
    return line


def _block(lines: list[tuple[int, str]], start: int, indent: int) -> tuple[Any, int]:
    if lines[start][1].startswith("- "):
        items, i = [], start
        while i < len(lines) and lines[i][0] == indent and lines[i][1].startswith("- "):
            items.append(_scalar(lines[i][1][2:]))
            i += 1
        return items, i
    mapping: dict[str, Any] = {}
    i = start
    while i < len(lines) and lines[i][0] == indent:
        key, colon, rest = lines[i][1].partition(":")
        assert colon, lines[i]
        assert not rest or rest.startswith(" "), lines[i]
        assert key not in mapping, f"duplicate key {key}"
        i += 1
        if rest.strip():
            mapping[key] = _scalar(rest.strip())
        elif i < len(lines) and lines[i][0] > indent:
            mapping[key], i = _block(lines, i, lines[i][0])
        else:
            mapping[key] = None
    return mapping, i


def _scalar(text: str) -> Any:
    if text.startswith(("[", "{", '"')):
        return json.loads(text)
    if text.startswith("'"):
        assert text.endswith("'"), text
        return text[1:-1].replace("''", "'")
    assert not text.startswith(("&", "*", "!", "|", ">")), f"not in the subset: {text}"
    return text


def compose() -> dict[str, Any]:
    document = load_yaml((DEPLOY / "compose.yaml").read_text())
    assert isinstance(document, dict)
    return document


def test_compose_adds_a_durable_redis() -> None:
    redis = compose()["services"]["redis"]
    command = redis["command"]
    assert command[0] == "redis-server"
    assert command[command.index("--appendonly") + 1] == "yes"
    assert "redis-data" in compose()["volumes"]
    assert redis["volumes"] == ["redis-data:/data"]


def test_compose_runs_the_image_with_settings_the_server_takes() -> None:
    server = compose()["services"]["chat-server"]
    build = server["build"]
    assert (DEPLOY / build["context"]).resolve() == ROOT
    assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == DEPLOY / "Dockerfile"
    args = check_settings({**{name: value for name, value in docker_env().items()
                              if name.startswith(settings.PREFIX)}, **server["environment"]})
    redis_host = re.fullmatch(r"redis://(\w[\w-]*):6379/0", args.redis)
    assert redis_host is not None
    assert redis_host.group(1) in compose()["services"]
    assert args.workers == 2  # (two processes: --workers needs --redis, and has it)
    assert server["ports"] == [f"{DEFAULTS.http_port}:{DEFAULTS.http_port}", f"{DEFAULTS.ws_port}:{DEFAULTS.ws_port}"]
    assert server["depends_on"]["redis"]["condition"] == "service_healthy"
    assert seconds(server["stop_grace_period"]) >= stop_budget()


def test_composes_health_check_asks_the_server() -> None:
    test = compose()["services"]["chat-server"]["healthcheck"]["test"]
    assert test[0] == "CMD"
    url = f"http://127.0.0.1:{DEFAULTS.http_port}/healthz"
    assert any(url in part for part in test)
    with server_process("--http-port", "0", "--ws-port", "0") as server:
        command = [part.replace(url, f"http://127.0.0.1:{server.http_port}/healthz") for part in test[1:]]
        assert healthcheck_passes(command, None)
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=15) == 0
    assert not healthcheck_passes(command, None)


def test_the_yaml_subset_reader_refuses_what_it_does_not_know() -> None:
    assert load_yaml("a:\n  b: [\"x\", 1]\n  c:\n    - 'it''s'\n    - d # note\n") == {
        "a": {"b": ["x", 1], "c": ["it's", "d"]}}
    for bad in ["a: &anchor 1\n", "a: 1\na: 2\n", "a:\n  b: 1\n c: 2\n", "a:b\n"]:
        with pytest.raises(AssertionError):
            load_yaml(bad)
