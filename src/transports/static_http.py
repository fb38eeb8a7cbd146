"""A small HTTP/1.1 server (h11 over anyio) for the page's static files.

Besides the files of the web folder it serves ``/config.js``, which tells the
page which port the WebSocket server listens on.
"""

from __future__ import annotations

import json
import logging
import mimetypes
from dataclasses import dataclass
from functools import partial
from http import HTTPStatus
from pathlib import Path
from urllib.parse import unquote, urlsplit

import anyio
import anyio.abc
import h11

from .tcp import STREAM_ERRORS, serve_tcp

log = logging.getLogger(__name__)

RECEIVE_SIZE = 16384
IDLE_TIMEOUT = 30.0
"""Seconds a keep-alive HTTP connection may wait for its next request."""



@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"


class StaticSite:
    """Maps request paths to files under one folder, plus the generated ``/config.js``."""

    def __init__(self, root: Path, ws_port: int) -> None:
        self.root = root.resolve()
        self._config_js = f"window.CHAT_CONFIG = {json.dumps({'wsPort': ws_port})};\n".encode()

    def respond(self, method: str, target: str) -> Response:
        if method not in ("GET", "HEAD"):
            return Response(405, b"method not allowed\n")
        path = unquote(urlsplit(target).path)
        if path == "/config.js":
            return Response(200, self._config_js, "text/javascript; charset=utf-8")
        file = self._resolve(path)
        if file is None:
            return Response(404, b"not found\n")
        return Response(200, file.read_bytes(), _content_type(file))

    def _resolve(self, path: str) -> Path | None:
        if "\x00" in path:
            return None
        relative = path.lstrip("/") or "index.html"
        candidate = (self.root / relative).resolve()
        if candidate.is_dir():
            candidate = candidate / "index.html"
        if not candidate.is_relative_to(self.root) or not candidate.is_file():
            return None
        return candidate


def _phrase(status: int) -> bytes:
    return HTTPStatus(status).phrase.encode("ascii")


def _content_type(file: Path) -> str:
    kind = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
    if kind == "application/javascript":
        kind = "text/javascript"
    if kind.startswith("text/"):
        kind += "; charset=utf-8"
    return kind


async def _handle(site: StaticSite, stream: anyio.abc.SocketStream) -> None:
    async with stream:
        connection = h11.Connection(h11.SERVER)
        try:
            while await _serve_one(site, stream, connection):
                connection.start_next_cycle()
        except h11.RemoteProtocolError as error:
            log.info("bad HTTP request: %s", error)
            await _refuse(stream, connection, error.error_status_hint)
        except (h11.LocalProtocolError, *STREAM_ERRORS) as error:
            log.debug("http connection ended: %r", error)


async def _refuse(stream: anyio.abc.SocketStream, connection: h11.Connection, status: int) -> None:
    if connection.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
        return
    body = b"bad request\n"
    headers = [
        ("content-type", "text/plain; charset=utf-8"),
        ("content-length", str(len(body))),
        ("connection", "close"),
    ]
    try:
        head = connection.send(h11.Response(status_code=status, headers=headers, reason=_phrase(status)))
        await stream.send(head + body)
    except (h11.LocalProtocolError, *STREAM_ERRORS):
        pass


async def _serve_one(site: StaticSite, stream: anyio.abc.SocketStream, connection: h11.Connection) -> bool:
    """Answer one request; False when the connection should end."""
    request = None
    with anyio.move_on_after(IDLE_TIMEOUT):
        request = await _next_request(stream, connection)
    if request is None:
        return False
    response = site.respond(request.method.decode("ascii", "replace"), request.target.decode("ascii", "replace"))
    headers = [
        ("content-type", response.content_type),
        ("content-length", str(len(response.body))),
        ("cache-control", "no-cache"),
        ("x-content-type-options", "nosniff"),
    ]
    if response.status == 405:
        headers.append(("allow", "GET, HEAD"))
    data = connection.send(h11.Response(status_code=response.status, headers=headers, reason=_phrase(response.status)))
    if request.method != b"HEAD":
        data += connection.send(h11.Data(data=response.body))
    data += connection.send(h11.EndOfMessage())
    await stream.send(data)
    return connection.our_state is h11.DONE and connection.their_state is h11.DONE


async def _next_request(stream: anyio.abc.SocketStream, connection: h11.Connection) -> h11.Request | None:
    request = None
    while True:
        event = connection.next_event()
        if event is h11.NEED_DATA:
            try:
                connection.receive_data(await stream.receive(RECEIVE_SIZE))
            except anyio.EndOfStream:
                connection.receive_data(b"")
        elif isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.EndOfMessage):
            return request
        elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
            return None


async def serve(
    site: StaticSite,
    host: str,
    port: int,
    *,
    task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``site`` over HTTP on ``host:port`` until cancelled; reports the bound port."""
    await serve_tcp(partial(_handle, site), host, port, task_status=task_status)
