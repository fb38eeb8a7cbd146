"""SIGTERM drains: readiness 503 at once, no new connections, every client closed with 1012, what was sent
stored, exit 0 within ``--drain-timeout`` even when clients never answer; with ``--workers``, every worker."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from chat_client import ChatClient
from probes import close_code_of, get, scrape, value, wait_for
from processes import children, server_process
from raw_websocket import client_frame, close_code, open_raw, read_until_closed
from redis_server import redis_server
from transports.config import Transport
from transports.ops.drain import BATCH_EVERY, close_spread

DRAIN_TIMEOUT = 3.0
SLACK = 1.0
"""What the process's own exit may add to its drain (interpreter teardown)."""


def test_sigterm_closes_everyone_with_1012_stores_what_was_sent_and_exits_in_time(
    transport: Transport, tmp_path: Path
) -> None:
    database = str(tmp_path / "chat.db")
    args = ("--transport", transport.value, "--http-port", "0", "--ws-port", "0", "--db", database,
            "--drain-timeout", str(DRAIN_TIMEOUT), "--ping-interval", "0")
    with ExitStack() as stack:
        server = stack.enter_context(server_process(*args))
        url = f"ws://127.0.0.1:{server.ws_port}/"
        members = [stack.enter_context(ChatClient(url)) for _ in range(5)]
        join_key = members[0].init()["joinKey"]
        for member in members[1:]:
            member.init(join_key)
        # Two that stop reading and never answer their close: one read nothing after joining, one read its close.
        deaf = [open_raw("127.0.0.1", server.ws_port) for _ in range(2)]
        for sock in deaf:
            sock.sendall(client_frame(0x1, json.dumps({"type": "init", "joinKey": join_key}).encode()))
        wait_for(lambda: value(scrape(server.http_port)[1], "chat_connections") == 7, timeout=5)

        sent = [f"{number} from {index}" for number in range(3) for index in range(len(members))]
        for number in range(3):
            for index, member in enumerate(members):
                member.talk(f"{number} from {index}")  # not waiting for them: some are in flight at the signal
        signalled = time.monotonic()
        os.kill(server.process.pid, signal.SIGTERM)

        # Readiness says so at once, and nothing new gets in.
        wait_for(lambda: get(server.http_port, "/readyz") == (503, "not ready: draining\n"), timeout=1, every=0.02)

        def refused() -> bool:
            try:
                socket.create_connection(("127.0.0.1", server.ws_port), timeout=1).close()
            except ConnectionRefusedError:
                return True
            return False

        wait_for(refused, timeout=1, every=0.02)

        # Every member is closed with 1012.
        for member in members:
            assert close_code_of(member, timeout=DRAIN_TIMEOUT) == 1012
        assert close_code(deaf[1]) == 1012  # (then it answers nothing)

        assert server.process.wait(timeout=DRAIN_TIMEOUT + SLACK) == 0
        took = time.monotonic() - signalled
        assert took < DRAIN_TIMEOUT + SLACK, took
        for sock in deaf:
            read_until_closed(sock, timeout=1)  # cut (or reset): nothing hangs
            sock.close()
        log = server.whole_log()
    assert "SIGTERM: draining" in log
    assert "draining 7 connections" in log
    assert "cutting 2 connections" in log  # the deaf ones, at the deadline
    assert "Traceback" not in log

    # Everything the members sent before the signal was stored: a restart on the same file shows it all.
    with server_process(*args) as again, ChatClient(f"ws://127.0.0.1:{again.ws_port}/") as late:
        late.init(join_key)
        replayed = late.talks_until_quiet(0.5)
        assert sorted(talk["payload"] for talk in replayed) == sorted(sent)
        again.process.send_signal(signal.SIGINT)
        assert again.process.wait(timeout=15) == 0


def test_with_workers_sigterm_drains_every_worker(tmp_path: Path) -> None:
    clients = 16  # spread by the kernel over two workers: all on one of them is a 1 in 2**15 chance
    with redis_server(tmp_path) as redis, server_process(
        "--http-port", "0", "--ws-port", "0", "--redis", redis.url, "--workers", "2",
        "--drain-timeout", str(DRAIN_TIMEOUT), "--ping-interval", "0",
    ) as supervisor, ExitStack() as stack:
        wait_for(lambda: len(children(supervisor.process.pid)) == 2, timeout=10)
        wait_for(lambda: sum("page from" in line for line in supervisor.log) >= 2, timeout=10)
        url = f"ws://127.0.0.1:{supervisor.ws_port}/"
        members = [stack.enter_context(ChatClient(url)) for _ in range(clients)]
        join_key = members[0].init()["joinKey"]
        for member in members[1:]:
            member.init(join_key)
        signalled = time.monotonic()
        supervisor.process.send_signal(signal.SIGTERM)
        for member in members:
            assert close_code_of(member, timeout=DRAIN_TIMEOUT) == 1012
        assert supervisor.process.wait(timeout=DRAIN_TIMEOUT + 5) == 0
        assert time.monotonic() - signalled < DRAIN_TIMEOUT + SLACK + 1
        log = supervisor.whole_log()
    drained = {int(worker): int(count)
               for worker, count in re.findall(r"worker-(\d+) .*draining (\d+) connections", log)}
    assert drained.keys() == {1, 2}
    assert sum(drained.values()) == clients
    assert all(count > 0 for count in drained.values())
    assert "Traceback" not in log


@pytest.mark.parametrize("clients", [0, 1, 10, 150, 1000, 10_000, 100_000])
def test_closes_are_spread_over_at_most_a_third_of_the_drain_timeout(clients: int) -> None:
    batches, size = close_spread(clients, 30.0)
    assert batches * size >= clients
    assert (batches - 1) * size < clients or clients == 0
    assert max(0, batches - 1) * BATCH_EVERY <= 30.0 / 3
    if clients:
        assert size <= max(100, clients / 100)  # about 1000 a second while that fits
