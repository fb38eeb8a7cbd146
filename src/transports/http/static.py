"""A small HTTP/1.1 server (h11 over our sockets) for the page's static files.

The web folder is read once, at start (`StaticSite.load`, on a worker
thread): a request is a dictionary lookup, and nothing outside the folder
can ever be named. Besides those files it serves ``/config.js``, which tells
the page where its WebSocket is: ``/ws`` on the page's own origin, or the
port ``--public-ws-port`` names. Connections reach it through `pageport`,
which takes WebSocket upgrades on this port and counts connections.

Each connection is contained: a malformed request gets its 4xx, a bug of
ours gets 500 and a traceback in the log, and either ends that connection
only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import mimetypes
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from urllib.parse import unquote, urlsplit

import anyio
import anyio.abc
import h11

from ..config import Limits, StartupError
from ..logs import without_quotes
from ..net.rawsocket import RawSocket
from ..net.tcp import STREAM_ERRORS
from .answers import Refusal

logger = logging.getLogger(__name__)

RECEIVE_SIZE = 16384
SEND_TIMEOUT = 30.0
"""Seconds a page client has to take one answer; one that does not read is reset."""
MAX_SITE_FILES = 1000
MAX_SITE_BYTES = 64 * 1024 * 1024
"""Bounds on what ``--web`` may hold: the files are kept in memory."""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"
    etag: str | None = None


Route = Callable[[], Awaitable[Response]]
"""A dynamic page: called for each request of its path."""


class StaticSite:
    """The files of one folder, in memory, plus the generated ``/config.js``.

    Hidden files and folders (names starting with ``.``) are left out, and
    so are links that lead outside the folder.
    """

    def __init__(self, root: Path, files: dict[str, bytes], ws_port: int | None = None) -> None:
        self.root = root
        # The page's socket: on its own origin at /ws (the page's port takes upgrades), or on ``ws_port`` when
        # told so (--public-ws-port).
        settings = {"wsPath": "/ws"} if ws_port is None else {"wsPort": ws_port}
        config = f"window.CHAT_CONFIG = {json.dumps(settings)};\n".encode()
        self._files = {f"/{name}": _entity(name, body) for name, body in files.items()}
        self._files["/config.js"] = _entity("config.js", config)
        self.routes: dict[str, Route] = {}
        """Paths answered afresh on each GET or HEAD by a callable (``/healthz``, ``/metrics``), before any file."""

    @classmethod
    def load(cls, root: Path, ws_port: int | None = None) -> StaticSite:
        """Read every file under ``root`` (blocking: call it on a worker thread); `StartupError` if too much."""
        root = root.resolve()
        files: dict[str, bytes] = {}
        size = 0
        seen: set[Path] = set()  # folders walked, resolved: a link back into the tree is walked once
        for folder, subfolders, names in os.walk(root, followlinks=True):
            seen.add(Path(folder).resolve())
            subfolders[:] = sorted(  # a link to a folder outside the tree is not followed
                name for name in subfolders
                if not name.startswith(".")
                and (target := Path(folder, name).resolve()).is_relative_to(root) and target not in seen
            )
            for name in sorted(names):
                path = Path(folder, name)
                if name.startswith(".") or not path.resolve().is_relative_to(root) or not path.is_file():
                    continue
                body = path.read_bytes()
                size += len(body)
                files[path.relative_to(root).as_posix()] = body
                if len(files) > MAX_SITE_FILES or size > MAX_SITE_BYTES:
                    raise StartupError(
                        f"--web {root}: more than {MAX_SITE_FILES} files or {MAX_SITE_BYTES >> 20} MiB; "
                        "the page server keeps its files in memory"
                    )
        return cls(root, files, ws_port)

    async def answer(self, target: str, if_none_match: str | None = None) -> Response:
        """The answer to a GET (or HEAD) of ``target``: from its route if it has one, else `respond`."""
        route = self.routes.get(target.partition("?")[0]) if self.routes else None
        return await route() if route is not None else self.respond(target, if_none_match)

    def respond(self, target: str, if_none_match: str | None = None) -> Response:
        """The answer to a GET (or HEAD) of ``target``, with ``If-None-Match`` if the request had one."""
        if target.startswith("/"):
            path = target.partition("?")[0].partition("#")[0]
        else:  # absolute form, http://host/path (RFC 9112, 3.2.2)
            try:
                path = urlsplit(target).path
            except ValueError:
                return Response(404, b"not found\n")
        path = unquote(path, errors="replace")
        if path.endswith("/"):
            path += "index.html"
        found = self._files.get(path) or self._files.get(f"{path}/index.html")
        if found is None:
            return Response(404, b"not found\n")
        if if_none_match is not None and found.etag in {tag.strip() for tag in if_none_match.split(",")}:
            return Response(304, b"", found.content_type, found.etag)
        return found


def _entity(name: str, body: bytes) -> Response:
    return Response(200, body, _content_type(name), f'"{hashlib.sha256(body).hexdigest()[:20]}"')


def _content_type(name: str) -> str:
    kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
    if kind == "application/javascript":
        kind = "text/javascript"
    if kind.startswith("text/"):
        kind += "; charset=utf-8"
    return kind


def _phrase(status: int) -> bytes:
    return HTTPStatus(status).phrase.encode("ascii")


async def _serve(
    site: StaticSite, limits: Limits, stream: RawSocket, connection: h11.Connection, remote: str
) -> None:
    try:
        while await _serve_one(site, limits, stream, connection):
            connection.start_next_cycle()
    except h11.RemoteProtocolError as error:
        logger.info("%s: bad HTTP request (%d): %s", remote, error.error_status_hint, without_quotes(str(error)))
        await _refuse(stream, connection, error.error_status_hint, limits.close_timeout)
    except Refusal as refused:
        logger.info("%s: refused HTTP request (%d): %s", remote, refused.status, refused.reason)
        await _refuse(stream, connection, refused.status, limits.close_timeout, refused.headers)
    except TimeoutError:
        logger.info("%s: page client not reading its answer within %g s; connection reset", remote, SEND_TIMEOUT)
        stream.abort()
    except STREAM_ERRORS as error:
        logger.debug("%s: http connection ended: %r", remote, error)
    except Exception:
        logger.exception("%s: internal error while serving the page", remote)
        await _refuse(stream, connection, 500, limits.close_timeout)


async def _refuse(
    stream: RawSocket,
    connection: h11.Connection,
    status: int,
    linger: float,
    extra_headers: tuple[tuple[str, str], ...] = (),
) -> None:
    """Answer with an error and close; read until the client closes, so the answer is not lost to a reset."""
    if connection.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
        return
    body = f"{HTTPStatus(status).phrase.lower()}\n".encode()
    headers = [
        ("content-type", "text/plain; charset=utf-8"),
        ("content-length", str(len(body))),
        ("connection", "close"),
        *extra_headers,
    ]
    with anyio.move_on_after(linger):
        try:
            head = connection.send(h11.Response(status_code=status, headers=headers, reason=_phrase(status)))
            await stream.send_all(head + body)
            stream.shutdown_write()
            while await stream.receive(RECEIVE_SIZE):
                pass
        except (h11.LocalProtocolError, anyio.EndOfStream, *STREAM_ERRORS):
            pass


async def _serve_one(
    site: StaticSite, limits: Limits, stream: RawSocket, connection: h11.Connection
) -> bool:
    """Answer one request; False when the connection should end."""
    request = None
    with anyio.move_on_after(limits.handshake_timeout):  # for each request, keep-alive waits included
        request = await _next_request(stream, connection, limits)
    if request is None:
        return False
    if_none_match = next((value.decode("latin-1") for name, value in request.headers if name == b"if-none-match"), None)
    response = await site.answer(request.target.decode("latin-1"), if_none_match)
    headers = [
        ("content-type", response.content_type),
        ("cache-control", "no-cache"),
        ("x-content-type-options", "nosniff"),
    ]
    if response.status != 304:
        headers.append(("content-length", str(len(response.body))))
    if response.etag is not None:
        headers.append(("etag", response.etag))
    data = connection.send(h11.Response(status_code=response.status, headers=headers, reason=_phrase(response.status)))
    if request.method != b"HEAD" and response.body:
        data += connection.send(h11.Data(data=response.body))
    data += connection.send(h11.EndOfMessage())
    with anyio.fail_after(SEND_TIMEOUT):
        await stream.send_all(data)
    return connection.our_state is h11.DONE and connection.their_state is h11.DONE


async def _next_request(
    stream: RawSocket, connection: h11.Connection, limits: Limits
) -> h11.Request | None:
    """The next GET or HEAD without a body; None once the client is done. Raises `Refusal` for others."""
    buffered = len(connection.trailing_data[0])  # what the last request left (pipelined), plus what comes now
    while True:
        event = connection.next_event()
        if event is h11.NEED_DATA:
            data = await stream.receive(RECEIVE_SIZE)
            buffered += len(data)
            connection.receive_data(data)
        elif isinstance(event, h11.Request):
            # h11 bounds only a head still incomplete; one that arrived whole is measured here.
            if buffered - len(connection.trailing_data[0]) > limits.max_header_bytes:
                raise Refusal(431, f"request head larger than {limits.max_header_bytes} bytes")
            if event.http_version not in (b"1.0", b"1.1"):
                raise Refusal(505, "only HTTP/1.0 and HTTP/1.1 are spoken here")
            if len(event.headers) > limits.max_headers:
                raise Refusal(431, f"more than {limits.max_headers} header fields")
            if event.method not in (b"GET", b"HEAD"):
                raise Refusal(405, "method not allowed", (("allow", "GET, HEAD"),))
            names = {name for name, _ in event.headers}
            if b"transfer-encoding" in names or not isinstance(connection.next_event(), h11.EndOfMessage):
                raise Refusal(400, "a GET has no body")
            return event
        elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
            return None


async def serve_page(site: StaticSite, limits: Limits, raw: RawSocket, received: bytes) -> None:
    """Serve one page connection to its end, contained: whatever happens ends this connection only.

    ``received``: what `pageport` read of it already (its first request head, at least). The caller closes it.
    """
    connection = h11.Connection(h11.SERVER, max_incomplete_event_size=limits.max_header_bytes)
    if received:
        connection.receive_data(received)
    await _serve(site, limits, raw, connection, raw.remote)
