"""Sign-in as an independent client checks it: real servers, tokens this module signs, every attack we know of.

The client is python-websockets, written against the protocol reference (docs/protocol.md); the tokens are signed
here with keys made at test time (RS256, ES256, EdDSA, HS256), through PyJWT or, for the forgeries PyJWT
will not make (``alg: none``, an HS256 token keyed with the RSA public key), by hand. Each transport gets
one server under ``--auth required`` with an issuer and an audience, holding all four keys: every key type
signs in verified, and every bad token is refused with an error event naming why, quoting no part of it,
the connection in no room; and one under ``--auth optional`` with the RSA key alone: no bad token passes
as an unsigned user, nobody claims verified, no look-alike takes a signed-in member's name. Two processes
sharing a redis-server (one per transport) check that a signed-in user is one user everywhere: devices,
bans, verified marks, no rename. No token reaches any log, at DEBUG.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import signal
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from chat_client import V2Client
from chatcore import problems
from processes import ServerProcess, server_process
from redis_server import redis_server
from transports.identity import NAME_CLAIM

TRANSPORTS = ["trio-websocket", "wsproto"]
ISSUER = "https://sso.school.example"
AUDIENCE = "chat"
MAX_MESSAGE = 64 * 1024
"""The server's default --max-message-size."""

Clients = Callable[[str], V2Client]
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


@dataclass(frozen=True)
class Signer:
    """One key of the signing side: ``path`` is what the server gets (a public key, or the HS256 secret)."""

    algorithm: str
    key: PrivateKey | bytes
    path: Path

    def public_pem(self) -> bytes:
        assert not isinstance(self.key, bytes)
        return self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


@dataclass
class Signing:
    """The module's keys, and every token it signed (none may reach a log or an error event)."""

    signers: dict[str, Signer]
    stranger: Signer
    """An RS256 key no server knows."""
    issued: list[str] = field(default_factory=list)

    def keep(self, token: str) -> str:
        self.issued.append(token)
        return token

    def token(self, algorithm: str = "RS256", sub: object = "s-ada", name: object = "Ada", lifetime: float = 600,
              *, issuer: str | None = ISSUER, audience: str | None = AUDIENCE, **claims: object) -> str:
        """A token ``algorithm``'s key signs; a claim given as None is left out."""
        now = int(time.time())
        payload = {"sub": sub, "name": name, "exp": now + lifetime, "iss": issuer, "aud": audience, **claims}
        signer = self.signers[algorithm] if algorithm != "stranger" else self.stranger
        signed = jwt.encode({k: v for k, v in payload.items() if v is not None}, signer.key,
                            algorithm=signer.algorithm)
        return self.keep(signed)

    def forged(self, header: Mapping[str, object], claims: Mapping[str, object], signature: bytes = b"",
               hmac_key: bytes | None = None) -> str:
        """A token made by hand: signed with HMAC-SHA256 under ``hmac_key``, else carrying ``signature``."""
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        if hmac_key is not None:
            signature = hmac.new(hmac_key, signing_input.encode(), hashlib.sha256).digest()
        return self.keep(f"{signing_input}.{_b64(signature)}")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _hs256(secret: bytes, claims: str) -> str:
    """An HS256 token of ``claims`` written as JSON text by hand (JSON that ``json.dumps`` would not write)."""
    signing_input = f"{_b64(json.dumps({'alg': 'HS256'}).encode())}.{_b64(claims.encode())}"
    return f"{signing_input}.{_b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())}"


def _claims(lifetime: float = 600, **claims: object) -> dict[str, object]:
    return {"sub": "s-ada", "name": "Ada", "exp": int(time.time()) + lifetime, "iss": ISSUER, "aud": AUDIENCE,
            **claims}


def _write_public(folder: Path, name: str, algorithm: str, key: PrivateKey) -> Signer:
    signer = Signer(algorithm, key, folder / name)
    signer.path.write_bytes(signer.public_pem())
    return signer


@pytest.fixture(scope="module")
def signing(tmp_path_factory: pytest.TempPathFactory) -> Signing:
    folder = tmp_path_factory.mktemp("keys")
    secret = secrets.token_hex(32).encode()  # 64 bytes, as `openssl rand -hex 32` makes it
    (folder / "hs256.secret").write_bytes(secret + b"\n")
    signers = {
        "RS256": _write_public(folder, "rsa.pem", "RS256", rsa.generate_private_key(65537, 2048)),
        "ES256": _write_public(folder, "ec.pem", "ES256", ec.generate_private_key(ec.SECP256R1())),
        "EdDSA": _write_public(folder, "ed25519.pem", "EdDSA", ed25519.Ed25519PrivateKey.generate()),
        "HS256": Signer("HS256", secret, folder / "hs256.secret"),
    }
    stranger = Signer("RS256", rsa.generate_private_key(65537, 2048), folder / "unused.pem")
    return Signing(signers, stranger)


def assert_no_part_of(tokens: list[str], text: str) -> None:
    """No token, header, claims, nor any 12 characters of a signature (72 bits) appear in ``text``."""
    for token in tokens:
        header, claims, signature = token.split(".")
        assert token not in text
        assert claims not in text
        assert header not in text or len(header) < 24  # (a short header like {"alg":"none"} is not a secret)
        assert not [signature[i:i + 12] for i in range(len(signature) - 11) if signature[i:i + 12] in text]


@contextmanager
def stopped_cleanly(server: ServerProcess, signing: Signing) -> Iterator[ServerProcess]:
    """``server`` until the block ends, then SIGTERM: it exits 0, and no token this module signed is in its log."""
    yield server
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=30) == 0
    assert_no_part_of(signing.issued, server.whole_log())


COMMON = ("--http-port", "0", "--ws-port", "0", "--ping-interval", "0", "--rate", "1000", "--burst", "1000",
          "--log-level", "DEBUG")


def key_flags(signing: Signing) -> list[str]:
    return [flag for signer in signing.signers.values() for flag in ("--auth-key", str(signer.path))]


@pytest.fixture(scope="module", params=TRANSPORTS)
def url(request: pytest.FixtureRequest, signing: Signing) -> Iterator[str]:
    """A server of the transport under ``--auth required``, checking issuer and audience, with the four keys."""
    with server_process("--transport", request.param, *COMMON, "--db", ":memory:", "--auth", "required",
                        "--auth-issuer", ISSUER, "--auth-audience", AUDIENCE, *key_flags(signing)) as server, \
            stopped_cleanly(server, signing):
        assert "sign-in tokens required: RS256, ES256, EdDSA, HS256" in "".join(server.log)
        url = f"ws://127.0.0.1:{server.ws_port}/"
        SERVERS[url] = server
        yield url


def init(join_key: str | None = None, **fields: object) -> dict[str, object]:
    event: dict[str, object] = {"type": "init", "v": 2, "render": "text", **fields}
    if join_key is not None:
        event["joinKey"] = join_key
    return event


SERVERS: dict[str, ServerProcess] = {}
"""The servers of the module's fixtures, by their URL: what they log."""
TOLD = {"expired": problems.SIGN_IN_EXPIRED, "not valid yet": problems.SIGN_IN_EARLY}
"""What a client is told for a refusal (the server's log says why), when it is not `problems.SIGN_IN_REFUSED`."""


def refusal(url: str, event: dict[str, object], signing: Signing) -> str:
    """Why the server refused ``event``: the error's text, or for a sign-in its log's reason. The client is told
    only that its sign-in was refused (or expired, or not valid yet), with no part of any token, and is in no room
    after it (its talk is refused too)."""
    log = SERVERS[url].log if url in SERVERS else []
    logged = len(log)
    with V2Client(url) as client:
        client.send(event)
        error = client.recv()
        assert_no_part_of(signing.issued, json.dumps(error))
        client.talk("let me in anyway")
        assert client.recv()["message"] == problems.NOT_IN_CHAT.text
    if error.get("code") != "sign-in-refused":
        return str(error["message"])
    deadline = time.monotonic() + 5
    while not (said := [line for line in log[logged:] if "sign-in refused: " in line]):
        assert time.monotonic() < deadline, "the server did not log why"
        time.sleep(0.01)
    why = said[0].rstrip("\n").split("sign-in refused: ", 1)[1]
    told = TOLD.get(why, problems.SIGN_IN_REFUSED)
    assert (error["type"], error["message"], error["code"]) == ("error", told.text, "sign-in-refused"), why
    assert_no_part_of(signing.issued, said[0])
    return f"sign-in refused: {why}"


@pytest.mark.parametrize("algorithm", ["RS256", "ES256", "EdDSA", "HS256"])
def test_each_key_type_signs_in_a_verified_user_with_the_tokens_name(
    url: str, signing: Signing, clients: Clients, algorithm: str
) -> None:
    teacher = clients(url)
    started = teacher.join(auth=signing.token(algorithm, "t-1", "Ms. Lovelace", create=True), name="Anyone")
    assert (started["name"], started["verified"], started["role"]) == ("Ms. Lovelace", True, "owner")
    room = started["joinKey"]
    ada = clients(url)
    joined = ada.join(room, auth=signing.token(algorithm, rooms=[room]), name="The Teacher")
    assert (joined["name"], joined["verified"], joined["resumed"]) == ("Ada", True, False)
    assert [(m["name"], m.get("verified")) for m in joined["members"]] == [("Ms. Lovelace", True), ("Ada", True)]
    assert teacher.wait_for("joined") == {"type": "joined", "userId": joined["userId"], "name": "Ada",
                                          "verified": True}
    ada.send({"type": "talk", "payload": "hello", "id": "m-1"})
    talk = teacher.wait_for("talk")
    assert (talk["name"], talk["payload"], talk["verified"]) == ("Ada", "hello", True)


def test_the_clock_leeway_is_30_seconds_either_way(url: str, signing: Signing, clients: Clients) -> None:
    room = clients(url).join(auth=signing.token(sub="t-1", create=True))["joinKey"]
    assert clients(url).join(room, auth=signing.token(lifetime=-10))["verified"] is True
    assert refusal(url, init(room, auth=signing.token(lifetime=-60)), signing) == "sign-in refused: expired"
    soon = int(time.time()) + 10
    assert clients(url).join(room, auth=signing.token(nbf=soon))["verified"] is True
    assert refusal(url, init(room, auth=signing.token(nbf=soon + 110)), signing) == "sign-in refused: not valid yet"


def attacks(signing: Signing, room: str) -> dict[str, tuple[dict[str, object], str]]:
    """Each attack: the init it sends, and the error message the server must answer it with."""
    good = signing.token()
    header, _claims_part, signature = good.split(".")
    tampered = _b64(json.dumps(_claims(sub="t-1", name="Ms. Lovelace")).encode())
    rsa_pem = signing.signers["RS256"].public_pem()
    accepted = "ES256, EdDSA, HS256, RS256"
    secret = signing.signers["HS256"].key
    assert isinstance(secret, bytes)
    hs = {"alg": "HS256", "typ": "JWT"}
    attacker = signing.stranger.key
    assert isinstance(attacker, rsa.RSAPrivateKey)
    needed = problems.SIGN_IN_NEEDED.text
    return {
        "alg none": (init(room, auth=signing.forged({"alg": "none", "typ": "JWT"}, _claims())),
                     f"sign-in refused: algorithm not accepted: none (accepted: {accepted})"),
        "alg unknown": (init(room, auth=signing.forged({"alg": "XY999<script>"}, _claims(), b"x" * 32)),
                        f"sign-in refused: algorithm not accepted: this one (accepted: {accepted})"),
        "HS256 keyed with the RSA public key": (init(room, auth=signing.forged(hs, _claims(), hmac_key=rsa_pem)),
                                                "sign-in refused: bad signature"),
        "HS256 keyed with the RSA public key, trimmed": (
            init(room, auth=signing.forged(hs, _claims(), hmac_key=rsa_pem.strip())), "sign-in refused: bad signature"
        ),
        "another key": (init(room, auth=signing.token("stranger")), "sign-in refused: bad signature"),
        "tampered claims": (init(room, auth=signing.keep(f"{header}.{tampered}.{signature}")),
                            "sign-in refused: bad signature"),
        "signature cut": (init(room, auth=signing.keep(f"{header}.{_claims_part}.")),
                          "sign-in refused: bad signature"),
        "wrong issuer": (init(room, auth=signing.token(issuer="https://evil.example")),
                         "sign-in refused: wrong issuer"),
        "no issuer": (init(room, auth=signing.token(issuer=None)), 'sign-in refused: missing "iss"'),
        "wrong audience": (init(room, auth=signing.token(audience="mail")), "sign-in refused: wrong audience"),
        "no audience": (init(room, auth=signing.token(audience=None)), 'sign-in refused: missing "aud"'),
        "no sub": (init(room, auth=signing.token(sub=None)), 'sign-in refused: missing "sub"'),
        "no exp": (init(room, auth=signing.forged(hs, {k: v for k, v in _claims().items() if k != "exp"},
                                                  hmac_key=secret)),
                   'sign-in refused: missing "exp"'),
        "sub not a string": (init(room, auth=signing.token(sub=7)),
                             'sign-in refused: "sub" must be a string of 1 to 256 characters, no control characters'),
        "rooms without this one": (init(room, auth=signing.token(rooms=["another-room"])),
                                   problems.NOT_THIS_ROOM.text),
        "rooms a string": (init(room, auth=signing.token(rooms=room)),
                           'sign-in refused: "rooms" must be "*" or a list of join keys (1 to 64 characters)'),
        "create false, starting a room": (init(auth=signing.token(create=False)),
                                          problems.NO_CREATE.text),
        "create not given, starting a room": (init(auth=signing.token()),
                                              problems.NO_CREATE.text),
        "no token": (init(room, name="Ada"), needed),
        "garbage": (init(room, auth="not-a-token-at-all"), "sign-in refused: not a JWT"),
        "three dots of garbage": (init(room, auth=signing.keep("e30.%%%.zzz")), "sign-in refused: not a JWT"),
        "alg NONE": (init(room, auth=signing.forged({"alg": "NONE"}, _claims())),
                     f"sign-in refused: algorithm not accepted: this one (accepted: {accepted})"),
        "a key of its own in the header (jwk)": (
            init(room, auth=signing.keep(jwt.encode(_claims(), attacker, algorithm="RS256", headers={
                "jwk": json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(attacker.public_key()))
            }))),
            "sign-in refused: bad signature",
        ),
        "exp a string": (init(room, auth=signing.token(lifetime=0, exp="99999999999")),
                         'sign-in refused: "exp" must be a number (seconds since 1970)'),
        "exp infinite": (init(room, auth=signing.keep(_hs256(secret, f'{{"sub": "s-ada", "exp": 1e400, '
                                                                     f'"iss": "{ISSUER}", "aud": "{AUDIENCE}"}}'))),
                         'sign-in refused: "exp" must be a number (seconds since 1970)'),
        "name with a line break": (init(room, auth=signing.token(name="Ada\nMs. Lovelace")),
                                   f"sign-in refused: {NAME_CLAIM}"),
        "a seed init with a token": ({"type": "init", "joinKey": room, "auth": signing.token()}, needed),
        "auth not a string": (init(room, auth={"sub": "t-1"}),
                              problems.BAD_SIGN_IN_FORM.format(limit=8192).text),
        "huge token": (init(room, auth=signing.keep(f"{header}.{'A' * 20_000}.{signature}")),
                       problems.BAD_SIGN_IN_FORM.format(limit=8192).text),
    }


ATTACKS = [
    "alg none", "alg unknown", "HS256 keyed with the RSA public key", "HS256 keyed with the RSA public key, trimmed",
    "another key", "tampered claims", "signature cut", "wrong issuer", "no issuer", "wrong audience", "no audience",
    "no sub", "no exp", "sub not a string", "rooms without this one", "rooms a string",
    "create false, starting a room", "create not given, starting a room", "no token", "garbage",
    "three dots of garbage", "alg NONE", "a key of its own in the header (jwk)", "exp a string", "exp infinite",
    "name with a line break", "a seed init with a token", "auth not a string", "huge token",
]


@pytest.mark.parametrize("attack", ATTACKS)
def test_a_bad_token_is_refused_naming_why_and_quoting_none_of_it(
    url: str, signing: Signing, clients: Clients, attack: str
) -> None:
    teacher = clients(url)
    room = teacher.join(auth=signing.token(sub="t-1", name="Ms. Lovelace", create=True))["joinKey"]
    every = attacks(signing, room)
    assert list(every) == ATTACKS
    event, message = every[attack]
    assert refusal(url, event, signing) == message
    assert teacher.until_quiet(0.1) == []  # nobody joined


def test_a_token_above_the_message_limit_closes_that_connection_only(
    url: str, signing: Signing, clients: Clients
) -> None:
    teacher = clients(url)
    room = teacher.join(auth=signing.token(sub="t-1", create=True))["joinKey"]
    good = signing.token()
    header, claims, signature = good.split(".")
    huge = signing.keep(f"{header}.{claims}{'A' * MAX_MESSAGE}.{signature}")
    attacker = clients(url)
    attacker.send(init(room, auth=huge))
    assert attacker.closed_with() == (1009, f"Exceeded maximum message size: {MAX_MESSAGE} bytes")
    assert clients(url).join(room, auth=good)["name"] == "Ada"  # still serving, the room too
    assert teacher.wait_for("joined")["verified"] is True


def test_a_resume_token_does_not_stand_in_for_a_sign_in(url: str, signing: Signing, clients: Clients) -> None:
    room = clients(url).join(auth=signing.token(sub="t-1", create=True))["joinKey"]
    ada = clients(url).join(room, auth=signing.token())
    needed = problems.SIGN_IN_NEEDED.text
    assert refusal(url, init(room, token=ada["token"]), signing) == needed
    bo = clients(url).join(room, auth=signing.token("HS256", "s-bo", "Bo"), token=ada["token"])
    assert (bo["name"], bo["resumed"]) == ("Bo", False)  # the subject wins over another user's resume token
    assert bo["userId"] != ada["userId"]


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory, signing: Signing) -> Iterator[tuple[str, str]]:
    """Two processes sharing a redis-server, A on trio-websocket and B on wsproto, under ``--auth optional``."""
    with ExitStack() as stack:
        redis = stack.enter_context(redis_server(tmp_path_factory.mktemp("redis")))
        urls = []
        for transport in TRANSPORTS:
            server = stack.enter_context(server_process(
                "--transport", transport, *COMMON, "--redis", redis.url, "--redis-timeout", "2", "--auth", "optional",
                "--auth-issuer", ISSUER, "--auth-audience", AUDIENCE, *key_flags(signing),
            ))
            stack.enter_context(stopped_cleanly(server, signing))
            urls.append(f"ws://127.0.0.1:{server.ws_port}/")
        yield urls[0], urls[1]


def test_a_signed_in_user_is_one_user_on_every_device_and_process(
    hosts: tuple[str, str], signing: Signing, clients: Clients
) -> None:
    a, b = hosts
    teacher = clients(a)
    room = teacher.join(auth=signing.token(sub="t-1", name="Ms. Lovelace", create=True))["joinKey"]
    bob = clients(b)
    bob_in = bob.join(room, name="Bob")
    assert [m.get("verified") for m in bob_in["members"]] == [True, None]

    ada_a = clients(a)
    first = ada_a.join(room, auth=signing.token("ES256"))
    ada = first["userId"]
    assert bob.wait_for("joined") == {"type": "joined", "userId": ada, "name": "Ada", "verified": True}
    ada_b = clients(b)  # another device, signed with another of the site's keys, holding Bob's resume token
    second = ada_b.join(room, auth=signing.token("EdDSA", name="Ada"), token=bob_in["token"])
    assert (second["userId"], second["resumed"], second["name"], second["verified"]) == (ada, True, "Ada", True)
    assert second["token"] != first["token"]
    assert [(m["userId"], m.get("verified")) for m in second["members"]] == [(1, True), (2, None), (ada, True)]

    ada_a.talk("from A")
    for reader in (bob, ada_b, teacher):
        talk = reader.wait_for("talk", payload="from A")
        assert (talk["userId"], talk["name"], talk["verified"]) == (ada, "Ada", True)
    ada_b.talk("from B")
    talk = teacher.wait_for("talk", payload="from B")
    assert (talk["userId"], talk["verified"]) == (ada, True)
    bob.talk("Bob here")
    assert "verified" not in teacher.wait_for("talk", payload="Bob here")

    for device in (ada_a, ada_b):
        device.send({"type": "name", "name": "Not Ada"})
        assert device.wait_for("error")["message"] == problems.NAME_FROM_SIGN_IN.text

    teacher.send({"type": "remove", "userId": ada, "ban": True})
    assert ada_a.closed_with()[0] == ada_b.closed_with()[0] == 4403
    removed = problems.BANNED.text
    for algorithm in ("RS256", "HS256"):  # a fresh device on B, whatever key signed it
        assert refusal(b, init(room, auth=signing.token(algorithm)), signing) == removed
    assert refusal(b, init(room, auth=signing.token(), token=bob_in["token"]), signing) == removed
    assert refusal(a, init(room, token=first["token"]), signing) == removed
    assert clients(b).join(room, auth=signing.token(sub="s-cy", name="Cy"))["verified"] is True


TAKEN = problems.TAKEN.text
LOOK_ALIKES = ["Ada", "ADA", " ada ", "\uff21\uff24\uff21", "\u0410da"]
"""Ada's name as an unsigned user may try it: as is, in capitals, spaced, fullwidth, with a Cyrillic capital A."""


def check_names_are_held(host: str, other: str, signing: Signing, clients: Clients) -> None:
    """Ada signs in on ``host``; on ``other`` nobody unsigned takes her name, by joining or by renaming."""
    room = clients(host).join(auth=signing.token(sub="t-1", create=True))["joinKey"]
    clients(host).join(room, auth=signing.token())
    for name in LOOK_ALIKES:
        assert refusal(other, init(room, name=name), signing) == TAKEN
    bob = clients(other)
    bob.join(room, name="Bob")
    bob.send({"type": "name", "name": "ADA"})
    assert bob.wait_for("error")["message"] == TAKEN


def back_by_resume_token(host: str, other: str, signing: Signing, clients: Clients, name: str | None) -> V2Client:
    """Ada signs in on ``host``, then comes back on ``other`` with her resume token alone (and ``name``): she is
    Ada, verified; the connection, open, is returned."""
    room = clients(host).join(auth=signing.token(sub="t-1", create=True))["joinKey"]
    ada = clients(host).join(room, auth=signing.token())
    back = clients(other)
    again = back.join(room, token=ada["token"], **({} if name is None else {"name": name}))
    assert (again["userId"], again["resumed"], again["verified"]) == (ada["userId"], True, True)
    assert again["name"] == "Ada"
    return back


def check_no_rename_by_resume_token(host: str, other: str, signing: Signing, clients: Clients) -> None:
    back = back_by_resume_token(host, other, signing, clients, None)
    back.send({"type": "name", "name": "Mallory"})
    assert back.wait_for("error")["message"] == problems.NAME_FROM_SIGN_IN.text


@pytest.fixture(scope="module", params=TRANSPORTS)
def optional(request: pytest.FixtureRequest, signing: Signing) -> Iterator[str]:
    """A server of the transport under ``--auth optional`` with the RSA key alone, its rooms in memory."""
    with server_process("--transport", request.param, *COMMON, "--db", ":memory:", "--auth", "optional",
                        "--auth-issuer", ISSUER, "--auth-audience", AUDIENCE,
                        "--auth-key", str(signing.signers["RS256"].path)) as server, \
            stopped_cleanly(server, signing):
        url = f"ws://127.0.0.1:{server.ws_port}/"
        SERVERS[url] = server
        yield url


def test_no_unsigned_user_takes_a_signed_in_members_name(optional: str, signing: Signing, clients: Clients) -> None:
    check_names_are_held(optional, optional, signing, clients)


def test_no_unsigned_user_on_another_process_takes_a_signed_in_members_name(
    hosts: tuple[str, str], signing: Signing, clients: Clients
) -> None:
    check_names_are_held(hosts[0], hosts[1], signing, clients)


def test_a_signed_in_user_back_by_its_resume_token_alone_cannot_rename(
    optional: str, hosts: tuple[str, str], signing: Signing, clients: Clients
) -> None:
    check_no_rename_by_resume_token(optional, optional, signing, clients)
    check_no_rename_by_resume_token(hosts[0], hosts[1], signing, clients)


def test_a_signed_in_user_back_by_its_resume_token_alone_keeps_its_name(
    optional: str, signing: Signing, clients: Clients
) -> None:
    back_by_resume_token(optional, optional, signing, clients, "Mallory")


def test_a_signed_in_user_back_by_its_resume_token_alone_on_another_process_keeps_its_name(
    hosts: tuple[str, str], signing: Signing, clients: Clients
) -> None:
    back_by_resume_token(hosts[0], hosts[1], signing, clients, "Mallory")


def test_optional_sign_in_lets_no_bad_token_pass_as_anonymous_nor_anyone_claim_verified(
    optional: str, signing: Signing, clients: Clients
) -> None:
    teacher = clients(optional)
    room = teacher.join(name="Ms. Lovelace", verified=True, subject="t-1")["joinKey"]  # fields the server ignores
    pem = signing.signers["RS256"].public_pem()
    confused = signing.forged({"alg": "HS256", "typ": "JWT"}, _claims(), hmac_key=pem)
    assert refusal(optional, init(room, auth=confused), signing) == \
        "sign-in refused: algorithm not accepted: HS256 (accepted: RS256)"
    for algorithm in ("ES256", "EdDSA", "HS256"):  # good tokens, but of keys this server was not given
        assert refusal(optional, init(room, auth=signing.token(algorithm)), signing) == \
            f"sign-in refused: algorithm not accepted: {algorithm} (accepted: RS256)"
    assert refusal(optional, init(room, auth=signing.token(lifetime=-60), name="Ada"), signing) == \
        "sign-in refused: expired"  # not let in as an unsigned "Ada" instead
    anyone = clients(optional)
    joined = anyone.join(room, name="Cy", verified=True)
    assert "verified" not in joined
    assert all("verified" not in member for member in joined["members"])
    assert "verified" not in teacher.wait_for("joined")
    anyone.send({"type": "talk", "payload": "trust me", "verified": True})
    assert "verified" not in teacher.wait_for("talk")
    everywhere = clients(optional).join(room, auth=signing.token(rooms="*"))
    assert (everywhere["name"], everywhere["verified"]) == ("Ada", True)


def test_a_resume_token_left_on_a_shared_computer_makes_no_identity(
    optional: str, hosts: tuple[str, str], signing: Signing, clients: Clients
) -> None:
    """Mallory joins anonymously and leaves her resume token in the page; Grace signs in there: Grace is a user of her
    own, and Mallory's token brings back only the anonymous Mallory, never the signed-in Grace."""
    for first, second in ((optional, optional), hosts):
        room = clients(first).join(name="Owner")["joinKey"]
        mallory = clients(first).join(room, name="Mallory")
        grace = clients(second).join(room, auth=signing.token(sub="s-grace", name="Grace"), token=mallory["token"])
        assert (grace["resumed"], grace["name"], grace["verified"]) == (False, "Grace", True)
        assert grace["userId"] != mallory["userId"]
        again = clients(first).join(room, token=mallory["token"])
        assert (again["userId"], again["resumed"], again["name"]) == (mallory["userId"], True, "Mallory")
        assert "verified" not in again
