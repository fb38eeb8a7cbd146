"""Whether a ``--redis`` URL is one redis-py can use: checked at start, without connecting."""

from __future__ import annotations

import math
import re
from urllib.parse import parse_qsl, unquote, urlsplit

import redis

SCHEMES = ("redis://", "rediss://", "unix://")
_DB_PATH = re.compile(r"/?\d*")
_USERINFO = re.compile(r"[^:/?#]*://([^/?#]*)@")


def check_url(url: str) -> None:
    """Raise `ValueError` saying what is wrong with ``url``; the message never holds the URL's password."""
    if not url.lower().startswith(SCHEMES):
        raise ValueError("must be a redis://, rediss:// (TLS) or unix:// URL, e.g. redis://localhost:6379/0")
    try:
        parts = urlsplit(url)
        _ = parts.port  # (urllib checks the port only when asked)
        if parts.scheme.lower() == "unix":
            if not parts.path:
                raise ValueError("unix:// needs the socket's path, e.g. unix:///run/redis/redis.sock")
        elif not _DB_PATH.fullmatch(unquote(parts.path)):
            raise ValueError("its path must be a database number, e.g. /0")
        pool = redis.ConnectionPool.from_url(url)
        # Builds a connection with every option of the URL (unknown ones fail here), but does not connect.
        pool.make_connection()
    except (ValueError, TypeError, redis.RedisError) as error:
        raise ValueError(_hide_secrets(f"not a usable Redis URL: {error}", url)) from None
    options = pool.connection_kwargs
    if options.get("db", 0) < 0:
        raise ValueError("not a usable Redis URL: the database number must be 0 or more")
    for name, value in options.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"not a usable Redis URL: {name} must be a finite number")


def _hide_secrets(message: str, url: str) -> str:
    """``message`` without the URL's password (``user:password@``, ``?password=``), should a library quote it."""
    userinfo = _USERINFO.match(url)
    secrets = [userinfo.group(1).partition(":")[2]] if userinfo else []
    secrets += [value for name, value in parse_qsl(url.partition("?")[2]) if "password" in name]
    for secret in secrets:
        for form in {secret, unquote(secret)}:
            if form:
                message = message.replace(form, "***")
    return message
