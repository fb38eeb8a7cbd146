"""The room log's SQL: the schema's migrations, and the statements `sqlite.Database` runs."""

from __future__ import annotations

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # version 1: rooms with their user id counter, and every talk in the order it was accepted
    (
        """CREATE TABLE rooms (
            id INTEGER PRIMARY KEY,
            join_key TEXT NOT NULL UNIQUE,
            created REAL NOT NULL,
            last_user_id INTEGER NOT NULL
        )""",
        """CREATE TABLE talks (
            id INTEGER PRIMARY KEY,
            room INTEGER NOT NULL REFERENCES rooms (id),
            user_id INTEGER NOT NULL,
            time REAL NOT NULL,
            payload TEXT NOT NULL
        )""",
        "CREATE INDEX talks_by_room ON talks (room, id)",
    ),
    # version 2: each room's talks as a chain from its newest one back (previous is NULL for the first),
    # instead of an index by room.
    # An index by room makes every commit rewrite one index page per room it touches; the chain
    # only appends to the talks table and updates the (few, dense) pages of the rooms it touches.
    (
        "ALTER TABLE rooms ADD COLUMN last_talk INTEGER REFERENCES talks (id)",
        "ALTER TABLE talks ADD COLUMN previous INTEGER REFERENCES talks (id)",
        """UPDATE talks SET previous = (
            SELECT max(earlier.id) FROM talks AS earlier WHERE earlier.room = talks.room AND earlier.id < talks.id
        )""",
        "UPDATE rooms SET last_talk = (SELECT max(id) FROM talks WHERE talks.room = rooms.id)",
        "DROP INDEX talks_by_room",
        """CREATE TRIGGER talks_extend_chain AFTER INSERT ON talks BEGIN
            UPDATE rooms SET last_talk = NEW.id WHERE id = NEW.room;
        END""",
    ),
    # version 3: each talk's offset in its room, 1, 2, 3 ... in the order the talks were accepted
    (
        "ALTER TABLE talks ADD COLUMN room_offset INTEGER",
        """UPDATE talks SET room_offset = numbered.n
            FROM (SELECT id, row_number() OVER (PARTITION BY room ORDER BY id) AS n FROM talks) AS numbered
            WHERE numbered.id = talks.id""",
    ),
    # version 4 (protocol version 2): the sender's name and own id on each talk (old rows read NULL: ALTER
    # TABLE ... ADD COLUMN rewrites nothing), and three small tables that seed talks and joins never touch.
    # - talk_ids: one row per talk sent with an id, keyed by (room, user, id): a resent id finds its talk,
    #   and a room never has two. A table of its own rather than a partial unique index on talks: any index
    #   on talks, even one a talk without an id adds nothing to, costs every insert into talks a cursor on it
    #   (measured: 4-5% of SQLite's time for a batch of seed talks).
    # - users: a user's name and token hash, for users that have either (seed users have no row).
    # - checkpoints: every 256th talk of each room (offsets 256, 512, ...), so that reading older talks
    #   starts its walk down the chain at most 255 talks above them instead of at the room's newest talk.
    #   One row per 256 talks, written by the transaction that places the talk (this migration reads the
    #   talks table once to write those of the talks there). A checkpoint is only a short cut: a missing
    #   one makes a walk longer, not wrong.
    (
        "ALTER TABLE talks ADD COLUMN name TEXT",
        "ALTER TABLE talks ADD COLUMN talk_id TEXT",
        """CREATE TABLE talk_ids (
            room INTEGER NOT NULL REFERENCES rooms (id),
            user_id INTEGER NOT NULL,
            talk_id TEXT NOT NULL,
            talk INTEGER NOT NULL REFERENCES talks (id),
            PRIMARY KEY (room, user_id, talk_id)
        ) WITHOUT ROWID""",
        """CREATE TABLE users (
            room INTEGER NOT NULL REFERENCES rooms (id),
            user_id INTEGER NOT NULL,
            name TEXT,
            token_hash TEXT,
            PRIMARY KEY (room, user_id)
        ) WITHOUT ROWID""",
        "CREATE UNIQUE INDEX users_by_token ON users (room, token_hash) WHERE token_hash IS NOT NULL",
        """CREATE TABLE checkpoints (
            room INTEGER NOT NULL REFERENCES rooms (id),
            room_offset INTEGER NOT NULL,
            talk INTEGER NOT NULL REFERENCES talks (id),
            PRIMARY KEY (room, room_offset)
        ) WITHOUT ROWID""",
        "INSERT INTO checkpoints (room, room_offset, talk) SELECT room, room_offset, id FROM talks"
        " WHERE room_offset % 256 = 0",
    ),
    # version 5 (rooms a teacher controls): each room's title, lock and number of its latest change; each
    # user's role and ban (a seed user gets a row when it is first given either); each talk's time of its
    # latest edit, and whether it was deleted (then its payload is '' and its name NULL: erased, while its
    # offset, sender, time and id stay). Old rows read the defaults: nothing is rewritten. A seed talk's row
    # does not grow: its trailing NULL columns (name, talk_id, edited, deleted) are left out of the record.
    (
        "ALTER TABLE rooms ADD COLUMN title TEXT",
        "ALTER TABLE rooms ADD COLUMN locked INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE rooms ADD COLUMN change_seq INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE users ADD COLUMN moderator INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE users ADD COLUMN banned INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE talks ADD COLUMN edited REAL",
        "ALTER TABLE talks ADD COLUMN deleted INTEGER",
    ),
    # version 6 (sign-in): each signed-in user's sign-in identity (its token's ``sub``), one user per subject in
    # a room. Old rows read NULL (nobody had signed in); seed joins and talks never touch ``users``.
    (
        "ALTER TABLE users ADD COLUMN subject TEXT",
        "CREATE UNIQUE INDEX users_by_subject ON users (room, subject) WHERE subject IS NOT NULL",
    ),
    # version 7 (sign-in): whether a talk's sender was signed in (1), on the talk. Old rows and seed talks read
    # NULL (not signed in): the seed's insert statement stays as it is.
    ("ALTER TABLE talks ADD COLUMN verified INTEGER",),
    # version 8 (sign-in): the key of each signed-in user's name (`chatcore.identity.NameKey`, computed by the
    # core), which no unsigned user of the room may take; several signed-in users may hold one. Old rows read NULL:
    # the key is the server's function, not SQL's, so a signed-in user of an older database holds its name from
    # its next join with its sign-in.
    (
        "ALTER TABLE users ADD COLUMN name_key TEXT",
        "CREATE INDEX users_by_name_key ON users (room, name_key) WHERE name_key IS NOT NULL",
    ),
)
"""``MIGRATIONS[n]`` takes a database from schema version n to n + 1 (``PRAGMA user_version``)."""
SCHEMA_VERSION = len(MIGRATIONS)


CHECKPOINT_EVERY = 256
"""A room's talks at offsets that are multiples of this have a row in ``checkpoints`` (since version 4)."""

HISTORY_START = """
    SELECT talk FROM checkpoints WHERE room = ?1 AND room_offset >= ?2 ORDER BY room_offset LIMIT 1
"""
"""The room's (?1) first checkpoint at offset ?2 or above: where a walk down to offset ?2 starts."""

SKIP_DOWN = """
    WITH RECURSIVE chain (id, previous, room_offset) AS (
        SELECT id, previous, room_offset FROM talks WHERE id = ?1
        UNION ALL
        SELECT talks.id, talks.previous, talks.room_offset
        FROM chain JOIN talks ON talks.id = chain.previous WHERE chain.room_offset >= ?2
    )
    SELECT id FROM chain WHERE room_offset < ?2
"""
"""The room's newest talk with an offset below ?2, walking back from talk ?1 (no row if none).

The walk reads only ids and offsets, one row at a time: each talk it steps over costs one rowid lookup
(a B-tree search of the talks table) and nothing else.
"""

READ_HISTORY = """
    WITH RECURSIVE chain (
        id, previous, room_offset, payload, user_id, time, name, talk_id, edited, deleted, verified, n
    ) AS (
        SELECT id, previous, room_offset, payload, user_id, time, name, talk_id, edited, deleted, verified, 1
        FROM talks WHERE id = ?1
        UNION ALL
        SELECT talks.id, talks.previous, talks.room_offset, talks.payload, talks.user_id, talks.time, talks.name,
            talks.talk_id, talks.edited, talks.deleted, talks.verified, chain.n + 1
        FROM chain JOIN talks ON talks.id = chain.previous WHERE chain.n < ?2
    )
    SELECT room_offset, user_id, time, iif(deleted, NULL, payload), name, talk_id, edited, ifnull(verified, 0),
        previous >= (SELECT min(id) FROM talks)
    FROM chain ORDER BY n DESC
"""
"""A room's talks from talk ?1 down, ?2 of them, oldest first (a deleted one's payload NULL); each row ends with
whether the log keeps a talk before it.

Walking back from a room's ``last_talk``, these are its newest talks: what a joiner is shown. Retention
erases the talks below some id, of every room at once (`sqlcontrol`): a talk's ``previous`` is kept if and
only if it is not below the smallest id left, so a chain that goes on into erased talks says "no older".
"""

STORED_TALK = """
    SELECT talks.room_offset, talks.time, iif(talks.deleted, NULL, talks.payload), talks.name, talks.edited,
        ifnull(talks.verified, 0)
    FROM talk_ids JOIN talks ON talks.id = talk_ids.talk
    WHERE talk_ids.room = ? AND talk_ids.user_id = ? AND talk_ids.talk_id = ?
"""
"""The talk a user sent with an id in a room, as it is now."""

CREATE_ROOM = "INSERT INTO rooms (join_key, created, last_user_id) VALUES (?, ?, 0) ON CONFLICT DO NOTHING"
NEXT_USER_ID = (
    "UPDATE rooms SET last_user_id = last_user_id + 1 WHERE join_key = ? AND NOT locked RETURNING last_user_id"
)
"""Hands out a room's next user id, unless it is locked (a version-2 join adds ``, id``: the room's id too).

No row: the room is locked, or missing (`ROOM_EXISTS` tells which; the rare case pays for it)."""
ROOM_EXISTS = "SELECT 1 FROM rooms WHERE join_key = ?"

RESUME = """
    SELECT rooms.id, users.user_id, users.name, users.banned, users.subject IS NOT NULL,
        EXISTS (SELECT 1 FROM users AS holder WHERE holder.room = rooms.id AND holder.name_key = ?3)
    FROM rooms LEFT JOIN users ON users.room = rooms.id AND users.token_hash = ?2 WHERE rooms.join_key = ?1
"""
"""A room's id and the user registered there with a token hash, its name, ban and whether it is signed in (NULLs
if none), found by ``users_by_token``; and whether a signed-in user there holds the name key ?3 (``users_by_name_key``).
"""

SIGN_IN = """
    SELECT rooms.id, users.user_id, users.name, users.banned, users.name_key
    FROM rooms LEFT JOIN users ON users.room = rooms.id AND users.subject = ?2 WHERE rooms.join_key = ?1
"""
"""`RESUME` for a signed-in user (subject ?2): a room's id, and the user registered there with that subject (its id,
name, ban and the name key it holds; NULLs where none), found by ``users_by_subject``. A resume token is not looked
at: it never makes or moves an identity."""
SAVE_USER = """
    UPDATE users SET name = ifnull(?3, name), subject = ifnull(?4, subject), name_key = ifnull(?5, name_key)
    WHERE room = ?1 AND user_id = ?2
"""
"""A returning user's name, subject and name key, each kept as it is where NULL (a user with a token gets its
subject here)."""
NEW_USER = """
    INSERT INTO users (room, user_id, name, token_hash, subject, name_key) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
    ON CONFLICT (room, user_id) DO UPDATE SET name = ifnull(?3, name), token_hash = ?4, subject = ?5, name_key = ?6
    RETURNING name
"""
"""A new user's row (an upsert: a row can only be there already if the log was asked to rename a user it had not
handed out yet, or to give it a role; then its name is kept where the join has none, as the memory log does)."""
NAME_HELD = """
    SELECT 1 FROM rooms JOIN users ON users.room = rooms.id AND users.name_key = ?2
    WHERE rooms.join_key = ?1 AND NOT rooms.locked LIMIT 1
"""
"""Whether a signed-in user of the room ?1, if it is open to new users, holds the name key ?2 (``users_by_name_key``):
a new unsigned user may not take that name (a locked room's refusal comes first)."""
RENAMING = """
    SELECT EXISTS (SELECT 1 FROM users WHERE room = ?1 AND user_id = ?2 AND subject IS NOT NULL),
        EXISTS (SELECT 1 FROM users WHERE room = ?1 AND name_key = ?3)
"""
"""Whether user ?2 of the room (by id, ?1) is signed in, and whether a signed-in user there holds the name key ?3."""
SAVE_NAME = """
    INSERT INTO users (room, user_id, name) VALUES (?1, ?2, ?3)
    ON CONFLICT (room, user_id) DO UPDATE SET name = ?3, name_key = ifnull(?4, name_key)
"""
"""A user's new name, and the key a signed-in user holds with it (?4; NULL: kept as it is)."""


ROOM_CHAIN = """
    SELECT rooms.id, rooms.last_talk, ifnull(talks.room_offset, 0)
    FROM rooms LEFT JOIN talks ON talks.id = rooms.last_talk WHERE rooms.join_key = ?
"""
"""A room's id, newest talk and that talk's offset (0 when it has none)."""

INSERT_SEED_TALKS = (
    "INSERT INTO talks (id, room, previous, room_offset, user_id, time, payload) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
INSERT_TALKS = (
    "INSERT INTO talks (id, room, previous, room_offset, user_id, time, payload, name, talk_id, verified)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
"""Two statements, not one with None bound for a seed talk's name and id: Python's sqlite3 passes only
ints, floats and strings straight through, and looks every None up as something to adapt. Measured: two
Nones a row made SQLite's part of 20k seed talks a third slower, and the whole batch some 15% slower."""


# Room control (`sqlcontrol`): rare, so plain statements.

ROOM_CONTROL = "SELECT id, last_user_id, title, locked, change_seq FROM rooms WHERE join_key = ?"
LOAD_ROOM = """
    SELECT rooms.id, rooms.last_talk, ifnull(talks.room_offset, 0), rooms.title, rooms.locked, rooms.change_seq
    FROM rooms LEFT JOIN talks ON talks.id = rooms.last_talk WHERE rooms.join_key = ?
"""
"""`ROOM_CHAIN` and the room's control state."""
STAFF_AND_BANNED = "SELECT user_id, moderator, banned FROM users WHERE room = ? AND (moderator OR banned)"
TALK = (
    "SELECT room_offset, user_id, time, iif(deleted, NULL, payload), name, talk_id, edited, ifnull(verified, 0)"
    " FROM talks WHERE id = ?"
)
SAVE_CONTROL = "UPDATE rooms SET title = ?, locked = ?, change_seq = ? WHERE id = ?"
SAVE_ROLE = """
    INSERT INTO users (room, user_id, moderator, banned) VALUES (?1, ?2, ?3, ?4)
    ON CONFLICT (room, user_id) DO UPDATE SET moderator = ?3, banned = ?4
"""
"""A user's role and ban (a seed user gets its first row here)."""
EDIT_TALK = "UPDATE talks SET payload = ?, edited = ? WHERE id = ?"
ERASE_TALK = "UPDATE talks SET payload = '', name = NULL, edited = NULL, deleted = 1, verified = NULL WHERE id = ?"

ERASE_CHAIN = """
    WITH RECURSIVE chain (id) AS (
        SELECT ?1
        UNION ALL
        SELECT talks.previous FROM chain JOIN talks ON talks.id = chain.id WHERE talks.previous IS NOT NULL
    )
    DELETE FROM talks WHERE id IN (SELECT id FROM chain)
"""
"""Delete a room's talks: its chain, from its newest talk (?1) down (one rowid lookup a talk)."""
ERASE_ROOM = (
    "DELETE FROM talk_ids WHERE room = ?1",
    "DELETE FROM checkpoints WHERE room = ?1",
    "DELETE FROM users WHERE room = ?1",
    "DELETE FROM rooms WHERE id = ?1",
)
"""Delete a room and all its rows but its talks (each a range of a primary key)."""

OLDEST_TALK = "SELECT id, time FROM talks ORDER BY id LIMIT 1"
NEWEST_TALK_ID = "SELECT max(id) FROM talks"
TALK_FROM = "SELECT id, time FROM talks WHERE id >= ? ORDER BY id LIMIT 1"
"""The first talk with an id of ?1 or more (a step of retention's binary search: one B-tree search)."""
ENDING_ROOMS = """
    SELECT rooms.id, rooms.join_key, rooms.change_seq, ifnull(talks.room_offset, 0)
    FROM rooms LEFT JOIN talks ON talks.id = rooms.last_talk
    WHERE rooms.last_talk < ?1 OR (rooms.last_talk IS NULL AND rooms.created < ?2)
"""
"""The rooms whose talks are all below id ?1, and those with no talk created before time ?2: retention ends them.

(A scan of ``rooms``, one short row a room; a talk is looked up for the rooms it ends only.)"""
EXPIRING_ROOMS = """
    SELECT rooms.id, rooms.join_key, erased.last + 1
    FROM (SELECT room, max(room_offset) AS last FROM talks WHERE id < ?1 GROUP BY room) AS erased
    JOIN rooms ON rooms.id = erased.room WHERE rooms.last_talk >= ?1
"""
"""The rooms that keep talks but lose those below id ?1, and the offset of the first they keep."""
OLD_TALK_IDS = "SELECT room, user_id, talk_id FROM talks WHERE id < ? AND talk_id IS NOT NULL"
ERASE_TALK_ID = "DELETE FROM talk_ids WHERE room = ? AND user_id = ? AND talk_id = ?"
"""One at a time: SQLite searches ``talk_ids`` for a row value IN a subquery by (room, user_id) only."""
ERASE_OLD_TALKS = (
    """DELETE FROM checkpoints WHERE talk < ?1 AND (room, room_offset) IN
        (SELECT room, room_offset FROM talks WHERE id < ?1 AND room_offset % 256 = 0)""",
    "DELETE FROM talks WHERE id < ?1",
)
"""Erase the talks below id ?1 and their checkpoints (after their ids: `OLD_TALK_IDS`): a range of ``talks``
read, no table scanned."""
