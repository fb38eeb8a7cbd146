"""When two names are one for a reader: the server's `chatcore.identity.NameKey`, with Unicode's confusables.

The core keeps names signed-in members hold by a key it is given; this one
is ICU's (PyICU), the reference implementation of Unicode's security
mechanisms (UTS #39), whose confusables data comes with the system's ICU.
"""

from __future__ import annotations

import icu

from chatcore.identity import NameKey

_fold = icu.Normalizer2.getNFKCCasefoldInstance()
_checker = icu.SpoofChecker()


def name_key(name: str) -> str:
    """NFKC_Casefold, then the confusables skeleton, then NFKC_Casefold again.

    Folding first makes the key caseless ("ADA" and "ada"; UTS #39's skeleton
    alone keeps case) and takes compatibility forms (fullwidth letters) to
    plain ones, which the skeleton does not do; the skeleton (itself NFD, the
    prototypes, NFD again) maps look-alikes to one prototype ("Ada" with a
    Greek alpha); folding last, because some prototypes are capitals (Lisu
    letters map to "B", "D", ...) and because the skeleton leaves NFD.
    """
    return str(_fold.normalize(_checker.getSkeleton(0, _fold.normalize(name))))


_: NameKey = name_key  # (the core's type for it)
