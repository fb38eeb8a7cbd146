"""The room log in a SQLite file: schema, migrations, and the batches of log requests a worker thread runs.

Everything here blocks; `worker.StorageWorker` calls it on its thread.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from chatcore import (
    AddUser,
    Append,
    Appended,
    KeyTaken,
    Load,
    Loaded,
    LogFailed,
    LoggedTalk,
    LogRequest,
    LogResult,
    SavedRoom,
    UserAdded,
)

log = logging.getLogger(__name__)

MEMORY = ":memory:"
"""The ``--db`` value that keeps rooms in memory only, as the seed did."""

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
)
"""``MIGRATIONS[n]`` takes a database from schema version n to n + 1 (``PRAGMA user_version``)."""
SCHEMA_VERSION = len(MIGRATIONS)


LOAD_RECENT = """
    WITH RECURSIVE chain (id, previous, room_offset, payload, user_id, time, n) AS (
        SELECT id, previous, room_offset, payload, user_id, time, 1 FROM talks WHERE id = ?1
        UNION ALL
        SELECT talks.id, talks.previous, talks.room_offset, talks.payload, talks.user_id, talks.time, chain.n + 1
        FROM chain JOIN talks ON talks.id = chain.previous WHERE chain.n < ?2
    )
    SELECT room_offset, user_id, time, payload FROM chain WHERE n <= ?2 ORDER BY n DESC
"""
"""A room's newest talks, oldest first, walking back from its ``last_talk`` (?1) at most ?2 steps."""


class Synchronous(StrEnum):
    """How hard a commit waits for the disk (SQLite's ``synchronous`` pragma, in WAL mode)."""

    NORMAL = "normal"
    """Commits survive the server being killed; the OS or power failing may lose the last ones."""
    FULL = "full"
    """Commits also survive the OS or power failing: one fsync per commit (per batch)."""


CHAINS_KEPT = 10_000
"""Rooms whose id and newest talk the database remembers (about 100 bytes each), so a talk is a plain insert."""


ROOM_CHAIN = """
    SELECT rooms.id, rooms.last_talk, ifnull(talks.room_offset, 0)
    FROM rooms LEFT JOIN talks ON talks.id = rooms.last_talk WHERE rooms.join_key = ?
"""
"""A room's id, newest talk and that talk's offset (0 when it has none)."""


@dataclass(slots=True)
class _Chain:
    room: int
    last_talk: int | None
    last_offset: int


class DatabaseError(Exception):
    """The database cannot be used at all; the message says why, for the operator."""


class _Inconsistent(Exception):
    """A record refers to a room the database does not have."""


class Database:
    """One open chat database, for one server process at a time (a lock file keeps others out)."""

    def __init__(self, path: Path, connection: sqlite3.Connection, lock_fd: int, rooms: int) -> None:
        self.path = path
        self.rooms_at_start = rooms
        self._connection = connection
        self._lock_fd = lock_fd
        # What a talk's row needs to know of its room, for the rooms talked in lately; and the next
        # talk id. The lock file makes this server the only writer, so both stay true; a failed
        # transaction forgets them, and they are read again.
        self._chains: dict[str, _Chain] = {}
        self._next_talk_id: int | None = None

    @classmethod
    def open(cls, path: Path, *, busy_timeout: float = 5.0, synchronous: Synchronous = Synchronous.NORMAL) -> Database:
        """Open or create the database at ``path`` and bring its schema up to date."""
        path = path.absolute()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise DatabaseError(f"cannot create the folder for {path}: {error.strerror}") from None
        lock_fd = _lock(path)
        try:
            connection = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as error:
            os.close(lock_fd)
            raise DatabaseError(f"cannot open {path}: {error}") from None
        try:
            connection.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode != "wal":
                raise DatabaseError(f"{path}: SQLite refused WAL mode (journal mode {mode})")
            connection.execute(f"PRAGMA synchronous = {synchronous.value.upper()}")
            _migrate(connection, path)
            rooms: int = connection.execute("SELECT count(*) FROM rooms").fetchone()[0]
        except (sqlite3.Error, DatabaseError) as error:
            connection.close()
            os.close(lock_fd)
            if isinstance(error, DatabaseError):
                raise
            raise DatabaseError(f"cannot use {path}: {error} ({describe(error)})") from None
        return cls(path, connection, lock_fd, rooms)

    def close(self) -> None:
        """Close the file (SQLite folds the write-ahead log back in) and release the lock."""
        self._connection.close()
        os.close(self._lock_fd)

    @property
    def name(self) -> str:
        return f"database {self.path}"

    def failed(self, batch: Sequence[LogRequest], reason: str) -> list[LogResult]:
        return [LogFailed(request.ticket, reason) for request in batch]

    def run(self, batch: Sequence[LogRequest]) -> list[LogResult]:
        """Do a batch: every write in one transaction, then every load; results in the batch's order.

        If the transaction fails, each write is retried in a transaction of its
        own, so that one bad request fails alone while a fault (disk full, file
        locked) fails them all with the reason.
        """
        results: dict[int, LogResult] = {}
        writes = [action for action in batch if not isinstance(action, Load)]
        if writes:
            try:
                results.update(zip((write.ticket for write in writes), self._transaction(writes), strict=True))
            except (sqlite3.Error, _Inconsistent) as error:
                log.debug("batch of %d writes failed (%s); retrying one by one", len(writes), error)
                for write in writes:
                    results[write.ticket] = self._write_alone(write)
        for action in batch:
            if isinstance(action, Load):
                results[action.ticket] = self._load(action)
        return [results[action.ticket] for action in batch]

    def _write_alone(self, write: AddUser | Append) -> LogResult:
        try:
            (result,) = self._transaction([write])
        except (sqlite3.Error, _Inconsistent) as error:
            reason = describe(error)
            log.error("database %s: could not store %s: %s (%s)", self.path, _summary(write), error, reason)
            return LogFailed(write.ticket, reason)
        return result

    def _transaction(self, writes: Sequence[AddUser | Append]) -> list[UserAdded | KeyTaken | Appended]:
        """Do ``writes`` in one transaction; their results, valid once it has committed."""
        execute = self._connection.execute
        talks: list[tuple[int, int, int | None, int, int, float, str]] = []
        results: list[UserAdded | KeyTaken | Appended] = []
        execute("BEGIN IMMEDIATE")
        try:
            for write in writes:
                if isinstance(write, Append):
                    chain = self._chain(write.join_key)
                    talk_id = self._take_talk_id()
                    offset = chain.last_offset = chain.last_offset + 1
                    row = (talk_id, chain.room, chain.last_talk, offset, write.user_id, write.time, write.payload)
                    talks.append(row)
                    chain.last_talk = talk_id
                    logged = LoggedTalk(write.join_key, offset, write.user_id, write.time, write.payload)
                    results.append(Appended(write.ticket, logged))
                    continue
                if write.created is not None:
                    cursor = execute(
                        "INSERT INTO rooms (join_key, created, last_user_id) VALUES (?, ?, 0) ON CONFLICT DO NOTHING",
                        (write.join_key, write.created),
                    )
                    if cursor.rowcount == 0:
                        results.append(KeyTaken(write.ticket))
                        continue
                row = execute(
                    "UPDATE rooms SET last_user_id = last_user_id + 1 WHERE join_key = ? RETURNING last_user_id",
                    (write.join_key,),
                ).fetchone()
                if row is None:
                    raise _Inconsistent(f"no room {write.join_key!r}")
                results.append(UserAdded(write.ticket, row[0]))
            if talks:
                self._connection.executemany(
                    "INSERT INTO talks (id, room, previous, room_offset, user_id, time, payload)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    talks,
                )
            execute("COMMIT")
        except BaseException:
            self._chains.clear()
            self._next_talk_id = None
            if self._connection.in_transaction:
                execute("ROLLBACK")
            raise
        return results

    def _chain(self, join_key: str) -> _Chain:
        """A room's id and newest talk, from memory if it talked lately (inside a transaction)."""
        chain = self._chains.get(join_key)
        if chain is None:
            row = self._connection.execute(ROOM_CHAIN, (join_key,)).fetchone()
            if row is None:
                raise _Inconsistent(f"a message for room {join_key!r}, which is not stored")
            if len(self._chains) >= CHAINS_KEPT:
                del self._chains[next(iter(self._chains))]  # the least recently loaded
            chain = self._chains[join_key] = _Chain(*row)
        return chain

    def _take_talk_id(self) -> int:
        if self._next_talk_id is None:
            self._next_talk_id = self._connection.execute("SELECT ifnull(max(id), 0) + 1 FROM talks").fetchone()[0]
        talk_id: int = self._next_talk_id
        self._next_talk_id = talk_id + 1
        return talk_id

    def _load(self, load: Load) -> LogResult:
        try:
            room = self._connection.execute(ROOM_CHAIN, (load.join_key,)).fetchone()
            if room is None:
                return Loaded(load.ticket, None)
            rows = self._connection.execute(LOAD_RECENT, (room[1], load.recent)).fetchall() if load.recent else []
        except sqlite3.Error as error:
            reason = describe(error)
            log.error("database %s: could not load a room: %s (%s)", self.path, error, reason)
            return LogFailed(load.ticket, reason)
        talks = tuple(LoggedTalk(load.join_key, *row) for row in rows)
        return Loaded(load.ticket, SavedRoom(load.join_key, room[2], talks))


def describe(error: BaseException) -> str:
    """A short reason for a client: what kind of fault, not where."""
    code = getattr(error, "sqlite_errorcode", None)
    if code is None:
        return "storage inconsistent" if isinstance(error, _Inconsistent) else "storage error"
    reasons = {
        sqlite3.SQLITE_FULL: "storage full",
        sqlite3.SQLITE_BUSY: "storage busy",
        sqlite3.SQLITE_LOCKED: "storage busy",
        sqlite3.SQLITE_IOERR: "storage write failed",
        sqlite3.SQLITE_CORRUPT: "storage unreadable",
        sqlite3.SQLITE_NOTADB: "storage unreadable",
        sqlite3.SQLITE_READONLY: "storage read-only",
        sqlite3.SQLITE_CANTOPEN: "storage unavailable",
        sqlite3.SQLITE_CONSTRAINT: "storage conflict",
    }
    return reasons.get(code & 0xFF, "storage error")


def _summary(write: AddUser | Append) -> str:
    if isinstance(write, Append):
        return f"a message in room {write.join_key}"
    return f"{'a new room and ' if write.created is not None else ''}a new user id in room {write.join_key}"


def _lock(path: Path) -> int:
    """Hold ``<path>.lock`` for as long as the server runs; the OS lets go when the process ends, however."""
    lock_path = path.with_name(path.name + ".lock")
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:
        raise DatabaseError(f"cannot create {lock_path}: {error.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise DatabaseError(f"{path} is in use by another chat server (pid {holder})") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _migrate(connection: sqlite3.Connection, path: Path) -> None:
    version: int = connection.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise DatabaseError(
            f"{path} has schema version {version}, newer than this server's {SCHEMA_VERSION}: upgrade the server"
        )
    for target in range(version + 1, SCHEMA_VERSION + 1):
        connection.execute("BEGIN IMMEDIATE")
        try:
            for statement in MIGRATIONS[target - 1]:
                connection.execute(statement)
            connection.execute(f"PRAGMA user_version = {target}")
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        log.info("database %s: schema migrated to version %d", path, target)
