"""The SQLite room log on its own: batches of log requests against a real file, and its migrations."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Sequence
from pathlib import Path

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
    LogRequest,
    NameSaved,
    Rename,
    UserAdded,
)
from chatcore.memorylog import MemoryLog
from sqlite_batches import check_in_batches
from transports.storage.sqlite import Database
from transports.storage.sqlschema import CHECKPOINT_EVERY, MIGRATIONS, SCHEMA_VERSION


def replay(database: Database, join_key: str, recent: int) -> list[str | None]:
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


# Protocol version 2: tokens, names, talk ids, history (schema version 4)


def stored_talks(path: Path) -> list[tuple[int, int, str, str | None, str | None]]:
    """Every talk row in the file: (room, offset, payload, name, talk id), in the order accepted."""
    with sqlite3.connect(path) as connection:
        rows = connection.execute("SELECT room, room_offset, payload, name, talk_id FROM talks ORDER BY id").fetchall()
    connection.close()
    return rows


def page(database: Database, join_key: str, before: int, limit: int) -> tuple[list[int], bool]:
    [read] = database.run([History(0, join_key, before, limit)])
    assert isinstance(read, HistoryRead)
    assert all(talk.join_key == join_key for talk in read.talks)
    return [talk.offset for talk in read.talks], read.older


def test_a_token_hash_resumes_its_user_in_its_room_only(tmp_path: Path) -> None:
    path = tmp_path / "chat.db"
    database = Database.open(path)
    try:
        assert database.run([
            AddUser(1, "a", 0.0, token_hash="ada"),
            AddUser(2, "b", 0.0),
            AddUser(3, "a", None, token_hash="bob", name="Bob"),
        ]) == [UserAdded(1, 1, False, None), UserAdded(2, 1), UserAdded(3, 2, False, "Bob")]
        # Another room's token hash is a new user there (and registers the new token, not the old one).
        assert database.run([AddUser(4, "b", None, token_hash="bea", resume_hash="ada")]) == [UserAdded(4, 2)]
        assert database.run([AddUser(5, "a", None, token_hash="ada 2", resume_hash="ada")]) == [
            UserAdded(5, 1, True, None)
        ]
        assert database.run([AddUser(6, "a", None, token_hash="cy", resume_hash="unknown")]) == [UserAdded(6, 3)]
        assert database.run([AddUser(7, "a", None)]) == [UserAdded(7, 4)]  # a seed join: as before
        assert database.run([AddUser(8, "nowhere", None, token_hash="x", resume_hash="ada")]) == [
            LogFailed(8, "storage inconsistent")
        ]
    finally:
        database.close()
    database = Database.open(path)
    try:
        assert database.run([
            AddUser(1, "a", None, token_hash="z1", resume_hash="bob"),
            AddUser(2, "a", None, token_hash="z2", resume_hash="cy"),
            AddUser(3, "b", None, token_hash="z3", resume_hash="bea"),
            AddUser(4, "b", None, token_hash="z4", resume_hash="bob"),
        ]) == [UserAdded(1, 2, True, "Bob"), UserAdded(2, 3, True), UserAdded(3, 2, True), UserAdded(4, 3)]
    finally:
        database.close()
    with sqlite3.connect(path) as connection:  # the resumes registered no token of theirs
        tokens = connection.execute("SELECT room, user_id, token_hash FROM users ORDER BY room, user_id").fetchall()
    connection.close()
    assert tokens == [(1, 1, "ada"), (1, 2, "bob"), (1, 3, "cy"), (2, 2, "bea"), (2, 3, "z4")]


def test_a_name_is_kept_across_resumes_renames_and_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "chat.db"
    database = Database.open(path)
    try:
        assert database.run([AddUser(1, "a", 0.0, token_hash="ada", name="Ada")]) == [UserAdded(1, 1, False, "Ada")]
        assert database.run([AddUser(2, "a", None, resume_hash="ada")]) == [UserAdded(2, 1, True, "Ada")]
        assert database.run([Rename(3, "a", 1, "Ada L."), AddUser(4, "a", None, resume_hash="ada")]) == [
            NameSaved(3), UserAdded(4, 1, True, "Ada L.")
        ]
        # A name given with the token replaces the kept one.
        assert database.run([AddUser(5, "a", None, resume_hash="ada", name="Countess")]) == [
            UserAdded(5, 1, True, "Countess")
        ]
        # A user without a token (so without a row yet) can be renamed too; a missing room cannot.
        assert database.run([AddUser(6, "a", None), Rename(7, "a", 2, "Seedling")]) == [UserAdded(6, 2), NameSaved(7)]
        assert database.run([Rename(8, "nowhere", 1, "x")]) == [LogFailed(8, "storage inconsistent")]
    finally:
        database.close()
    database = Database.open(path)
    try:
        assert database.run([AddUser(1, "a", None, resume_hash="ada")]) == [UserAdded(1, 1, True, "Countess")]
    finally:
        database.close()
    with sqlite3.connect(path) as connection:
        names = connection.execute("SELECT user_id, name FROM users ORDER BY user_id").fetchall()
    connection.close()
    assert names == [(1, "Countess"), (2, "Seedling")]


def test_talks_carry_their_name_and_id_into_results_loads_and_histories(database: Database) -> None:
    database.run([AddUser(1, "a", 0.0)])
    results = database.run([
        Append(2, "a", 1, 1.0, "named", name="Ada"),
        Append(3, "a", 1, 2.0, "plain"),
        Append(4, "a", 1, 3.0, "both", name="Ada", talk_id="m1"),
        Append(5, "a", 1, 4.0, "id only", talk_id="m2"),
    ])
    expected = [
        LoggedTalk("a", 1, 1, 1.0, "named", "Ada"),
        LoggedTalk("a", 2, 1, 2.0, "plain"),
        LoggedTalk("a", 3, 1, 3.0, "both", "Ada", "m1"),
        LoggedTalk("a", 4, 1, 4.0, "id only", None, "m2"),
    ]
    assert results == [Appended(ticket, talk) for ticket, talk in zip((2, 3, 4, 5), expected, strict=True)]
    [loaded] = database.run([Load(6, "a", 10)])
    assert isinstance(loaded, Loaded)
    assert loaded.room is not None
    assert list(loaded.room.talks) == expected
    assert database.run([History(7, "a", 5, 10)]) == [HistoryRead(7, tuple(expected), False)]


def test_a_resent_talk_id_answers_the_stored_talk_and_stores_nothing(tmp_path: Path) -> None:
    path = tmp_path / "chat.db"
    database = Database.open(path)
    try:
        database.run([AddUser(1, "a", 0.0), AddUser(2, "a", None), AddUser(3, "b", 0.0)])
        first = LoggedTalk("a", 1, 1, 1.0, "hello", "Ada", "m1")
        assert database.run([Append(4, "a", 1, 1.0, "hello", "Ada", "m1")]) == [Appended(4, first)]
        assert database.run([Append(5, "a", 1, 2.0, "seed talk")]) == [
            Appended(5, LoggedTalk("a", 2, 1, 2.0, "seed talk"))
        ]
        # Sent again (after a reconnect, renamed meanwhile): the original, with its offset, time, payload and name.
        assert database.run([Append(6, "a", 1, 3.0, "hello again", "Ada L.", "m1")]) == [
            Appended(6, first, duplicate=True)
        ]
        # The same id from another user, or from the same user in another room, is another talk.
        assert offsets(database.run([Append(7, "a", 2, 4.0, "bob's", None, "m1")])) == [("a", 3)]
        assert offsets(database.run([Append(8, "b", 1, 5.0, "other room", None, "m1")])) == [("b", 1)]
    finally:
        database.close()
    database = Database.open(path)
    try:
        assert database.run([Append(1, "a", 1, 9.0, "after the restart", None, "m1")]) == [
            Appended(1, first, duplicate=True)
        ]
        assert offsets(database.run([Append(2, "a", 1, 9.0, "new", None, "m2")])) == [("a", 4)]
        assert replay(database, "a", 10) == ["hello", "seed talk", "bob's", "new"]
    finally:
        database.close()
    assert [(room, offset) for room, offset, *_ in stored_talks(path)] == [(1, 1), (1, 2), (1, 3), (2, 1), (1, 4)]


def test_one_talk_id_twice_in_one_batch_is_stored_once_among_seed_talks(tmp_path: Path) -> None:
    path = tmp_path / "chat.db"
    database = Database.open(path)
    try:
        database.run([AddUser(1, "a", 0.0), AddUser(2, "b", 0.0), Append(3, "a", 1, 0.0, "before")])
        results = database.run([
            Append(10, "a", 1, 1.0, "seed 1"),
            Append(11, "a", 1, 2.0, "first", "Ada", "x"),
            Append(12, "b", 1, 3.0, "b seed"),
            Append(13, "a", 1, 4.0, "seed 2"),
            Append(14, "a", 1, 5.0, "second", "Ada", "x"),
            Append(15, "b", 1, 6.0, "b named", "Bea"),
            Append(16, "a", 1, 7.0, "seed 3"),
        ])
        kept = LoggedTalk("a", 3, 1, 2.0, "first", "Ada", "x")
        assert results[1] == Appended(11, kept)
        assert results[4] == Appended(14, kept, duplicate=True)
        assert [(r.talk.join_key, r.talk.offset) for r in results if isinstance(r, Appended)] == [
            ("a", 2), ("a", 3), ("b", 1), ("a", 4), ("a", 3), ("b", 2), ("a", 5),
        ]
        # Each room's chain is whole and in order: loads, and the talks after, see every talk once.
        assert replay(database, "a", 10) == ["before", "seed 1", "first", "seed 2", "seed 3"]
        assert replay(database, "b", 10) == ["b seed", "b named"]
        assert offsets(database.run([Append(17, "a", 1, 8.0, "after"), Append(18, "b", 1, 8.0, "after")])) == [
            ("a", 6), ("b", 3)
        ]
    finally:
        database.close()
    assert [payload for _, _, payload, _, _ in stored_talks(path)].count("second") == 0


def test_a_failed_batch_with_talk_ids_is_retried_without_calling_its_own_talks_duplicates(database: Database) -> None:
    database.run([AddUser(1, "a", 0.0)])
    results = database.run([
        Append(2, "a", 1, 1.0, "one", None, "x"),
        Append(3, "a", 1, 2.0, "one again", None, "x"),
        AddUser(4, "no such room", None),
    ])
    kept = LoggedTalk("a", 1, 1, 1.0, "one", None, "x")
    assert results == [Appended(2, kept), Appended(3, kept, duplicate=True), LogFailed(4, "storage inconsistent")]
    assert database.run([Append(5, "a", 1, 3.0, "one more time", None, "x")]) == [Appended(5, kept, duplicate=True)]
    assert replay(database, "a", 10) == ["one"]


def test_history_pages_back_to_the_first_talk(database: Database) -> None:
    database.run([AddUser(1, "a", 0.0), AddUser(2, "empty", 0.0)])
    database.run([Append(10 + n, "a", 1, float(n), f"a{n}") for n in range(1, 11)])
    assert page(database, "a", 11, 3) == ([8, 9, 10], True)
    assert page(database, "a", 8, 3) == ([5, 6, 7], True)
    assert page(database, "a", 5, 3) == ([2, 3, 4], True)
    assert page(database, "a", 2, 3) == ([1], False)
    assert page(database, "a", 4, 3) == ([1, 2, 3], False)  # nothing before the first: not "older"
    assert page(database, "a", 1, 3) == ([], False)
    assert page(database, "a", 10**30, 2) == ([9, 10], True)  # (before the newest + 1, as the core asks)
    assert page(database, "a", 11, 200) == (list(range(1, 11)), False)
    assert page(database, "empty", 5, 3) == ([], False)
    assert database.run([History(3, "nowhere", 5, 3)]) == [LogFailed(3, "storage inconsistent")]
    # Reads come after the batch's writes: a history in the batch sees its talks.
    [appended, read] = database.run([Append(4, "a", 2, 0.0, "new"), History(5, "a", 13, 2)])
    assert isinstance(appended, Appended)
    assert read == HistoryRead(5, (LoggedTalk("a", 10, 1, 10.0, "a10"), appended.talk), True)


def test_history_in_a_long_room_starts_from_checkpoints_that_are_only_short_cuts(tmp_path: Path) -> None:
    path = tmp_path / "chat.db"
    database = Database.open(path)
    total = 3 * CHECKPOINT_EVERY + 20
    try:
        database.run([AddUser(1, "a", 0.0), AddUser(2, "b", 0.0)])
        for start in range(0, 2 * total, 97):  # the two rooms' chains interleave; batches cut anywhere
            database.run([
                Append(n, "ab"[n % 2], 1, 0.0, f"{n}", talk_id=f"id{n}" if n % 5 == 0 else None)
                for n in range(start, min(start + 97, 2 * total))
            ])

        def every_page(limit: int) -> list[int]:
            seen: list[int] = []
            before, older = total + 1, True
            while older:
                offsets, older = page(database, "a", before, limit)
                assert offsets == list(range(max(1, before - limit), before))
                seen[:0] = offsets
                before = offsets[0]
            return seen

        assert every_page(50) == list(range(1, total + 1))
        assert every_page(CHECKPOINT_EVERY) == list(range(1, total + 1))
        [read] = database.run([History(1, "b", CHECKPOINT_EVERY + 2, 3)])
        assert isinstance(read, HistoryRead)
        assert [(t.offset, t.payload, t.talk_id) for t in read.talks] == [
            (n, str(2 * n - 1), f"id{2 * n - 1}" if (2 * n - 1) % 5 == 0 else None)
            for n in range(CHECKPOINT_EVERY - 1, CHECKPOINT_EVERY + 2)
        ]
    finally:
        database.close()
    with sqlite3.connect(path) as connection:
        checkpoints = connection.execute(
            "SELECT checkpoints.room, checkpoints.room_offset, talks.room_offset"
                " FROM checkpoints JOIN talks ON talks.id = checkpoints.talk"
        ).fetchall()
        assert sorted(checkpoints) == [(room, n, n) for room in (1, 2) for n in (256, 512, 768)]
        connection.execute("DELETE FROM checkpoints WHERE room_offset = 512")
    connection.close()
    database = Database.open(path)
    try:
        assert every_page(37) == list(range(1, total + 1))
    finally:
        database.close()


def test_a_version_3_database_keeps_its_talks_and_gets_names_ids_and_checkpoints(tmp_path: Path) -> None:
    path = tmp_path / "chat.db"
    with make_version(path, 3) as connection:
        for n in range(1, 400):
            room = 1 if n % 3 else 2
            connection.execute(
                "INSERT INTO talks (id, room, previous, room_offset, user_id, time, payload)"
                " VALUES (?, ?, (SELECT last_talk FROM rooms WHERE id = ?),"
                " (SELECT count(*) + 1 FROM talks WHERE room = ?), 1, ?, ?)",
                (n, room, room, room, float(n), f"{n}"),
            )
    connection.close()
    in_a = [n for n in range(1, 400) if n % 3]  # 266 talks: one checkpoint
    database = Database.open(path)
    try:
        [loaded] = database.run([Load(1, "a", 3)])
        assert isinstance(loaded, Loaded)
        assert loaded.room is not None
        assert loaded.room.last_offset == len(in_a)
        assert list(loaded.room.talks) == [
            LoggedTalk("a", len(in_a) - 2 + k, 1, float(n), f"{n}") for k, n in enumerate(in_a[-3:])
        ]
        assert page(database, "a", 3, 5) == ([1, 2], False)
        [read] = database.run([History(2, "a", len(in_a) - 5, 2)])
        assert isinstance(read, HistoryRead)
        assert [talk.payload for talk in read.talks] == [f"{n}" for n in in_a[-8:-6]]
        assert database.run([AddUser(3, "a", None, token_hash="ada", name="Ada")]) == [UserAdded(3, 3, False, "Ada")]
        assert database.run([Append(4, "a", 3, 1.0, "v2", "Ada", "m1"), Append(5, "a", 3, 1.0, "v2", "Ada", "m1")]
                            ) == [Appended(4, talk := LoggedTalk("a", len(in_a) + 1, 3, 1.0, "v2", "Ada", "m1")),
                                  Appended(5, talk, duplicate=True)]
        assert database.run([AddUser(6, "a", None, resume_hash="ada")]) == [UserAdded(6, 3, True, "Ada")]
    finally:
        database.close()
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        assert connection.execute("SELECT room, room_offset FROM checkpoints").fetchall() == [(1, CHECKPOINT_EVERY)]
    connection.close()


def test_the_log_answers_as_the_memory_log_does(tmp_path: Path) -> None:
    """The reference: `MemoryLog` keeping every talk. The same requests, one by one and in batches."""
    rng = random.Random(4)
    keys = ["a", "b", "c"]
    requests: list[LogRequest] = [AddUser(n, key, 0.0, token_hash=f"{key}{n}", name="first") for n, key in
                                  enumerate(keys)]
    tokens = [f"{key}{n}" for n, key in enumerate(keys)]
    for ticket in range(len(requests), 1500):
        key, user = rng.choice(keys), rng.randint(1, 4)
        kind = rng.random()
        request: LogRequest
        if kind < 0.1:
            resume = rng.choice([None, rng.choice(tokens), rng.choice(tokens), "nobody"])  # (of any room)
            request = AddUser(ticket, key, None, token_hash=f"{key}{ticket}", resume_hash=resume,
                              name=rng.choice([None, None, f"n{ticket}"]))
            tokens.append(f"{key}{ticket}")
        elif kind < 0.15:
            request = Rename(ticket, key, user, f"r{ticket}")
        elif kind < 0.25:
            request = History(ticket, key, rng.randint(1, 400), rng.randint(1, 30))
        elif kind < 0.28:
            request = Load(ticket, key, rng.randint(0, 20))
        else:
            request = Append(ticket, key, user, float(ticket), f"p{ticket}", rng.choice([None, f"u{user}"]),
                             rng.choice([None, None, f"t{rng.randint(1, 40)}"]))
        requests.append(request)
    reference = MemoryLog(history_limit=10_000)
    expected = [reference.answer(request) for request in requests]
    check_in_batches(tmp_path, requests, expected)
