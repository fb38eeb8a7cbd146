"""Fixtures the transports' tests share."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from transports.storage.sqlite import Database


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    """A new SQLite room log in the test's folder, closed after it."""
    opened = Database.open(tmp_path / "chat.db")
    yield opened
    opened.close()
