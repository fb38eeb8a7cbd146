"""``/metrics`` on the page's port, parsed with prometheus-client's own parser, as clients come, talk, are
refused and go; with SQLite in-process (both transports), and with a real redis-server."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from websockets.exceptions import InvalidStatus

from chat_client import ChatClient, V2Client
from chatcore import CoreLimits
from live import TEST_LIMITS, LiveServer, wait_until
from probes import Samples, close_code_of, get, scrape, value, wait_for
from processes import server_process
from raw_websocket import client_frame, handshake_request, open_raw, read_until_closed
from redis_server import redis_server

ALLOWED_LABELS = {"status", "code", "store", "transport", "connection", "le"}


def refused_status(url: str, **options: object) -> int:
    with pytest.raises(InvalidStatus) as refused:
        ChatClient(url, **options)
    return refused.value.response.status_code


def raw_status(port: int, request: bytes) -> int:
    """The HTTP status a raw handshake request is answered with."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        answer = read_until_closed(sock, timeout=5)
    return int(answer.split(b" ", 2)[1])


def closes(samples: Samples) -> dict[str, float]:
    return {dict(labels)["code"]: count for (name, labels), count in samples.items() if name == "chat_closes_total"}


def test_counts_follow_connections_messages_refusals_and_closes(start_server: Callable[..., LiveServer]) -> None:
    live = start_server(limits=replace(TEST_LIMITS, max_connections_per_address=4, max_message_size=1000))
    port, ws_port = live.running.http_port, live.running.ws_port

    def now() -> Samples:
        return scrape(port)[1]

    start = now()
    assert value(start, "chat_server_info", transport=live.config.transport.value, store="sqlite") == 1
    assert [value(start, name) for name in ("chat_connections", "chat_rooms", "chat_connections_opened_total",
                                            "chat_messages_received_total", "chat_messages_delivered_total")] == [0] * 5
    assert set(closes(start).values()) == {0}
    with ChatClient(live.ws_url) as alice, ChatClient(live.ws_url) as bob:
        join_key = alice.init()["joinKey"]
        bob.init(join_key)
        samples = now()
        assert value(samples, "chat_connections") == 2
        assert value(samples, "chat_rooms") == 1
        assert value(samples, "chat_connections_opened_total") == 2
        assert value(samples, "chat_messages_received_total") == 2
        delivered = value(samples, "chat_messages_delivered_total")
        assert delivered >= 2  # the init replies
        alice.talk("one")
        assert alice.recv()["payload"] == bob.recv()["payload"] == "one"
        samples = now()
        assert value(samples, "chat_messages_received_total") == 3
        assert value(samples, "chat_messages_delivered_total") == delivered + 2  # one broadcast, two members

        # Refused handshakes, by status.
        assert refused_status(live.ws_url, origin="http://evil.example") == 403
        assert raw_status(ws_port, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n") == 400
        assert raw_status(ws_port, handshake_request("127.0.0.1", ws_port).replace(b"Version: 13", b"Version: 8")) \
            == 426
        idle = [socket.create_connection(("127.0.0.1", ws_port)) for _ in range(2)]  # 4 of 4 from this address
        wait_until(lambda: live.slots_taken() == 4)
        assert refused_status(live.ws_url) == 429
        for sock in idle:
            sock.close()
        wait_until(lambda: live.slots_taken() == 2)
        samples = now()
        assert {status: value(samples, "chat_handshakes_refused_total", status=status)
                for status in ("400", "403", "426", "429", "431", "503")} == \
            {"400": 1, "403": 1, "426": 1, "429": 1, "431": 0, "503": 0}

        # Closes, by code: the client's normal close, ours for a message too big, a client's private code, and a
        # client that vanished without a close frame.
        with ChatClient(live.ws_url) as carol:
            carol.init(join_key)
        with ChatClient(live.ws_url) as dave:
            dave.init(join_key)
            dave.send_raw("x" * 2000)
            assert close_code_of(dave) == 1009
        with ChatClient(live.ws_url) as erin:
            erin.init(join_key)
            erin.ws.close(code=4001)
        vanishing = open_raw("127.0.0.1", ws_port)
        vanishing.sendall(client_frame(0x1, json.dumps({"type": "init", "joinKey": join_key}).encode()))
        wait_until(lambda: live.connection_count() == 3)
        vanishing.close()
        wait_until(lambda: live.connection_count() == 2)
        wait_for(lambda: sum(closes(now()).values()) == 4, timeout=5)
        assert {code: count for code, count in closes(now()).items() if count} == \
            {"1000": 1, "1009": 1, "4000-4999": 1, "1006": 1}
        assert value(now(), "chat_messages_received_total") == 3 + 4  # carol's, dave's, erin's and vanishing's init
    wait_until(lambda: live.connection_count() == 0)
    samples = now()
    assert value(samples, "chat_connections") == 0
    assert value(samples, "chat_rooms") == 0  # a room nobody is in leaves memory
    assert closes(samples)["1000"] == 3
    assert value(samples, "chat_connections_opened_total") == 6


def test_no_join_key_token_name_or_message_appears_in_the_metrics(start_server: Callable[..., LiveServer]) -> None:
    live = start_server()
    secrets: list[str] = ["Ada Secretname", "Bob Secretname", "Bob Renamed", "swordfish payload", "m-secret-17"]
    with V2Client(live.ws_url) as ada, V2Client(live.ws_url) as bob:
        reply = ada.join(name="Ada Secretname")
        join_key, token = reply["joinKey"], reply["token"]
        secrets += [join_key, token]
        ada.send({"type": "talk", "payload": "swordfish payload", "id": "m-secret-17"})
        assert ada.recv()["payload"] == "swordfish payload"
        secrets.append(bob.join(join_key, name="Bob Secretname")["token"])
        bob.send({"type": "name", "name": "Bob Renamed"})
        bob.send({"type": "history"})
        ada.close()
        with V2Client(live.ws_url) as again:
            assert again.join(join_key, token=token)["resumed"] is True
            text, samples = scrape(live.running.http_port)
    assert value(samples, "chat_messages_received_total") >= 5
    for secret in secrets:
        assert secret not in text
        assert secret.split()[-1] not in text
    labels = {name for _, sample_labels in samples for name, _ in sample_labels}
    assert labels <= ALLOWED_LABELS


def test_two_servers_in_one_process_count_apart(start_server: Callable[..., LiveServer], tmp_path: Path) -> None:
    first, second = start_server(), start_server(database=tmp_path / "second.db")
    with ChatClient(first.ws_url) as client:
        client.init()
        assert value(scrape(first.running.http_port)[1], "chat_connections_opened_total") == 1
        assert value(scrape(second.running.http_port)[1], "chat_connections_opened_total") == 0


def test_a_slow_reader_dropped_is_counted(start_server: Callable[..., LiveServer]) -> None:
    live = start_server(
        limits=replace(TEST_LIMITS, outbox_bytes=64 * 1024),
        core_limits=CoreLimits(max_payload_chars=20_000, messages_per_second=1e6, message_burst=1_000_000),
    )
    with ChatClient(live.ws_url) as alice:
        join_key = alice.init()["joinKey"]
        stalled = open_raw("127.0.0.1", live.running.ws_port, receive_buffer=4096)
        stalled.sendall(client_frame(0x1, json.dumps({"type": "init", "joinKey": join_key}).encode()))
        wait_until(lambda: live.connection_count() == 2)
        sent = 0
        while live.connection_count() == 2:
            assert sent < 3000, "the stalled member was never closed"
            alice.talk(f"{sent} {'x' * 16_000}")
            alice.recv()
            sent += 1
        stalled.close()
    wait_until(lambda: live.connection_count() == 0)
    samples = scrape(live.running.http_port)[1]
    assert value(samples, "chat_slow_readers_dropped_total") == 1
    assert closes(samples)["1008"] == 1


def test_with_redis_its_connections_and_latencies_are_measured(tmp_path: Path) -> None:
    with redis_server(tmp_path) as redis, server_process(
        "--http-port", "0", "--ws-port", "0", "--redis", redis.url, "--redis-timeout", "1"
    ) as server:
        port = server.http_port
        with ChatClient(f"ws://127.0.0.1:{server.ws_port}/") as client:
            client.init()
            client.talk("hello")
            assert client.recv()["payload"] == "hello"
        assert get(port, "/readyz")[0] == 200
        text, samples = scrape(port)
        assert value(samples, "chat_server_info", transport="trio-websocket", store="redis") == 1
        assert value(samples, "chat_redis_connected", connection="commands") == 1
        assert value(samples, "chat_redis_connected", connection="subscriber") == 1
        assert value(samples, "chat_store_batch_seconds_count", store="redis") >= 2  # the join, the talk
        assert value(samples, "chat_store_batch_seconds_bucket", store="redis", le="+Inf") >= 2
        assert value(samples, "chat_store_check_seconds_count", store="redis") >= 1
        assert "chat_redis_gaps_filled_total 0.0" in text

        def connected(expected: int) -> bool:
            get(port, "/readyz")  # (a probe pings Redis: the commands' connection learns its state)
            samples = scrape(port)[1]
            return all(value(samples, "chat_redis_connected", connection=role) == expected
                       for role in ("commands", "subscriber"))

        redis.stop()
        wait_for(lambda: connected(0), timeout=10)
        redis.start()
        wait_for(lambda: connected(1), timeout=15)
        server.process.terminate()
        assert server.process.wait(timeout=15) == 0


def test_metrics_answer_quickly_under_many_connections(start_server: Callable[..., LiveServer]) -> None:
    live = start_server()
    clients = [ChatClient(live.ws_url) for _ in range(50)]
    try:
        for client in clients:
            client.init()
        started = time.monotonic()
        samples = scrape(live.running.http_port)[1]
        assert time.monotonic() - started < 1
        assert value(samples, "chat_connections") == 50
        assert value(samples, "chat_rooms") == 50
    finally:
        for client in clients:
            client.close()
