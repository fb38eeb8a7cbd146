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
    WITH RECURSIVE chain (id, previous, room_offset, payload, user_id, time, name, talk_id, n) AS (
        SELECT id, previous, room_offset, payload, user_id, time, name, talk_id, 1 FROM talks WHERE id = ?1
        UNION ALL
        SELECT talks.id, talks.previous, talks.room_offset, talks.payload, talks.user_id, talks.time, talks.name,
            talks.talk_id, chain.n + 1
        FROM chain JOIN talks ON talks.id = chain.previous WHERE chain.n < ?2
    )
    SELECT room_offset, user_id, time, payload, name, talk_id, previous IS NOT NULL FROM chain ORDER BY n DESC
"""
"""A room's talks from talk ?1 down, ?2 of them, oldest first; each row ends with whether a talk precedes it.

Walking back from a room's ``last_talk``, these are its newest talks: what a joiner is shown.
"""

STORED_TALK = """
    SELECT talks.room_offset, talks.time, talks.payload, talks.name
    FROM talk_ids JOIN talks ON talks.id = talk_ids.talk
    WHERE talk_ids.room = ? AND talk_ids.user_id = ? AND talk_ids.talk_id = ?
"""
"""The talk a user sent with an id in a room."""

CREATE_ROOM = "INSERT INTO rooms (join_key, created, last_user_id) VALUES (?, ?, 0) ON CONFLICT DO NOTHING"
NEXT_USER_ID = "UPDATE rooms SET last_user_id = last_user_id + 1 WHERE join_key = ? RETURNING last_user_id"
"""Hands out a room's next user id (a version-2 join adds ``, id``: the room's id too)."""

RESUME = """
    SELECT rooms.id, users.user_id, users.name
    FROM rooms LEFT JOIN users ON users.room = rooms.id AND users.token_hash = ?2 WHERE rooms.join_key = ?1
"""
"""A room's id and the user registered there with a token hash (None, None if none), found by ``users_by_token``."""


ROOM_CHAIN = """
    SELECT rooms.id, rooms.last_talk, ifnull(talks.room_offset, 0)
    FROM rooms LEFT JOIN talks ON talks.id = rooms.last_talk WHERE rooms.join_key = ?
"""
"""A room's id, newest talk and that talk's offset (0 when it has none)."""

INSERT_SEED_TALKS = (
    "INSERT INTO talks (id, room, previous, room_offset, user_id, time, payload) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
INSERT_TALKS = (
    "INSERT INTO talks (id, room, previous, room_offset, user_id, time, payload, name, talk_id)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
"""Two statements, not one with None bound for a seed talk's name and id: Python's sqlite3 passes only
ints, floats and strings straight through, and looks every None up as something to adapt. Measured: two
Nones a row made SQLite's part of 20k seed talks a third slower, and the whole batch some 15% slower."""
