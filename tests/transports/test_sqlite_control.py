"""Room control in the SQLite room log: changes judged in the write transaction as the memory log judges them,
refused joins, ends and retention that erase for real, signed-in users (one per subject) and the names they hold,
and the migrations to schema versions 5 to 8."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest

from chatcore import (
    AddUser,
    Append,
    Appended,
    History,
    HistoryRead,
    KeyTaken,
    Load,
    Loaded,
    LogFailed,
    LoggedTalk,
    NameSaved,
    Rename,
    SavedRoom,
    UserAdded,
    problems,
)
from chatcore.actions import Expire, LogRequest, Moderate
from chatcore.control import (
    NEVER_CHANGED,
    Change,
    Delete,
    Edit,
    End,
    Lock,
    Remove,
    RoomControl,
    SetRole,
    Title,
)
from chatcore.identity import folded
from chatcore.memorylog import MemoryLog
from chatcore.problems import TAKEN
from chatcore.results import ChangeArrived, Changed, Expired, LoggedChange, Refused
from sqlite_batches import check_in_batches
from transports.storage.sqlcontrol import first_kept
from transports.storage.sqlite import Database
from transports.storage.sqlschema import CHECKPOINT_EVERY, MIGRATIONS, SCHEMA_VERSION


def load(database: Database, join_key: str, recent: int = 100) -> SavedRoom | None:
    [loaded] = database.run([Load(0, join_key, recent)])
    assert isinstance(loaded, Loaded)
    return loaded.room


def page(database: Database, join_key: str, before: int, limit: int) -> tuple[list[int], bool]:
    [read] = database.run([History(0, join_key, before, limit)])
    assert isinstance(read, HistoryRead)
    return [talk.offset for talk in read.talks], read.older


def rows(path: Path, query: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as connection:
        found = connection.execute(query).fetchall()
    connection.close()
    return found


def changed(ticket: int, join_key: str, seq: int, after: int, by: int, time: float, change: Change,
            talk: LoggedTalk | None = None) -> Changed:
    return Changed(ticket, LoggedChange(join_key, seq, after, by, time, change, talk))


def test_changes_answer_as_the_memory_log_does(tmp_path: Path) -> None:
    """The reference: `MemoryLog` keeping every talk. Every kind of change, refused joins, rooms ended and created
    again, retention now and then (rooms "a" and "b" go on, a room "r..." talks for 400 talks then falls
    quiet); the same actions one by one and in batches."""
    rng = random.Random(5)
    actions: list[LogRequest | Expire] = [AddUser(n, key, 0.0, token_hash=f"{key}{n}") for n, key in enumerate("ab")]
    tokens = [f"{key}{n}" for n, key in enumerate("ab")]
    for ticket in range(len(actions), 3000):
        keys = ["a", "b", f"r{ticket // 400}"]
        key, user, time = rng.choice(keys), rng.randint(1, 5), float(ticket)
        kind = rng.random()
        action: LogRequest | Expire
        if ticket % 400 == 0:
            action = AddUser(ticket, keys[2], time, token_hash=f"{keys[2]}{ticket}")
        elif kind < 0.08:
            resume = rng.choice([None, None, rng.choice(tokens), rng.choice(tokens)])
            action = AddUser(ticket, key, None, token_hash=f"{key}{ticket}", resume_hash=resume,
                             name=rng.choice([None, f"n{ticket}"]))
            tokens.append(f"{key}{ticket}")
        elif kind < 0.12:
            action = AddUser(ticket, key, None)  # a seed join
        elif kind < 0.14:
            action = AddUser(ticket, key, time, token_hash=f"{key}{ticket}")  # the room again, once ended
            tokens.append(f"{key}{ticket}")
        elif kind < 0.15:
            action = Rename(ticket, key, 1, f"r{ticket}")  # (a user handed out: a seed join answers no name)
        elif kind < 0.20:
            action = History(ticket, key, rng.randint(1, 300), rng.randint(1, 30))
        elif kind < 0.22:
            action = Load(ticket, key, rng.randint(0, 20))
        elif kind < 0.40:
            action = Moderate(ticket, key, rng.choice([1, 1, user]), time, random_change(rng, ticket))
        elif kind < 0.41 and ticket > 300:
            action = Expire(time - rng.randint(100, 300))
        else:
            action = Append(ticket, key, user, time, f"p{ticket}", rng.choice([None, f"u{user}"]),
                            rng.choice([None, None, f"t{rng.randint(1, 40)}"]))
        actions.append(action)
    reference = MemoryLog(history_limit=10_000)
    expected = [result for action in actions for result in reference.perform(action)]
    kinds = {type(result) for result in expected}
    assert {Changed, Refused, Expired, ChangeArrived, KeyTaken, LogFailed} <= kinds  # (the script does it all)
    assert sum(isinstance(r, Changed) and isinstance(r.entry.change, End) for r in expected) >= 3

    check_in_batches(tmp_path, actions, expected)


def random_change(rng: random.Random, ticket: int) -> Change:
    kind = rng.random()
    offset = rng.choice([rng.randint(0, 12), rng.randint(0, ticket // 8 + 2)])
    if kind < 0.3:
        return Edit(offset, f"e{ticket}")
    if kind < 0.55:
        return Delete(offset)
    if kind < 0.65:
        return Title(rng.choice([None, f"T{ticket}"]))
    if kind < 0.75:
        return Lock(rng.random() < 0.4)
    if kind < 0.85:
        return Remove(rng.randint(0, 9), rng.random() < 0.5)
    if kind < 0.99:
        return SetRole(rng.randint(0, 9), rng.random() < 0.6)
    return End()


def test_a_change_in_a_batch_judges_the_talks_placed_before_it(database: Database) -> None:
    database.run([AddUser(1, "a", 0.0), AddUser(2, "a", None)])
    results = database.run([
        Append(3, "a", 1, 1.0, "one"),
        Append(4, "a", 2, 2.0, "two", "Bob", "m1"),
        Moderate(5, "a", 2, 3.0, Edit(2, "two, edited")),
        Moderate(6, "a", 2, 3.0, Delete(1)),
        Append(7, "a", 2, 4.0, "two again", "Bob", "m1"),
        Append(8, "a", 1, 5.0, "three"),
        Moderate(9, "a", 1, 6.0, Delete(3)),
    ])
    edited = LoggedTalk("a", 2, 2, 2.0, "two, edited", "Bob", "m1", 3.0)
    assert results[2:] == [
        changed(5, "a", 1, 2, 2, 3.0, Edit(2, "two, edited"), edited),
        Refused(6, problems.DELETE_OWN_ONLY),
        Appended(7, edited, duplicate=True),
        Appended(8, LoggedTalk("a", 3, 1, 5.0, "three")),
        changed(9, "a", 2, 3, 1, 6.0, Delete(3), LoggedTalk("a", 3, 1, 5.0, None)),
    ]
    room = load(database, "a")
    assert room is not None
    assert room.talks == (LoggedTalk("a", 1, 1, 1.0, "one"), edited, LoggedTalk("a", 3, 1, 5.0, None))
    assert room.control == RoomControl(seq=2)
    assert page(database, "a", 4, 10) == ([1, 2, 3], False)


def test_a_failed_batch_makes_each_change_once_and_an_end_fails_what_follows_it(database: Database) -> None:
    database.run([AddUser(1, "a", 0.0), AddUser(2, "b", 0.0), Append(3, "a", 1, 1.0, "one")])
    results = database.run([
        Moderate(4, "a", 1, 2.0, Title("x")),
        AddUser(5, "nowhere", None),  # fails the transaction: each write is done again alone
        Moderate(6, "b", 1, 2.0, End()),
        Append(7, "b", 1, 3.0, "too late"),
        AddUser(8, "b", None),
        Append(9, "a", 1, 3.0, "two"),
    ])
    assert results == [
        changed(4, "a", 1, 1, 1, 2.0, Title("x")),
        LogFailed(5, "storage inconsistent"),
        changed(6, "b", 1, 0, 1, 2.0, End()),
        LogFailed(7, "storage inconsistent"),
        LogFailed(8, "storage inconsistent"),
        Appended(9, LoggedTalk("a", 2, 1, 3.0, "two")),
    ]
    room = load(database, "a")
    assert room is not None
    assert room.control == RoomControl("x", seq=1)
    assert load(database, "b") is None
    assert database.run([AddUser(10, "b", 4.0)]) == [UserAdded(10, 1)]  # its key is free again


def test_a_lock_keeps_new_users_out_and_a_ban_keeps_its_user_out(tmp_path: Path) -> None:
    path = tmp_path / "chat.db"
    database = Database.open(path)
    try:
        assert database.run([
            AddUser(1, "a", 0.0, token_hash="owner"),
            AddUser(2, "a", None, token_hash="bob"),
            AddUser(3, "a", None, token_hash="cy"),
            AddUser(4, "a", None),
            Moderate(5, "a", 1, 1.0, Lock(True)),
            AddUser(6, "a", None),
            AddUser(7, "a", None, token_hash="new", name="New"),
            AddUser(8, "a", None, token_hash="new", resume_hash="stranger"),
            AddUser(9, "a", None, resume_hash="bob"),
            AddUser(10, "b", 0.0),  # another room is open
            AddUser(11, "nowhere", None),
        ]) == [
            UserAdded(1, 1), UserAdded(2, 2), UserAdded(3, 3), UserAdded(4, 4),
            changed(5, "a", 1, 0, 1, 1.0, Lock(True)),
            Refused(6, problems.LOCKED), Refused(7, problems.LOCKED), Refused(8, problems.LOCKED),
            UserAdded(9, 2, True),
            UserAdded(10, 1),
            LogFailed(11, "storage inconsistent"),
        ]
        assert database.run([
            Moderate(1, "a", 1, 2.0, Remove(2, ban=True)),
            Moderate(2, "a", 1, 2.0, Remove(3)),
            Moderate(3, "a", 1, 2.0, Lock(False)),
        ]) == [
            changed(1, "a", 2, 0, 1, 2.0, Remove(2, ban=True)),
            changed(2, "a", 3, 0, 1, 2.0, Remove(3)),
            changed(3, "a", 4, 0, 1, 2.0, Lock(False)),
        ]
    finally:
        database.close()
    database = Database.open(path)
    try:
        assert database.run([
            AddUser(1, "a", None, resume_hash="bob"),
            AddUser(2, "a", None, resume_hash="cy"),  # removed, not banned: it may come back
            AddUser(3, "a", None),  # no user id was used up by the refusals
        ]) == [Refused(1, problems.BANNED), UserAdded(2, 3, True), UserAdded(3, 5)]
        room = load(database, "a")
        assert room is not None
        assert room.control == RoomControl(None, False, frozenset(), frozenset({2}), 4)
    finally:
        database.close()


def test_roles_and_titles_survive_a_restart_and_a_seed_user_gets_a_row_for_its_role(tmp_path: Path) -> None:
    path = tmp_path / "chat.db"
    database = Database.open(path)
    try:
        database.run([AddUser(1, "a", 0.0, token_hash="owner", name="Ada"), AddUser(2, "a", None),
                      AddUser(3, "a", None, token_hash="cy", name="Cy")])
        assert load(database, "a") == SavedRoom("a", 0, (), control=NEVER_CHANGED)
        database.run([
            Moderate(1, "a", 1, 1.0, SetRole(2, True)),
            Moderate(2, "a", 1, 1.0, SetRole(3, True)),
            Moderate(3, "a", 2, 1.0, Title("Math 7B")),
            Moderate(4, "a", 1, 1.0, SetRole(3, False)),
        ])
    finally:
        database.close()
    database = Database.open(path)
    try:
        assert load(database, "a") == SavedRoom("a", 0, (), control=RoomControl("Math 7B", False, frozenset({2}),
                                                                                frozenset(), 4))
        assert database.run([AddUser(1, "a", None, resume_hash="cy")]) == [UserAdded(1, 3, True, "Cy")]
    finally:
        database.close()
    assert rows(path, "SELECT user_id, name, token_hash IS NOT NULL, moderator, banned FROM users") == [
        (1, "Ada", 1, 0, 0), (2, None, 0, 1, 0), (3, "Cy", 1, 0, 0)
    ]


def test_an_end_erases_every_row_of_the_room(tmp_path: Path) -> None:
    path = tmp_path / "chat.db"
    database = Database.open(path)
    total = CHECKPOINT_EVERY + 10
    try:
        database.run([AddUser(1, "a", 0.0, token_hash="ada", name="Ada"), AddUser(2, "b", 0.0, token_hash="bo"),
                      AddUser(3, "a", None)])
        database.run([Append(n, "ab"[n % 2], 1, float(n), f"{n}", "N", f"id{n}" if n % 3 else None)
                      for n in range(2 * total)])
        database.run([Moderate(1, "a", 1, 1.0, SetRole(2, True)), Moderate(2, "a", 1, 1.0, Delete(3))])
        assert database.run([Moderate(3, "a", 1, 9.0, End())]) == [changed(3, "a", 3, total, 1, 9.0, End())]
        assert load(database, "a") is None
        assert database.run([Moderate(4, "a", 1, 9.0, Lock(True))]) == [Refused(4, problems.ENDED)]
        assert database.run([History(5, "a", 3, 3)]) == [LogFailed(5, "storage inconsistent")]
        assert page(database, "b", total + 1, total) == (list(range(1, total + 1)), False)
    finally:
        database.close()
    for table in ("talks", "talk_ids", "checkpoints", "users"):
        assert rows(path, f"SELECT DISTINCT room FROM {table}") == [(2,)], table
    assert rows(path, "SELECT join_key FROM rooms") == [("b",)]


def files_text(path: Path) -> bytes:
    """What the database's files hold: the file, and its write-ahead log if there is one."""
    wal = path.with_name(path.name + "-wal")
    return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


def test_deleted_edited_ended_and_expired_text_is_not_left_in_the_files(tmp_path: Path) -> None:
    path = tmp_path / "chat.db"
    database = Database.open(path)
    long_text = "GONE-long-" + "x" * 9000 + "-tail"  # (on overflow pages)
    try:
        database.run([AddUser(1, "a", 0.0), AddUser(2, "b", 0.0), AddUser(3, "c", 0.0, name="Cy")])
        database.run([
            Append(1, "c", 1, 1.0, "GONE-expired-c1"),
            Append(2, "a", 1, 10.0, "KEEP-alpha-a1"),
            Append(3, "a", 1, 10.0, "GONE-deleted-a2", "GONE-name-a2"),
            Append(4, "a", 1, 10.0, "GONE-edited-a3"),
            Append(5, "a", 1, 10.0, long_text),
            Append(6, "b", 1, 10.0, "GONE-ended-b1"),
            Append(7, "c", 1, 100.0, "KEEP-recent-c2"),
        ])
        text = files_text(path)
        gone = [b"GONE-expired-c1", b"GONE-deleted-a2", b"GONE-name-a2", b"GONE-edited-a3", b"-tail",
                b"GONE-ended-b1"]
        assert all(word in text for word in gone)  # (so that the checks below mean something)
        database.run([
            Moderate(1, "a", 1, 11.0, Delete(2)),
            Moderate(2, "a", 1, 11.0, Edit(3, "KEEP-edited-a3")),
            Moderate(3, "a", 1, 11.0, Delete(4)),
        ])
        text = files_text(path)
        assert not any(word in text for word in gone[1:5])
        assert b"KEEP-alpha-a1" in text
        assert b"KEEP-edited-a3" in text
        assert b"GONE-ended-b1" in text
        database.run([Moderate(4, "b", 1, 12.0, End())])
        assert b"GONE-ended-b1" not in files_text(path)
        assert database.run([Expire(5.0)]) == [Expired("c", 2)]
        text = files_text(path)
        assert not any(word in text for word in gone)
        assert b"KEEP-alpha-a1" in text
        assert b"KEEP-recent-c2" in text
        assert b"Cy" in text
    finally:
        database.close()
    text = files_text(path)
    assert not any(word in text for word in gone)
    assert b"KEEP-alpha-a1" in text
    assert b"KEEP-edited-a3" in text
    assert b"KEEP-recent-c2" in text


def test_retention_erases_the_oldest_talks_and_ends_quiet_rooms(tmp_path: Path) -> None:
    """Rooms "a" and "b" talk in turns, one talk a second; "c" early only; "d", created later, never."""
    path = tmp_path / "chat.db"
    database = Database.open(path)
    total = 3 * CHECKPOINT_EVERY
    try:
        database.run([AddUser(n, key, 0.0) for n, key in enumerate("abc")] + [AddUser(3, "d", 1000.0)])
        database.run([Append(0, "c", 1, 0.5, "c1", None, "x")])
        database.run([Append(n, "ab"[n % 2], 1, float(n + 1), f"{n}", None, f"id{n}") for n in range(2 * total)])
        database.run([Moderate(1, "c", 1, 1.0, Title("old")), Moderate(2, "c", 1, 1.0, Lock(True))])
        before = float(2 * CHECKPOINT_EVERY + 101)  # the talks at times 1 .. 612 go: 306 of each room
        news = database.run([Load(1, "a", 0), Expire(before), Load(2, "a", 1000)])
        assert news[1:4] == [
            Expired("a", 307),
            Expired("b", 307),
            ChangeArrived(LoggedChange("c", 3, 1, 0, before, End())),
        ]
        assert database.run([Expire(before)]) == []  # nothing more to do
        kept = list(range(307, total + 1))
        loaded = news[4]
        assert isinstance(loaded, Loaded)
        assert loaded.room is not None
        assert [talk.offset for talk in loaded.room.talks] == kept
        assert loaded.room.talks[0] == LoggedTalk("a", 307, 1, 613.0, "612", None, "id612")
        assert page(database, "a", 310, 10) == ([307, 308, 309], False)  # nothing older is kept
        assert page(database, "a", 307, 10) == ([], False)
        assert page(database, "a", 100, 10) == ([], False)
        assert page(database, "a", 600, 10) == (list(range(590, 600)), True)
        assert load(database, "c") is None
        assert load(database, "d") == SavedRoom("d", 0, ())  # created after `before`
        # An id of an erased talk is free again, as in the memory log; a kept one is not.
        assert database.run([
            Append(3, "a", 1, 2000.0, "again", None, "id0"),
            Append(4, "a", 1, 2000.0, "again", None, f"id{2 * total - 2}"),
        ]) == [
            Appended(3, LoggedTalk("a", total + 1, 1, 2000.0, "again", None, "id0")),
            Appended(4, LoggedTalk("a", total, 1, float(2 * total - 1), f"{2 * total - 2}", None,
                                   f"id{2 * total - 2}"), duplicate=True),
        ]
        assert database.run([Moderate(5, "a", 1, 2001.0, Delete(306))]) == [
            Refused(5, problems.NO_SUCH_MESSAGE)
        ]
        assert database.run([Expire(3000.0)]) == [
            ChangeArrived(LoggedChange("a", 1, total + 1, 0, 3000.0, End())),
            ChangeArrived(LoggedChange("b", 1, total, 0, 3000.0, End())),
            ChangeArrived(LoggedChange("d", 1, 0, 0, 3000.0, End())),
        ]
    finally:
        database.close()
    for table in ("rooms", "talks", "talk_ids", "checkpoints", "users"):
        assert rows(path, f"SELECT count(*) FROM {table}") == [(0,)], table


def test_the_checkpoints_and_ids_of_erased_talks_go_with_them(tmp_path: Path) -> None:
    path = tmp_path / "chat.db"
    database = Database.open(path)
    try:
        database.run([AddUser(1, "a", 0.0)])
        database.run([Append(n, "a", 1, float(n), f"{n}", None, f"id{n}") for n in range(1, 3 * CHECKPOINT_EVERY)])
        assert database.run([Expire(float(CHECKPOINT_EVERY + 1))]) == [Expired("a", CHECKPOINT_EVERY + 1)]
    finally:
        database.close()
    assert rows(path, "SELECT room_offset FROM checkpoints") == [(2 * CHECKPOINT_EVERY,)]
    assert rows(path, "SELECT min(talk_id), count(*) FROM talk_ids") == [
        (f"id{CHECKPOINT_EVERY + 1}", 2 * CHECKPOINT_EVERY - 1)
    ]


def test_the_first_talk_kept_is_found_by_a_binary_search_over_ids_with_gaps(database: Database) -> None:
    rng = random.Random(3)
    database.run([AddUser(n, key, 0.0) for n, key in enumerate("abcd")])
    time = 0.0
    for start in range(0, 2000, 100):
        batch: list[LogRequest] = []
        for n in range(start, start + 100):
            time += rng.choice([0.0, 0.5, 1.0, 7.0])
            batch.append(Append(n, rng.choice("abcd"), 1, time, "x"))
        database.run(batch)
    database.run([Moderate(1, "b", 1, time, End())])  # ids with gaps: "b"'s are gone
    connection = sqlite3.connect(database.path)
    try:
        talks = connection.execute("SELECT id, time FROM talks ORDER BY id").fetchall()
        for before in [-1.0, 0.0, 0.25, *(rng.uniform(0, time + 5) for _ in range(200)), time, time + 1]:
            expected = next((talk_id for talk_id, at in talks if at >= before), talks[-1][0] + 1)
            found = first_kept(connection, before)
            if expected == talks[0][0]:
                assert found == 0  # nothing to erase
            else:
                assert [t for t, _ in talks if t < found] == [t for t, _ in talks if t < expected]
    finally:
        connection.close()


def make_version(path: Path, version: int) -> sqlite3.Connection:
    connection = sqlite3.connect(path)
    for statements in MIGRATIONS[:version]:
        for statement in statements:
            connection.execute(statement)
    connection.execute(f"PRAGMA user_version = {version}")
    return connection


def test_a_version_4_database_keeps_its_rooms_users_and_talks_and_takes_changes(tmp_path: Path) -> None:
    path = tmp_path / "chat.db"
    with make_version(path, 4) as connection:
        connection.execute("INSERT INTO rooms (join_key, created, last_user_id) VALUES ('a', 0, 3)")
        for n in range(1, 301):
            connection.execute(
                "INSERT INTO talks (room, previous, room_offset, user_id, time, payload, name, talk_id)"
                " VALUES (1, (SELECT last_talk FROM rooms WHERE id = 1), ?, ?, ?, ?, ?, ?)",
                (n, 1 + n % 3, float(n), f"p{n}", "Ada" if n % 3 == 0 else None, f"id{n}" if n % 2 else None),
            )
        connection.execute("INSERT INTO talk_ids SELECT room, user_id, talk_id, id FROM talks WHERE talk_id NOT NULL")
        connection.execute("INSERT INTO checkpoints SELECT room, room_offset, id FROM talks WHERE room_offset = 256")
        connection.execute("INSERT INTO users (room, user_id, name, token_hash) VALUES (1, 1, 'Ada', 'ada')")
    connection.close()
    database = Database.open(path)
    try:
        room = load(database, "a", 2)
        assert room == SavedRoom("a", 300, (LoggedTalk("a", 299, 3, 299.0, "p299", None, "id299"),
                                            LoggedTalk("a", 300, 1, 300.0, "p300", "Ada")), control=NEVER_CHANGED)
        assert page(database, "a", 3, 5) == ([1, 2], False)
        assert database.run([
            Moderate(1, "a", 1, 400.0, SetRole(2, True)),  # a user without a row
            Moderate(2, "a", 2, 400.0, Delete(300)),  # an old talk, by a moderator
            Moderate(3, "a", 3, 400.0, Edit(2, "p2, edited")),
            Moderate(4, "a", 1, 400.0, Lock(True)),
            AddUser(5, "a", None),
            AddUser(6, "a", None, resume_hash="ada"),
            Append(7, "a", 3, 401.0, "again", None, "id299"),
        ]) == [
            changed(1, "a", 1, 300, 1, 400.0, SetRole(2, True)),
            changed(2, "a", 2, 300, 2, 400.0, Delete(300), LoggedTalk("a", 300, 1, 300.0, None)),
            changed(3, "a", 3, 300, 3, 400.0, Edit(2, "p2, edited"),
                    LoggedTalk("a", 2, 3, 2.0, "p2, edited", None, None, 400.0)),
            changed(4, "a", 4, 300, 1, 400.0, Lock(True)),
            Refused(5, problems.LOCKED),
            UserAdded(6, 1, True, "Ada"),
            Appended(7, LoggedTalk("a", 299, 3, 299.0, "p299", None, "id299"), duplicate=True),
        ]
        assert database.run([Expire(101.0)]) == [Expired("a", 101)]
        assert page(database, "a", 105, 10) == ([101, 102, 103, 104], False)
    finally:
        database.close()
    assert rows(path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert rows(path, "SELECT title, locked, change_seq FROM rooms") == [(None, 1, 4)]
    assert rows(path, "SELECT user_id, name, moderator, banned FROM users") == [(1, "Ada", 0, 0), (2, None, 1, 0)]
    assert rows(path, "SELECT payload, name, deleted FROM talks WHERE room_offset = 300") == [("", None, 1)]
    assert rows(path, "SELECT room_offset FROM checkpoints") == [(256,)]


def test_sign_ins_answer_as_the_memory_log_does(tmp_path: Path) -> None:
    """Joins with and without a subject, presenting tokens of users signed in or not (or none), among bans, locks and
    renames: the memory log's answers, one by one and in batches."""
    rng = random.Random(6)
    actions: list[LogRequest] = [AddUser(0, "a", 0.0, token_hash="a0", name="Owner")]
    tokens = ["a0"]
    for ticket in range(1, 800):
        kind = rng.random()
        action: LogRequest
        if kind < 0.6:
            resume = rng.choice([None, rng.choice(tokens), rng.choice(tokens)])
            subject = rng.choice([None, f"s{rng.randint(1, 80)}"])
            action = AddUser(ticket, "a", None, token_hash=f"a{ticket}", resume_hash=resume,
                             name=rng.choice([None, f"n{ticket}"]), subject=subject)
            tokens.append(f"a{ticket}")
        elif kind < 0.65:
            action = Moderate(ticket, "a", 1, float(ticket), Remove(rng.randint(2, 40), ban=rng.random() < 0.3))
        elif kind < 0.7:
            action = Moderate(ticket, "a", 1, float(ticket), Lock(rng.random() < 0.3))
        elif kind < 0.8:
            action = Rename(ticket, "a", rng.randint(1, 40), f"r{ticket}")
        else:
            action = Load(ticket, "a", 0)
        actions.append(action)
    reference = MemoryLog(history_limit=10)
    expected = [reference.answer(action) for action in actions]
    assert sum(isinstance(r, UserAdded) and r.resumed for r in expected) > 100
    assert {problems.BANNED, problems.LOCKED} <= {r.reason for r in expected if isinstance(r, Refused)}
    check_in_batches(tmp_path, actions, expected)


def test_a_version_5_database_keeps_its_users_and_signs_them_in(tmp_path: Path) -> None:
    path = tmp_path / "chat.db"
    with make_version(path, 5) as connection:
        connection.execute("INSERT INTO rooms (join_key, created, last_user_id, change_seq) VALUES ('a', 0, 3, 1)")
        connection.executemany(
            "INSERT INTO users (room, user_id, name, token_hash, banned) VALUES (1, ?, ?, ?, ?)",
            [(1, "Ada", "ada", 0), (2, "Bo", "bo", 1)],
        )
    connection.close()
    database = Database.open(path)
    try:
        assert database.run([
            AddUser(1, "a", None, resume_hash="ada"),  # Ada, by her token: the user she was
            AddUser(2, "a", None, token_hash="ada3", name="Ada", subject="s-ada"),  # her sign-in: a user of its own
            AddUser(3, "a", None, token_hash="ada4", resume_hash="ada", subject="s-ada"),  # found by her subject
            AddUser(4, "a", None, resume_hash="bo"),  # banned before
        ]) == [
            UserAdded(1, 1, True, "Ada"), UserAdded(2, 4, False, "Ada", verified=True),
            UserAdded(3, 4, True, "Ada", verified=True), Refused(4, problems.BANNED),
        ]
    finally:
        database.close()
    assert rows(path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert rows(path, "SELECT user_id, name, token_hash, subject FROM users") == [
        (1, "Ada", "ada", None), (2, "Bo", "bo", None), (4, "Ada", "ada3", "s-ada"),
    ]
    connection = sqlite3.connect(path)
    try:
        with pytest.raises(sqlite3.IntegrityError):  # one user per subject in a room
            connection.execute("UPDATE users SET subject = 's-ada' WHERE user_id = 1")
        connection.execute("INSERT INTO rooms (join_key, created, last_user_id) VALUES ('b', 0, 1)")
        connection.execute("INSERT INTO users (room, user_id, subject) VALUES (2, 1, 's-ada')")  # another room's
    finally:
        connection.close()


def test_names_signed_in_users_hold_answer_as_the_memory_log_does(tmp_path: Path) -> None:
    """Joins and renames, signed in or not, with names of a few keys (case variants), among bans and locks: the
    memory log's answers, one by one and in batches."""
    rng = random.Random(8)
    names = ["Ada", "ADA", "ada", "Bo", "BO", "Cy", "Dee", "dee"]
    actions: list[LogRequest] = [AddUser(0, "a", 0.0, token_hash="a0", name="Owner", name_key="owner")]
    tokens = ["a0"]
    for ticket in range(1, 1200):
        kind = rng.random()
        name = rng.choice([None, *names])
        key = None if name is None else folded(name)
        action: LogRequest
        if kind < 0.6:
            resume = rng.choice([None, rng.choice(tokens), rng.choice(tokens)])
            subject = rng.choice([None, None, f"s{rng.randint(1, 12)}"])
            action = AddUser(ticket, "a", None, token_hash=f"a{ticket}", resume_hash=resume, name=name,
                             subject=subject, name_key=key)
            tokens.append(f"a{ticket}")
        elif kind < 0.63:
            action = Moderate(ticket, "a", 1, float(ticket), Remove(rng.randint(2, 60), ban=rng.random() < 0.3))
        elif kind < 0.66:
            action = Moderate(ticket, "a", 1, float(ticket), Lock(rng.random() < 0.2))
        elif kind < 0.9:
            name = rng.choice(names)
            action = Rename(ticket, "a", rng.randint(1, 60), name, rng.choice([folded(name), folded(name), None]))
        else:
            action = Load(ticket, "a", 0)
        actions.append(action)
    reference = MemoryLog(history_limit=10)
    expected = [reference.answer(action) for action in actions]
    taken = [r for r in expected if isinstance(r, Refused) and r.reason == TAKEN]
    assert len(taken) > 50
    assert sum(isinstance(r, NameSaved) for r in expected) > 50
    assert {problems.BANNED, problems.LOCKED} <= {r.reason for r in expected if isinstance(r, Refused)}
    check_in_batches(tmp_path, actions, expected, (1, 9, 100))


def test_a_version_7_database_keeps_its_users_and_its_signed_in_users_hold_their_names_from_their_next_sign_in(
    tmp_path: Path,
) -> None:
    path = tmp_path / "chat.db"
    with make_version(path, 7) as connection:
        connection.execute("INSERT INTO rooms (join_key, created, last_user_id) VALUES ('a', 0, 2)")
        connection.executemany(
            "INSERT INTO users (room, user_id, name, token_hash, subject) VALUES (1, ?, ?, ?, ?)",
            [(1, "Ada", "ada", "s-ada"), (2, "Bo", "bo", None)],
        )
    connection.close()
    database = Database.open(path)
    try:
        assert database.run([
            AddUser(1, "a", None, token_hash="x1", name="ADA", name_key="ada"),  # the key was not kept before
            AddUser(2, "a", None, token_hash="ada2", subject="s-ada", name="Ada", name_key="ada"),
            AddUser(3, "a", None, token_hash="x3", name="aDa", name_key="ada"),
            AddUser(4, "a", None, token_hash="bo2", resume_hash="bo", name="ADA", name_key="ada"),
            AddUser(5, "a", None, token_hash="ada3", resume_hash="ada", name="Mallory", name_key="mallory"),
            Rename(6, "a", 2, "Ada", "ada"),
            Rename(7, "a", 1, "Ada Lovelace", "ada lovelace"),
            AddUser(8, "a", None, token_hash="x8", name="ada", name_key="ada"),  # free again
        ]) == [
            UserAdded(1, 3, False, "ADA"), UserAdded(2, 1, True, "Ada", verified=True), Refused(3, TAKEN),
            Refused(4, TAKEN), UserAdded(5, 1, True, "Ada", verified=True), Refused(6, TAKEN), NameSaved(7),
            UserAdded(8, 4, False, "ada"),
        ]
    finally:
        database.close()
    assert rows(path, "PRAGMA user_version") == [(SCHEMA_VERSION,)] == [(8,)]
    assert rows(path, "SELECT user_id, name, subject, name_key FROM users ORDER BY user_id") == [
        (1, "Ada Lovelace", "s-ada", "ada lovelace"), (2, "Bo", None, None), (3, "ADA", None, None),
        (4, "ada", None, None),
    ]
    assert rows(path, "EXPLAIN QUERY PLAN SELECT 1 FROM users WHERE room = 1 AND name_key = 'ada'")[0][-1] == (
        "SEARCH users USING COVERING INDEX users_by_name_key (room=? AND name_key=?)"
    )
