"""Room control: the owner and moderators, the changes of a room they and its users may make, and the rules.

`state`: the room's control state and the changes (a leaf: the wire reads and writes them);
`rules`: who may make which change and who may join, as every room log judges it.
"""

from .rules import TalkFacts, judge, refuse_join
from .state import (
    MAX_TITLE_CHARS,
    NEVER_CHANGED,
    OWNER,
    Change,
    Delete,
    Edit,
    End,
    Lock,
    Remove,
    Role,
    RoomControl,
    SetRole,
    Title,
)

__all__ = [
    "MAX_TITLE_CHARS",
    "NEVER_CHANGED",
    "OWNER",
    "Change",
    "Delete",
    "Edit",
    "End",
    "Lock",
    "Remove",
    "Role",
    "RoomControl",
    "SetRole",
    "TalkFacts",
    "Title",
    "judge",
    "refuse_join",
]
