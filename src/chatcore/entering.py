"""A connection enters its room: the log handed out its user; the room, the joiner and the log are told."""

from __future__ import annotations

from .actions import Action, ConnectionId, Presence, Send
from .pending import Intro
from .presence import announce, before
from .results import UserAdded
from .rooms import Room
from .session import Session
from .wire.dialect import Welcome


def enter(
    connection: ConnectionId, session: Session, room: Room, added: UserAdded, intro: Intro, max_payload_chars: int
) -> list[Action]:
    """The user joined (or came back): the members are told, the log too if its first connection here, and the
    joiner gets the reply to its ``init`` and the replay, in its dialect."""
    user_id, dialect = added.user_id, intro.dialect
    was = before(room, user_id)
    room.rename(user_id, added.name, None)
    room.add_member(connection, user_id, dialect)
    session.joined(room, user_id)
    session.verified = added.verified
    if added.verified:
        room.verified.add(user_id)
    actions = announce(room, was, exclude=connection)  # (the joiner is told by its init)
    if room.local[user_id] == 1:
        actions.append(Presence(room.join_key, user_id, True, added.name))
    token = intro.resume if added.resumed and intro.resume is not None else intro.token
    welcome = Welcome(
        room.join_key, user_id, added.name, token, added.resumed, room.members(), room.last_offset,
        room.history, intro.after, room.control, frozenset(room.verified), max_payload_chars,
    )
    actions.append(Send(connection, dialect.init_event(welcome)))
    actions.extend(Send(connection, talk.message(dialect)) for talk in dialect.replayed(welcome))
    return actions

