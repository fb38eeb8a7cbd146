"""Who a connection is, from a sign-in token (JWT) the embedding site signed: the keys, and checking a token.

The site a class signs in to (a school's sign-in, an LMS) gives the page a
short-lived token naming the user; the server checks it with the key files
of `AuthSettings` and gets an `Identity`, or `AuthRefused` saying which
check failed. PyJWT checks signatures (no signature code here); the claims
are checked here, against the ``now`` given, so that the clock is the
caller's, as everywhere else.

Each key file holds one key for one algorithm: a PEM public key, RSA
(RS256, at least 2048 bits), EC P-256 (ES256) or Ed25519 (EdDSA); anything
that is not PEM is an HS256 secret (whitespace at its ends, a trailing
newline, is not part of it), of at least 32 bytes. A token is tried only
with the keys of the algorithm its header names, and each key allows only
its own: the public key's bytes are never an HMAC secret. Several files are
for rotation: a token that any of them verifies is good.

Files are read at start (`Verifier.load`: a file that cannot be used stops
the server with one line) and again when asked (`Verifier.reload`, which
returns a new verifier: on `AuthKeyError` the caller keeps the one it has).
Messages never quote a token, so they may be logged and sent back.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TypeAlias

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from jwt.algorithms import HMACAlgorithm

from chatcore import problems
from chatcore.core import MAX_JOIN_KEY_CHARS
from chatcore.identity import ALL, Identity, Rooms
from chatcore.problems import Problem
from chatcore.wire.errors import ProtocolError
from chatcore.wire.v2 import MAX_NAME_CHARS, valid_name

from .config import AuthMode, AuthSettings
from .keyfiles import read_key_file

__all__ = [
    "ALL",
    "LEEWAY",
    "MAX_TOKEN_CHARS",
    "AuthKeyError",
    "AuthMode",
    "AuthRefused",
    "AuthSettings",
    "Identity",
    "Verifier",
]

LEEWAY: Final = 30.0
"""Seconds of clock difference with the signing side tolerated on ``exp`` and ``nbf``."""
MAX_TOKEN_CHARS: Final = 8 * 1024
"""Longer tokens are refused before they are parsed."""
MAX_SUB_CHARS: Final = 256
MIN_SECRET_BYTES: Final = 32
MIN_RSA_BITS: Final = 2048
"""``rooms`` of a token that may join every room."""

PublicKey: TypeAlias = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey

# Names that may be repeated in a refusal; a header's other text is the client's and is not.
_KNOWN_ALGORITHMS = frozenset({"none", *jwt.algorithms.get_default_algorithms()})

_JWT = jwt.PyJWT()


class AuthKeyError(Exception):
    """A key file that cannot be used; the message says which file and why, in one line."""


NAME_CLAIM = (
    f'"name" must be a string of 1 to {MAX_NAME_CHARS} characters (spaces at the ends do not count), '
    "no control characters"
)
"""Why a token's ``name`` is refused (for the server's log)."""


class AuthRefused(Exception):
    """A token that does not make an identity; the message says which check failed (for the server's log) and never
    quotes the token; ``problem`` is what the client is told."""

    def __init__(self, detail: str, problem: Problem = problems.SIGN_IN_REFUSED) -> None:
        super().__init__(detail)
        self.problem = problem


@dataclass(frozen=True, slots=True)
class _Key:
    path: Path
    algorithm: str
    key: PublicKey | bytes


class Verifier:
    """The keys of `AuthSettings`, read: `verify` turns a token into an `Identity`."""

    def __init__(self, settings: AuthSettings, keys: tuple[_Key, ...]) -> None:
        self.settings = settings
        self._keys = keys

    @classmethod
    def load(cls, settings: AuthSettings) -> Verifier:
        """Read the key files (blocking); `AuthKeyError` if there is none or one cannot be used."""
        if not settings.keys:
            raise AuthKeyError("no key file to verify sign-in tokens with")
        return cls(settings, tuple(_load_key(path) for path in settings.keys))

    def reload(self) -> Verifier:
        """The key files read again (blocking), as a new verifier; `AuthKeyError` leaves this one as it is."""
        return Verifier.load(self.settings)

    @property
    def algorithms(self) -> tuple[str, ...]:
        """The algorithms of the loaded keys, one for each file, in order."""
        return tuple(key.algorithm for key in self._keys)

    def verify(self, token: object, now: float) -> Identity:
        """The identity ``token`` names if one of the keys signed it and its claims hold at ``now`` (seconds
        since the epoch); `AuthRefused` otherwise."""
        if not isinstance(token, str) or not token:
            raise AuthRefused("not a JWT")
        if len(token) > MAX_TOKEN_CHARS:
            raise AuthRefused(f"token too long (more than {MAX_TOKEN_CHARS} characters)")
        if not token.isascii() or token.count(".") != 2:
            raise AuthRefused("not a JWT")
        try:
            algorithm = jwt.get_unverified_header(token).get("alg")
        except jwt.PyJWTError:
            raise AuthRefused("not a JWT") from None
        keys = [key for key in self._keys if key.algorithm == algorithm]
        if not keys:
            named = algorithm if isinstance(algorithm, str) and algorithm in _KNOWN_ALGORITHMS else "this one"
            raise AuthRefused(f"algorithm not accepted: {named} (accepted: {', '.join(sorted(set(self.algorithms)))})")
        claims = self._signed_claims(token, keys)
        return _identity(claims, now)

    def _signed_claims(self, token: str, keys: list[_Key]) -> Mapping[str, object]:
        issuer, audience = self.settings.issuer, self.settings.audience
        options: jwt.types.Options = {
            "verify_signature": True,
            "require": [],
            "verify_exp": False,  # checked in _identity against the caller's clock
            "verify_nbf": False,
            "verify_iat": False,
            "verify_iss": issuer is not None,
            "verify_aud": audience is not None,
            "verify_sub": False,
            "verify_jti": False,
        }
        for key in keys:
            try:
                return _JWT.decode(
                    token, key.key, algorithms=[key.algorithm], options=options, issuer=issuer, audience=audience
                )
            except jwt.InvalidSignatureError:
                continue
            except jwt.MissingRequiredClaimError as error:
                raise AuthRefused(f'missing "{error.claim}"') from None
            except jwt.InvalidIssuerError:
                raise AuthRefused("wrong issuer") from None
            except jwt.InvalidAudienceError:
                raise AuthRefused("wrong audience") from None
            except jwt.DecodeError:
                raise AuthRefused("not a JWT") from None
            except jwt.PyJWTError:
                raise AuthRefused("not a valid token") from None
        raise AuthRefused("bad signature")


def _identity(claims: Mapping[str, object], now: float) -> Identity:
    """The identity in verified ``claims``, if they hold at ``now``."""
    expires = _time(claims, "exp")
    if expires is None:
        raise AuthRefused('missing "exp"')
    if expires <= now - LEEWAY:
        raise AuthRefused("expired", problems.SIGN_IN_EXPIRED)
    not_before = _time(claims, "nbf")
    if not_before is not None and not_before > now + LEEWAY:
        raise AuthRefused("not valid yet", problems.SIGN_IN_EARLY)
    sub = claims.get("sub")
    if sub is None:
        raise AuthRefused('missing "sub"')
    if not isinstance(sub, str) or not 1 <= len(sub) <= MAX_SUB_CHARS or not _is_clean(sub):
        raise AuthRefused(f'"sub" must be a string of 1 to {MAX_SUB_CHARS} characters, no control characters')
    name = claims.get("name")
    if name is not None:
        try:
            name = valid_name(name)
        except ProtocolError:
            raise AuthRefused(NAME_CLAIM) from None
    create = claims.get("create", False)
    if not isinstance(create, bool):
        raise AuthRefused('"create" must be true or false')
    return Identity(sub, name, _rooms(claims.get("rooms")), create)


def _time(claims: Mapping[str, object], claim: str) -> float | None:
    value = claims.get(claim)
    if value is None:
        return None
    # (bool is an int; JSON as Python reads it allows NaN and Infinity, which no comparison would refuse)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise AuthRefused(f'"{claim}" must be a number (seconds since 1970)')
    return float(value)


def _rooms(value: object) -> Rooms:
    if value is None:
        return None
    if value == ALL:
        return ALL
    if not isinstance(value, list) or not all(
        isinstance(key, str) and 1 <= len(key) <= MAX_JOIN_KEY_CHARS and _is_clean(key) for key in value
    ):
        raise AuthRefused(f'"rooms" must be "*" or a list of join keys (1 to {MAX_JOIN_KEY_CHARS} characters)')
    return frozenset(value)


def _is_clean(text: str) -> bool:
    """Printable, and UTF-8 can carry it (JSON allows lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return text.isprintable()


def _load_key(path: Path) -> _Key:
    data = read_key_file(path, AuthKeyError, "a key file")
    if b"-----BEGIN" not in data:
        secret = data.strip()
        if len(secret) < MIN_SECRET_BYTES:
            raise AuthKeyError(
                f"{path} holds no PEM public key, and as an HS256 secret it is too short: {len(secret)} bytes, "
                f"at least {MIN_SECRET_BYTES} are needed (openssl rand -hex 32)"
            )
        try:
            HMACAlgorithm(HMACAlgorithm.SHA256).prepare_key(secret)
        except jwt.InvalidKeyError:
            raise AuthKeyError(f"{path} looks like a public key that is not PEM (ssh?): give it as PEM") from None
        return _Key(path, "HS256", secret)
    if b"PRIVATE KEY-----" in data:
        raise AuthKeyError(
            f"{path} holds a private key: the server needs only the public key (openssl pkey -pubout), "
            "and the private key belongs with the signing side alone"
        )
    if b"-----BEGIN CERTIFICATE-----" in data:
        raise AuthKeyError(f"{path} holds a certificate: give its public key (openssl x509 -pubkey -noout)")
    try:
        key = load_pem_public_key(data)
    except (ValueError, TypeError):
        raise AuthKeyError(f"{path} holds no usable PEM public key (-----BEGIN PUBLIC KEY-----)") from None
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise AuthKeyError(f"{path}: an RSA key of {key.key_size} bits; at least {MIN_RSA_BITS} are needed")
        return _Key(path, "RS256", key)
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise AuthKeyError(f"{path}: an EC key on {key.curve.name}; only P-256 (ES256) is accepted")
        return _Key(path, "ES256", key)
    if isinstance(key, ed25519.Ed25519PublicKey):
        return _Key(path, "EdDSA", key)
    raise AuthKeyError(f"{path}: a {type(key).__name__}; accepted are RSA, EC P-256 and Ed25519 public keys")
