"""The Redis log's pure helpers: URLs as logs show them, and the keys of a room."""

from __future__ import annotations

import pytest

from transports.storage.redislog import channel, join_key_of, redacted, room_key, talks_key


@pytest.mark.parametrize(("url", "shown"), [
    ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
    ("redis://:secret@10.0.0.5:6379/0", "redis://:***@10.0.0.5:6379/0"),
    ("rediss://chat:secret@redis.example.org/2", "rediss://chat:***@redis.example.org/2"),
    ("unix:///run/redis/redis.sock?db=0&password=secret", "unix:///run/redis/redis.sock?db=0&password=***"),
    ("unix:///run/redis/redis.sock", "unix:///run/redis/redis.sock"),
])
def test_a_password_never_reaches_a_log_line(url: str, shown: str) -> None:
    assert redacted(url) == shown


def test_a_rooms_keys_and_channel_share_one_hash_tag() -> None:
    key = "Ab-_09xyzABCDEFG"
    assert room_key(key) == "chat:{Ab-_09xyzABCDEFG}:room"
    assert talks_key(key) == "chat:{Ab-_09xyzABCDEFG}:talks"
    assert join_key_of(channel(key)) == key
