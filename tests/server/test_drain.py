"""SIGTERM drains: readiness 503 at once, no new connections, every client closed with 1012, what was sent
stored, exit 0 within ``--drain-timeout`` even when clients never answer; with ``--workers``, every worker."""

from __future__ import annotations

import contextlib
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
from transports.process import ORPHAN_CHECK_EVERY

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


HELD = ("--drain-timeout", "60", "--close-timeout", "60", "--ping-interval", "0")
"""A stop that a client which never answers its close holds open for a minute."""


@pytest.mark.parametrize(("first", "second", "words"), [
    (signal.SIGTERM, signal.SIGTERM, "second SIGTERM during the drain"),
    (signal.SIGTERM, signal.SIGINT, "second SIGINT during the drain"),
    (signal.SIGINT, signal.SIGINT, "second SIGINT while stopping"),
])
def test_a_second_signal_while_stopping_exits_at_once_with_status_1(
    first: signal.Signals, second: signal.Signals, words: str
) -> None:
    with server_process("--http-port", "0", "--ws-port", "0", "--db", ":memory:", *HELD) as server:
        deaf = open_raw("127.0.0.1", server.ws_port)
        wait_for(lambda: value(scrape(server.http_port)[1], "chat_connections") == 1, timeout=5)
        server.process.send_signal(first)
        stopping = "draining 1 connections" if first == signal.SIGTERM else "closing connections with 1001"
        wait_for(lambda: any(stopping in line for line in server.log), timeout=5, every=0.02)
        server.process.send_signal(second)
        assert server.process.wait(timeout=10) == 1  # not 0, a minute from now
        log = server.whole_log()
        deaf.close()
    said = [line for line in log.splitlines() if "exiting now" in line]
    assert len(said) == 1, log
    assert said[0].endswith(f" WARNING transports.process: {words}: exiting now"), said
    assert "Traceback" not in log


def test_with_workers_a_second_signal_kills_every_worker_and_exits_1(tmp_path: Path) -> None:
    with redis_server(tmp_path) as redis, server_process(
        "--http-port", "0", "--ws-port", "0", "--redis", redis.url, "--workers", "2", *HELD,
    ) as supervisor:
        wait_for(lambda: sum("page from" in line for line in supervisor.log) >= 2, timeout=10)
        workers = children(supervisor.process.pid)
        assert len(workers) == 2
        deaf = open_raw("127.0.0.1", supervisor.ws_port)  # holds the drain of the worker it lands on
        wait_for(lambda: any("connection opened" in line for line in supervisor.log), timeout=5)
        supervisor.process.send_signal(signal.SIGTERM)
        wait_for(lambda: any("draining 1 connections" in line for line in supervisor.log), timeout=5, every=0.02)
        supervisor.process.send_signal(signal.SIGTERM)
        assert supervisor.process.wait(timeout=10) == 1
        log = supervisor.whole_log()
        deaf.close()
    for worker in workers:
        with pytest.raises(ProcessLookupError):
            os.kill(worker, 0)  # killed, and reaped by the supervisor
    assert "second SIGTERM while stopping: killing the" in log
    assert "Traceback" not in log


def test_workers_whose_supervisor_is_killed_drain_and_exit(tmp_path: Path) -> None:
    """A supervisor killed with SIGKILL cannot pass anything on: its workers, in sessions of their own, notice."""
    with redis_server(tmp_path) as redis, server_process(
        "--http-port", "0", "--ws-port", "0", "--redis", redis.url, "--workers", "2",
        "--drain-timeout", str(DRAIN_TIMEOUT),
    ) as supervisor:
        wait_for(lambda: sum("page from" in line for line in supervisor.log) >= 2, timeout=10)
        workers = children(supervisor.process.pid)
        assert len(workers) == 2
        try:
            with ChatClient(f"ws://127.0.0.1:{supervisor.ws_port}/") as client:
                client.init()
                supervisor.process.kill()
                assert close_code_of(client, timeout=ORPHAN_CHECK_EVERY + DRAIN_TIMEOUT + SLACK) == 1012
            wait_for(lambda: not any(_alive(worker) for worker in workers),
                     timeout=ORPHAN_CHECK_EVERY + DRAIN_TIMEOUT + SLACK)
        finally:
            for worker in workers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker, signal.SIGKILL)
        gone = [line for line in supervisor.log if "is gone: this worker drains and exits" in line]
        assert len(gone) == 2, "".join(supervisor.log)


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (an exited process not reaped yet by whoever adopted it does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_with_workers_a_signal_to_the_process_group_reaches_each_worker_once(tmp_path: Path) -> None:
    """Ctrl-C, or ``kill -- -PGID``, signals the whole group: the workers must not get it a second time from
    the supervisor (which would stop them at once, when the two do not arrive close enough to count as one)."""
    with redis_server(tmp_path) as redis, server_process(
        "--http-port", "0", "--ws-port", "0", "--redis", redis.url, "--workers", "2", "--drain-timeout", "3",
        "--close-timeout", "1", "--ping-interval", "0", start_new_session=True,
    ) as supervisor:
        wait_for(lambda: sum("page from" in line for line in supervisor.log) >= 2, timeout=10)
        workers = children(supervisor.process.pid)
        assert len(workers) == 2
        assert all(os.getpgid(worker) != supervisor.process.pid for worker in workers)  # out of its group
        deaf = open_raw("127.0.0.1", supervisor.ws_port)  # a drain that lasts while the signal is passed on
        wait_for(lambda: any("connection opened" in line for line in supervisor.log), timeout=5)
        os.killpg(supervisor.process.pid, signal.SIGTERM)
        assert supervisor.process.wait(timeout=15) == 0
        log = supervisor.whole_log()
        deaf.close()
    assert "exiting now" not in log
    assert len(re.findall(r"worker \d \(pid \d+\) stopped with status 0", log)) == 2, log
