"""A member that stops reading never stalls its room; it is closed instead."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import replace

import pytest

from chat_client import ChatClient
from chatcore import CoreLimits
from live import TEST_LIMITS, LiveServer
from raw_websocket import client_frame, open_raw, read_until_closed

MESSAGE = "x" * 16_000
MAX_MESSAGES = 3000  # ~48 MB: far beyond loopback socket buffers plus the outbox bound


def test_a_member_that_stops_reading_is_closed_and_the_room_goes_on(
    start_server: Callable[..., LiveServer], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    live = start_server(
        limits=replace(TEST_LIMITS, outbox_bytes=64 * 1024),
        core_limits=CoreLimits(max_payload_chars=20_000, messages_per_second=1e6, message_burst=1_000_000),
    )
    with ChatClient(live.ws_url) as alice:
        join_key = alice.init()["joinKey"]
        stalled = open_raw("127.0.0.1", live.running.ws_port, receive_buffer=4096)
        stalled.sendall(client_frame(0x1, json.dumps({"type": "init", "joinKey": join_key}).encode()))
        assert wait_for(lambda: live.connection_count() == 2)

        sent = 0
        while live.connection_count() == 2:
            assert sent < MAX_MESSAGES, "the stalled member was never closed"
            alice.talk(f"{sent} {MESSAGE}")
            # The sender keeps getting every message promptly, in order.
            assert alice.recv()["payload"] == f"{sent} {MESSAGE}"
            sent += 1

        alice.talk("after")
        assert alice.recv()["payload"] == "after"
        # The stalled socket ends: the server dropped it, after whatever the kernel had buffered.
        read_until_closed(stalled, timeout=10)
        stalled.close()
    assert any("1008" in r.getMessage() and "reading too slowly" in r.getMessage() for r in caplog.records)


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True
