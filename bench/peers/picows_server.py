"""Peer server: the chat protocol on picows, the fastest asyncio WebSocket library we know of.

picows does its framing, masking and buffering in Cython: this peer shows what
a server costs when nothing of the per-message path but the chat itself is
Python. The same protocol subset as ``bench/baseline_server.py`` (rooms in a
dict, user ids never reused, a bounded history, every ``talk`` JSON-encoded
once). It is idiomatic picows: a ``WSListener`` per connection whose
``on_ws_frame`` answers at once, and a broadcast that calls ``transport.send``
for each member (picows writes without awaiting). No compression, no pings.
The event loop is uvloop with ``--uvloop`` (as picows' own examples run),
asyncio's default otherwise.

    python bench/peers/picows_server.py --host 127.0.0.1 --port 8001 [--uvloop]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
from pathlib import Path
from typing import Any

from picows import WSFrame, WSListener, WSMsgType, WSTransport, WSUpgradeRequest, ws_create_server

# Run as a script from bench/peers/, so bench/ (home of the shared seedchat module) is not on the path by itself.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from seedchat import NOT_FOUND, UNEXPECTED, Room, decode, new_user, room_for, talk


class Chat(WSListener):
    """One connection: ``init`` once, then any number of ``talk`` events."""

    def __init__(self) -> None:
        self.transport: WSTransport | None = None
        self.room: Room[Chat] | None = None
        self.user_id = 0

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def send(self, text: str) -> None:
        assert self.transport is not None
        self.transport.send(WSMsgType.TEXT, text.encode())

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()
            return
        if frame.msg_type not in (WSMsgType.TEXT, WSMsgType.BINARY) or not frame.fin:
            self.send(UNEXPECTED)  # the load sends whole text frames only; a fragment is out of this peer's subset
            return
        event = decode(frame.get_payload_as_bytes())
        kind, payload = event.get("type"), event.get("payload")
        if kind == "init" and self.room is None:
            self.join(event)
        elif kind == "talk" and self.room is not None and isinstance(payload, str):
            data = talk(self.room, self.user_id, payload).encode()
            for member in self.room.members:
                assert member.transport is not None
                member.transport.send(WSMsgType.TEXT, data)
        else:
            self.send(UNEXPECTED)

    def join(self, event: dict[str, Any]) -> None:
        """Answer ``init``: create or find the room, send the new user id, then the history."""
        room: Room[Chat] | None = room_for(event)
        if room is None:
            self.send(NOT_FOUND)
            return
        self.user_id, reply = new_user(room)
        self.send(reply)
        for message in room.history:  # sends do not yield: nothing can slip in before joining
            self.send(message)
        room.members.add(self)
        self.room = room

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if self.room is not None:
            self.room.members.discard(self)


def listener(request: WSUpgradeRequest) -> Chat:
    """Every upgrade, whatever its path, is a chat connection."""
    return Chat()


async def serve(host: str, port: int) -> None:
    """Serve until killed."""
    server = await ws_create_server(listener, host, port, backlog=socket.SOMAXCONN,
                                    max_frame_size=2**24, websocket_handshake_timeout=None)
    await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop instead of asyncio's default loop")
    args = parser.parse_args()
    if args.uvloop:
        import uvloop

        uvloop.run(serve(args.host, args.port))
    else:
        asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
