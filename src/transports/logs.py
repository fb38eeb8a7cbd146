"""The server's log: lines on stderr, as text or as JSON (``--log-format``), and what may be in them.

Nothing a client says is logged, at any level: never a join key, a resume
token, a name or a message's text (which is why libraries log from INFO up
even with ``--log-level DEBUG``). A line about a room names it by
`room_hash` (the first 8 hex digits of the SHA-256 of its join key): enough
to tell one room's lines from another's, of no use for joining it.

With ``--log-format json`` every line is one JSON object: ``time`` (UTC,
ISO 8601), ``level``, ``logger``, ``message``, ``worker`` (a worker of
``--workers``), the fields the code gives with the line (``extra=``: a
connection's ``address``, ``transport``, ``duration``, ``close_code`` …),
and ``traceback`` when there is one. Warnings, and exceptions nothing caught
(in the main thread or another), are logged too, so that nothing else
reaches stderr.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import re
import sys
import threading
from types import TracebackType
from typing import Any

FORMATS = ("text", "json")
OUR_PACKAGES = ("transports", "chatcore")
"""Loggers that log at DEBUG with ``--log-level DEBUG``; every other one logs from INFO up."""

_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}

logger = logging.getLogger("transports")


def room_hash(join_key: str) -> str:
    """How log lines name a room: never by its join key, which lets anyone in."""
    return hashlib.sha256(join_key.encode()).hexdigest()[:8]


_QUOTED = re.compile(r": |:? (?:bytearray\()?b?['\"]")


def without_quotes(message: str) -> str:
    """A library's error message without the client's bytes it quotes (h11: ``illegal request line:
    bytearray(b'GET /?join=…')``, ``Illegal header value b'…'``): a request line or a header may hold a join link."""
    return _QUOTED.split(message, maxsplit=1)[0]


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def __init__(self, worker: int | None = None) -> None:
        super().__init__()
        self._worker = worker

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if self._worker is not None:
            entry["worker"] = self._worker
        for key, value in vars(record).items():
            if key not in _RECORD_FIELDS and not key.startswith("_") and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["traceback"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str)


def configure(level: str, format: str, worker: int | None = None) -> None:
    """Log ``level`` and above to stderr, in ``format`` (one of `FORMATS`)."""
    handler = logging.StreamHandler(sys.stderr)
    if format == "json":
        handler.setFormatter(JsonFormatter(worker))
        logging.captureWarnings(True)
        sys.excepthook = _log_uncaught
        threading.excepthook = _log_uncaught_in_thread
    else:
        prefix = f" worker-{worker}" if worker else ""
        handler.setFormatter(logging.Formatter(f"%(asctime)s{prefix} %(levelname)s %(name)s: %(message)s"))
    # DEBUG is ours only: libraries stay at INFO, since some log what clients send at DEBUG (redis-py logs
    # every message published on a channel, join key, name and text included).
    logging.basicConfig(level=max(logging.INFO, logging.getLevelName(level)), handlers=[handler], force=True)
    for package in OUR_PACKAGES:
        logging.getLogger(package).setLevel(level)


def _log_uncaught(kind: type[BaseException], error: BaseException, traceback: TracebackType | None) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, error, traceback)
        return
    logger.critical("uncaught %s", kind.__name__, exc_info=(kind, error, traceback))


def _log_uncaught_in_thread(hook: threading.ExceptHookArgs) -> None:
    if hook.exc_type is SystemExit or hook.exc_value is None:
        return
    logger.critical("uncaught %s in thread %s", hook.exc_type.__name__, hook.thread.name if hook.thread else "?",
                    exc_info=(hook.exc_type, hook.exc_value, hook.exc_traceback))
