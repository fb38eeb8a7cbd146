"""Sign-in tokens in a running server (``--auth``, ``--auth-key``): over python-websockets, with keys made at test time.

A valid token joins with its name, a forged or expired one gets an error event naming why; no token text
reaches the log, even at DEBUG; SIGHUP rotates the keys (and a broken key file leaves the current ones);
under ``--auth required`` a seed client is told it needs to sign in; flags that cannot work stop the
server at start with one line.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from chat_client import ChatClient, V2Client
from chatcore import problems
from chatcore.problems import SIGN_IN_NEEDED
from live import wait_until
from probes import scrape
from processes import ServerProcess, server_process
from transports import settings
from transports.cli import auth_settings, build_parser
from transports.config import AuthMode, AuthSettings, Transport


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def token(key: rsa.RSAPrivateKey, sub: str = "s-1", name: str = "Ada", lifetime: float = 600, **claims: object) -> str:
    now = int(time.time())
    return jwt.encode({"sub": sub, "name": name, "exp": now + lifetime, "create": True, **claims}, key,
                      algorithm="RS256")


@pytest.fixture(scope="module")
def key_a() -> rsa.RSAPrivateKey:
    return new_key()


@pytest.fixture(scope="module")
def key_b() -> rsa.RSAPrivateKey:
    return new_key()


def write_key(path: Path, key: rsa.RSAPrivateKey) -> Path:
    """Replace ``path`` at once with ``key``'s public key, as a deployment tool renewing it would."""
    staged = path.with_suffix(".new")
    staged.write_bytes(public_pem(key))
    os.replace(staged, path)
    return path


def refusal(url: str, init: dict[str, object]) -> str:
    """The error event's message for this init; the connection stays out of rooms (a talk is refused)."""
    with ChatClient(url) as client:
        client.send(init)
        error = client.recv()
        assert error["type"] == "error", error
        client.talk("let me in anyway")
        assert client.recv()["type"] == "error"
        return str(error["message"])


@contextmanager
def server_with_key(folder: Path, key: rsa.RSAPrivateKey, *args: str) -> Iterator[ServerProcess]:
    """A server verifying tokens with ``key`` (in ``folder / "auth.pem"``), stopped with SIGTERM at the end."""
    with server_process("--http-port", "0", "--ws-port", "0", "--db", ":memory:", "--auth-key",
                        str(write_key(folder / "auth.pem", key)), *args) as server:
        yield server
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=30) == 0


@pytest.mark.parametrize("transport", list(Transport))
def test_tokens_are_checked_and_never_logged_even_at_debug(
    tmp_path: Path, key_a: rsa.RSAPrivateKey, key_b: rsa.RSAPrivateKey, transport: Transport
) -> None:
    good, forged, expired = token(key_a), token(key_b), token(key_a, lifetime=-120)
    with server_process("--transport", transport.value, "--http-port", "0", "--ws-port", "0", "--db", ":memory:",
                        "--log-level", "DEBUG", "--auth-key", str(write_key(tmp_path / "auth.pem", key_a))) as server:
        url = f"ws://127.0.0.1:{server.ws_port}/"
        with V2Client(url) as teacher:
            room = teacher.join(auth=good, name="someone else")
            assert room["name"] == "Ada"
            assert refusal(url, {"type": "init", "v": 2, "joinKey": room["joinKey"], "auth": forged}) == \
                problems.SIGN_IN_REFUSED.text
            assert refusal(url, {"type": "init", "v": 2, "joinKey": room["joinKey"], "auth": expired}) == \
                problems.SIGN_IN_EXPIRED.text
        metrics, _ = scrape(server.http_port)
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=30) == 0
        log = server.whole_log()
    assert "sign-in tokens optional: RS256" in log
    assert "sign-in refused: bad signature" in log  # (why it was refused: for the operator, not the client)
    assert "sign-in refused: expired" in log
    assert "chat_" in metrics  # (the scrape is the server's)
    for text in (good, forged, expired):
        _header, claims, signature = text.split(".")
        for kept in (log, metrics):
            assert text not in kept
            assert claims not in kept
            # Not a piece of the signature either: any 12 of its characters (72 random bits) anywhere.
            assert not [signature[i:i + 12] for i in range(len(signature) - 11) if signature[i:i + 12] in kept]


def test_sighup_rotates_the_keys_and_a_broken_file_keeps_the_current_ones(
    tmp_path: Path, key_a: rsa.RSAPrivateKey, key_b: rsa.RSAPrivateKey
) -> None:
    with server_with_key(tmp_path, key_a, "--auth", "optional") as server:
        rotate(server, tmp_path, key_a, key_b)


def rotate(server: ServerProcess, tmp_path: Path, key_a: rsa.RSAPrivateKey, key_b: rsa.RSAPrivateKey) -> None:
    url = f"ws://127.0.0.1:{server.ws_port}/"
    with V2Client(url) as client:
        assert client.join(auth=token(key_a))["name"] == "Ada"
    assert refusal(url, {"type": "init", "v": 2, "auth": token(key_b)}) == problems.SIGN_IN_REFUSED.text

    write_key(tmp_path / "auth.pem", key_b)
    server.process.send_signal(signal.SIGHUP)
    wait_until(lambda: any("sign-in keys reloaded" in line for line in server.log))
    with V2Client(url) as client:
        assert client.join(auth=token(key_b, name="Bo"))["name"] == "Bo"
    assert refusal(url, {"type": "init", "v": 2, "auth": token(key_a)}) == problems.SIGN_IN_REFUSED.text
    assert not any("nothing to reload" in line for line in server.log)

    (tmp_path / "auth.pem").write_text("short")  # a broken renewal: one warning, and key B stays
    server.process.send_signal(signal.SIGHUP)
    wait_until(lambda: any("were not reloaded" in line for line in server.log))
    (warning,) = [line for line in server.log if "were not reloaded" in line]
    assert " WARNING " in warning
    assert str(tmp_path / "auth.pem") in warning
    with V2Client(url) as client:
        assert client.join(auth=token(key_b, name="Bo"))["name"] == "Bo"


def test_required_sign_in_tells_a_seed_client_it_needs_one(tmp_path: Path, key_a: rsa.RSAPrivateKey) -> None:
    with server_with_key(tmp_path, key_a, "--auth", "required") as server:
        url = f"ws://127.0.0.1:{server.ws_port}/"
        with ChatClient(url) as seed, pytest.raises(AssertionError, match=SIGN_IN_NEEDED.text):
            seed.init(renders_text=False)  # as the seed page does: it cannot present a token
        assert refusal(url, {"type": "init", "v": 2}) == SIGN_IN_NEEDED.text
        with V2Client(url) as teacher:
            room = teacher.join(auth=token(key_a, "t-1", "Ms. Lovelace"))["joinKey"]
            with V2Client(url) as student:
                assert student.join(room, auth=token(key_a, "s-1", "Ada", create=False))["name"] == "Ada"
        assert "sign-in tokens required: RS256" in "".join(server.log)


def parse(*argv: str, **environ: str) -> argparse.Namespace:
    args, unknown = settings.parse_args(build_parser(), argv, environ)
    assert unknown == []
    return args


def test_the_flags_and_their_variables() -> None:
    assert auth_settings(parse()) == AuthSettings()
    assert auth_settings(parse("--auth-key", "a.pem")) == AuthSettings((Path("a.pem"),), mode=AuthMode.OPTIONAL)
    both = parse("--auth-key", "a.pem", "--auth-key", "b.pem", "--auth", "required", "--auth-issuer", "https://sso",
                 "--auth-audience", "chat")
    assert auth_settings(both) == AuthSettings((Path("a.pem"), Path("b.pem")), "https://sso", "chat",
                                               AuthMode.REQUIRED)
    from_environment = parse(CHAT_SERVER_AUTH_KEY="/etc/chat/old.pem,/etc/chat/new.pem", CHAT_SERVER_AUTH="required",
                             CHAT_SERVER_AUTH_ISSUER="https://sso", CHAT_SERVER_AUTH_AUDIENCE="chat")
    assert auth_settings(from_environment) == AuthSettings(
        (Path("/etc/chat/old.pem"), Path("/etc/chat/new.pem")), "https://sso", "chat", AuthMode.REQUIRED
    )
    assert parse("--auth-key", "c.pem", CHAT_SERVER_AUTH_KEY="a.pem b.pem").auth_key == [Path("c.pem")]
    assert auth_settings(parse("--auth", "off", CHAT_SERVER_AUTH_KEY="a.pem")).mode is AuthMode.OFF


def start_error(*argv: str, env: dict[str, str] | None = None) -> str:
    """The one line a server that cannot start writes (exit status 2)."""
    result = subprocess.run(
        [sys.executable, "-m", "transports", "--http-port", "0", "--ws-port", "0", "--db", ":memory:", *argv],
        capture_output=True, text=True, timeout=30, check=False, env={**os.environ, **(env or {})},
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("chat-server: error: ")
    return lines[0]


def test_settings_that_cannot_work_stop_the_server_with_one_line(tmp_path: Path, key_a: rsa.RSAPrivateKey) -> None:
    assert "--auth required needs --auth-key" in start_error("--auth", "required")
    assert "--auth optional needs --auth-key" in start_error(env={"CHAT_SERVER_AUTH": "optional"})
    assert "--auth-issuer needs --auth-key" in start_error("--auth-issuer", "https://sso")
    missing = tmp_path / "missing.pem"
    assert f"no such file: {missing}" in start_error("--auth-key", str(missing))
    private = tmp_path / "private.pem"
    private.write_bytes(key_a.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption()))
    good = write_key(tmp_path / "good.pem", key_a)
    line = start_error("--auth-key", str(good), "--auth-key", str(private))
    assert "(--auth-key)" in line
    assert f"{private} holds a private key" in line
    short = tmp_path / "secret"
    short.write_text("too short\n")
    assert f"{short} holds no PEM public key" in start_error(env={"CHAT_SERVER_AUTH_KEY": str(short)})
