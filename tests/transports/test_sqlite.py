"""The SQLite room log on its own: batches of log requests against a real file, and its migrations."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from chatcore import AddUser, Append, Appended, KeyTaken, Load, Loaded, LogFailed, LoggedTalk, UserAdded
from transports.storage.sqlite import MIGRATIONS, SCHEMA_VERSION, Database


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    opened = Database.open(tmp_path / "chat.db")
    yield opened
    opened.close()


def replay(database: Database, join_key: str, recent: int) -> list[str]:
    [loaded] = database.run([Load(0, join_key, recent)])
    assert isinstance(loaded, Loaded)
    assert loaded.room is not None
    return [talk.payload for talk in loaded.room.talks]


def offsets(results: Sequence[object]) -> list[tuple[str, int]]:
    return [(r.talk.join_key, r.talk.offset) for r in results if isinstance(r, Appended)]


def test_the_log_hands_out_user_ids_and_creates_rooms(database: Database) -> None:
    results = database.run([AddUser(1, "a", 5.0), AddUser(2, "a", None), AddUser(3, "b", 6.0), AddUser(4, "a", None)])
    assert results == [UserAdded(1, 1), UserAdded(2, 2), UserAdded(3, 1), UserAdded(4, 3)]
    assert database.run([AddUser(5, "a", 7.0)]) == [KeyTaken(5)]
    assert database.run([AddUser(6, "nowhere", None)]) == [LogFailed(6, "storage inconsistent")]
    assert database.run([AddUser(7, "a", None)]) == [UserAdded(7, 4)]  # nothing was used up by the failures


def test_talks_of_rooms_interleaved_in_one_batch_get_gap_free_offsets_and_replay_in_order(database: Database) -> None:
    database.run([AddUser(1, "a", 0.0), AddUser(2, "b", 0.0)])
    talks = ["a1", "b1", "a2", "a3", "b2", "a4"]
    results = database.run([Append(10 + n, name[0], 1, float(n), name) for n, name in enumerate(talks)])
    assert results[1] == Appended(11, LoggedTalk("b", 1, 1, 1.0, "b1"))
    assert offsets(results) == [("a", 1), ("b", 1), ("a", 2), ("a", 3), ("b", 2), ("a", 4)]
    assert offsets(database.run([Append(20, "b", 2, 9.0, "b3")])) == [("b", 3)]
    assert replay(database, "a", 10) == ["a1", "a2", "a3", "a4"]
    assert replay(database, "a", 2) == ["a3", "a4"]
    assert replay(database, "b", 10) == ["b1", "b2", "b3"]
    assert replay(database, "b", 0) == []
    [loaded] = database.run([Load(30, "a", 2)])
    assert isinstance(loaded, Loaded)
    assert loaded.room is not None
    assert loaded.room.last_offset == 4
    assert [talk.offset for talk in loaded.room.talks] == [3, 4]
    assert database.run([Load(31, "zzz", 2)]) == [Loaded(31, None)]


def test_offsets_continue_after_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "chat.db"
    first = Database.open(path)
    first.run([AddUser(1, "a", 0.0), Append(2, "a", 1, 0.0, "one"), Append(3, "a", 1, 0.0, "two")])
    first.close()
    second = Database.open(path)
    try:
        assert offsets(second.run([Append(4, "a", 1, 0.0, "three")])) == [("a", 3)]
        assert second.run([AddUser(5, "a", None)]) == [UserAdded(5, 2)]
    finally:
        second.close()


def test_a_batch_that_fails_after_its_talks_leaves_every_chain_and_offset_intact(database: Database) -> None:
    """The batch fails on its last request, after the database has placed its talks; they are placed again."""
    database.run([AddUser(1, "a", 0.0), Append(2, "a", 1, 0.0, "a1")])
    results = database.run([Append(3, "a", 1, 1.0, "a2"), AddUser(4, "no such room", None)])
    assert results == [Appended(3, LoggedTalk("a", 2, 1, 1.0, "a2")), LogFailed(4, "storage inconsistent")]
    assert offsets(database.run([Append(5, "a", 1, 2.0, "a3")])) == [("a", 3)]
    assert replay(database, "a", 10) == ["a1", "a2", "a3"]


def make_version(path: Path, version: int) -> sqlite3.Connection:
    connection = sqlite3.connect(path)
    for statements in MIGRATIONS[:version]:
        for statement in statements:
            connection.execute(statement)
    connection.execute(f"PRAGMA user_version = {version}")
    connection.executemany("INSERT INTO rooms (join_key, created, last_user_id) VALUES (?, 0, 2)", [("a",), ("b",)])
    return connection


def test_a_version_1_database_is_migrated_with_its_history_numbered_in_accepted_order(tmp_path: Path) -> None:
    path = tmp_path / "chat.db"
    with make_version(path, 1) as connection:
        connection.executemany(
            "INSERT INTO talks (room, user_id, time, payload) VALUES (?, 1, 0, ?)",
            [(1, "a1"), (2, "b1"), (1, "a2"), (2, "b2"), (1, "a3")],
        )
    connection.close()
    database = Database.open(path)
    try:
        assert replay(database, "a", 10) == ["a1", "a2", "a3"]
        assert offsets(database.run([Append(1, "b", 3, 1.0, "b3")])) == [("b", 3)]
        assert replay(database, "b", 10) == ["b1", "b2", "b3"]
        assert database.run([AddUser(2, "a", None)]) == [UserAdded(2, 3)]
    finally:
        database.close()
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        assert connection.execute("SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND name = 'talks_by_room'"
                                  ).fetchone() == (0,)
        numbered = connection.execute("SELECT payload, room_offset FROM talks ORDER BY id").fetchall()
        assert numbered == [("a1", 1), ("b1", 1), ("a2", 2), ("b2", 2), ("a3", 3), ("b3", 3)]
    connection.close()


def test_a_version_2_database_gets_offsets_in_the_order_its_talks_were_accepted(tmp_path: Path) -> None:
    path = tmp_path / "chat.db"
    with make_version(path, 2) as connection:
        for n, (room, payload) in enumerate([(2, "b1"), (1, "a1"), (1, "a2"), (2, "b2")], start=1):
            connection.execute(
                "INSERT INTO talks (id, room, previous, user_id, time, payload)"
                " VALUES (?, ?, (SELECT last_talk FROM rooms WHERE id = ?), 1, 0, ?)",
                (n, room, room, payload),
            )
    connection.close()
    database = Database.open(path)
    try:
        [loaded] = database.run([Load(1, "b", 10)])
        assert isinstance(loaded, Loaded)
        assert loaded.room is not None
        assert [(t.offset, t.payload) for t in loaded.room.talks] == [(1, "b1"), (2, "b2")]
        assert loaded.room.last_offset == 2
        assert offsets(database.run([Append(2, "a", 1, 0.0, "a3")])) == [("a", 3)]
    finally:
        database.close()
