"""Server memory per idle connection, plain and TLS: a fresh server per measurement, its VmRSS before and after.

    python bench/tls_memory.py                         # both transports, 2000 connections, 3 repetitions
    python bench/tls_memory.py --transports wsproto --connections 1000 --repeat 5 --kinds tls,stalled

Kinds of connection (``--kinds``):

- ``plain``: WebSocket connections in rooms of 10 (bench/loadgen.py), idle once joined;
- ``tls``: the same over wss:// (the server's own TLS, a trustme certificate);
- ``stalled``: TLS clients that send their ClientHello and then nothing (the server has answered it and
  waits for the client's Finished);
- ``silent``: TCP connections to the TLS port that send nothing at all;
- ``history``: wss:// connections, each joining one room that holds `HISTORY_TALKS` talks of
  `HISTORY_CHARS` characters (about 60 kB sent to each at its join), idle once joined.

Prints a Markdown table: KiB of server RSS per connection, the median of ``--repeat`` fresh servers
(and every repetition). The server runs the ``src`` it finds on PYTHONPATH, so two trees compare by
running this twice.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from run import HOST, LIMIT_FLAGS, Certificates, free_port, rss_kib, stop, wait_accepting
from websockets.asyncio.client import ClientConnection, connect

BENCH = Path(__file__).resolve().parent
KINDS = ("plain", "tls", "silent", "stalled", "history")
HISTORY_TALKS = 100
HISTORY_CHARS = 500
SETTLE_SECONDS = 2.0  # the server has read every ClientHello by then (a few thousand, on loopback)


def start_server(transport: str, port: int, connections: int, tls: Certificates | None) -> subprocess.Popen[bytes]:
    """Our server on ``port``, limits lifted, the handshake timeout far away (stalled clients stay)."""
    tls_flags = [] if tls is None else ["--tls-cert", str(tls.certificate), "--tls-key", str(tls.key)]
    command = [sys.executable, "-m", "transports", "--transport", transport, "--db", ":memory:",
               "--host", HOST, "--http-port", str(free_port()), "--ws-port", str(port), "--log-level", "WARNING",
               "--max-connections", str(connections + 100), "--max-connections-per-address", str(connections + 100),
               "--handshake-timeout", "3600", *LIMIT_FLAGS, *tls_flags]
    return subprocess.Popen(command, stdin=subprocess.DEVNULL)


def open_idle(port: int, connections: int, tls: Certificates | None) -> subprocess.Popen[str]:
    """The load generator's connections, joined in rooms of 10; it waits on stdin until it is stopped."""
    scheme, ca = ("ws", []) if tls is None else ("wss", ["--ca-file", str(tls.ca)])
    generator = subprocess.Popen(
        [sys.executable, str(BENCH / "loadgen.py"), "--url", f"{scheme}://{HOST}:{port}/", *ca,
         "--connections", str(connections), "--room-size", "10"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert generator.stdout is not None
    event = json.loads(generator.stdout.readline() or "{}")
    if event.get("event") != "joined":
        stop(generator)
        raise RuntimeError(f"the load generator did not join: {event}")
    return generator


def open_stalled(port: int, connections: int, hello: bool) -> list[socket.socket]:
    """TCP connections that send a ClientHello (``hello``) or nothing, and then wait."""
    client = ssl.create_default_context()
    client.check_hostname, client.verify_mode = False, ssl.CERT_NONE
    sockets = []
    for _ in range(connections):
        sock = socket.create_connection((HOST, port))
        if hello:
            incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
            tls = client.wrap_bio(incoming, outgoing, server_hostname=None)
            with contextlib.suppress(ssl.SSLWantReadError):  # (it waits for the server's answer)
                tls.do_handshake()
            sock.sendall(outgoing.read())
        sockets.append(sock)
    return sockets


def joined_with_history(port: int, connections: int, tls: Certificates, server_pid: int) -> float:
    """KiB of server RSS per connection that joined a room holding history (the writer's own not counted)."""
    context = ssl.create_default_context(cafile=str(tls.ca))
    url = f"wss://{HOST}:{port}/"

    async def joined(join_key: str | None) -> tuple[ClientConnection, dict[str, object]]:
        client = await connect(url, ssl=context, max_size=None, ping_interval=None)
        await client.send(json.dumps({"type": "init"} if join_key is None else {"type": "init", "joinKey": join_key}))
        while (event := json.loads(await client.recv()))["type"] != "init":
            pass
        return client, event

    async def main() -> float:
        writer, init = await joined(None)
        for _ in range(HISTORY_TALKS):
            await writer.send(json.dumps({"type": "talk", "payload": "x" * HISTORY_CHARS}))
            await writer.recv()
        await asyncio.sleep(0.5)
        before = rss_kib(server_pid)
        clients = [(await joined(str(init["joinKey"])))[0] for _ in range(connections)]
        await asyncio.sleep(SETTLE_SECONDS / 2)
        after = rss_kib(server_pid)
        for client in [writer, *clients]:
            client.transport.abort()
        return (after - before) / connections

    return asyncio.run(main())


def measure(transport: str, kind: str, connections: int, certificates: Certificates) -> float:
    """KiB of server RSS per connection of ``kind``, with one fresh server."""
    tls = None if kind == "plain" else certificates
    port = free_port()
    server = start_server(transport, port, connections, tls)
    try:
        wait_accepting(server, port)
        time.sleep(0.5)
        if kind == "history":
            return joined_with_history(port, connections, certificates, server.pid)
        before = rss_kib(server.pid)
        if kind in ("plain", "tls"):
            generator = open_idle(port, connections, tls)
            try:
                time.sleep(SETTLE_SECONDS / 2)
                after = rss_kib(server.pid)
            finally:
                stop(generator)
        else:
            sockets = open_stalled(port, connections, hello=kind == "stalled")
            try:
                time.sleep(SETTLE_SECONDS)
                after = rss_kib(server.pid)
            finally:
                for sock in sockets:
                    sock.close()
        return (after - before) / connections
    finally:
        stop(server)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transports", default="trio-websocket,wsproto")
    parser.add_argument("--kinds", default=",".join(KINDS), help="from " + ",".join(KINDS))
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    certificates = Certificates.make(Path(tempfile.mkdtemp(prefix="chat-tls-memory-")))
    print(f"PYTHONPATH={os.environ.get('PYTHONPATH', '')} connections={args.connections} repeat={args.repeat}")
    print("| transport | kind | KiB / conn (median) | every repetition |\n|---|---|---:|---|")
    for transport in args.transports.split(","):
        for kind in args.kinds.split(","):
            values = [measure(transport, kind, args.connections, certificates) for _ in range(args.repeat)]
            print(f"| {transport} | {kind} | {statistics.median(values):.1f} | "
                  f"{', '.join(f'{value:.1f}' for value in values)} |", flush=True)


if __name__ == "__main__":
    main()
