"""Dropping means dropping: a client we close for a policy reason is cut within the close timeout.

Whatever the kernel still holds for it (megabytes for a slow reader on
loopback) is discarded with a reset, instead of trickling out to a client
we gave up on.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import replace

import pytest

from chat_client import ChatClient
from chatcore import CoreLimits
from live import TEST_LIMITS, LiveServer
from raw_websocket import client_frame, open_raw

CLOSE_TIMEOUT = 1.0
SENDERS = 8
PAYLOAD = "x" * 9_000  # under the default --max-payload-chars (10000)
SEND_INTERVAL = 0.125  # 8 per second each: under the default --rate of 10
LIMIT_SECONDS = 40.0


def decided_at(caplog: pytest.LogCaptureFixture, text: str) -> float:
    """When the server logged the close decision containing ``text``."""
    for _ in range(100):
        times = [r.created for r in caplog.records if text in r.getMessage()]
        if times:
            return times[0]
        time.sleep(0.05)
    raise AssertionError(f"the server never logged {text!r}")


def test_a_slow_reader_is_cut_within_the_close_timeout(
    start_server: Callable[..., LiveServer], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    live = start_server(limits=replace(TEST_LIMITS, close_timeout=CLOSE_TIMEOUT), core_limits=CoreLimits())
    port = live.running.ws_port
    with ChatClient(live.ws_url, max_queue=None) as host:
        join_key = host.init()["joinKey"]
        reader = open_raw("127.0.0.1", port, receive_buffer=2048)
        reader.sendall(client_frame(0x1, json.dumps({"type": "init", "joinKey": join_key}).encode()))
        stop = threading.Event()
        senders = [threading.Thread(target=send_steadily, args=(live.ws_url, join_key, stop)) for _ in range(SENDERS)]
        for thread in senders:
            thread.start()
        try:
            ended = read_slowly_until_cut(reader)
        finally:
            stop.set()
            for thread in senders:
                thread.join()
            reader.close()
    decided = decided_at(caplog, "reading too slowly")
    assert ended - decided < CLOSE_TIMEOUT + 1.0, f"cut {ended - decided:.1f} s after the decision"


def send_steadily(url: str, join_key: str, stop: threading.Event) -> None:
    with ChatClient(url, max_queue=None) as sender:
        sender.init(join_key)
        deadline = time.monotonic() + LIMIT_SECONDS
        while not stop.is_set() and time.monotonic() < deadline:
            sender.talk(PAYLOAD)
            stop.wait(SEND_INTERVAL)


def read_slowly_until_cut(sock: socket.socket) -> float:
    """Read 1 KiB every 20 ms (about 50 KB/s) until the connection ends; when it ended (``time.time``)."""
    sock.settimeout(5)
    deadline = time.monotonic() + LIMIT_SECONDS
    while time.monotonic() < deadline:
        try:
            if not sock.recv(1024):
                return time.time()
        except (ConnectionResetError, TimeoutError):
            return time.time()
        time.sleep(0.02)
    raise AssertionError("the slow reader was never cut")


def test_a_flooder_that_keeps_writing_is_cut_within_the_close_timeout(
    start_server: Callable[..., LiveServer], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    live = start_server(
        limits=replace(TEST_LIMITS, close_timeout=CLOSE_TIMEOUT),
        core_limits=CoreLimits(messages_per_second=1, message_burst=5, max_rate_strikes=3),
    )
    flooder = open_raw("127.0.0.1", live.running.ws_port, receive_buffer=2048)
    flooder.sendall(client_frame(0x1, b'{"type": "init"}'))
    frame = client_frame(0x1, json.dumps({"type": "talk", "payload": "spam" * 100}).encode())
    deadline = time.monotonic() + LIMIT_SECONDS
    ended = None
    while time.monotonic() < deadline:  # never reads; writes until the server cuts it
        try:
            flooder.sendall(frame)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            ended = time.time()
            break
        time.sleep(0.002)
    flooder.close()
    assert ended is not None, "the flooder was never cut"
    decided = decided_at(caplog, "message rate limit exceeded")
    assert ended - decided < CLOSE_TIMEOUT + 1.0, f"cut {ended - decided:.1f} s after the decision"
    with ChatClient(live.ws_url) as other:
        assert other.init()["userId"] == 1
