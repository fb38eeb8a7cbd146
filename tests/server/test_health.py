"""``/healthz`` and ``/readyz`` on the page's port, asked of real server processes as a load balancer would."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from chat_client import ChatClient
from probes import get, scrape, value, wait_for
from processes import server_process
from raw_websocket import client_frame, open_raw
from redis_server import redis_server
from transports.ops.health import CHECK_EVERY

PORTS = ("--http-port", "0", "--ws-port", "0")


def test_healthz_and_readyz_are_200_while_the_server_serves(tmp_path: Path) -> None:
    with server_process(*PORTS, "--db", str(tmp_path / "chat.db")) as server:
        assert get(server.http_port, "/healthz") == (200, "ok\n")
        assert get(server.http_port, "/readyz") == (200, "ready\n")
        assert get(server.http_port, "/readyz?verbose=1") == (200, "ready\n")  # (a query string changes nothing)
        with ChatClient(f"ws://127.0.0.1:{server.ws_port}/") as client:
            client.init()
            assert get(server.http_port, "/readyz") == (200, "ready\n")
        server.process.send_signal(signal.SIGINT)
        assert server.process.wait(timeout=15) == 0


def test_frequent_probes_ask_the_store_about_once_a_second(tmp_path: Path) -> None:
    with server_process(*PORTS, "--db", str(tmp_path / "chat.db")) as server:
        started = time.monotonic()
        for _ in range(40):
            assert get(server.http_port, "/readyz")[0] == 200
        elapsed = time.monotonic() - started
        _, samples = scrape(server.http_port)
        checks = value(samples, "chat_store_check_seconds_count", store="sqlite")
        assert 1 <= checks <= elapsed / CHECK_EVERY + 1


def test_readyz_is_503_while_the_server_is_full(tmp_path: Path) -> None:
    with server_process(*PORTS, "--db", str(tmp_path / "chat.db"), "--max-connections", "1") as server:
        with ChatClient(f"ws://127.0.0.1:{server.ws_port}/") as client:
            client.init()
            assert get(server.http_port, "/readyz") == (503, "not ready: full (--max-connections 1 reached)\n")
            # (with a limit of 1, the page port refuses a probe while the one before it still holds its slot)
            wait_for(lambda: get(server.http_port, "/healthz") == (200, "ok\n"), timeout=5)
        wait_for(lambda: get(server.http_port, "/readyz")[0] == 200, timeout=5)


def test_readyz_is_503_while_redis_is_down_and_200_once_it_is_back(tmp_path: Path) -> None:
    with redis_server(tmp_path) as redis, server_process(
        *PORTS, "--redis", redis.url, "--redis-timeout", "1"
    ) as server:
        assert get(server.http_port, "/readyz") == (200, "ready\n")
        redis.stop()
        wait_for(lambda: get(server.http_port, "/readyz")[0] == 503, timeout=5)
        for _ in range(3):  # each answer is one line, names no address, and comes within the timeout
            started = time.monotonic()
            status, body = get(server.http_port, "/readyz")
            assert time.monotonic() - started < 1 + 0.5
            assert status == 503
            assert body in {"not ready: Redis does not answer\n", "not ready: Redis's subscriber connection is down\n"}
        assert get(server.http_port, "/healthz") == (200, "ok\n")  # alive all the same: no restart wanted
        redis.start()
        wait_for(lambda: get(server.http_port, "/readyz") == (200, "ready\n"), timeout=15)
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=15) == 0
        log = server.whole_log()
    assert "readiness: not ready: Redis" in log
    assert "readiness: the store answers" in log


def test_readyz_is_503_at_once_on_sigterm_and_stays_so_while_draining(tmp_path: Path) -> None:
    with server_process(*PORTS, "--db", str(tmp_path / "chat.db"), "--drain-timeout", "3") as server:
        deaf = open_raw("127.0.0.1", server.ws_port)  # never reads, never answers its close: keeps the drain going
        deaf.sendall(client_frame(0x1, json.dumps({"type": "init"}).encode()))
        wait_for(lambda: value(scrape(server.http_port)[1], "chat_connections") == 1, timeout=5)
        assert get(server.http_port, "/readyz") == (200, "ready\n")
        signalled = time.monotonic()
        os.kill(server.process.pid, signal.SIGTERM)
        wait_for(lambda: get(server.http_port, "/readyz")[0] == 503, timeout=1, every=0.02)
        assert get(server.http_port, "/readyz") == (503, "not ready: draining\n")
        assert get(server.http_port, "/healthz") == (200, "ok\n")
        assert value(scrape(server.http_port)[1], "chat_draining") == 1
        while server.process.poll() is None and time.monotonic() - signalled < 2:
            assert get(server.http_port, "/readyz")[0] == 503
            time.sleep(0.1)
        assert server.process.wait(timeout=5) == 0
        assert time.monotonic() - signalled < 3 + 1
        deaf.close()
