"""Who a connection is when a sign-in token vouches for it: the identity, and who may join or start rooms.

The embedding site (a school's sign-in) signs a short-lived token naming the
user; a driver checks it (``transports.identity``: keys, signatures and the
clock are its business) and hands the core an `Identity`, or why it refused
the token. What the core decides from it is here, pure: under `SignIn`
``required`` every connection needs a token, seed clients included, and only
users whose token says ``create`` start rooms; a token's ``rooms`` bounds
which rooms its user may join.

A signed-in member holds its name in the room: an unsigned user may not take
a name with the same key (the log judges it, as it judges joins). The key is
a function given to `ChatCore` (like its clock): by default `folded`, case
and compatibility forms only, pure and dependency-free; a server passes one
that also maps look-alike letters to one prototype (``transports.names``:
Unicode's confusables skeleton), so that "Ada" spelt with a Greek capital
alpha is "Ada".
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal, TypeAlias

from . import problems
from .problems import Problem
from .wire.errors import ProtocolError

ALL: Final = "*"
Rooms: TypeAlias = frozenset[str] | Literal["*"] | None


@dataclass(frozen=True, slots=True)
class Identity:
    """A verified user, as its token names it."""

    sub: str
    """The stable identity the signing side gives the user (``sub``)."""
    name: str | None = None
    """The display name (``name``, trimmed), or None if the token has none."""
    rooms: Rooms = None
    """Join keys the user may join (``rooms``), `ALL`, or None if the token does not say (any)."""
    create: bool = False
    """Whether the user may start rooms (``create``)."""


@dataclass(frozen=True, slots=True)
class SignIn:
    """How a server takes sign-in tokens: ``verify`` checks one (an `Identity`, or the problem to tell the client:
    `problems.SIGN_IN_REFUSED` or a more precise one; the details are the driver's to log, never the client's)."""

    verify: Callable[[str], Identity | Problem]
    required: bool = False
    """Every connection must present a valid token, and only users whose token says ``create`` start rooms."""


NameKey: TypeAlias = Callable[[str], str]
"""A name → the key two names share when a reader could take one for the other."""


def folded(name: str) -> str:
    """``name`` case-folded under compatibility normalization: "ada", "Ada" and a fullwidth "ADA" are one.

    NFKC, case folding, NFKC again (folding can undo a normal form). Unicode's
    NFKC_Casefold also drops default-ignorable characters; names cannot hold
    the format ones (`chatcore.wire.v2.valid_name` refuses them).
    """
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())


def admit(sign_in: SignIn | None, auth: str | None, join_key: str | None) -> Identity | None:
    """Who an ``init``'s sign-in token ``auth`` says it is (None: no token, or none taken), if it may join
    ``join_key`` (None: start a room); else `ProtocolError`, saying why (never quoting the token)."""
    identity = None
    if sign_in is not None and auth is not None:
        checked = sign_in.verify(auth)
        if isinstance(checked, Problem):
            raise ProtocolError(checked)
        identity = checked
    refusal = refuse(sign_in, identity, join_key)
    if refusal is not None:
        raise ProtocolError(refusal)
    return identity


def refuse(sign_in: SignIn | None, identity: Identity | None, join_key: str | None) -> Problem | None:
    """Why a connection with ``identity`` (None: no token) may not join ``join_key`` (None: start a room), or None."""
    if sign_in is None:
        return None
    if identity is None:
        return problems.SIGN_IN_NEEDED if sign_in.required else None
    if join_key is None:
        return problems.NO_CREATE if sign_in.required and not identity.create else None
    rooms = identity.rooms
    if rooms is None or rooms == ALL or join_key in rooms:
        return None
    return problems.NOT_THIS_ROOM
