"""The room log in a SQLite file: the batches of log requests a worker thread runs. Opening the file (schema
migrations included) is in `sqlfile`, room control and retention in `sqlcontrol`, joins and renames in `sqlusers`,
the SQL itself in `sqlschema`.

Everything here blocks; `worker.StorageWorker` calls it on its thread.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path
from typing import TypeAlias

from chatcore import (
    AddUser,
    Append,
    Appended,
    Fill,
    Filled,
    History,
    HistoryRead,
    KeyTaken,
    Load,
    Loaded,
    LogFailed,
    LoggedTalk,
    LogRequest,
    LogResult,
    NameSaved,
    Rename,
    SavedRoom,
    UserAdded,
)
from chatcore.actions import Expire, Moderate
from chatcore.control import End
from chatcore.problems import ENDED
from chatcore.results import INCONSISTENT, Changed, Refused

from ..config import Synchronous
from ..logs import room_hash
from .sqlcontrol import expire, moderate, room_control, stored_talk, truncate_wal
from .sqlfile import DatabaseError, Inconsistent, connect, describe
from .sqlschema import (
    CHECKPOINT_EVERY,
    CREATE_ROOM,
    HISTORY_START,
    INSERT_SEED_TALKS,
    INSERT_TALKS,
    LOAD_ROOM,
    NEXT_USER_ID,
    READ_HISTORY,
    ROOM_CHAIN,
    ROOM_CONTROL,
    SKIP_DOWN,
    STORED_TALK,
)
from .sqlusers import add_user, locked_out, rename

logger = logging.getLogger(__name__)

MEMORY = ":memory:"
"""The ``--db`` value that keeps rooms in memory only, as the seed did."""


CHAINS_KEPT = 10_000
"""Rooms whose id and newest talk the database remembers (about 100 bytes each), so a talk is a plain insert."""

_Write: TypeAlias = AddUser | Append | Rename | Moderate
"""The requests `Database.run` does in its transaction; the rest (`Load`, `History`) are reads, done after it."""
_Written: TypeAlias = UserAdded | KeyTaken | Appended | NameSaved | Changed | Refused
_Action: TypeAlias = LogRequest | Fill | Expire
"""What `Database.run` takes: the log actions that reach the storage thread."""

_READS = (Load, History)
"""The requests `Database.run` does after its transaction (a tuple: ``isinstance`` with a union type is slower)."""
_NOT_REQUESTS = (Fill, Expire)

_SeedRow: TypeAlias = tuple[int, int, int | None, int, int, float, str]
"""A talk without name or id (every seed talk): its row leaves ``name`` and ``talk_id`` to their default, NULL."""
SEED_ROW = 7
"""The length of a `_SeedRow`."""
_TalkRow: TypeAlias = tuple[int, int, int | None, int, int, float, str, str | None, str | None, int]


@dataclass(slots=True)
class _Chain:
    room: int
    last_talk: int | None
    last_offset: int


@dataclass(slots=True)
class _Placing:
    """The rows one transaction inserts at its end (or before a change, which may judge them), in one statement
    per table (and kind of talk)."""

    talks: list[_SeedRow | _TalkRow] = field(default_factory=list)
    named: bool = False
    """Whether a talk has a name or an id: not every row of ``talks`` is a `_SeedRow`."""
    with_ids: dict[tuple[int, int, str], tuple[int, LoggedTalk]] = field(default_factory=dict)
    """(room, user id, talk id) → the talk's row id and the talk, for ``talk_ids`` and for duplicates."""
    checkpoints: list[tuple[int, int, int]] = field(default_factory=list)
    """(room, offset, talk's row id) of the talks placed at a multiple of `CHECKPOINT_EVERY`."""


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
        return cls(*connect(path, busy_timeout, synchronous))

    def close(self) -> None:
        """Close the file (SQLite folds the write-ahead log back in) and release the lock."""
        self._connection.close()
        os.close(self._lock_fd)

    @property
    def name(self) -> str:
        return f"database {self.path}"

    def check(self) -> None:
        """A trivial read, for readiness (on the storage thread); `DatabaseError` with a short reason if it fails."""
        try:
            self._connection.execute("SELECT 1 FROM rooms LIMIT 1").fetchall()
        except sqlite3.Error as error:
            raise DatabaseError(describe(error)) from None

    def failed(self, batch: Sequence[_Action], reason: str) -> list[LogResult]:
        return [
            Filled(action.join_key, action.after, ()) if isinstance(action, Fill) else LogFailed(action.ticket, reason)
            for action in batch if not isinstance(action, Expire)
        ]

    def run(self, batch: Sequence[_Action]) -> list[LogResult]:
        """Do a batch: every write in one transaction, then every read; results in the batch's order.

        Writes are `AddUser`, `Append`, `Rename` and `Moderate`; reads, `Load`, `History` and `Fill` (which
        the core asks only of a log shared with other processes: one writer never leaves a gap). If the
        transaction fails, each write is retried in a transaction of its own, so that one bad request fails
        alone while a fault (disk full, file locked) fails them all with the reason. An `Expire` cuts the
        batch in two, done in order around it; its results are news, any number of them. So does a `Moderate`
        after a read (an end or a delete changes what the read would find).
        """
        split = _moderated_after_a_read(batch)
        if split:
            return self.run(batch[:split]) + self.run(batch[split:])
        requests = [action for action in batch if not isinstance(action, _NOT_REQUESTS)]
        if len(requests) < len(batch):
            if any(isinstance(action, Expire) for action in batch):
                return self._run_around_expiry(batch)
            answers = iter(self.run(requests))
            return [self._fill(action) if isinstance(action, Fill) else next(answers) for action in batch]
        results: dict[int, LogResult] = {}
        writes: list[_Write] = [action for action in requests if not isinstance(action, _READS)]
        reads = [action for action in requests if isinstance(action, _READS)] if len(writes) < len(batch) else []
        if writes:
            try:
                results.update(zip((write.ticket for write in writes), self._transaction(writes), strict=True))
            except (sqlite3.Error, Inconsistent) as error:
                logger.debug("batch of %d writes failed (%s); retrying one by one", len(writes), error)
                for write in writes:
                    results[write.ticket] = self._write_alone(write)
        for read in reads:
            results[read.ticket] = self._load(read) if isinstance(read, Load) else self._history(read)
        return [results[action.ticket] for action in requests]

    def _run_around_expiry(self, batch: Sequence[_Action]) -> list[LogResult]:
        results: list[LogResult] = []
        start = 0
        for index, action in enumerate(batch):
            if isinstance(action, Expire):
                results.extend(self.run(batch[start:index]))
                results.extend(self._expire(action))
                start = index + 1
        results.extend(self.run(batch[start:]))
        return results

    def _expire(self, action: Expire) -> list[LogResult]:
        """Retention, in a transaction of its own: its news (none if it fails: the next sweep does it)."""
        execute = self._connection.execute
        try:
            execute("BEGIN IMMEDIATE")
            news, ended = expire(self._connection, action.before)
            execute("COMMIT")
        except BaseException as error:
            if self._connection.in_transaction:
                execute("ROLLBACK")
            if not isinstance(error, sqlite3.Error):
                raise
            logger.error("database %s: could not erase old messages: %s (%s)", self.path, error, describe(error))
            return []
        for join_key in ended:
            self._chains.pop(join_key, None)
        if news:
            truncate_wal(self._connection, self.name)
        return news

    def _write_alone(self, write: _Write) -> LogResult:
        try:
            (result,) = self._transaction([write])
        except (sqlite3.Error, Inconsistent) as error:
            reason = describe(error)
            logger.error("database %s: could not store %s: %s (%s)", self.path, _summary(write), error, reason)
            return LogFailed(write.ticket, reason)
        return result

    def _transaction(self, writes: Sequence[_Write]) -> list[_Written]:
        """Do ``writes`` in one transaction; their results, valid once it has committed."""
        execute = self._connection.execute
        placing = _Placing()
        talks, checkpoints, chains = placing.talks, placing.checkpoints, self._chains
        results: list[_Written] = []
        erased = False
        execute("BEGIN IMMEDIATE")
        try:
            next_id = self._next_talk_id  # the row id of the next talk placed
            if next_id is None:
                next_id = execute("SELECT ifnull(max(id), 0) + 1 FROM talks").fetchone()[0]
            for write in writes:
                if isinstance(write, Append):
                    chain = chains.get(write.join_key) or self._chain(write.join_key)
                    if write.talk_id is not None or write.name is not None or write.verified:
                        appended = self._place(write, chain, placing, next_id)
                        if not appended.duplicate:
                            next_id += 1
                        results.append(appended)
                        continue
                    # Every seed talk: as few steps as before version 2, and no method call (measured: 20k
                    # talks in batches of 100 take as long as before, within 1%).
                    row_id = next_id
                    next_id += 1
                    offset = chain.last_offset = chain.last_offset + 1
                    row = (row_id, chain.room, chain.last_talk, offset, write.user_id, write.time, write.payload)
                    talks.append(row)
                    chain.last_talk = row_id
                    if not offset % CHECKPOINT_EVERY:
                        checkpoints.append((chain.room, offset, row_id))
                    logged = LoggedTalk(write.join_key, offset, write.user_id, write.time, write.payload)
                    results.append(Appended(write.ticket, logged))
                elif isinstance(write, Rename):
                    results.append(rename(self._connection, self._chain(write.join_key).room, write))
                elif isinstance(write, Moderate):
                    self._insert(placing)  # (what it judges may be a talk of this transaction)
                    changed, erasing = self._moderate(write)
                    erased |= erasing
                    results.append(changed)
                elif (
                    write.token_hash is not None or write.resume_hash is not None or write.name is not None
                    or write.subject is not None
                ):
                    results.append(add_user(self._connection, write))
                else:
                    # Every seed join: the same statements as before version 2, and no method call.
                    created = write.created
                    if created is not None and execute(CREATE_ROOM, (write.join_key, created)).rowcount == 0:
                        results.append(KeyTaken(write.ticket))
                        continue
                    user = execute(NEXT_USER_ID, (write.join_key,)).fetchone()
                    results.append(UserAdded(write.ticket, user[0]) if user else locked_out(self._connection, write))
            self._insert(placing)
            self._next_talk_id = next_id
            execute("COMMIT")
        except BaseException:
            self._chains.clear()
            self._next_talk_id = None
            if self._connection.in_transaction:
                execute("ROLLBACK")
            raise
        if erased:
            truncate_wal(self._connection, self.name)
        return results

    def _insert(self, placing: _Placing) -> None:
        """Insert the rows placed so far, in one statement per table (and kind of talk); then place anew."""
        executemany = self._connection.executemany
        talks = placing.talks
        if not placing.named:
            if talks:
                executemany(INSERT_SEED_TALKS, talks)
        else:
            # In the order they were placed: the trigger makes the last one inserted its room's newest talk.
            for size, run in groupby(talks, len):
                executemany(INSERT_SEED_TALKS if size == SEED_ROW else INSERT_TALKS, run)
            if placing.with_ids:
                executemany(
                    "INSERT INTO talk_ids (room, user_id, talk_id, talk) VALUES (?, ?, ?, ?)",
                    [(room, user_id, talk_id, row_id) for (room, user_id, talk_id), (row_id, _) in
                     placing.with_ids.items()],
                )
            placing.with_ids.clear()
            placing.named = False
        if placing.checkpoints:
            executemany("INSERT INTO checkpoints (room, room_offset, talk) VALUES (?, ?, ?)", placing.checkpoints)
            placing.checkpoints.clear()
        talks.clear()

    def _moderate(self, write: Moderate) -> tuple[Changed | Refused, bool]:
        """Inside a transaction: a change judged on the room's state there (`sqlcontrol.moderate`)."""
        row = self._connection.execute(ROOM_CONTROL, (write.join_key,)).fetchone()
        if row is None:
            return Refused(write.ticket, ENDED), False
        chain = self._chain(write.join_key)
        answer, erased = moderate(self._connection, write, row, chain.last_talk, chain.last_offset)
        if isinstance(answer, Changed) and isinstance(write.change, End):
            del self._chains[write.join_key]
        return answer, erased

    def _place(self, write: Append, chain: _Chain, placing: _Placing, row_id: int) -> Appended:
        """Inside a transaction: place a talk with a name or an id as row ``row_id``, unless a duplicate.

        A duplicate (this user's id in this room, stored or placed earlier in the transaction) places
        nothing: its result is the talk kept, with ``duplicate``.
        """
        room, user_id, talk_id = chain.room, write.user_id, write.talk_id
        if talk_id is not None:
            earlier = placing.with_ids.get((room, user_id, talk_id))
            kept = earlier[1] if earlier is not None else self._stored_talk(write, room)
            if kept is not None:
                return Appended(write.ticket, kept, duplicate=True)
        placing.named = True
        offset = chain.last_offset = chain.last_offset + 1
        placing.talks.append(
            (row_id, room, chain.last_talk, offset, user_id, write.time, write.payload, write.name, talk_id,
             int(write.verified))
        )
        chain.last_talk = row_id
        if not offset % CHECKPOINT_EVERY:
            placing.checkpoints.append((room, offset, row_id))
        logged = LoggedTalk(
            write.join_key, offset, user_id, write.time, write.payload, write.name, talk_id, verified=write.verified
        )
        if talk_id is not None:
            placing.with_ids[room, user_id, talk_id] = row_id, logged
        return Appended(write.ticket, logged)

    def _stored_talk(self, write: Append, room: int) -> LoggedTalk | None:
        """The talk the database has from this user with this id in this room (inside a transaction)."""
        row = self._connection.execute(STORED_TALK, (room, write.user_id, write.talk_id)).fetchone()
        if row is None:
            return None
        offset, time, payload, name, edited, verified = row
        return LoggedTalk(
            write.join_key, offset, write.user_id, time, payload, name, write.talk_id, edited, bool(verified)
        )

    def _chain(self, join_key: str) -> _Chain:
        """A room's id and newest talk, from memory if it talked lately (inside a transaction)."""
        chain = self._chains.get(join_key)
        if chain is None:
            row = self._connection.execute(ROOM_CHAIN, (join_key,)).fetchone()
            if row is None:
                raise Inconsistent(f"room {room_hash(join_key)} is not stored")
            if len(self._chains) >= CHAINS_KEPT:
                del self._chains[next(iter(self._chains))]  # the least recently loaded
            chain = self._chains[join_key] = _Chain(*row)
        return chain

    def _load(self, load: Load) -> LogResult:
        try:
            room = self._connection.execute(LOAD_ROOM, (load.join_key,)).fetchone()
            if room is None:
                return Loaded(load.ticket, None)
            room_id, last_talk, last_offset, title, locked, seq = room
            rows = self._connection.execute(READ_HISTORY, (last_talk, load.recent)).fetchall() if load.recent else []
            control = room_control(self._connection, room_id, title, locked, seq)
        except sqlite3.Error as error:
            reason = describe(error)
            logger.error("database %s: could not load a room: %s (%s)", self.path, error, reason)
            return LogFailed(load.ticket, reason)
        talks = tuple(stored_talk(load.join_key, row) for row in rows)
        return Loaded(load.ticket, SavedRoom(load.join_key, last_offset, talks, control=control))

    def _fill(self, fill: Fill) -> Filled:
        """The room's talks after ``fill.after``: a history read of them (none if it fails)."""
        room = self._connection.execute(ROOM_CHAIN, (fill.join_key,)).fetchone()
        if room is None or room[2] <= fill.after:
            return Filled(fill.join_key, fill.after, ())
        read = self._history(History(0, fill.join_key, room[2] + 1, room[2] - fill.after))
        return Filled(fill.join_key, fill.after, read.talks if isinstance(read, HistoryRead) else ())

    def _history(self, history: History) -> LogResult:
        """The ``limit`` talks below ``before``: a walk down the room's chain from the checkpoint just above them.

        Cost: a search of ``checkpoints`` (O(log n) for n talks in the database), then one rowid lookup
        of the talks table per talk from that checkpoint (or the room's newest talk) down to the oldest
        returned: at most `CHECKPOINT_EVERY` - 1 + ``limit`` lookups, however long the room. Measured
        (file in the page cache, 80-byte payloads): 0.5-1.4 µs a lookup, so under 1 ms for a page of 200
        anywhere in a room of 200k talks, or of 50k among 1M. Walking from the room's newest talk instead
        cost some 50 ms per 100k talks stepped over, on the storage thread every write waits for.
        """
        execute = self._connection.execute
        try:
            room = execute(ROOM_CHAIN, (history.join_key,)).fetchone()
            if room is None:
                return LogFailed(history.ticket, INCONSISTENT)
            room_id, last_talk, last_offset = room
            before = min(history.before, last_offset + 1)  # (also keeps a client's huge number out of SQLite)
            if last_talk is None or before <= 1 or history.limit <= 0:
                # (Every talk is kept, at offsets 1 to last_offset: there are older ones if before > 1.)
                return HistoryRead(history.ticket, (), last_talk is not None and before > 1)
            checkpoint = execute(HISTORY_START, (room_id, before - 1)).fetchone()
            start = execute(SKIP_DOWN, (last_talk if checkpoint is None else checkpoint[0], before)).fetchone()
            if start is None:
                return HistoryRead(history.ticket, (), False)
            rows = execute(READ_HISTORY, (start[0], history.limit)).fetchall()
        except sqlite3.Error as error:
            reason = describe(error)
            logger.error("database %s: could not read %s: %s (%s)", self.path, _summary(history), error, reason)
            return LogFailed(history.ticket, reason)
        talks = tuple(stored_talk(history.join_key, row) for row in rows)
        return HistoryRead(history.ticket, talks, bool(rows[0][8]))


def _moderated_after_a_read(batch: Sequence[_Action]) -> int:
    """Where the batch's first `Moderate` that follows a read is (0: none)."""
    read = False
    for index, action in enumerate(batch):
        if isinstance(action, Moderate) and read:
            return index
        read = read or isinstance(action, Load | History | Fill)
    return 0


def _summary(request: LogRequest) -> str:
    """What a request was about, for the operator's log: never a join key (the room's hash), token, name or text."""
    room = room_hash(request.join_key)
    if isinstance(request, Append):
        return f"a message in room {room}"
    if isinstance(request, AddUser):
        what = (
            "a signed-in user" if request.subject is not None
            else "a returning user" if request.resume_hash is not None else "a new user id"
        )
        return f"{'a new room and ' if request.created is not None else ''}{what} in room {room}"
    if isinstance(request, Rename):
        return f"a name in room {room}"
    if isinstance(request, History):
        return f"older messages of room {room}"
    if isinstance(request, Moderate):
        return f"a change ({request.change.kind}) of room {room}"
    return f"room {room}"
