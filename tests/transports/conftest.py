"""Fixtures the transports' tests share."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from redis_server import RedisServer, redis_server
from transports.config import RedisSettings
from transports.storage.redislog import RedisLog
from transports.storage.sqlite import Database


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    """A new SQLite room log in the test's folder, closed after it."""
    opened = Database.open(tmp_path / "chat.db")
    yield opened
    opened.close()


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own (DUMP's bytes as they are, for the erasure scans)."""
    with redis_server(tmp_path) as server:
        server.client().config_set("rdbcompression", "no")
        yield server


@pytest.fixture
def open_log(redis: RedisServer) -> Iterator[Callable[..., RedisLog]]:
    """``open_log(origin, **settings)``: a `RedisLog` on the test's Redis, opened, closed after the test."""
    logs: list[RedisLog] = []

    def open_(origin: str, **settings: Any) -> RedisLog:
        log = RedisLog(RedisSettings(redis.url, **settings), origin)
        log.open()
        logs.append(log)
        return log

    yield open_
    for log in logs:
        log.close()
