"""Connections to Redis: the pools both threads draw from, and the URL as logs may show it."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from ..config import RedisSettings


def redacted(url: str) -> str:
    """The URL as logs may show it: without its password (``user:password@``, or ``?password=`` for unix://)."""
    parts = urlsplit(url)
    if parts.password is not None:
        host = parts.hostname or ""
        netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
        parts = parts._replace(netloc=netloc)
    query = [(name, "***" if name == "password" else value) for name, value in parse_qsl(parts.query)]
    text = urlunsplit(parts._replace(query=urlencode(query, safe="*")))
    return text.replace(":", "://", 1) if not parts.netloc else text  # (unix:///path loses its // otherwise)


def connection_pool(settings: RedisSettings) -> redis.ConnectionPool:
    """A pool for ``settings`` that never retries on its own: a failure is the caller's to see."""
    # Half the timeout per socket operation: a request may need a connect and then its command.
    wait = settings.timeout / 2
    return redis.ConnectionPool.from_url(
        settings.url, socket_timeout=wait, socket_connect_timeout=wait, retry=Retry(NoBackoff(), 0),
        health_check_interval=0, client_name="chat-server",
    )
