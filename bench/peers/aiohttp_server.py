"""Peer server: the chat protocol on aiohttp, as an aiohttp team would write it.

The same protocol subset as ``bench/baseline_server.py`` (rooms in a dict, user
ids never reused, a bounded history, every ``talk`` JSON-encoded once), on the
default asyncio loop. It is idiomatic aiohttp: a ``web.Application`` with a
``WebSocketResponse`` route, messages read with ``async for msg in ws``, and the
broadcast aiohttp's docs and chat examples use, ``await ws.send_str(message)``
for each member in turn. No compression, no heartbeat.

    python bench/peers/aiohttp_server.py --host 127.0.0.1 --port 8001
"""

from __future__ import annotations

import argparse
import socket
import sys
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

# Run as a script from bench/peers/, so bench/ (home of the shared seedchat module) is not on the path by itself.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from seedchat import NOT_FOUND, UNEXPECTED, Room, decode, new_user, room_for, talk


async def broadcast(room: Room[web.WebSocketResponse], message: str) -> None:
    """One awaited send per member (a copy of the set: members may leave while a send waits)."""
    for ws in list(room.members):
        try:
            await ws.send_str(message)
        except ConnectionResetError:
            continue  # that member is gone; its own handler removes it (try is free, suppress() is not)


async def join(ws: web.WebSocketResponse, event: dict[str, Any]) -> tuple[Room[web.WebSocketResponse] | None, int]:
    """Answer ``init``: create or find the room, send the new user id, then the history."""
    room: Room[web.WebSocketResponse] | None = room_for(event)
    if room is None:
        await ws.send_str(NOT_FOUND)
        return None, 0
    user_id, reply = new_user(room)  # taken before awaiting: others may join meanwhile
    await ws.send_str(reply)
    # Sends may yield, so join first and replay what was there then: no talk is lost.
    history = list(room.history)
    room.members.add(ws)
    for message in history:
        await ws.send_str(message)
    return room, user_id


async def chat(request: web.Request) -> web.WebSocketResponse:
    """One connection: ``init`` once, then any number of ``talk`` events."""
    ws = web.WebSocketResponse(max_msg_size=2**24, compress=False)
    await ws.prepare(request)
    room: Room[web.WebSocketResponse] | None = None
    user_id = 0
    try:
        async for msg in ws:
            if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                break  # an error; a close ends the loop by itself
            event = decode(msg.data)
            kind, payload = event.get("type"), event.get("payload")
            if kind == "init" and room is None:
                room, user_id = await join(ws, event)
            elif kind == "talk" and room is not None and isinstance(payload, str):
                message = talk(room, user_id, payload)
                await broadcast(room, message)
            else:
                await ws.send_str(UNEXPECTED)
    except ConnectionResetError:
        pass  # a client that vanishes is routine, not a server error
    finally:
        if room is not None:
            room.members.discard(ws)
    return ws


def main() -> None:
    """Serve until killed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    app = web.Application()
    app.router.add_get("/", chat)
    web.run_app(app, host=args.host, port=args.port, access_log=None, print=None, backlog=socket.SOMAXCONN)


if __name__ == "__main__":
    main()
