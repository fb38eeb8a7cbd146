"""The dialects a server speaks, and how a connection's ``init`` chooses one.

An ``init`` without ``"v"`` chooses the seed's dialect; ``"v": N`` chooses
version N's, if it is registered in `VERSIONS`. Adding a version is one
module (a `Dialect` and its ``parse_init``) and one entry here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import problems
from . import seed, v2
from .dialect import Dialect, InitRequest, Request
from .errors import ProtocolError

VERSIONS: dict[int, Callable[[dict[str, Any]], InitRequest]] = {v2.VERSION: v2.parse_init}
"""Each version an ``init`` may ask for with ``"v"``, and how its ``init`` is read."""

DIALECTS: tuple[Dialect, ...] = (seed.TEXT, seed.MARKUP, v2.TEXT, v2.MARKUP)
"""Every dialect, in slot order."""

LOBBY = seed.MARKUP
"""What a connection speaks before its first ``init``."""
LATEST = v2.TEXT
"""What an ``init`` asking for a version is refused in when it cannot be read (an unknown version too: the client
asked for one)."""

for _slot, _dialect in enumerate(DIALECTS):
    _dialect.slot = _slot


def parse(dialect: Dialect, event: object, max_payload_chars: int) -> Request:
    """The request a decoded event makes on a connection speaking ``dialect``; an ``init`` may choose another (and
    is refused in it: `ProtocolError.dialect`)."""
    try:
        request = dialect.parse(event, max_payload_chars)
        if isinstance(request, InitRequest) and isinstance(event, dict) and "v" in event:
            return _versioned(event)
        return request
    except ProtocolError as error:
        if isinstance(event, dict) and event.get("type") == "init" and "v" in event:
            error.dialect = LATEST
        raise


def _versioned(event: dict[str, Any]) -> InitRequest:
    version = event["v"]
    if not isinstance(version, bool):
        for number, parse_init in VERSIONS.items():
            if version == number:
                return parse_init(event)
    versions = ", ".join(["the original", *(str(number) for number in VERSIONS)])
    raise ProtocolError(problems.BAD_VERSION.format(versions=versions))
