"""Sign-in tokens: keys made here, tokens signed here, the verifier's answers on its own clock."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from transports.identity import (
    ALL,
    LEEWAY,
    MAX_TOKEN_CHARS,
    NAME_CLAIM,
    AuthKeyError,
    AuthRefused,
    AuthSettings,
    Identity,
    Verifier,
)

NOW = 1_800_000_000.0
SECRET = b"0123456789abcdef0123456789abcdef-not-so-secret"

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


@dataclass(frozen=True)
class Signer:
    algorithm: str
    key: PrivateKey | bytes
    """What signs: a private key, or the HS256 secret."""
    file_text: bytes
    """What the server's key file holds: the public key's PEM, or the secret."""

    def sign(self, claims: dict[str, Any], headers: dict[str, Any] | None = None) -> str:
        return jwt.encode(claims, self.key, algorithm=self.algorithm, headers=headers)


def public_pem(key: PrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def make_signer(algorithm: str) -> Signer:
    key: PrivateKey
    if algorithm == "HS256":
        return Signer("HS256", SECRET, SECRET + b"\n")
    if algorithm == "RS256":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif algorithm == "ES256":
        key = ec.generate_private_key(ec.SECP256R1())
    else:
        key = ed25519.Ed25519PrivateKey.generate()
    return Signer(algorithm, key, public_pem(key))


@pytest.fixture(scope="module")
def signers() -> dict[str, Signer]:
    return {algorithm: make_signer(algorithm) for algorithm in ("RS256", "ES256", "EdDSA", "HS256")}


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str, bytes], Path]:
    def write(name: str, data: bytes) -> Path:
        path = tmp_path / name
        path.write_bytes(data)
        return path

    return write


def verifier_for(
    write: Callable[[str, bytes], Path], *signers: Signer, issuer: str | None = None, audience: str | None = None
) -> Verifier:
    paths = tuple(write(f"key{index}", signer.file_text) for index, signer in enumerate(signers))
    return Verifier.load(AuthSettings(keys=paths, issuer=issuer, audience=audience))


def claims(**extra: Any) -> dict[str, Any]:
    return {"sub": "user-17", "exp": NOW + 300, **extra}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def handmade(header: dict[str, Any], payload: dict[str, Any], key: bytes | None) -> str:
    """A token signed (HMAC-SHA256 with ``key``) or not (None) without PyJWT, which refuses to make the bad ones."""
    return raw(json.dumps(header).encode(), json.dumps(payload).encode(), key)


def raw(header: bytes, payload: bytes, key: bytes | None) -> str:
    signing_input = f"{b64(header)}.{b64(payload)}"
    signature = b"" if key is None else hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def refused(verifier: Verifier, token: Any, now: float = NOW) -> str:
    with pytest.raises(AuthRefused) as caught:
        verifier.verify(token, now)
    message = str(caught.value)
    if isinstance(token, str) and token:
        assert token not in message
        for part in token.split("."):
            assert len(part) < 8 or part not in message
    error = caught.value  # (no PyJWT error chained to it for a traceback to show)
    assert error.__cause__ is None
    assert error.__context__ is None or error.__suppress_context__
    return message


@pytest.mark.parametrize("algorithm", ["RS256", "ES256", "EdDSA", "HS256"])
def test_a_valid_token_of_each_kind(
    algorithm: str, signers: dict[str, Signer], write: Callable[[str, bytes], Path]
) -> None:
    signer = signers[algorithm]
    verifier = verifier_for(write, signer)
    assert verifier.algorithms == (algorithm,)
    token = signer.sign(claims(name="  Ms Rivera ", rooms=["maths-7b", "art"], create=True, nbf=NOW - 10))
    assert verifier.verify(token, NOW) == Identity("user-17", "Ms Rivera", frozenset({"maths-7b", "art"}), True)
    assert verifier.verify(signer.sign(claims()), NOW) == Identity("user-17")
    assert verifier.verify(signer.sign(claims(rooms="*")), NOW).rooms == ALL


def test_expiry_with_leeway(signers: dict[str, Signer], write: Callable[[str, bytes], Path]) -> None:
    signer = signers["ES256"]
    verifier = verifier_for(write, signer)
    token = signer.sign(claims(exp=NOW))
    assert verifier.verify(token, NOW + LEEWAY - 1).sub == "user-17"
    assert refused(verifier, token, NOW + LEEWAY) == "expired"
    assert refused(verifier, token, NOW + 3600) == "expired"
    assert refused(verifier, signer.sign({"sub": "user-17"})) == 'missing "exp"'
    assert refused(verifier, signer.sign(claims(exp=None))) == 'missing "exp"'
    for bad in ("soon", True, [1]):
        assert refused(verifier, signer.sign(claims(exp=bad))) == '"exp" must be a number (seconds since 1970)'


def test_an_infinite_or_nan_expiry_is_refused(signers: dict[str, Signer], write: Callable[[str, bytes], Path]) -> None:
    signer = signers["HS256"]
    verifier = verifier_for(write, signer)
    for value in ("Infinity", "NaN"):  # (not JSON, but what Python's json module reads: a token that never expires)
        token = raw(b'{"alg": "HS256"}', b'{"sub": "x", "exp": %s}' % value.encode(), SECRET)
        assert refused(verifier, token) == '"exp" must be a number (seconds since 1970)'


def test_not_valid_yet(signers: dict[str, Signer], write: Callable[[str, bytes], Path]) -> None:
    signer = signers["EdDSA"]
    verifier = verifier_for(write, signer)
    token = signer.sign(claims(nbf=NOW + 100))
    assert refused(verifier, token) == "not valid yet"
    assert verifier.verify(token, NOW + 100 - LEEWAY).sub == "user-17"


def test_issuer_and_audience(signers: dict[str, Signer], write: Callable[[str, bytes], Path]) -> None:
    signer = signers["RS256"]
    verifier = verifier_for(write, signer, issuer="https://school.example", audience="chat")
    good = claims(iss="https://school.example", aud="chat")
    assert verifier.verify(signer.sign(good), NOW).sub == "user-17"
    assert verifier.verify(signer.sign({**good, "aud": ["lms", "chat"]}), NOW).sub == "user-17"
    assert refused(verifier, signer.sign({**good, "iss": "https://evil.example"})) == "wrong issuer"
    assert refused(verifier, signer.sign({**good, "aud": "other-app"})) == "wrong audience"
    assert refused(verifier, signer.sign(claims(aud="chat"))) == 'missing "iss"'
    assert refused(verifier, signer.sign(claims(iss="https://school.example"))) == 'missing "aud"'
    unchecked = verifier_for(write, signer)
    assert unchecked.verify(signer.sign({**good, "iss": "anyone", "aud": "anything"}), NOW).sub == "user-17"


def test_alg_none_is_refused(signers: dict[str, Signer], write: Callable[[str, bytes], Path]) -> None:
    verifier = verifier_for(write, signers["HS256"], signers["RS256"])
    token = handmade({"alg": "none", "typ": "JWT"}, claims(), None)
    assert refused(verifier, token) == "algorithm not accepted: none (accepted: HS256, RS256)"
    assert refused(verifier, token.rstrip(".")) == "not a JWT"
    invented = handmade({"alg": "secret-token-text", "typ": "JWT"}, claims(), SECRET)
    assert refused(verifier, invented) == "algorithm not accepted: this one (accepted: HS256, RS256)"


def test_algorithm_confusion_is_refused(signers: dict[str, Signer], write: Callable[[str, bytes], Path]) -> None:
    """An HS256 token whose secret is the RSA public key (which anyone may have) is not signed by that key."""
    rsa_signer = signers["RS256"]
    verifier = verifier_for(write, rsa_signer)
    forged = handmade({"alg": "HS256", "typ": "JWT"}, claims(sub="teacher"), rsa_signer.file_text)
    assert refused(verifier, forged) == "algorithm not accepted: HS256 (accepted: RS256)"
    # Alongside an HS256 secret, the forged token meets the secret, never the public key's bytes.
    both = verifier_for(write, rsa_signer, signers["HS256"])
    assert refused(both, forged) == "bad signature"
    # A token naming RS256 but signed by the secret: not an RSA signature.
    wrong = handmade({"alg": "RS256", "typ": "JWT"}, claims(), SECRET)
    assert refused(both, wrong) == "bad signature"


@pytest.mark.parametrize("algorithm", ["RS256", "ES256", "EdDSA", "HS256"])
def test_a_token_of_another_key_is_refused(
    algorithm: str, signers: dict[str, Signer], write: Callable[[str, bytes], Path]
) -> None:
    verifier = verifier_for(write, signers[algorithm])
    stranger = (
        Signer("HS256", b"another-secret-" * 3, b"") if algorithm == "HS256" else make_signer(algorithm)
    )
    assert refused(verifier, stranger.sign(claims())) == "bad signature"
    token = signers[algorithm].sign(claims())
    header, _, signature = token.split(".")
    tampered = b64(json.dumps(claims(sub="teacher")).encode())
    assert refused(verifier, f"{header}.{tampered}.{signature}") == "bad signature"


def test_claims_of_the_wrong_type(signers: dict[str, Signer], write: Callable[[str, bytes], Path]) -> None:
    signer = signers["HS256"]
    verifier = verifier_for(write, signer)
    sub = '"sub" must be a string of 1 to 256 characters, no control characters'
    rooms = '"rooms" must be "*" or a list of join keys (1 to 64 characters)'
    cases: list[tuple[dict[str, Any], str]] = [
        ({"exp": NOW + 60}, 'missing "sub"'),
        (claims(sub=""), sub),
        (claims(sub=17), sub),
        (claims(sub="x" * 257), sub),
        (claims(sub="line\nbreak"), sub),
        (claims(name=5), NAME_CLAIM),
        (claims(name="   "), NAME_CLAIM),
        (claims(name="n" * 33), NAME_CLAIM),
        (claims(name="bell\x07"), NAME_CLAIM),
        (claims(rooms="maths"), rooms),
        (claims(rooms=["maths", 7]), rooms),
        (claims(rooms=[""]), rooms),
        (claims(rooms=["k" * 65]), rooms),
        (claims(rooms={"a": 1}), rooms),
        (claims(create="yes"), '"create" must be true or false'),
        (claims(create=1), '"create" must be true or false'),
        (claims(nbf="later"), '"nbf" must be a number (seconds since 1970)'),
    ]
    for payload, message in cases:
        assert refused(verifier, signer.sign(payload)) == message, payload
    assert verifier.verify(signer.sign(claims(sub="s" * 256, name=None, rooms=[])), NOW) == Identity(
        "s" * 256, None, frozenset()
    )


def test_malformed_tokens(signers: dict[str, Signer], write: Callable[[str, bytes], Path]) -> None:
    signer = signers["HS256"]
    verifier = verifier_for(write, signer)
    good = signer.sign(claims())
    header, payload, signature = good.split(".")
    for token in (
        "", "garbage", "a.b.c", "...", "Ω.Ω.Ω", f"{header}.{payload}", f"{header}.{payload}.{signature}.x",
        f"{header}.!!!!.{signature}", f"{b64(b'[1, 2]')}.{payload}.{signature}", f"{b64(b'not json')}.{payload}.x",
        f"{header}.{b64(b'[1, 2]')}.{signature}", None, 17, b"bytes.are.not", ["a", "b"],
    ):
        assert refused(verifier, token) in ("not a JWT", "bad signature"), token
    assert refused(verifier, raw(b'{"alg": "HS256"}', b"[1, 2]", SECRET)) == "not a JWT"
    assert refused(verifier, raw(b'{"alg": "HS256"}', b"not json", SECRET)) == "not a JWT"
    huge = signer.sign(claims(padding="x" * MAX_TOKEN_CHARS))
    assert refused(verifier, huge) == f"token too long (more than {MAX_TOKEN_CHARS} characters)"
    assert refused(verifier, "x" * 10_000_000) == f"token too long (more than {MAX_TOKEN_CHARS} characters)"


def test_key_files_that_cannot_be_used(
    signers: dict[str, Signer], write: Callable[[str, bytes], Path], tmp_path: Path
) -> None:
    def load_error(*paths: Path) -> str:
        with pytest.raises(AuthKeyError) as caught:
            Verifier.load(AuthSettings(keys=paths))
        return str(caught.value)

    short = write("short", b"only-31-bytes-of-secret-here...\n")
    assert "too short: 31 bytes, at least 32" in load_error(short)
    assert "too short: 0 bytes" in load_error(write("empty", b""))
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    message = load_error(write("private.pem", private_pem))
    assert "holds a private key" in message
    assert private_pem.decode() not in message
    traditional = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    assert "holds a private key" in load_error(write("rsa-private.pem", traditional))
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    assert "1024 bits; at least 2048" in load_error(write("small.pem", public_pem(small)))
    p384 = ec.generate_private_key(ec.SECP384R1())
    assert "only P-256" in load_error(write("p384.pem", public_pem(p384)))
    assert "no usable PEM public key" in load_error(write("broken.pem", b"-----BEGIN PUBLIC KEY-----\nAAAA\n"))
    assert "holds a certificate" in load_error(write("cert.pem", b"-----BEGIN CERTIFICATE-----\nAAAA\n"))
    ssh = b"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK0wmN/Cr3JXqmLW7u+g9pTh+wyqDHpSQEIQczXkVx9q teacher@school"
    assert "not PEM" in load_error(write("id_ed25519.pub", ssh))
    assert "no such file" in load_error(tmp_path / "missing")
    assert "is a folder" in load_error(tmp_path)
    assert "no key file" in load_error()
    # One bad file of several: nothing is loaded.
    assert "too short" in load_error(write("good", signers["ES256"].file_text), short)


def test_rotation_and_reload(signers: dict[str, Signer], write: Callable[[str, bytes], Path]) -> None:
    old, new = signers["RS256"], signers["EdDSA"]
    first, second = write("first.pem", old.file_text), write("second.pem", new.file_text)
    verifier = Verifier.load(AuthSettings(keys=(first, second)))
    assert verifier.verify(old.sign(claims(sub="a")), NOW).sub == "a"
    assert verifier.verify(new.sign(claims(sub="b")), NOW).sub == "b"

    newest = make_signer("RS256")
    first.write_bytes(newest.file_text)  # the old key retired, a new one in its place
    reloaded = verifier.reload()
    assert reloaded.verify(newest.sign(claims(sub="c")), NOW).sub == "c"
    assert refused(reloaded, old.sign(claims())) == "bad signature"
    assert verifier.verify(old.sign(claims(sub="a")), NOW).sub == "a"  # (the old verifier is as it was)

    first.write_bytes(b"-----BEGIN RSA PRIVATE KEY-----\n...")
    with pytest.raises(AuthKeyError, match="holds a private key"):
        reloaded.reload()
    assert reloaded.verify(newest.sign(claims(sub="c")), NOW).sub == "c"  # what the caller keeps still works
    first.write_bytes(newest.file_text)
    second.unlink()
    with pytest.raises(AuthKeyError, match="no such file"):
        reloaded.reload()


def test_two_keys_of_one_algorithm(write: Callable[[str, bytes], Path]) -> None:
    one, two = make_signer("ES256"), make_signer("ES256")
    verifier = verifier_for(write, one, two)
    assert verifier.verify(one.sign(claims(sub="one")), NOW).sub == "one"
    assert verifier.verify(two.sign(claims(sub="two")), NOW).sub == "two"
    assert refused(verifier, make_signer("ES256").sign(claims())) == "bad signature"
