"""TLS on our own listeners (``--tls-cert``, ``--tls-key``): https for the page, wss for the chat.

Everything past the listener works on plain sockets (`rawsocket`, and the
WebSocket write path that sends straight to them). So TLS is a relay in
front of them, the same for every port and both transports: each accepted
TLS connection gets a socket pair; the handler serves one end exactly as it
serves a plain connection, and two tasks carry bytes between the other end
and the client, through an `ssl.SSLObject` on memory buffers:

- in: client → decrypt → the pair (the TLS handshake included: nothing
  reaches the handler before it is done, so ``--handshake-timeout`` bounds
  it too);
- out: the pair → encrypt → client; at the handler's end of writing, TLS's
  close_notify and a FIN.

The handler's way of ending is the client's: a graceful close (FIN, after
what it wrote) or, when it aborts its end (`rawsocket.abort_on_close`), a
reset of the client's TCP connection at once. A client that breaks TLS (a
bad handshake) is logged on one INFO line and its handler sees the
connection end; one that speaks plain HTTP to the TLS port is first told
so, in a plain-text 400 (`PLAIN_HTTP_ANSWER`).

The certificate is read at start (`TlsServer.load`: a file that cannot be
used stops the server with one line) and again on SIGHUP (`reload`): new
connections get the new certificate, open ones keep theirs. A reload that
fails is logged and changes nothing.

Costs per TLS connection, over a plain one: a socket pair (two more file
descriptors) and two tasks. A proxy in front (nginx, Caddy) terminating TLS
is the way for many thousands of connections.
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import ssl
from collections.abc import Awaitable, Callable

import anyio
import sniffio
import trio

from ..config import TlsFiles
from ..keyfiles import read_key_file
from .rawsocket import WaitReadable, abort_on_close, on_abort
from .tcp import format_remote

logger = logging.getLogger(__name__)

RECEIVE_SIZE = 65536

_REQUEST_LINE = re.compile(rb"[A-Z]{3,16} ")
"""How a plain HTTP request begins (a TLS handshake begins with 0x16): OpenSSL names only some methods."""
_PLAIN_HTTP_BODY = b"This port speaks TLS: use https:// or wss://\n"
PLAIN_HTTP_ANSWER = (
    b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(_PLAIN_HTTP_BODY), _PLAIN_HTTP_BODY)
)
"""What a plain HTTP request on a TLS port gets, in plain text, before the connection is closed."""

Handler = Callable[[socket.socket, tuple[str, int]], Awaitable[None]]


class CertificateError(Exception):
    """A certificate or key that cannot be used; the message says which file and why, in one line."""


def load_context(files: TlsFiles) -> ssl.SSLContext:
    """A server context for ``files``; `CertificateError` saying what is wrong with them."""
    certificate = read_key_file(files.certificate, CertificateError, "a PEM file")
    key = read_key_file(files.key, CertificateError, "a PEM file")
    if b"-----BEGIN CERTIFICATE-----" not in certificate:
        raise CertificateError(f"{files.certificate} holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
    if b"PRIVATE KEY-----" not in key:
        raise CertificateError(f"{files.key} holds no PEM private key (-----BEGIN PRIVATE KEY-----)")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_RENEGOTIATION
    context.set_alpn_protocols(["http/1.1"])  # WebSocket and our page speak HTTP/1.1 only
    try:
        context.load_cert_chain(files.certificate, files.key, password=_no_password)
    except _EncryptedKey:
        raise CertificateError(f"{files.key} is encrypted: the server needs the key without a passphrase") from None
    except ssl.SSLError as error:
        if error.reason == "KEY_VALUES_MISMATCH":
            raise CertificateError(f"{files.key} is not the private key of {files.certificate}") from None
        raise CertificateError(
            f"{files.certificate} and {files.key} are not a PEM certificate and its private key ({error})"
        ) from None
    except OSError as error:  # (changed since it was read)
        raise CertificateError(f"cannot read {files.certificate} or {files.key}: {error.strerror}") from None
    return context


class _EncryptedKey(Exception):
    pass


def _no_password() -> str:
    raise _EncryptedKey


class TlsServer:
    """The TLS side of our listeners: the current certificate, and the relay for each connection."""

    def __init__(self, files: TlsFiles, context: ssl.SSLContext, close_timeout: float) -> None:
        self.files = files
        self.context = context
        """What new connections are served with (`reload` replaces it)."""
        self._close_timeout = close_timeout

    @classmethod
    def load(cls, files: TlsFiles, close_timeout: float) -> TlsServer:
        """Read the certificate and key (blocking); `CertificateError` if they cannot be used."""
        return cls(files, load_context(files), close_timeout)

    def reload(self) -> None:
        """Read the files again (blocking); on `CertificateError` the current certificate stays."""
        self.context = load_context(self.files)

    async def serve(self, handler: Handler, sock: socket.socket, remote_address: tuple[str, int]) -> None:
        """Serve the TLS connection ``sock`` with ``handler``, which gets one end of a plain socket pair."""
        inner, outer = socket.socketpair()
        sock.setblocking(False)
        outer.setblocking(False)
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        wait: WaitReadable = anyio.wait_readable
        if sniffio.current_async_library() == "trio":  # its own wait: a coroutine frame less per idle direction
            wait = trio.lowlevel.wait_readable
        relay = _Relay(sock, outer, self.context, format_remote(*remote_address), wait)
        forget = on_abort(inner, relay.abort)
        try:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(relay.run)
                try:
                    await handler(inner, remote_address)  # first: it takes its slot before the next is accepted
                finally:
                    inner.close()  # (the handler has closed it; the relay then sees the end of what it wrote)
                    with anyio.move_on_after(self._close_timeout):
                        await relay.finished.wait()
                    relay.scope.cancel()
        finally:
            forget()
            outer.close()
            if not relay.clean:
                abort_on_close(sock)
            sock.close()


class _Relay:
    """Carries one TLS connection's bytes between the client's socket and the handler's socket pair."""

    def __init__(
        self, sock: socket.socket, outer: socket.socket, context: ssl.SSLContext, remote: str, wait: WaitReadable
    ) -> None:
        self._sock = sock
        self._wait = wait
        self._outer = outer
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._context = context
        self._tls: ssl.SSLObject | None = None
        """Made when the client's first bytes arrive: OpenSSL's state costs a silent connection nothing."""
        self._remote = remote
        self._sending = anyio.Lock()  # both directions write to the client (handshake, alerts, data)
        self._handshaken = anyio.Event()
        """Set once the TLS handshake is done, or has failed (then ``_failed`` is set too)."""
        self._failed = False
        self._first = b""
        """The first bytes the client sent, to tell plain HTTP from a broken handshake."""
        self.scope = anyio.CancelScope()
        self.finished = anyio.Event()
        self.clean = False
        """Whether both directions ended properly; else the client's connection is reset."""

    def abort(self) -> None:
        """The handler aborted its end: stop, and the client's connection is reset."""
        self.clean = False
        self.scope.cancel()

    async def run(self) -> None:
        try:
            with self.scope:
                async with anyio.create_task_group() as tasks:
                    tasks.start_soon(self._inbound)
                    await self._outbound()
                self.clean = not self.scope.cancel_called
        except* OSError as errors:  # the client reset the connection, or is gone under a write
            logger.debug("%s: TLS connection ended: %r", self._remote, errors.exceptions[0])
            _shutdown(self._outer, socket.SHUT_RDWR)
        finally:
            self._failed = True
            self._handshaken.set()
            self.finished.set()

    async def _inbound(self) -> None:
        """Client → handler: the TLS handshake, then what the client sends, decrypted."""
        incoming = self._incoming
        tls: ssl.SSLObject | None = None
        at_end = False
        while not at_end:
            data = await _receive(self._sock, self._wait)
            at_end = not data
            if at_end:
                incoming.write_eof()
            else:
                incoming.write(data)
            if tls is None:
                tls = self._tls = self._context.wrap_bio(incoming, self._outgoing, server_side=True)
            try:
                if not self._handshaken.is_set():
                    self._first = self._first or data[:32]
                    try:
                        tls.do_handshake()
                    except ssl.SSLWantReadError:
                        await self._flush()
                        continue
                    self._handshaken.set()
                # Bounded: each read takes bytes out of ``incoming``, which holds at most one receive's worth.
                while True:
                    try:
                        plain = tls.read(RECEIVE_SIZE)
                    except ssl.SSLWantReadError:
                        break
                    if not plain:  # close_notify: SSLObject.read says so with b"", not SSLZeroReturnError
                        raise ssl.SSLZeroReturnError
                    if not await _send_all(self._outer, plain):
                        await self._flush()
                        return  # the handler is gone: what the client sends goes nowhere
                await self._flush()  # (a TLS 1.3 handshake ends with session tickets; key updates are answered)
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):  # close_notify, or a plain end: nothing more comes
                await self._flush()
                break
            except ssl.SSLError as error:
                if not self._handshaken.is_set() and _REQUEST_LINE.match(self._first):
                    self._outgoing.read()  # no alert: the client would not understand it
                    async with self._sending:
                        await _send_all(self._sock, PLAIN_HTTP_ANSWER)
                self._fail(error)
                return
        if not self._handshaken.is_set():
            logger.debug("%s: gone during the TLS handshake", self._remote)
            self._failed = True
            self._handshaken.set()
        _shutdown(self._outer, socket.SHUT_WR)  # the handler sees the client's end of sending

    def _fail(self, error: ssl.SSLError) -> None:
        stage = "error" if self._handshaken.is_set() and not self._failed else "handshake failed"
        logger.info("%s: TLS %s: %s; connection ended", self._remote, stage, _describe(error))
        self._failed = True
        self._handshaken.set()
        _shutdown(self._outer, socket.SHUT_RDWR)  # the handler sees the end; what it writes goes nowhere

    async def _outbound(self) -> None:
        """Handler → client: what the handler writes, encrypted; at its end, close_notify and a FIN."""
        while True:
            try:
                data = await _receive(self._outer, self._wait)
            except OSError:  # the handler closed its end with unread data
                data = b""
            if not data:
                break
            await self._handshaken.wait()  # (an answer written before the handshake is done waits for it)
            if self._failed or (tls := self._tls) is None:
                break
            try:
                tls.write(data)
            except ssl.SSLError as error:
                self._fail(error)
                break
            await self._flush()
        if self._handshaken.is_set() and not self._failed and self._tls is not None:
            with contextlib.suppress(ssl.SSLError):
                self._tls.unwrap()  # close_notify
        await self._flush()  # (and the alert of a failed handshake)
        _shutdown(self._sock, socket.SHUT_WR)

    async def _flush(self) -> None:
        """Send what TLS has for the client (in the order it was made, whichever direction made it)."""
        async with self._sending:
            data = self._outgoing.read()
            if data and not await _send_all(self._sock, data):
                raise ConnectionResetError("the client is gone")


async def _receive(sock: socket.socket, wait_readable: WaitReadable) -> bytes:
    """Up to `RECEIVE_SIZE` bytes; ``b""`` once the other side has closed its end of sending."""
    while True:
        await wait_readable(sock)
        try:
            return sock.recv(RECEIVE_SIZE)
        except BlockingIOError:
            continue


async def _send_all(sock: socket.socket, data: bytes) -> bool:
    """Write everything; False if the other side is gone."""
    view = memoryview(data)
    while view:
        try:
            view = view[sock.send(view) :]
        except BlockingIOError:
            pass
        except OSError:
            return False
        if view:
            await anyio.wait_writable(sock)
    return True


def _shutdown(sock: socket.socket, how: int) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(how)


def _describe(error: ssl.SSLError) -> str:
    reason = error.reason or type(error).__name__
    return str(reason).replace("_", " ").lower()
