"""``chat-client``: a room from a shell. It joins (or starts a room and prints its join key), prints the room's
talks and news as they come, and sends each line of standard input; at the end of the input it leaves once
everything it sent is stored. ``--json``: one event per line, for programs."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import sys
from importlib.metadata import PackageNotFoundError, version
from typing import TextIO
from urllib.parse import urlsplit, urlunsplit

import trio

from .events import Deleted, Edited, Ended, Event, Joined, MemberJoined, MemberLeft, Refused, Renamed, Talk
from .trio import Chat, SendRefused, SessionEnded, connect

VALUED = ("--join", "--name")
"""The options that take a value: it may begin with "-" (a join key often does), so it is glued to its option."""


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line read (``sys.argv`` by default); exits with the usage on a mistake, as argparse does."""
    parser = argparse.ArgumentParser(prog="chat-client", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("url", help="the chat server's WebSocket address, e.g. ws://127.0.0.1:8001/ or "
                        "wss://chat.example.org/ws")
    parser.add_argument("--join", metavar="KEY", help="the room to join: its join key (the join= of its link); "
                        "without it, a new room is started")
    parser.add_argument("--name", help="your name in the room")
    parser.add_argument("--json", action="store_true", help="print each event as one JSON object per line")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    return parser.parse_args(_glued(sys.argv[1:] if argv is None else argv))


def _glued(argv: list[str]) -> list[str]:
    # argparse takes "--join -Gd4..." for an option without its value; "--join=-Gd4..." is read as meant.
    glued: list[str] = []
    words = iter(argv)
    for word in words:
        value = next(words, None) if word in VALUED else None
        glued.append(word if value is None else f"{word}={value}")
    return glued


def main(argv: list[str] | None = None) -> int:
    """Run ``chat-client``; the exit code (1: the room could not be joined, or the session ended)."""
    args = arguments(argv)
    try:
        trio.run(_session, args.url, args.join, args.name, args.json)
    except SessionEnded as ended:
        print(f"chat-client: {ended}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


async def _session(url: str, join_key: str | None, name: str | None, as_json: bool) -> None:
    async with connect(url, join_key, name=name) as chat:
        if join_key is None:
            print(f"chat started; join key: {chat.join_key}{_link(url, chat.join_key)}", file=sys.stderr, flush=True)
        async with trio.open_nursery() as tasks:

            async def printer() -> None:
                await _print_news(chat, as_json, sys.stdout)
                tasks.cancel_scope.cancel()  # (the session ended: no more input is read)

            tasks.start_soon(printer)
            while (line := await trio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)):
                text = line.rstrip("\n")
                if text.strip():
                    try:
                        await chat.send(text)
                    except SendRefused as refused:
                        print(f"chat-client: not sent: {refused}", file=sys.stderr, flush=True)
                    except SessionEnded:
                        break  # (said below, once)
            with contextlib.suppress(SessionEnded):  # (said below, once)
                await chat.sent()
            tasks.cancel_scope.cancel()
        if chat.ended is not None:
            raise SessionEnded(chat.ended.reason)


async def _print_news(chat: Chat, as_json: bool, out: TextIO) -> None:
    names: dict[int, str | None] = {}
    async for news in chat:
        if as_json:
            print(json.dumps({"event": type(news).__name__, **dataclasses.asdict(news)}), file=out, flush=True)
            continue
        line = _line(news, names)
        if line is not None:
            print(line, file=out, flush=True)


def _line(news: Event, names: dict[int, str | None]) -> str | None:
    def who(user_id: int | None) -> str:
        return (names.get(user_id) if user_id is not None else None) or f"user {user_id}"

    if isinstance(news, Joined):
        names.update((member.user_id, member.name) for member in news.members)
        return None
    if isinstance(news, Talk):
        names.setdefault(news.user_id, news.name)
        return f"{news.name or who(news.user_id)}: {news.payload}" if not news.deleted else None
    if isinstance(news, MemberJoined):
        names[news.user_id] = news.name
        return f"* {who(news.user_id)} joined"
    if isinstance(news, MemberLeft):
        return f"* {who(news.user_id)} left"
    if isinstance(news, Renamed):
        old, names[news.user_id] = who(news.user_id), news.name
        return f"* {old} is now {who(news.user_id)}"
    if isinstance(news, Edited):
        return f"* message {news.offset} edited: {news.payload}"
    if isinstance(news, Deleted):
        return f"* message {news.offset} deleted"
    if isinstance(news, Refused) and news.id is None:
        return f"* refused: {news.message}"
    if isinstance(news, Ended):
        return f"* {news.reason}"
    return None


def _link(url: str, join_key: str | None) -> str:
    """The page's link to the room, when ``url`` is the page's own WebSocket address (its /ws)."""
    parts = urlsplit(url)
    if join_key is None or parts.path.rstrip("/") != "/ws":
        return ""
    scheme = "https" if parts.scheme == "wss" else "http"
    return f"; link: {urlunsplit((scheme, parts.netloc, '/', f'join={join_key}', ''))}"


def _version() -> str:
    try:
        return version("trio-chat")
    except PackageNotFoundError:  # (run from a source tree that was never installed)
        return "unknown version"
