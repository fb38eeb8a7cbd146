"""A deterministic simulation of several chat processes sharing rooms through a model of Redis.

Real `ChatCore`s, each in a real `SharedChat` (its `RoomFeed` filling gaps),
and `redis_model.RedisModel` in their place of Redis, in one process with no
event loop: hypothesis chooses who connects, joins, talks and leaves on which
process, when each process's requests reach Redis and their answers come
back, when each subscriber hears what was published, which messages its
connection loses, when Redis restarts (with its data or without) and when a
process crashes. After every step, and once everything has settled:

- user ids are unique in each room;
- every client saw its room's talks as one gap-free run of the room's log
  (its stream), from the start, each once, in order: the replay and what came
  live after it join without a seam;
- once settled, every client still connected has seen every talk of its room;
- nothing a client was shown is missing from the log while Redis keeps its data.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from random import Random
from typing import Any

from hypothesis import Phase, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from chatcore import Action, Broadcast, ChatCore, Close, CoreLimits, Send, closecodes
from chatcore.shared import SharedChat
from redis_model import Filled, ModelBroker, RedisModel

PROCESSES = 3


@dataclass
class Client:
    """One connection as its user sees it: what it was sent, in order."""

    process: int
    connection: int
    events: list[dict[str, Any]] = field(default_factory=list)
    closed_with: int | None = None
    gone: bool = False

    @property
    def init(self) -> dict[str, Any] | None:
        return next((event for event in self.events if event["type"] == "init"), None)

    @property
    def talks(self) -> list[str]:
        return [event["payload"] for event in self.events if event["type"] == "talk"]


class Process:
    """One chat server process: a core, its glue to the shared log, and its broker connection."""

    def __init__(
        self, index: int, redis: RedisModel, clients: dict[tuple[int, int], Client], keys: Iterator[str]
    ) -> None:
        self.index = index
        self.clients = clients
        self.clock = itertools.count(1)
        core = ChatCore(
            clock=lambda: float(next(self.clock)), new_join_key=keys.__next__,
            limits=CoreLimits(history_limit=1000, messages_per_second=1e9, message_burst=10**9),
            external_log=True, shared_log=True,
        )
        self.broker = ModelBroker(redis)
        self.chat = SharedChat(core, self.broker)
        self.connections = itertools.count(1)

    def perform(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Send):
                self.clients[self.index, action.connection].events.append(json.loads(action.message))
            elif isinstance(action, Broadcast):
                for recipient in action.recipients:
                    self.clients[self.index, recipient].events.append(json.loads(action.message))
            elif isinstance(action, Close):
                assert action.code == closecodes.SERVICE_RESTART  # the one close here: a room that lost talks
                client = self.clients[self.index, action.connection]
                client.closed_with = action.code
                client.gone = True
                self.perform(self.chat.disconnect(action.connection))
            else:
                raise AssertionError(f"a log action reached the driver: {action}")


class Cluster(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.redis = RedisModel()
        self.clients: dict[tuple[int, int], Client] = {}
        # Join keys are random in the server, never drawn twice: here a counter for the whole cluster.
        self.keys = (f"room{n}" for n in itertools.count(1))
        self.processes = [Process(n, self.redis, self.clients, self.keys) for n in range(PROCESSES)]
        self.payloads = itertools.count(1)
        self.data_lost = False

    # Clients

    def live(self) -> list[Client]:
        return [client for client in self.clients.values() if not client.gone]

    def joined(self) -> list[Client]:
        return [client for client in self.live() if client.init is not None]

    def rooms(self) -> list[str]:
        return sorted({client.init["joinKey"] for client in self.clients.values() if client.init is not None})

    @rule(process=st.integers(0, PROCESSES - 1))
    def open_room(self, process: int) -> None:
        self._connect(process, {"type": "init"})

    @precondition(lambda self: self.rooms())
    @rule(process=st.integers(0, PROCESSES - 1), pick=st.integers(0, 10**6))
    def join_room(self, process: int, pick: int) -> None:
        rooms = self.rooms()
        self._connect(process, {"type": "init", "joinKey": rooms[pick % len(rooms)]})

    def _connect(self, index: int, init: dict[str, Any]) -> None:
        process = self.processes[index]
        connection = next(process.connections)
        self.clients[index, connection] = Client(index, connection)
        process.perform(process.chat.connect(connection))
        process.perform(process.chat.receive_text(connection, json.dumps(init)))

    @precondition(lambda self: self.joined())
    @rule(picks=st.lists(st.integers(0, 10**6), min_size=1, max_size=6))
    def talk(self, picks: list[int]) -> None:
        for pick in picks:
            clients = self.joined()
            if not clients:
                return
            client = clients[pick % len(clients)]
            process = self.processes[client.process]
            text = json.dumps({"type": "talk", "payload": f"m{next(self.payloads)}"})
            process.perform(process.chat.receive_text(client.connection, text))

    @precondition(lambda self: self.live())
    @rule(pick=st.integers(0, 10**6))
    def leave(self, pick: int) -> None:
        clients = self.live()
        client = clients[pick % len(clients)]
        client.gone = True
        process = self.processes[client.process]
        process.perform(process.chat.disconnect(client.connection))

    # The shared log

    @rule(process=st.integers(0, PROCESSES - 1), count=st.integers(1, 8))
    def redis_runs_requests(self, process: int, count: int) -> None:
        broker = self.processes[process].broker
        for _ in range(count):
            if broker.queue:
                broker.step()

    @rule(process=st.integers(0, PROCESSES - 1), count=st.integers(1, 8))
    def answers_come_back(self, process: int, count: int) -> None:
        for _ in range(count):
            self._answer(self.processes[process])

    def _answer(self, process: Process) -> None:
        broker = process.broker
        if not broker.results:
            return
        answer = broker.results.popleft()
        if isinstance(answer, Filled):
            process.perform(process.chat.filled(answer.fill.join_key, answer.fill.after, answer.talks))
        else:
            process.perform(process.chat.log_result(answer))

    @rule(process=st.integers(0, PROCESSES - 1), count=st.integers(1, 8))
    def a_subscriber_hears(self, process: int, count: int) -> None:
        for _ in range(count):
            self._hear(self.processes[process])

    @rule()
    def everything_settles(self) -> None:
        self._settle()

    def _hear(self, process: Process) -> None:
        broker = process.broker
        if not broker.inbox:
            return
        heard = broker.inbox.popleft()
        if heard.talk is None:
            process.perform(process.chat.subscribed(heard.join_key))
        else:  # (possibly a room unsubscribed since: as with Redis, what was on its way still arrives)
            process.perform(process.chat.heard(heard.talk))

    @rule(process=st.integers(0, PROCESSES - 1))
    def a_message_is_lost(self, process: int) -> None:
        inbox = self.processes[process].broker.inbox
        if inbox and inbox[0].talk is not None:
            inbox.popleft()

    @rule(process=st.integers(0, PROCESSES - 1))
    def a_subscriber_reconnects(self, process: int) -> None:
        self._reconnect(self.processes[process])

    def _reconnect(self, process: Process) -> None:
        broker = process.broker
        if broker.connected or not self.redis.up:
            return
        if broker.reconnect():  # Redis lost its data: no history to show as it was
            process.perform(process.chat.log_lost())

    # Faults are drawn with a die (``roll``), so that most runs get far enough for them to matter.

    @rule(keep_data=st.booleans(), roll=st.integers(0, 5))
    def redis_restarts(self, keep_data: bool, roll: int) -> None:
        if roll == 0:
            self.redis.restart(keep_data=keep_data)
            self.data_lost |= not keep_data

    @rule(roll=st.integers(0, 2))
    def redis_goes_down(self, roll: int) -> None:
        if roll == 0:
            self.redis.up = False
            for process in self.processes:
                process.broker.disconnect()

    @rule()
    def redis_comes_back(self) -> None:
        self.redis.up = True

    @rule(process=st.integers(0, PROCESSES - 1), roll=st.integers(0, 3))
    def a_process_crashes(self, process: int, roll: int) -> None:
        """Its clients' connections end; what it had not sent to Redis yet is gone; it restarts empty."""
        if roll != 0:
            return
        for key, client in self.clients.items():
            if key[0] == process and not client.gone:
                client.gone = True
        old = self.processes[process]
        self.redis.subscribers.remove(old.broker)
        fresh = Process(process, self.redis, self.clients, self.keys)
        fresh.connections = old.connections  # connection ids stay unique in the test's books
        self.processes[process] = fresh

    # What must hold

    @invariant()
    def user_ids_are_unique_in_each_room(self) -> None:
        seen: set[tuple[str, int]] = set()
        for client in self.clients.values():
            init = client.init
            if init is not None:
                key = (init["joinKey"], init["userId"])
                assert key not in seen, f"user id {key[1]} handed out twice in {key[0]}"
                seen.add(key)

    @invariant()
    def every_client_saw_one_gapless_run_of_its_room(self) -> None:
        for client in self.clients.values():
            init = client.init
            if init is None or self.data_lost:
                continue
            log = [talk.payload for talk in self.redis.range(init["joinKey"], 0)]
            assert client.talks == log[: len(client.talks)], (client, log)

    def _settle(self) -> None:
        """Redis up, subscribers back, every queue run and every answer and message delivered."""
        self.redis.up = True
        for _ in range(100_000):
            busy = False
            for process in self.processes:
                self._reconnect(process)
                broker = process.broker
                if broker.queue:
                    broker.step()
                    busy = True
                if broker.results:
                    self._answer(process)
                    busy = True
                if broker.inbox:
                    self._hear(process)
                    busy = True
            if not busy:
                break
        else:
            raise AssertionError("the cluster did not settle")

    def teardown(self) -> None:
        """Once everything has settled, every member has seen every talk of its room."""
        self._settle()
        self.every_client_saw_one_gapless_run_of_its_room()
        for client in self.live():
            init = client.init
            if init is not None and not self.data_lost:
                log = [talk.payload for talk in self.redis.range(init["joinKey"], 0)]
                assert client.talks == log, (client, log)


Cluster.TestCase.settings = settings(max_examples=300, stateful_step_count=80, deadline=None)
test_cluster = Cluster.TestCase


# Long runs: hypothesis's rule-based runs are short, so the same cluster is also driven by a seeded random
# schedule, thousands of steps long, with faults weighted to be rare enough for talk to build up between them.

SCHEDULE: list[tuple[int, str]] = [
    (3, "open_room"), (6, "join_room"), (25, "talk"), (4, "leave"),
    (20, "redis_runs_requests"), (20, "answers_come_back"), (20, "a_subscriber_hears"), (4, "a_message_is_lost"),
    (3, "a_subscriber_reconnects"), (2, "everything_settles"),
    (1, "redis_restarts"), (1, "redis_goes_down"), (2, "redis_comes_back"), (1, "a_process_crashes"),
]


@settings(max_examples=25, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate])  # no shrinking
@given(st.integers(0, 2**64), st.booleans())
def test_long_runs_of_the_cluster(seed: int, lose_data: bool) -> None:
    random = Random(seed)  # (not st.randoms(): its first examples draw the smallest choice every time)
    cluster = Cluster()
    weights, names = zip(*SCHEDULE, strict=True)
    for _ in range(1500):
        name = random.choices(names, weights)[0]
        process = random.randrange(PROCESSES)
        if name == "open_room":
            cluster.open_room(process)
        elif name == "join_room" and cluster.rooms():
            cluster.join_room(process, random.randrange(10**6))
        elif name == "talk" and cluster.joined():
            cluster.talk([random.randrange(10**6) for _ in range(random.randint(1, 4))])
        elif name == "leave" and cluster.live():
            cluster.leave(random.randrange(10**6))
        elif name in ("redis_runs_requests", "answers_come_back", "a_subscriber_hears"):
            getattr(cluster, name)(process, random.randint(1, 8))
        elif name in ("a_message_is_lost", "a_subscriber_reconnects"):
            getattr(cluster, name)(process)
        elif name == "everything_settles":
            cluster.everything_settles()
        elif name == "redis_restarts":
            cluster.redis_restarts(keep_data=not (lose_data and random.random() < 0.3), roll=0)
        elif name == "redis_goes_down":
            cluster.redis_goes_down(roll=0)
        elif name == "redis_comes_back":
            cluster.redis_comes_back()
        elif name == "a_process_crashes":
            cluster.a_process_crashes(process, roll=0)
        cluster.user_ids_are_unique_in_each_room()
        cluster.every_client_saw_one_gapless_run_of_its_room()
    cluster.teardown()
    assert sum(len(room.stream) for room in cluster.redis.rooms.values()) > 100 or cluster.data_lost
