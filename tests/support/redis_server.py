"""A real redis-server for tests: started on a free loopback port in a folder of its own, stopped by its PID."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis
import trustme

from tcp_proxy import TcpProxy

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def free_port(*hosts: str) -> int:
    """A TCP port free on every one of these addresses (default: 127.0.0.1)."""
    hosts = hosts or ("127.0.0.1",)
    while True:
        with socket.socket() as probe:
            probe.bind((hosts[0], 0))
            port: int = probe.getsockname()[1]
        try:
            for host in hosts[1:]:
                with socket.socket() as other:
                    other.bind((host, port))
        except OSError:
            continue
        return port


class RedisServer:
    """One redis-server with an append-only file (the durable setup the docs ask for), restartable."""

    def __init__(self, folder: Path, password: str | None = None, *, tls: bool = False) -> None:
        self.folder = folder
        self.port = free_port()
        self.tls_port = free_port() if tls else None
        self.password = password
        self.unix_socket = folder / "redis.sock"
        self.process: subprocess.Popen[bytes] | None = None
        self._client: redis.Redis | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    @property
    def tls_url(self) -> str:
        """rediss:// with the test CA as the one to trust (made by trustme when the server starts)."""
        return f"rediss://127.0.0.1:{self.tls_port}/0?ssl_ca_certs={self.folder / 'ca.pem'}"

    @property
    def unix_url(self) -> str:
        auth = f"&password={self.password}" if self.password else ""
        return f"unix://{self.unix_socket}?db=0{auth}"

    def client(self) -> redis.Redis:
        """A client for the test's own checks; closed when the server stops."""
        if self._client is None:
            self._client = redis.Redis(port=self.port, password=self.password, socket_timeout=5)
        return self._client

    def start(self) -> None:
        assert self.process is None
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder),
             "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--daemonize", "no",
             "--unixsocket", str(self.unix_socket), "--unixsocketperm", "700",
             *(["--requirepass", self.password] if self.password else []), *self._tls_flags()],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                with redis.Redis(port=self.port, password=self.password, socket_timeout=5) as probe:
                    probe.ping()
                    return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def _tls_flags(self) -> list[str]:
        if self.tls_port is None:
            return []
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1")
        cert.private_key_pem.write_to_path(self.folder / "key.pem")
        cert.cert_chain_pems[0].write_to_path(self.folder / "cert.pem")
        ca.cert_pem.write_to_path(self.folder / "ca.pem")
        return ["--tls-port", str(self.tls_port), "--tls-cert-file", str(self.folder / "cert.pem"),
                "--tls-key-file", str(self.folder / "key.pem"), "--tls-ca-cert-file", str(self.folder / "ca.pem"),
                "--tls-auth-clients", "no"]

    def stop(self) -> None:
        """Stop it as an operator would (SIGTERM: it writes out what it has); nothing listens on the port after."""
        if self._client is not None:
            self._client.close()
            self._client = None
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def wipe(self) -> None:
        """Lose its data, as a Redis without persistence does when it restarts (call while stopped)."""
        assert self.process is None
        for path in self.folder.iterdir():
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()


@contextmanager
def redis_server(folder: Path, password: str | None = None, *, tls: bool = False) -> Iterator[RedisServer]:
    server = RedisServer(folder, password, tls=tls)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def redis_proxy(server: RedisServer) -> Iterator[TcpProxy]:
    """A `TcpProxy` to the server (``redis://127.0.0.1:<its port>/0`` reaches Redis through it), for `stalled`."""
    proxy = TcpProxy("127.0.0.1")
    proxy.target = ("127.0.0.1", server.port)
    try:
        yield proxy
    finally:
        proxy.close()


STALLS = ["paused", "requests held", "replies dropped", "stopped"]
"""The ways `stalled` makes Redis stop answering, each at a step of a request."""


@contextmanager
def stalled(server: RedisServer, kind: str, proxy: TcpProxy) -> Iterator[None]:
    """Redis stops answering at one step of a request, and answers again after (even if the test fails).

    ``paused``: before a script runs (CLIENT PAUSE WRITE: scripts wait in Redis, connecting and reading do not);
    ``requests held``: in flight (``proxy``, between the chat and Redis, holds what is sent and forwards it late);
    ``replies dropped``: after the script ran (``proxy`` drops what Redis answers); ``stopped``: SIGSTOP, at
    whatever step each request is.
    """
    assert server.process is not None
    if kind == "stopped":
        os.kill(server.process.pid, signal.SIGSTOP)
    elif kind == "paused":
        server.client().client_pause(60_000, all=False)
    else:
        assert kind in STALLS, kind
        proxy.hold(requests=kind == "requests held", replies=kind == "replies dropped")
    try:
        yield
    finally:
        if kind == "stopped":
            os.kill(server.process.pid, signal.SIGCONT)
        elif kind == "paused":
            server.client().client_unpause()
        else:
            proxy.release()
            deadline = time.monotonic() + 5
            while proxy.held and time.monotonic() < deadline:  # what was held reaches Redis
                time.sleep(0.02)
