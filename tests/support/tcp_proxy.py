"""A TCP forwarder on loopback that a test can cut, to drop connections the way a network does."""

from __future__ import annotations

import contextlib
import socket
import threading


class TcpProxy:
    """Forwards ``listen_host:port`` to ``target``; `sever` drops every link without a close frame."""

    def __init__(self, listen_host: str) -> None:
        self.target: tuple[str, int] | None = None
        self._listener = socket.create_server((listen_host, 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._links: list[socket.socket] = []
        self._refusing = False
        self.refused = 0
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    def sever(self, *, refuse_new: bool) -> None:
        """Cut every open link; with ``refuse_new``, also cut new ones as they arrive."""
        with self._lock:
            self._refusing = refuse_new
            links, self._links = self._links, []
        for sock in links:
            _drop(sock)

    def restore(self) -> None:
        with self._lock:
            self._refusing = False

    def close(self) -> None:
        self.sever(refuse_new=True)
        _drop(self._listener)
        self._thread.join(timeout=5)

    def _accept_loop(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                refusing = self._refusing
                if refusing:
                    self.refused += 1
            if refusing or self.target is None:
                _drop(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _drop(client)
                continue
            upstream.settimeout(None)
            with self._lock:
                self._links += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(source, sink), daemon=True).start()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    _drop(source)
    _drop(sink)


def _drop(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
