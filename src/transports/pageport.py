"""The page's port: the page over HTTP, and the chat's WebSocket too (one port is enough).

Each connection on the page's port is read until its first request head is
in (within ``--handshake-timeout``; a page connection's slot is held from
its first byte). Then that request decides what the connection is:

- a WebSocket upgrade (``Upgrade: websocket``) at ``/ws``, or at ``/`` (for
  clients that open the page's own origin): the connection becomes a
  WebSocket connection exactly as if it had come to ``--ws-port``. Its page
  slot is given back and the transport's `lifecycle.serve_connection` takes
  it from there, with what was read: the same handshake checks (400, 426,
  431), limits (503, 429: it counts among WebSocket connections), origin
  policy (403) and containment (500);
- a WebSocket upgrade at any other path: 404;
- anything else: the page (`static`), which serves it and whatever follows
  on the connection (keep-alive). A browser opens a connection of its own
  for each WebSocket, so an upgrade later on a page connection is not
  looked for (it is answered as the page request it also is).

Behind a trusted proxy (``--trusted-proxy``) the page connection's
per-address slot is the client's the first request names (the proxy's own
connection counts only in the total until then).

It routes between the two sides, so it stands above both: `http` (the page,
`static.serve_page`) and the WebSocket side, which the process hands in (a
`WebSocketEntry`: the driver's `lifecycle.serve_connection`).
"""

from __future__ import annotations

import logging
import re
import socket
from collections.abc import Awaitable, Callable
from functools import partial

import anyio
import h11

from .config import Limits
from .http import static
from .http.admission import ConnectionSlots
from .http.answers import Refusal, answer, http_response
from .http.proxies import TrustedProxies
from .http.static import StaticSite
from .net.listener import Listener
from .net.rawsocket import RawSocket, raw_socket
from .net.tls import TlsServer

logger = logging.getLogger(__name__)

RECEIVE_SIZE = 16384
UPGRADE_PATHS = frozenset({"/ws", "/"})
"""Where the page's port takes WebSocket upgrades."""

WebSocketEntry = Callable[[RawSocket, bytes], Awaitable[None]]
"""The WebSocket side: serves one connection to its end (``bytes``: what was read of it, its handshake's start)."""
PageEntry = Callable[[RawSocket, bytes], Awaitable[None]]
"""The page's side: serves one connection to its end (``bytes``: what was read of it)."""


async def serve_connection(
    sock: socket.socket,
    remote_address: tuple[str, int],
    *,
    slots: ConnectionSlots,
    limits: Limits,
    page: PageEntry,
    websocket: WebSocketEntry | None,
    tls: TlsServer | None = None,
) -> None:
    """Serve one connection of the page's port to its end; never raises, cancellation aside."""
    raw = raw_socket(sock, remote_address, tls)
    address, slot, client = raw.address, False, None
    graceful = True
    try:
        slots.take(address)
        slot = True
        received, request = await _first_request(raw, limits)
        if received is None:
            return
        target = _upgrade(request, received)
        if target is not None and websocket is not None:
            if _path(target) not in UPGRADE_PATHS:
                raise Refusal(404, "no WebSocket here: it is at /ws")
            slots.give_back(address)
            slot = False
            await websocket(raw, received)
            return
        forwarded = slots.proxies.resolve(address, request.headers) if request is not None else None
        if forwarded is not None:
            raw.forwarded_for(forwarded.client)
            slots.take_client(forwarded.client)
            client = forwarded.client
        await page(raw, received)
    except Refusal as refusal:
        logger.info("%s: refused page connection (%d): %s", raw.remote, refusal.status, refusal.reason)
        graceful = await answer(raw, refusal.response(), limits.close_timeout)
    except Exception:
        logger.exception("%s: internal error on the page's port; connection ended", raw.remote)
        graceful = await answer(raw, http_response(500, "internal error"), limits.close_timeout)
    finally:
        if slot:
            slots.give_back(address)
        if client is not None:
            slots.give_back_client(client)
        if not graceful:
            raw.abort()
        raw.close()


async def _first_request(raw: RawSocket, limits: Limits) -> tuple[bytes | None, h11.Request | None]:
    """What the client sent up to the end of its first request head, and that request.

    The request is None when what came is not one h11 accepts (the page's side
    answers that); what was received is None when nothing came before the
    client left, or before the timeout.
    """
    connection = h11.Connection(h11.SERVER, max_incomplete_event_size=limits.max_header_bytes)
    received = bytearray()
    with anyio.move_on_after(limits.handshake_timeout):
        while True:
            try:
                event = connection.next_event()
            except h11.RemoteProtocolError:
                return bytes(received), None
            if isinstance(event, h11.Request):
                return bytes(received), event
            if event is not h11.NEED_DATA:
                return bytes(received), None
            data = await raw.receive(RECEIVE_SIZE)
            if not data and not received:
                return None, None
            received += data
            connection.receive_data(data)
    logger.debug("%s: no request within %g s; connection closed", raw.remote, limits.handshake_timeout)
    return None, None


def _upgrade(request: h11.Request | None, received: bytes) -> bytes | None:
    """The target of a request that asks for a WebSocket (its ``Upgrade`` names ``websocket``); None for others.

    A request h11 refused (a repeated ``Host``, a head too large...) is looked at
    in its bytes: if it is a WebSocket's, the WebSocket side answers it, as on
    its own port.
    """
    if request is not None:
        wanted = any(
            name == b"upgrade" and b"websocket" in {token.strip().lower() for token in value.split(b",")}
            for name, value in request.headers
        )
        return request.target if wanted else None
    head = received.partition(b"\r\n\r\n")[0]
    line = _REQUEST_LINE.match(head)
    return line[1] if line is not None and _UPGRADE_HEADER.search(head) else None


_REQUEST_LINE = re.compile(rb"(?:\r?\n)*[!#$%&'*+.^_`|~0-9A-Za-z-]+ ([^ \r\n]+) HTTP/")
_UPGRADE_HEADER = re.compile(rb"\nupgrade[ \t]*:[^\r\n]*\bwebsocket\b", re.IGNORECASE)


def _path(target: bytes) -> str:
    return target.partition(b"?")[0].decode("latin-1")


async def serve(
    site: StaticSite,
    listener: Listener,
    limits: Limits,
    websocket: WebSocketEntry | None = None,
    proxies: TrustedProxies | None = None,
) -> None:
    """Serve ``site`` over HTTP from ``listener`` until it stops accepting and its connections have ended;
    with ``websocket``, WebSocket upgrades at /ws and / go there."""
    await listener.serve(partial(
        serve_connection, slots=ConnectionSlots(limits, proxies), limits=limits,
        page=partial(static.serve_page, site, limits), websocket=websocket, tls=listener.tls,
    ))
