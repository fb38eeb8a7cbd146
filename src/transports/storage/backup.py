"""``chat-server-backup``: copy a chat database, safely, while its server runs.

Uses SQLite's online backup API: the copy is one consistent snapshot, and
the server goes on writing meanwhile.
"""

from __future__ import annotations

import argparse
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from ..config import default_database


def backup(source: Path, destination: Path) -> int:
    """Copy ``source`` to ``destination`` (replacing it); returns how many rooms the copy has."""
    if not source.is_file():
        raise FileNotFoundError(f"no database at {source}")
    reader = sqlite3.connect(source)
    writer = sqlite3.connect(destination)
    try:
        reader.backup(writer)
        rooms: int = writer.execute("SELECT count(*) FROM rooms").fetchone()[0]
    finally:
        writer.close()
        reader.close()
    return rooms


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="chat-server-backup", description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, default=default_database(), metavar="PATH",
                        help="the server's --db file (default: %(default)s)")
    parser.add_argument("destination", type=Path, help="where the copy goes (replaced if it exists)")
    args = parser.parse_args(argv)
    try:
        rooms = backup(args.db, args.destination)
    except (OSError, sqlite3.Error) as error:
        parser.exit(1, f"{parser.prog}: error: {error}\n")
    print(f"copied {args.db} to {args.destination}: {rooms} rooms")


if __name__ == "__main__":
    main()
