"""A TCP forwarder on loopback that a test can cut, to drop connections the way a network does, or stall."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable


class TcpProxy:
    """Forwards ``listen_host:port`` to ``target``; `sever` drops every link without a close frame; `hold` stalls
    what goes one way or the other on every link, or new links."""

    def __init__(self, listen_host: str) -> None:
        self.target: tuple[str, int] | None = None
        self._listener = socket.create_server((listen_host, 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._links: list[socket.socket] = []
        self._refusing = False
        self.accepted = 0
        """Connections clients opened to it, refused ones included."""
        self.refused = 0
        self._requests_flow = threading.Event()
        self._requests_flow.set()
        self._dropping_replies = False
        self._links_flow = threading.Event()
        self._links_flow.set()
        self.held = 0
        """Chunks from clients kept back by `hold` and not forwarded yet."""
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

    def hold(self, *, requests: bool = False, replies: bool = False, links: bool = False) -> None:
        """Stop forwarding what clients send (``requests``: kept, and forwarded on `release`, even on links the
        client closed meanwhile) or what the target answers (``replies``: dropped); or stop linking new clients
        (``links``: each waits, connected, and is linked to the target on `release`, the target's state then)."""
        if requests:
            self._requests_flow.clear()
        if links:
            self._links_flow.clear()
        self._dropping_replies = replies

    def release(self) -> None:
        """Forward both ways again, what was held first, and link the clients that wait."""
        self._dropping_replies = False
        self._requests_flow.set()
        self._links_flow.set()

    def close(self) -> None:
        self.sever(refuse_new=True)
        self.release()  # (what was held goes nowhere now: the links are cut)
        _drop(self._listener)
        self._thread.join(timeout=5)

    def _accept_loop(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self._links_flow.wait()  # (later clients wait in the listener's backlog)
            with self._lock:
                self.accepted += 1
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
            for source, sink, gate in ((client, upstream, self._request_gate), (upstream, client, self._reply_gate)):
                threading.Thread(target=_pump, args=(source, sink, gate), daemon=True).start()

    def _request_gate(self) -> bool:
        if not self._requests_flow.is_set():
            with self._lock:
                self.held += 1
            self._requests_flow.wait()
            with self._lock:
                self.held -= 1
        return True

    def _reply_gate(self) -> bool:
        return not self._dropping_replies


def _pump(source: socket.socket, sink: socket.socket, gate: Callable[[], bool]) -> None:
    """Forward until either side ends; ``gate`` (which may wait) says whether each chunk goes on or is dropped."""
    try:
        while data := source.recv(65536):
            if gate():
                sink.sendall(data)
    except OSError:
        pass
    _drop(source)
    _drop(sink)


def _drop(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
