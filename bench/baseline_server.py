"""Baseline chat server: the seed's design done right, to measure our transports against.

asyncio (the standard event loop, not uvloop) and python-websockets' asyncio API,
speaking the same protocol as ``chat-server``: server-assigned user ids that are
never reused, rooms in a dict, a bounded history, and every ``talk`` encoded to
JSON once and handed to ``websockets.broadcast``. No compression, no pings.

    python bench/baseline_server.py --host 127.0.0.1 --port 8001
    python bench/baseline_server.py --tls-cert cert.pem --tls-key key.pem   # wss://, asyncio's TLS
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import ssl
from typing import Any

from seedchat import NOT_FOUND, UNEXPECTED, Room, decode, new_user, room_for, talk
from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed


async def join(ws: ServerConnection, event: dict[str, Any]) -> tuple[Room[ServerConnection] | None, int]:
    """Answer ``init``: create or find the room, send the new user id, then the history."""
    room: Room[ServerConnection] | None = room_for(event)
    if room is None:
        await ws.send(NOT_FOUND)
        return None, 0
    user_id, reply = new_user(room)  # taken before awaiting: others may join meanwhile
    await ws.send(reply)
    # broadcast() writes without yielding, so no new talk can slip in between the
    # replay and joining the room: nothing is lost, nothing arrives out of order.
    for message in room.history:
        broadcast([ws], message)
    room.members.add(ws)
    return room, user_id


async def handler(ws: ServerConnection) -> None:
    """One connection: ``init`` once, then any number of ``talk`` events."""
    room: Room[ServerConnection] | None = None
    user_id = 0
    try:
        async for text in ws:
            event = decode(text)
            kind, payload = event.get("type"), event.get("payload")
            if kind == "init" and room is None:
                room, user_id = await join(ws, event)
            elif kind == "talk" and room is not None and isinstance(payload, str):
                message = talk(room, user_id, payload)
                broadcast(room.members, message)
            else:
                await ws.send(UNEXPECTED)
    except ConnectionClosed:
        pass  # a client that vanishes is routine, not a server error
    finally:
        if room is not None:
            room.members.discard(ws)


async def main() -> None:
    """Serve until killed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--tls-cert", help="serve wss:// with this PEM certificate (chain)")
    parser.add_argument("--tls-key", help="its PEM private key")
    args = parser.parse_args()
    context = None
    if args.tls_cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.tls_cert, args.tls_key)
    async with serve(handler, args.host, args.port, compression=None, max_size=2**24,
                     ping_interval=None, backlog=socket.SOMAXCONN, ssl=context) as server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
