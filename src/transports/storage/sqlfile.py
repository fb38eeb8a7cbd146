"""The chat database's file: opening it (its lock, its connection's settings, its schema's migrations), and what
its errors mean for a client. The SQL is in `sqlschema`; the batches of log requests, in `sqlite`."""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
from pathlib import Path

from chatcore.results import INCONSISTENT

from ..config import Synchronous
from .sqlschema import MIGRATIONS, SCHEMA_VERSION

logger = logging.getLogger(__name__)


class DatabaseError(Exception):
    """The database cannot be used at all; the message says why, for the operator."""


class Inconsistent(Exception):
    """A record refers to a room the database does not have."""


def connect(path: Path, busy_timeout: float, synchronous: Synchronous) -> tuple[Path, sqlite3.Connection, int, int]:
    """Open or create the database at ``path``, locked for this process, with its schema up to date.

    Returns its absolute path, the connection, the lock file's descriptor and how many rooms it has.
    """
    path = path.absolute()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DatabaseError(
            f"cannot create the folder for {path}: {error.strerror} (--db: choose a folder this user may write in)"
        ) from None
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
        # Deleted rows are overwritten with zeros, not only unlinked: deleted talks are erased for real.
        connection.execute("PRAGMA secure_delete = ON")
        _migrate(connection, path)
        rooms: int = connection.execute("SELECT count(*) FROM rooms").fetchone()[0]
    except (sqlite3.Error, DatabaseError) as error:
        connection.close()
        os.close(lock_fd)
        if isinstance(error, DatabaseError):
            raise
        raise DatabaseError(f"cannot use {path}: {error} ({describe(error)})") from None
    return path, connection, lock_fd, rooms


def describe(error: BaseException) -> str:
    """A short reason for a client: what kind of fault, not where."""
    code = getattr(error, "sqlite_errorcode", None)
    if code is None:
        return INCONSISTENT if isinstance(error, Inconsistent) else "storage error"
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


def _lock(path: Path) -> int:
    """Hold ``<path>.lock`` for as long as the server runs; the OS lets go when the process ends, however."""
    lock_path = path.with_name(path.name + ".lock")
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:
        raise DatabaseError(
            f"cannot create {lock_path}: {error.strerror} (--db: choose a folder this user may write in)"
        ) from None
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
        logger.info("database %s: schema migrated to version %d", path, target)
