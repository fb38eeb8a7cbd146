"""One TCP connection on either WebSocket transport, from its first byte to its end.

`serve_connection` is the one place that contains what goes wrong while a
connection is handled, for both transports. Whatever happens there — a
malformed handshake, a bug in the origin check, in the application or in
the write path — ends that connection only, and is logged once: one INFO
line for a client's mistake, a traceback for a bug of ours. The listener and
every other connection carry on.

A connection goes through two stages, and what it is answered depends on
the stage it reached:

- ``handshake``: until our 101 is sent. A connection over a limit (429,
  503) is refused without a look at its request, within a second (but a
  connection from a trusted proxy is counted per address by the client its
  request names, so its 429 comes once the request is read). A refusal
  of the request (`http.answers.Refusal`: bad request 400, version 426, origin
  403) or a bug of ours (500) is answered over HTTP with a short body; then
  we stop writing and read until the client closes, so that it gets the
  answer rather than a reset.
- ``open``: the WebSocket, run by `Hub.serve`. A bug in the application is
  answered with close 1011 there; a bug in the write path cannot be answered
  (the stream may stand mid-frame) and aborts the connection.

How it ends: gracefully (FIN) only when it finished properly — its closing
handshake completed, the client went away first, or a refusal was read.
Every other end — a close that timed out, a dead or too slow peer, a bug,
the server stopping — is an abort (RST, ``SO_LINGER`` 0), so the kernel
drops at once whatever it still holds for the connection instead of
trickling it out to a client we gave up on.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Protocol, TypeVar

import anyio

from ..config import Limits
from ..http.answers import Refusal, answer, http_response
from .handshake import Handshake, HandshakeParser
from .host import Host
from .peer import Peer

logger = logging.getLogger(__name__)

RECEIVE_SIZE = 65536
"""How much one read asks the socket for, in every stage of a WebSocket connection."""


class Link(Protocol):
    """The byte stream of one accepted TCP connection, as a transport hands it to `serve_connection`."""

    @property
    def address(self) -> str:
        """The client's IP address."""

    @property
    def remote(self) -> str:
        """``host:port`` of the client, for log lines."""

    async def receive(self, max_bytes: int) -> bytes:
        """Up to ``max_bytes``; ``b""`` once the client has closed or reset the connection."""

    async def send_all(self, data: bytes) -> None:
        """Write everything; raises `OSError` once the client is gone."""

    def shutdown_write(self) -> None:
        """Send FIN: we write nothing more."""

    def abort(self) -> None:
        """Make the coming close a reset (``SO_LINGER`` 0)."""

    def close(self) -> None:
        """Close the socket (idempotent)."""

    def forwarded_for(self, client: str) -> None:
        """The connection comes from a trusted proxy for ``client``: from now on it is that client's."""


L = TypeVar("L", bound=Link)

Accept = Callable[[L, Handshake], AbstractAsyncContextManager[Peer]]
"""A transport's way of opening the WebSocket of an accepted handshake on its link.

Entering it sets the connection up, sends the 101 as its last step, and
yields the `Peer` that `Hub.serve` runs; leaving it tears the transport's
side down. Whatever it raises before the 101 is answered with HTTP 500.
"""


async def serve_connection(link: L, received: bytes = b"", *, hub: Host, limits: Limits, accept: Accept[L]) -> None:
    """Run one connection to its end and close it; never raises, cancellation aside.

    ``received``: what was read of it already (another port's, `pageport`, that read a request's head to route it).
    """
    graceful = False
    stage = "handshake"
    try:
        try:
            hub.admit(link.address)
        except Refusal as refusal:  # over a connection limit: a second to send its request and read the answer
            hub.count_refusal(refusal.status)
            logger.log(_level(refusal), "%s: refused connection (%d): %s", link.remote, refusal.status, refusal.reason)
            brief = min(limits.close_timeout, 1.0)
            with anyio.move_on_after(brief), contextlib.suppress(Refusal):
                # Clients may not expect an answer before their request is out.
                await _receive_handshake(link, limits, received)
            graceful = await answer(link, refusal.response(), brief)
            return
        address, client = link.address, None
        try:
            handshake = await _receive_handshake(link, limits, received)
            if handshake is None:
                graceful = True  # the client went away first, or timed out (and the link is set to abort)
                return
            forwarded = hub.forwarded(address, handshake)
            if forwarded is not None:  # from a trusted proxy: the client it names is counted, and logged
                link.forwarded_for(forwarded.client)
                hub.admit_client(forwarded.client)
                client = forwarded.client
            hub.check_origin(handshake, forwarded)
            async with accept(link, handshake) as peer:
                stage = "open"
                del handshake, forwarded  # an idle connection keeps nothing of its handshake
                graceful = await hub.serve(peer)
        finally:
            hub.release(address, client)
    except Refusal as refusal:
        hub.count_refusal(refusal.status)
        logger.log(_level(refusal), "%s: refused handshake (%d): %s", link.remote, refusal.status, refusal.reason)
        graceful = await answer(link, refusal.response(), limits.close_timeout)
    except Exception as error:
        if _broken_connection(error):  # the client went away under a write: nothing to answer, nothing of ours
            logger.debug("%s: connection broke in the %s stage: %r", link.remote, stage, error)
            return
        logger.exception("%s: internal error in the %s stage; connection ended", link.remote, stage)
        if stage == "handshake":
            hub.count_refusal(500)
            graceful = await answer(link, http_response(500, "internal error"), limits.close_timeout)
    finally:
        if not graceful:
            link.abort()
        link.close()


def _level(refusal: Refusal) -> int:
    """A full server is the operator's business; everything else is the client's."""
    return logging.WARNING if refusal.status == 503 else logging.INFO


def _broken_connection(error: BaseException) -> bool:
    """`OSError` alone, or a task group's worth of them: what `Link.send_all` raises once the client is gone."""
    if isinstance(error, BaseExceptionGroup):
        return all(_broken_connection(inner) for inner in error.exceptions)
    return isinstance(error, OSError)


async def _receive_handshake(link: Link, limits: Limits, received: bytes) -> Handshake | None:
    """The client's opening handshake (which begins with ``received``); None if it went away first or took too
    long. Raises `Refusal`."""
    parser = HandshakeParser(limits.max_header_bytes, limits.max_headers)
    try:
        with anyio.fail_after(limits.handshake_timeout):
            if received:
                handshake = parser.receive_data(received)
                if handshake is not None:
                    return handshake
            while True:
                data = await link.receive(RECEIVE_SIZE)
                if not data:
                    parser.receive_eof()  # a refusal if the request had begun: the client may still read
                    logger.debug("%s: gone before sending a handshake", link.remote)
                    return None
                handshake = parser.receive_data(data)
                if handshake is not None:
                    return handshake
    except TimeoutError:
        logger.info("%s: no WebSocket handshake within %g s; connection dropped", link.remote, limits.handshake_timeout)
        link.abort()
        return None
