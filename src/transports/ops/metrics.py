"""``/metrics`` on the page's port: the Prometheus text format, through prometheus-client.

Each server has a registry of its own (not prometheus-client's global one),
so several servers in one process (the tests) keep their numbers apart.
What changes per message is counted by the hub as plain integers
(`runtime.counts`: an increment per action, a broadcast counted once with its
number of recipients) and read only when scraped; the histograms are
observed once per storage batch (on the storage thread) and per readiness
check.

No metric and no label ever carries a join key, token, name or message:
labels come from small fixed sets (HTTP statuses of our refusals, close
codes with the client's private ranges folded into two values, the store's
kind, the Redis connection's role, the transport).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Histogram, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from chatcore import ChatCore

from ..http.static import Response
from ..runtime.counts import Counts
from ..runtime.hub import App, Hub
from ..storage.redisbroker import RedisBroker
from .health import Health
from .watchdog import Watchdog

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The classic text format, which every Prometheus reads."""

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Seconds: a SQLite commit or a Redis pipeline takes a millisecond or so; a fault, up to its timeout."""

REFUSALS = (400, 403, 426, 429, 431, 500, 503)
"""The statuses a handshake can be refused with: each is exposed, at 0 until it happens."""
CLOSES = (1000, 1001, 1006, 1008, 1009, 1011, 1012)
"""The close codes exposed from the start (others appear once they happen)."""


def close_label(code: int) -> str:
    """A close code as a label: the client's private ranges folded, so that clients cannot grow the label set."""
    if 1000 <= code <= 2999:
        return str(code)
    if 3000 <= code <= 3999:
        return "3000-3999"
    if 4000 <= code <= 4999:
        return "4000-4999"
    return "other"


def status_label(status: int) -> str:
    return str(status) if 100 <= status <= 599 else "other"


class Metrics:
    """The metrics of one server process, and its ``/metrics`` page."""

    def __init__(
        self, hub: Hub, app: App, health: Health, *, transport: str, store: str | None,
        broker: RedisBroker | None = None, watchdog: Watchdog | None = None,
    ) -> None:
        self.registry = CollectorRegistry()
        self.store_batch = Histogram(
            "chat_store_batch_seconds", "Time of one batch of requests on the storage thread: a SQLite transaction "
            "or a Redis pipeline", ["store"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self.store_check = Histogram(
            "chat_store_check_seconds", "Time of one readiness check of the store: a trivial SQLite read on the "
            "storage thread, or a Redis PING", ["store"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self.observe_batch: Callable[[float], None] | None = None
        self.observe_check: Callable[[float], None] | None = None
        if store is not None:
            self.observe_batch = self.store_batch.labels(store=store).observe
            self.observe_check = self.store_check.labels(store=store).observe
        self.registry.register(_Collector(hub, app, health, transport, store or "memory", broker, watchdog))
        ProcessCollector(registry=self.registry)

    async def page(self) -> Response:
        return Response(200, generate_latest(self.registry), CONTENT_TYPE)


class _Collector(Collector):
    """What is read at scrape time: the hub's counts, the rooms, the draining flag, Redis's state, the stalls."""

    def __init__(
        self, hub: Hub, app: App, health: Health, transport: str, store: str, broker: RedisBroker | None,
        watchdog: Watchdog | None,
    ) -> None:
        self._hub = hub
        self._counts: Counts = hub.counts
        self._core = app if isinstance(app, ChatCore) else None
        self._health = health
        self._transport = transport
        self._store = store
        self._broker = broker
        self._watchdog = watchdog

    def collect(self) -> Iterator[Metric]:
        counts = self._counts
        info = GaugeMetricFamily("chat_server_info", "This server's transport and store (always 1)",
                                 labels=["transport", "store"])
        info.add_metric([self._transport, self._store], 1)
        yield info
        yield GaugeMetricFamily("chat_connections", "Open WebSocket connections", value=self._hub.connection_count)
        yield GaugeMetricFamily("chat_rooms", "Rooms held in memory (with members, or requests in flight)",
                                value=self._core.room_count if self._core is not None else 0)
        yield GaugeMetricFamily("chat_draining", "1 once the server stops taking connections (SIGTERM, SIGINT)",
                                value=int(self._health.stopping is not None))
        yield CounterMetricFamily("chat_connections_opened", "WebSocket handshakes completed", value=counts.opened)
        yield CounterMetricFamily("chat_messages_received", "WebSocket messages received from clients",
                                  value=counts.received)
        yield CounterMetricFamily(
            "chat_messages_delivered", "Messages queued to clients: each recipient of a broadcast counts, and so "
            "does each message to one client", value=counts.delivered,
        )
        yield _by_label(
            CounterMetricFamily("chat_handshakes_refused", "WebSocket handshakes refused, by HTTP status",
                                labels=["status"]),
            counts.refused, status_label, REFUSALS,
        )
        yield _by_label(
            CounterMetricFamily("chat_closes", "WebSocket connections ended, by close code: ours if we closed first, "
                                "else the client's; 1006 for none", labels=["code"]),
            counts.closes, close_label, CLOSES,
        )
        yield CounterMetricFamily("chat_slow_readers_dropped", "Connections closed (1008) for reading too slowly",
                                  value=counts.slow_readers)
        yield CounterMetricFamily("chat_event_loop_stalls", "Times the event loop did not run for more than a "
                                  "second (each logged with what held it)",
                                  value=0 if self._watchdog is None else self._watchdog.stalls)
        broker = self._broker
        if broker is not None:
            connected = GaugeMetricFamily("chat_redis_connected", "1 while the connection to Redis answers",
                                          labels=["connection"])
            connected.add_metric(["commands"], int(broker.log.reachable))
            connected.add_metric(["subscriber"], int(broker.listening))
            yield connected
            yield CounterMetricFamily("chat_redis_gaps_filled", "Gaps in a room's pub/sub messages read back from "
                                      "its stream", value=broker.gaps_filled)


def _by_label(
    family: CounterMetricFamily, counts: Mapping[int, int], label_of: Callable[[int], str], always: Iterable[int]
) -> CounterMetricFamily:
    """``counts`` by code, folded into the family's labels (``always`` shown, at 0 if need be)."""
    by_label = {str(code): 0 for code in always}
    for code, count in counts.items():
        label = label_of(code)
        by_label[label] = by_label.get(label, 0) + count
    for label, count in sorted(by_label.items()):
        family.add_metric([label], count)
    return family
