"""Names a signed-in member holds: the key under which two names count as one.

An unsigned user may not take a name whose key is a signed-in member's key in
that room (the log judges it, as it judges joins). The key is a function given
to `ChatCore` (like its clock): by default `folded`, case and compatibility
forms only, pure and dependency-free; a server passes one that also maps
look-alike letters to one prototype (``transports.names``: Unicode's
confusables skeleton), so that "Αda" with a Greek capital alpha is "Ada".
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from typing import TypeAlias

NameKey: TypeAlias = Callable[[str], str]
"""A name → the key two names share when a reader could take one for the other."""

TAKEN = "that name belongs to a signed-in member of this chat; choose another"


def folded(name: str) -> str:
    """``name`` case-folded under compatibility normalization: "ＡＤＡ", "ada" and "Ada" are one.

    NFKC, case folding, NFKC again (folding can undo a normal form). Unicode's
    NFKC_Casefold also drops default-ignorable characters; names cannot hold
    the format ones (`chatcore.wire.v2.valid_name` refuses them).
    """
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())
