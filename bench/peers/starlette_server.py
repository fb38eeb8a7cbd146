"""Peer server: the chat protocol on Starlette under uvicorn, as a Starlette team would write it.

The same protocol subset as ``bench/baseline_server.py`` (rooms in a dict, user
ids never reused, a bounded history, every ``talk`` JSON-encoded once). It is
idiomatic Starlette: a ``WebSocketRoute`` endpoint that accepts, reads with
``websocket.receive()`` and broadcasts the way Starlette's docs and chat
examples do, ``await ws.send_text(message)`` for each member in turn. uvicorn
serves it with its default WebSocket and HTTP implementations on the plain
asyncio loop (like the baseline: no uvloop), without pings or compression.

    python bench/peers/starlette_server.py --host 127.0.0.1 --port 8001
"""

from __future__ import annotations

import argparse
import socket
import sys
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

# Run as a script from bench/peers/, so bench/ (home of the shared seedchat module) is not on the path by itself.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from seedchat import NOT_FOUND, UNEXPECTED, Room, decode, new_user, room_for, talk


async def broadcast(room: Room[WebSocket], message: str) -> None:
    """One awaited send per member (a copy of the set: members may leave while a send waits)."""
    for ws in list(room.members):
        try:
            await ws.send_text(message)
        except (WebSocketDisconnect, RuntimeError, OSError):  # OSError: uvicorn's, before Starlette wrapped it
            continue  # that member is gone (RuntimeError: Starlette saw it close); its handler removes it


async def join(ws: WebSocket, event: dict[str, Any]) -> tuple[Room[WebSocket] | None, int]:
    """Answer ``init``: create or find the room, send the new user id, then the history."""
    room: Room[WebSocket] | None = room_for(event)
    if room is None:
        await ws.send_text(NOT_FOUND)
        return None, 0
    user_id, reply = new_user(room)  # taken before awaiting: others may join meanwhile
    await ws.send_text(reply)
    # Sends may yield, so join first and replay what was there then: no talk is lost.
    history = list(room.history)
    room.members.add(ws)
    for message in history:
        await ws.send_text(message)
    return room, user_id


async def chat(ws: WebSocket) -> None:
    """One connection: ``init`` once, then any number of ``talk`` events."""
    await ws.accept()
    room: Room[WebSocket] | None = None
    user_id = 0
    try:
        while (received := await ws.receive())["type"] == "websocket.receive":
            event = decode(received.get("text") or received.get("bytes") or "")
            kind, payload = event.get("type"), event.get("payload")
            if kind == "init" and room is None:
                room, user_id = await join(ws, event)
            elif kind == "talk" and room is not None and isinstance(payload, str):
                message = talk(room, user_id, payload)
                await broadcast(room, message)
            else:
                await ws.send_text(UNEXPECTED)
    except WebSocketDisconnect:
        pass  # a client that vanishes is routine, not a server error
    finally:
        if room is not None:
            room.members.discard(ws)


app = Starlette(routes=[WebSocketRoute("/", chat)])


def main() -> None:
    """Serve until killed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", loop="asyncio", backlog=socket.SOMAXCONN,
                ws_max_size=2**24, ws_ping_interval=None, ws_ping_timeout=None, ws_per_message_deflate=False)


if __name__ == "__main__":
    main()
