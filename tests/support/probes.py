"""What a load balancer and Prometheus ask a server: ``/healthz``, ``/readyz``, ``/metrics`` on its page's port."""

from __future__ import annotations

import http.client
import time
from collections.abc import Callable

from prometheus_client.parser import text_string_to_metric_families
from websockets.exceptions import ConnectionClosed

from chat_client import ChatClient

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
"""Every sample of a scrape: (name, sorted labels) → value."""


def get(port: int, path: str, host: str = "127.0.0.1", timeout: float = 10.0) -> tuple[int, str]:
    """GET ``path``: its status and its body as text."""
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def scrape(port: int, host: str = "127.0.0.1") -> tuple[str, Samples]:
    """``/metrics``: its text, and every sample parsed by prometheus-client's own parser."""
    status, text = get(port, "/metrics", host)
    assert status == 200, text
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return text, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value (0 if the scrape does not have it)."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def wait_for(check: Callable[[], bool], timeout: float, every: float = 0.1) -> None:
    """Poll ``check`` until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not reached in time"
        time.sleep(every)


def close_code_of(client: ChatClient, timeout: float = 5.0) -> int:
    """Read until the server closes the connection: the code of its close frame."""
    received = None
    while received is None:
        try:
            client.recv(timeout=timeout)
        except ConnectionClosed as closed:
            received = closed
    assert received.rcvd is not None, "closed without a close frame"
    return received.rcvd.code
