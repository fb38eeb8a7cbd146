"""TLS on our own listeners (``--tls-cert``, ``--tls-key``): https for the page, wss for the chat.

Theory of operation
===================

TLS runs in each connection's own read and write path, the way the plain
bytes do: a `TlsSocket` is the `RawSocket` of an accepted TLS connection, with
an `ssl.SSLObject` over memory buffers between its socket and its readers and
writers. No task, socket pair or lock of its own: a connection costs its
OpenSSL state (made when the client first sends) and nothing else.

The two memory buffers are the server's, shared by all its connections
(`TlsServer`): OpenSSL's memory buffers never shrink, so a pair per
connection kept room for the largest handshake, read and write it ever made.
A shared pair holds nothing between calls: every call that gives TLS
records takes back what TLS did not read (``_rest``, on the connection), and
every call that may make records takes them out, before it returns. All of
a server's connections run on one thread.

- **Reading** (`TlsSocket.receive_now`) takes what the socket has, feeds it to
  TLS and gives back the plaintext: the TLS handshake first (nothing reaches
  the reader before it is done, so ``--handshake-timeout`` bounds it too),
  then the client's data. A read that stops with more deciphered than it
  asked for, or with whole records left over (``_rest``), says so (``_full``)
  and is read again before the socket is waited for. close_notify, or the
  end of the TCP stream, reads as the end (``b""``).
- **Writing**: what the server sends is encrypted and written at once
  (`send_all` in the HTTP stage; `encryption` hands the WebSocket's write path
  the cipher, so its frames are encrypted where they are written). TLS's own
  records (the handshake's, a key update's answer, alerts) go out in the same
  order: through the socket while the connection's own writes go through
  `send_all`, and through the WebSocket's write path (``output``) once it
  owns the wire. Records are made in sequence and must leave in it.
- **Ending**: `shutdown_write` and a graceful `close` send close_notify first
  (when nothing else is waiting to go out), an abort resets the TCP
  connection without it.

A client that breaks TLS (a bad handshake, a bad record) is logged on one INFO
line and its reader sees the connection end; one that speaks plain HTTP to a
TLS port is first told so, in a plain-text 400 (`PLAIN_HTTP_ANSWER`).

The certificate is read at start (`TlsServer.load`: a file that cannot be
used stops the server with one line) and again on SIGHUP (`reload`): new
connections get the new certificate, open ones keep theirs. A reload that
fails is logged and changes nothing.
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import ssl
from collections.abc import Awaitable, Callable

import anyio

from ..config import TlsFiles
from ..keyfiles import read_key_file
from .rawsocket import Cipher, RawSocket, WaitReadable
from .readiness import Inline

logger = logging.getLogger(__name__)

_REQUEST_LINE = re.compile(rb"[A-Z]{3,16} ")
"""How a plain HTTP request begins (a TLS handshake begins with 0x16): OpenSSL names only some methods."""
_FIRST_BYTES = 32
"""How much of what a client sends first is kept until its handshake is done, to tell plain HTTP."""
_PLAIN_HTTP_BODY = b"This port speaks TLS: use https:// or wss://\n"
PLAIN_HTTP_ANSWER = (
    b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(_PLAIN_HTTP_BODY), _PLAIN_HTTP_BODY)
)
"""What a plain HTTP request on a TLS port gets, in plain text, before the connection is closed."""
RECEIVE_SIZE = 65536
SLICE = 4096
"""How much goes through TLS at a time, either way: records of 4 KiB, which a client deciphers as they come,
and a call's work bounded (a 60 kB history is 15 calls). A record per 4 KiB costs under 1 % more bytes."""

Output = Callable[[bytes], None]
"""Where TLS's own records go once the connection's write path owns the wire (`TlsSocket.encryption`)."""


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
    """The TLS side of our listeners: the certificate new connections are served with."""

    def __init__(self, files: TlsFiles, context: ssl.SSLContext) -> None:
        self.files = files
        self.context = context
        """What new connections are served with (`reload` replaces it)."""
        self._buffers = ssl.MemoryBIO(), ssl.MemoryBIO()
        """What every connection's TLS reads records from and writes them to, each connection's emptied before
        its call returns (`TlsSocket`): a connection holds no buffer of OpenSSL's of its own."""

    @classmethod
    def load(cls, files: TlsFiles) -> TlsServer:
        """Read the certificate and key (blocking); `CertificateError` if they cannot be used."""
        return cls(files, load_context(files))

    def reload(self) -> None:
        """Read the files again (blocking); on `CertificateError` the current certificate stays."""
        self.context = load_context(self.files)

    def accept(self, sock: socket.socket, address: str, port: int, wait_readable: WaitReadable) -> TlsSocket:
        """An accepted connection (non-blocking, no Nagle) as a `TlsSocket` with the current certificate."""
        return TlsSocket(sock, address, port, wait_readable, self.context, self._buffers)


class TlsSocket(RawSocket):
    """An accepted TLS connection: `receive_now` gives plaintext, and what is sent through it is encrypted.

    States: waiting for the client's first bytes (``_tls`` None), in the
    handshake (``_first`` holds the start of what came), open; each direction
    ends on its own (``_read_end``: close_notify, the TCP stream's end, a
    failure; ``_write_end``: our close_notify, a failure, a client gone).
    """

    __slots__ = (
        "_context", "_eof", "_first", "_incoming", "_outgoing", "_output", "_read_end", "_rest", "_tls", "_wire",
        "_write_end",
    )

    def __init__(
        self,
        sock: socket.socket,
        address: str,
        port: int,
        wait_readable: WaitReadable,
        context: ssl.SSLContext,
        buffers: tuple[ssl.MemoryBIO, ssl.MemoryBIO],
    ) -> None:
        super().__init__(sock, address, port, wait_readable)
        self._context = context
        self._tls: ssl.SSLObject | None = None
        """Made when the client's first bytes arrive: OpenSSL's state costs a silent connection nothing."""
        self._incoming, self._outgoing = buffers
        """Where TLS reads this connection's records from and writes them to: one pair for all of a server's
        connections (OpenSSL's memory buffers keep their largest size), so every call that gives TLS records
        takes back what it did not read (``_keep_rest``), and every call that may make records takes them out
        (``_send_records``, the cipher) before it returns."""
        self._rest = b""
        """Records received that TLS has not read yet (a read that had its fill; what came after the handshake)."""
        self._eof = False
        """The TCP stream has ended: reading ends once no whole record is left."""
        self._first: bytes | None = b""
        """The start of what the client sent, until its handshake is done (None once it is)."""
        self._wire = b""
        """Records the socket has not taken yet, while the connection's own writes go through us."""
        self._output: Output | None = None
        self._read_end = False
        self._write_end = False

    # Reading ------------------------------------------------------------------------------------------------

    def wait_readable(self, inline: Inline | None = None) -> Awaitable[None]:
        if self._wire:  # the handshake's records first: the client waits for them before it sends more
            return self._send_wire_then_wait()
        return super().wait_readable(inline)

    async def _send_wire_then_wait(self) -> None:
        with contextlib.suppress(OSError):  # (the read that follows finds the end)
            await self._drain()
        await super().wait_readable()

    def receive_now(self, max_bytes: int) -> bytes | None:
        if self._read_end:
            return b""
        if self._full and self._first is None:  # TLS may hold more than the last read gave: that first
            plain = self._decrypt(max_bytes)
            if plain:
                self._full = True  # (and the socket may hold more than its last read took)
                return plain
        try:
            data = self.sock.recv(max_bytes)
        except BlockingIOError:
            self._full = False
            return None
        except OSError:
            data = b""
        socket_full = len(data) == max_bytes
        if data and self._first is None:
            plain = self._feed(data, max_bytes)
        elif not self._take(data):
            return b""
        elif self._first is not None:  # still in the handshake
            self._full = socket_full
            return None
        else:
            plain = self._decrypt(max_bytes)
        self._full = self._full or socket_full
        return plain or (b"" if self._read_end else None)

    def _feed(self, data: bytes, max_bytes: int) -> bytes:
        """Up to ``max_bytes`` of plaintext from ``data``, fed to TLS a `SLICE` at a time (the rest waits)."""
        if len(data) <= SLICE:
            self._give(data)
            return self._decrypt(max_bytes)
        view = memoryview(data)
        chunks: list[bytes] = []
        size = 0
        for start in range(0, len(data), SLICE):
            if size >= max_bytes or self._read_end:
                if not self._read_end:
                    self._rest += data[start:]
                    self._full = True  # slices left after the reader had its fill: read again before waiting
                break
            self._give(view[start:start + SLICE])
            chunk = self._decrypt(max_bytes - size)
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)

    def _take(self, data: bytes) -> bool:
        """Feed what the client sent to TLS, and go on with the handshake; False once reading has ended."""
        if self._tls is None:
            if not data:
                self._read_end = True
                return False
            self._tls = self._context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        if not data:
            self._eof = True
            if self._first is None:
                return True  # (the reader takes the whole records left, then finds the end)
            logger.debug("%s: gone during the TLS handshake", self.remote)
            self._read_end = self._write_end = True
            return False
        assert self._first is not None
        self._first = (self._first + data)[:_FIRST_BYTES]
        self._give(data)
        try:
            self._tls.do_handshake()
        except ssl.SSLWantReadError:
            self._keep_rest()
            self._send_records()
            return True
        except ssl.SSLError as error:
            self._fail(error)
            return False
        self._first = None
        self._keep_rest()  # (what came after the client's Finished)
        self._send_records()  # (a TLS 1.3 handshake ends with session tickets)
        return True

    def _give(self, data: bytes | memoryview) -> None:
        """Put ``data`` in TLS's buffer, after what TLS left there last time."""
        if self._rest:
            self._incoming.write(self._rest)
            self._rest = b""
        self._incoming.write(data)

    def _keep_rest(self) -> None:
        """Take back from TLS's buffer what it did not read (the next connection's records go there)."""
        if self._incoming.pending:
            rest = self._incoming.read()
            if not self._read_end:  # (what came after the end goes nowhere)
                self._rest += rest

    def _decrypt(self, max_bytes: int) -> bytes:
        """Up to ``max_bytes`` of plaintext from what TLS holds (``b""`` if no record is whole yet).

        Bounded: each read takes a record out of the incoming buffer, which holds
        at most what one receive brought and a record's worth more. The loop
        stops as soon as nothing is left to decipher: a read that finds nothing
        raises, and an exception per message is a measurable part of its cost.
        """
        tls = self._tls
        assert tls is not None
        chunks: list[bytes] = []
        size = 0
        self._full = False
        incoming = self._incoming
        if self._rest:
            self._give(b"")
        try:
            while size < max_bytes:
                chunk = tls.read(max_bytes - size)
                if not chunk:  # close_notify: SSLObject.read says so with b"", not SSLZeroReturnError
                    self._read_end = True
                    break
                chunks.append(chunk)
                size += len(chunk)
                if not incoming.pending and not tls.pending():  # all taken: no read to end in SSLWantReadError
                    break
            else:
                self._full = True  # more may be whole in TLS's buffer: read again before waiting
        except ssl.SSLWantReadError:
            self._read_end = self._eof  # (no whole record left, none to come)
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):  # close_notify, or the TCP stream's end without it
            self._read_end = True
        except ssl.SSLError as error:
            self._fail(error)
        if incoming.pending:  # (per read: no call when TLS took everything, as it mostly does)
            self._keep_rest()
        if self._outgoing.pending:  # a key update's answer, an alert
            self._send_records()
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def _fail(self, error: ssl.SSLError) -> None:
        """The client broke TLS: tell it (an alert, or plain HTTP's answer), and end both ways."""
        self._read_end = True
        self._incoming.read()  # (what it sent after the error goes nowhere)
        self._rest = b""
        if self._first is not None and _REQUEST_LINE.match(self._first):
            self._outgoing.read()  # no alert: the client would not understand it
            self._send(PLAIN_HTTP_ANSWER)
        else:
            stage = "handshake failed" if self._first is not None else "error"
            logger.info("%s: TLS %s: %s; connection ended", self.remote, stage, _describe(error))
            self._send_records()  # (the alert)
        self._write_end = True

    # Writing ------------------------------------------------------------------------------------------------

    async def send_all(self, data: bytes) -> None:
        if self._first is not None:
            await self._finish_handshake()
        if self._write_end or self._tls is None:
            raise ConnectionResetError("the TLS connection has ended")
        self._send_records(self._encrypt(data))
        await self._drain()

    def encryption(self, output: Output) -> Cipher:
        """Hand the wire to the caller, which writes everything from now on: TLS's own records go to ``output``.

        Returns the cipher: it encrypts what the caller then writes (in the
        order the caller writes it). Call it once the handshake is done and
        nothing of ours waits to go out (`send_all` returned).
        """
        assert not self._wire
        assert self._tls is not None
        self._output = output
        write, read, sliced = self._tls.write, self._outgoing.read, self._encrypt

        def encrypt(data: bytes | memoryview) -> bytes:  # (a call per frame: the short way for the usual one)
            if len(data) > SLICE:
                return sliced(data)
            try:
                write(data)
            finally:  # (a write that failed leaves nothing behind for the next connection's records)
                records = read()
            return records

        return encrypt

    def _encrypt(self, data: bytes | memoryview) -> bytes:
        """The records for ``data``, a `SLICE` of it at a time (the HTTP stage's answers, and large frames)."""
        assert self._tls is not None
        view = memoryview(data)
        records = []
        try:
            for start in range(0, len(data), SLICE):
                self._tls.write(view[start:start + SLICE])
                records.append(self._outgoing.read())
        except BaseException:
            self._outgoing.read()  # (what a failed write made goes nowhere, never with the next connection's)
            raise
        return b"".join(records)

    def shutdown_write(self) -> None:
        self._close_notify()
        if not self._wire:
            super().shutdown_write()

    def abort(self) -> None:
        self._read_end = self._write_end = True  # (no close_notify: a reset is what the client gets)
        super().abort()

    def close(self) -> None:
        self._close_notify()
        self._read_end = self._write_end = True
        super().close()

    def _close_notify(self) -> None:
        if self._tls is None or self._first is not None or self._write_end:
            return
        self._write_end = True
        with contextlib.suppress(ssl.SSLError):
            self._tls.unwrap()
        self._send_records()

    def _send_records(self, records: bytes | None = None) -> None:
        """Send ``records``, or the records TLS has made, after everything made before them."""
        if records is None:
            records = self._outgoing.read()
        if not records:
            return
        if self._output is not None:
            self._output(records)
        else:
            self._send(records)

    def _send(self, data: bytes) -> None:
        """Write ``data`` after ``_wire``, as far as the socket takes it now; the rest waits in ``_wire``."""
        self._wire += data
        try:
            sent = self.sock.send(self._wire)
        except BlockingIOError:
            return
        except OSError:  # the client is gone (a read finds the end; `_drain` says so)
            self._wire = b""
            self._write_end = True
            return
        self._wire = self._wire[sent:]

    async def _drain(self) -> None:
        """Wait until the socket has taken ``_wire``; `ConnectionResetError` if writing has ended."""
        while self._wire:
            await anyio.wait_writable(self.sock)
            self._send(b"")
        if self._write_end:
            raise ConnectionResetError("the TLS connection has ended")

    async def _finish_handshake(self) -> None:
        """Read on until the handshake is done (what came after it stays in TLS's buffer for the reader)."""
        while self._first is not None and not self._read_end:
            await self.wait_readable()
            try:
                data = self.sock.recv(RECEIVE_SIZE)
            except BlockingIOError:
                self._full = False
                continue
            except OSError:
                data = b""
            self._take(data)
        self._full = True  # (the reader deciphers what came with the handshake's end)


def _describe(error: ssl.SSLError) -> str:
    reason = error.reason or type(error).__name__
    return str(reason).replace("_", " ").lower()
