"""chatclient's `Client` against the real core: a deterministic simulation of members, connections and restarts.

Members (`clientkit.Member`: a `Client` driven as `chatclient.session.Chat` drives it) in the rooms of a
`ChatCore` whose log is a `MemoryLog` (`clientkit.Server`), in one process with no event loop. Hypothesis
chooses the room's window (``history_limit``) and how soon the log forgets users who left (their tokens no
longer resume them); who starts or joins a room (named or not; resending after the join's replay, as `Chat`
does, or at once), talks, renames and reads history; when each connection's messages arrive, both ways, in
order per connection and interleaved at will between connections; when the log answers each request, or fails
it; when a connection drops (and when the core notices), when its member reconnects, and when the server
restarts (a new core over the same log, which had done some of the requests in flight). Once everything has
settled (every member back in its room, every message and answer delivered), for every member:

- its application got the room's talks as the log has them, in offset order, each at most once, with no gap
  but right after a `Joined` that said ``older``, and then exactly the talks the room's window had left behind
  at that join; and it got up to the room's newest talk (checked after every step too, but that last);
- it came back as the same user each time, unless the log had forgotten that user;
- every talk it sent (`Client.talk`) is stored, once: a second copy only where the first had left the room's
  window before it was sent again, so that its id was forgotten (docs/protocol-v2-decisions.md, "Resends"),
  or, for a member that resends at the join, under a new user; in the order sent, unless the log failed one
  (refused for now, it goes again after later ones); and the client said `Stored` for each once, with the
  talk the log has, and has nothing pending;
- each `History` is the event it read, of talks the log has, the latest below ``before``;
- the room's members and their names, as its application was told them, are the core's, and its own name is
  the one the log keeps.
"""

from __future__ import annotations

import itertools
from random import Random
from typing import Any

from hypothesis import Phase, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from chatclient import Client, Ended, History, Joined, State, Talk
from chatcore import LoggedTalk
from clientkit import Member, Server

MAX_MEMBERS = 5
NAMES = st.sampled_from([None, "Ada", "Bob", "Cy"])
PICK = st.integers(0, 10**6)
HISTORY_LIMITS = st.sampled_from([1, 3, 1000])
"""The room's window: most runs leave members away for longer than the small ones."""
REMEMBERED_USERS = st.sampled_from([0, 2, 10_000])
"""Users the log remembers after they left: 0 and 2 forget tokens, so that a member comes back as a new user."""
CLOSE_CODES = st.sampled_from([None, 1001, 1006, 1012])


def as_talk(logged: LoggedTalk) -> Talk:
    """A talk of the log as the client reads it."""
    return Talk(
        logged.offset, logged.user_id, logged.name, logged.payload, logged.time, logged.talk_id, logged.edited,
        logged.payload is None, logged.verified,
    )


def check_stream(member: Member, server: Server, *, settled: bool) -> None:
    """The member's talks: the log's, in offset order, each once; gaps only after a `Joined`, exactly what the
    room's window had left behind (the first join says so with ``older``); once settled, up to the room's newest.
    Every join after the first a resume, unless the log forgot the token (a new user then)."""
    limit = server.limits.history_limit
    join_key = member.client.join_key
    assert join_key is not None
    stream = server.stream[join_key]
    delivered = 0
    expected: int | None = None
    users: list[int] = []
    for news in member.news:
        assert not isinstance(news, Ended), news
        if isinstance(news, Joined):
            assert news.join_key == join_key, news
            assert delivered <= news.offset <= len(stream), (news, delivered)
            assert news.user_id in {member.user_id for member in news.members}, news
            if users and news.resumed:
                assert news.user_id == users[-1], news
            elif users:  # (a new user: the log must have forgotten the token of the one before)
                assert news.user_id not in users, news
                assert users[-1] not in server.memory._rooms[join_key].tokens.values(), news
            first_kept = news.offset - limit + 1
            # The first join says whether older talks exist; on a later one the client fetches what the replay left
            # out itself (here the log keeps only its window: the rest is passed over).
            assert news.older == (not users and first_kept > delivered + 1), (news, delivered, limit)
            users.append(news.user_id)
            expected = max(delivered + 1, first_kept)
        elif isinstance(news, Talk):
            assert news.offset == expected, (news, expected, member.news)
            assert news == as_talk(stream[news.offset - 1]), (news, stream[news.offset - 1])
            delivered, expected = news.offset, news.offset + 1
    assert member.client.last_offset >= delivered  # (beyond it: talks the log no longer has, passed over)
    if settled:
        assert member.client.last_offset == delivered
        assert delivered == len(stream), (delivered, len(stream), member.news)


def users_of(member: Member) -> set[int]:
    """Every user id the member was given."""
    return {news.user_id for news in member.news if isinstance(news, Joined)}


def check_histories(member: Member, server: Server) -> None:
    """Each `History` is the event it came in, and the talks the log has, below ``before``, in order."""
    join_key = member.client.join_key
    assert join_key is not None
    stream = server.stream[join_key]
    for event, history in member.histories:
        assert history == History(event["before"], tuple(as_talk_event(talk) for talk in event["talks"]),
                                  event["older"])
        offsets = [talk.offset for talk in history.talks]
        assert history.before is not None
        assert offsets == list(range(history.before - len(offsets), history.before)), history
        assert all(talk == as_talk(stream[talk.offset - 1]) for talk in history.talks), history
        if history.older:
            assert offsets, history
            assert offsets[0] > 1, history


def as_talk_event(event: dict[str, Any]) -> Talk:
    return Talk(
        event["offset"], event["userId"], event.get("name"), event.get("payload"), event["time"], event.get("id"),
        event.get("edited"), bool(event.get("deleted")), bool(event.get("verified")),
    )


def check_talks_stored(member: Member, server: Server) -> None:
    """Every talk the member sent is in the log once: a copy only once the first had left the window (or, for a
    member that resends at the join, under a new user: the log forgot its token), in the order sent unless the
    log failed one; the client said `Stored` for each, once, and holds none."""
    limit = server.limits.history_limit
    client = member.client
    assert client.join_key is not None
    assert client.pending == 0, client.resend()
    users = users_of(member)
    copies: dict[str | None, list[LoggedTalk]] = {}
    for talk in server.stream[client.join_key]:
        if talk.user_id in users:
            copies.setdefault(talk.talk_id, []).append(talk)
    assert copies.keys() == set(member.talked), (copies, member.talked)
    for talk_id, talks in copies.items():
        for earlier, later in itertools.pairwise(talks):
            assert later.offset - earlier.offset > limit or (
                not member.careful and later.user_id != earlier.user_id
            ), (talk_id, talks)
    if not server.failed_talks & set(member.talked):
        assert sorted(member.talked, key=lambda talk_id: copies[talk_id][0].offset) == member.talked, copies
    assert sorted(stored.id for stored in member.stored) == sorted(member.talked), member.stored
    stream = server.stream[client.join_key]
    for stored in member.stored:
        assert stored.talk is not None, stored
        assert stored.refusal is None, stored
        assert stored.talk.offset in [talk.offset for talk in copies[stored.id]], stored
        assert stored.talk == as_talk(stream[stored.talk.offset - 1]), stored


def check_members(members: list[Member], server: Server) -> None:
    """Each room's members and names, as each member's application was told them, are the core's; a member's
    own name is the one the log keeps."""
    rooms: dict[str, list[Member]] = {}
    for member in members:
        assert member.client.join_key is not None
        rooms.setdefault(member.client.join_key, []).append(member)
    for join_key, group in rooms.items():
        present = dict(server.core._rooms[join_key].members())
        assert present.keys() == {member.client.user_id for member in group}, (present, group)
        users = server.memory._rooms[join_key].users
        for member in group:
            user_id = member.client.user_id
            assert user_id is not None
            assert member.members() == present, (member.members(), present)
            assert member.client.name == present[user_id] == users[user_id].name, (member.client.name, present)


class Simulation(RuleBasedStateMachine):
    """The members, the server and the network between them; each rule does nothing when nothing fits it (the
    long runs call them without their preconditions)."""

    def __init__(self) -> None:
        super().__init__()
        self.server = Server(1000)
        self.members: list[Member] = []
        self.said = itertools.count(1)

    @initialize(history_limit=HISTORY_LIMITS, remembered_users=REMEMBERED_USERS, name=NAMES, careful=st.booleans())
    def a_room(self, history_limit: int, remembered_users: int, name: str | None, careful: bool) -> None:
        """A server with a room (its join key known: others may join it)."""
        self.server = Server(history_limit, remembered_users)
        self.start_a_room(name, careful)
        settle(self.server, self.members)

    def rooms(self) -> list[str]:
        return sorted({member.client.join_key for member in self.members if member.client.join_key is not None})

    def connected(self) -> list[Member]:
        return [member for member in self.members if member.connection is not None]

    def _add(self, client: Client, careful: bool) -> None:
        member = Member(client, careful)
        self.members.append(member)
        member.connect(self.server)

    # What members do

    @precondition(lambda self: len(self.members) < MAX_MEMBERS)
    @rule(name=NAMES, careful=st.booleans())
    def start_a_room(self, name: str | None, careful: bool) -> None:
        if len(self.members) < MAX_MEMBERS:
            self._add(Client(name=name, id_prefix=f"m{len(self.members)}"), careful)

    @precondition(lambda self: len(self.members) < MAX_MEMBERS and self.rooms())
    @rule(pick=PICK, name=NAMES, careful=st.booleans())
    def join_a_room(self, pick: int, name: str | None, careful: bool) -> None:
        rooms = self.rooms()
        if len(self.members) < MAX_MEMBERS and rooms:
            self._add(Client(rooms[pick % len(rooms)], name=name, id_prefix=f"m{len(self.members)}"), careful)

    @precondition(lambda self: self.members)
    @rule(pick=PICK, count=st.integers(1, 3))
    def talk(self, pick: int, count: int) -> None:
        """A member writes (it goes now if its connection is ready, else once it is)."""
        if self.members:
            member = self.members[pick % len(self.members)]
            for _ in range(count):
                member.talk(self.server, f"t{next(self.said)}")

    @precondition(lambda self: self.connected())
    @rule(pick=PICK, name=st.sampled_from(["Ada", "Bob", "Dee"]))
    def rename(self, pick: int, name: str) -> None:
        if members := self.connected():
            members[pick % len(members)].request(self.server, "name", name=name)

    @precondition(lambda self: self.connected())
    @rule(pick=PICK, paging=st.booleans(), limit=st.integers(1, 4))
    def read_history(self, pick: int, paging: bool, limit: int) -> None:
        """Older talks: the latest, or those before the oldest the member knows (paging back)."""
        if not (members := self.connected()):
            return
        member = members[pick % len(members)]
        known = [talk.offset for talk in member.talks()]
        known += [talk.offset for _, history in member.histories for talk in history.talks]
        if paging and known and min(known) > 1:
            member.request(self.server, "history", before=min(known), limit=limit)
        else:
            member.request(self.server, "history", limit=limit)

    @precondition(lambda self: any(member.retries for member in self.members))
    @rule(pick=PICK)
    def a_talk_refused_for_now_goes_again(self, pick: int) -> None:
        if members := [member for member in self.members if member.retries]:
            members[pick % len(members)].retry(self.server)

    # The network

    @precondition(lambda self: self.server.outbox)
    @rule(pick=PICK, count=st.integers(1, 4))
    def messages_reach_the_server(self, pick: int, count: int) -> None:
        if connections := sorted(self.server.outbox):
            self.server.arrive(connections[pick % len(connections)], count)

    @precondition(lambda self: self.connected())
    @rule(pick=PICK, count=st.integers(1, 4))
    def events_reach_a_member(self, pick: int, count: int) -> None:
        if members := self.connected():
            members[pick % len(members)].read(self.server, count)

    @precondition(lambda self: self.connected())
    @rule(pick=PICK, noticed=st.booleans(), code=CLOSE_CODES)
    def a_connection_drops(self, pick: int, noticed: bool, code: int | None) -> None:
        """Its member sees it end (``code``: as the server closed it, None: gone); the core now, or later."""
        if members := self.connected():
            members[pick % len(members)].lost(self.server, noticed=noticed, code=code)

    def joining(self) -> list[Member]:
        """Members whose join's answer has come and is not read yet."""
        return [
            member for member in self.connected()
            if member.client.state is State.JOINING and self.server.inbox.get(member.connection or 0)
        ]

    @precondition(lambda self: self.joining())
    @rule(pick=PICK)
    def a_connection_drops_as_it_joins(self, pick: int) -> None:
        """Its member reads the answer to its join and is cut off before the replay (a new user's, perhaps: the
        talks of ours the replay holds are still pending)."""
        if members := self.joining():
            member = members[pick % len(members)]
            member.read(self.server, 1)
            if member.connection is not None:
                member.lost(self.server)

    @precondition(lambda self: self.server.dead)
    @rule(pick=PICK)
    def the_server_notices_a_drop(self, pick: int) -> None:
        if dead := sorted(self.server.dead):
            self.server.notice(dead[pick % len(dead)])

    @precondition(lambda self: any(member.connection is None for member in self.members))
    @rule(pick=PICK)
    def a_member_reconnects(self, pick: int) -> None:
        if members := [member for member in self.members if member.connection is None]:
            member = members[pick % len(members)]
            if member.client.state is State.IDLE:
                member.connect(self.server)

    # The log and the server

    @precondition(lambda self: self.server.waiting)
    @rule(count=st.integers(1, 4))
    def the_log_answers(self, count: int) -> None:
        for _ in range(min(count, len(self.server.waiting))):
            self.server.answer_one()

    @precondition(lambda self: self.server.waiting)
    @rule(roll=st.integers(0, 2))
    def the_log_fails_a_request(self, roll: int) -> None:
        """Storage fails the oldest request: a join or a talk is refused for now, a history read fails."""
        if roll == 0 and self.server.waiting:
            self.server.answer_one(fail=True)

    @rule(done=st.integers(0, 6), roll=st.integers(0, 3))
    def the_server_restarts(self, done: int, roll: int) -> None:
        """Every connection ends (1012, as a server that drains says); the log had done its oldest ``done``
        requests, their answers lost."""
        if roll == 0:
            self.server.restart(done)
            for member in self.connected():
                member.lost(self.server, code=1012)

    @rule()
    def everything_settles(self) -> None:
        settle(self.server, self.members)

    # What must hold

    @invariant()
    def every_application_got_its_room_in_order(self) -> None:
        for member in self.members:
            if member.client.join_key is not None:
                check_stream(member, self.server, settled=False)

    def teardown(self) -> None:
        """Once everything has settled: every property, for every member."""
        settle(self.server, self.members)
        for member in self.members:
            check_stream(member, self.server, settled=True)
            check_histories(member, self.server)
            check_talks_stored(member, self.server)
        check_members(self.members, self.server)


def settle(server: Server, members: list[Member], *, notice: bool = True) -> None:
    """The core notices every drop (unless not ``notice``); every member reconnects; every message, answer and
    resend is delivered."""
    for connection in sorted(server.dead) if notice else ():
        server.notice(connection)
    for _ in range(10_000):
        busy = False
        for member in members:
            if member.connection is None and member.client.state is State.IDLE:
                member.connect(server)
                busy = True
            while member.retries:
                member.retry(server)
                busy = True
        for connection in [connection for connection, outbox in server.outbox.items() if outbox]:
            server.arrive(connection)
            busy = True
        while server.waiting:
            server.answer_one()
            busy = True
        for member in members:
            if member.connection is not None and server.inbox.get(member.connection):
                member.read(server)
                busy = True
        if not busy:
            return
    raise AssertionError("the simulation did not settle")


Simulation.TestCase.settings = settings(max_examples=300, stateful_step_count=50, deadline=None)
test_clients_against_the_core = Simulation.TestCase


# Long runs: hypothesis's rule-based runs are short (and each leaves some rules out), so the same simulation is also
# driven by a seeded random schedule, hundreds of steps long, weighted so that talk builds up between the faults.

SCHEDULE: list[tuple[int, str]] = [
    (1, "start_a_room"), (2, "join_a_room"), (12, "talk"), (2, "rename"), (2, "read_history"),
    (2, "a_talk_refused_for_now_goes_again"), (14, "messages_reach_the_server"), (14, "events_reach_a_member"),
    (3, "a_connection_drops"), (2, "a_connection_drops_as_it_joins"), (3, "the_server_notices_a_drop"),
    (5, "a_member_reconnects"), (14, "the_log_answers"), (1, "the_log_fails_a_request"), (1, "the_server_restarts"),
    (1, "everything_settles"),
]


def step(simulation: Simulation, name: str, random: Random) -> None:
    """The rule ``name`` with random arguments."""
    pick, coin, count = random.randrange(10**6), random.random() < 0.5, random.randint(1, 4)
    named = random.choice([None, "Ada", "Bob", "Cy"])
    if name == "start_a_room":
        simulation.start_a_room(named, coin)
    elif name == "join_a_room":
        simulation.join_a_room(pick, named, coin)
    elif name == "talk":
        simulation.talk(pick, count)
    elif name == "rename":
        simulation.rename(pick, named or "Dee")
    elif name == "read_history":
        simulation.read_history(pick, coin, count)
    elif name in ("messages_reach_the_server", "events_reach_a_member"):
        getattr(simulation, name)(pick, count)
    elif name == "a_connection_drops":
        simulation.a_connection_drops(pick, coin, random.choice([None, 1001, 1006, 1012]))
    elif name in (
        "a_talk_refused_for_now_goes_again", "a_connection_drops_as_it_joins", "the_server_notices_a_drop",
        "a_member_reconnects",
    ):
        getattr(simulation, name)(pick)
    elif name == "the_log_answers":
        simulation.the_log_answers(count)
    elif name == "the_log_fails_a_request":
        simulation.the_log_fails_a_request(roll=0)
    elif name == "the_server_restarts":
        simulation.the_server_restarts(random.randint(0, 6), roll=0)
    else:
        simulation.everything_settles()


@settings(max_examples=60, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate])  # no shrinking
@given(seed=st.integers(0, 2**64), history_limit=HISTORY_LIMITS, remembered_users=REMEMBERED_USERS)
def test_long_runs(seed: int, history_limit: int, remembered_users: int) -> None:
    random = Random(seed)  # (not st.randoms(): its first examples draw the smallest choice every time)
    simulation = Simulation()
    simulation.a_room(history_limit, remembered_users, "Ada", random.random() < 0.5)
    weights, names = zip(*SCHEDULE, strict=True)
    for n in range(600):
        step(simulation, random.choices(names, weights)[0], random)
        if n % 25 == 0:
            simulation.every_application_got_its_room_in_order()
    simulation.teardown()


# Scenarios the schedules reach only now and then, step by step.


def room_of(server: Server, *members: Member) -> None:
    """The first member starts a room, the others join it; everyone settled."""
    first, *others = members
    first.connect(server)
    settle(server, [first])
    for member in others:
        member.client.join_key = first.client.join_key
        member.connect(server)
    settle(server, list(members))


def check_all(server: Server, members: list[Member]) -> None:
    for member in members:
        check_stream(member, server, settled=True)
        check_histories(member, server)
        check_talks_stored(member, server)
    check_members(members, server)


def test_a_restart_with_talks_pending() -> None:
    server = Server(1000)
    ada, bob = Member(Client(name="Ada", id_prefix="a")), Member(Client(name="Bob", id_prefix="b"))
    room_of(server, ada, bob)
    assert ada.connection is not None
    stored_before = ada.talk(server, "stored, not answered")
    lost_with_it = ada.talk(server, "with the log when it stopped")
    never_arrived = ada.talk(server, "never reached the server")
    server.arrive(ada.connection, 2)
    server.restart(done=1)  # the first append done (its answer lost), the second not
    ada.lost(server, code=1012)
    bob.lost(server, code=1012)
    assert ada.client.pending == 3
    settle(server, [ada, bob])
    assert [talk.talk_id for talk in server.stream[bob.client.join_key or ""]] == [
        stored_before, lost_with_it, never_arrived]
    assert [talk.payload for talk in bob.talks()] == [
        "stored, not answered", "with the log when it stopped", "never reached the server"]
    check_all(server, [ada, bob])


def test_a_reconnect_after_missing_some_talks() -> None:
    server = Server(1000)
    ada, bob = Member(Client(id_prefix="a")), Member(Client(id_prefix="b"))
    room_of(server, ada, bob)
    bob.talk(server, "seen")
    settle(server, [ada, bob])
    ada.lost(server, noticed=False)
    for n in range(3):
        bob.talk(server, f"missed {n}")
    settle(server, [bob], notice=False)  # (the core has not noticed Ada's drop: it still sends to her old connection)
    ada.talk(server, "written while away")
    settle(server, [ada, bob])
    rejoined = ada.joined
    assert rejoined is not None
    assert (rejoined.resumed, rejoined.older, rejoined.offset) == (True, False, 4)
    assert [talk.payload for talk in ada.talks()] == ["seen", "missed 0", "missed 1", "missed 2", "written while away"]
    check_all(server, [ada, bob])


def test_a_member_away_longer_than_the_window_fills_the_gap_with_what_the_log_still_has() -> None:
    server = Server(2)
    ada, bob = Member(Client(id_prefix="a")), Member(Client(id_prefix="b"))
    room_of(server, ada, bob)
    bob.talk(server, "seen")
    settle(server, [ada, bob])
    ada.lost(server)
    for n in range(4):
        bob.talk(server, f"missed {n}")
    settle(server, [ada, bob])
    rejoined = ada.joined
    assert rejoined is not None
    assert (rejoined.older, rejoined.offset) == (False, 5)  # (the client asked for 2 and 3 itself)
    assert [talk.offset for talk in ada.talks()] == [1, 4, 5]  # (this log keeps only its window: 2, 3 are gone)
    assert ada.client.last_offset == 5
    ada.request(server, "history", limit=5)
    settle(server, [ada, bob])
    (_, history), = ada.histories
    assert ([talk.offset for talk in history.talks], history.older) == ([4, 5], False)  # (the log kept no more)
    check_all(server, [ada, bob])


def test_a_member_away_longer_than_the_replay_gets_every_talk_the_log_keeps_once_in_order() -> None:
    server = Server(2, log_memory=1000)
    ada, bob = Member(Client(id_prefix="a")), Member(Client(id_prefix="b"))
    room_of(server, ada, bob)
    bob.talk(server, "seen")
    settle(server, [ada, bob])
    ada.lost(server)
    for n in range(450):  # (more than two pages of 200)
        bob.talk(server, f"missed {n}")
    ada.talk(server, "back")
    settle(server, [ada, bob])
    assert [talk.offset for talk in ada.talks()] == list(range(1, 453))
    assert [talk.payload for talk in ada.talks()][-1] == "back"
    assert [talk.payload for talk in bob.talks()] == [talk.payload for talk in ada.talks()]
    assert len(ada.stored) == 1


def test_a_talk_whose_echo_was_lost_is_stored_again_once_it_left_the_window() -> None:
    """Ids are remembered as long as the log keeps their talk (docs/protocol-v2-decisions.md): a talk stored
    while its sender was cut off, and gone from the window by the time it resends, is stored a second time."""
    server = Server(2)
    ada, bob = Member(Client(id_prefix="a")), Member(Client(id_prefix="b"))
    room_of(server, ada, bob)
    assert ada.connection is not None
    talk_id = ada.talk(server, "hello")
    server.arrive(ada.connection)
    server.answer_one()
    ada.lost(server)  # (before reading its echo)
    for n in range(2):
        bob.talk(server, f"t{n}")
    settle(server, [ada, bob])
    assert [talk.offset for talk in server.stream[bob.client.join_key or ""] if talk.talk_id == talk_id] == [1, 4]
    assert [stored.talk.offset for stored in ada.stored if stored.talk is not None] == [4]
    check_all(server, [ada, bob])


def test_a_talk_the_log_could_not_store_now_goes_again() -> None:
    server = Server(1000)
    ada = Member(Client(id_prefix="a"))
    room_of(server, ada)
    assert ada.connection is not None
    ada.talk(server, "first")
    ada.talk(server, "second")
    server.arrive(ada.connection)
    server.answer_one(fail=True)
    server.answer_one()
    ada.read(server)
    assert ada.retried
    assert ada.client.pending == 1
    settle(server, [ada])
    assert [talk.payload for talk in ada.talks()] == ["second", "first"]  # (sent again after: not in order)
    check_all(server, [ada])


def test_a_member_cut_off_before_two_replays_as_a_new_user_still_recognises_its_talk() -> None:
    """The log forgets users as soon as they leave: Bob's token no longer resumes him. His talk is stored while
    he is cut off; he comes back as a new user and is cut off again before the replay that holds it; then as a
    third user, whose replay holds it under his first: it is his, stored once (it was stored twice, when the
    client remembered only the user before its last)."""
    server = Server(1000, remembered_users=0)
    ada, bob = Member(Client(id_prefix="a")), Member(Client(id_prefix="b"))
    room_of(server, ada, bob)
    assert bob.connection is not None
    bob.talk(server, "hello")
    server.arrive(bob.connection)
    server.answer_one()
    bob.lost(server)  # (before reading its echo)
    bob.connect(server)
    server.arrive(bob.connection)
    server.answer_one()
    bob.read(server, 1)
    assert bob.joined is not None
    assert (bob.joined.resumed, bob.client.pending) == (False, 1)
    bob.lost(server)  # (before the replay)
    settle(server, [ada, bob])
    assert len({news.user_id for news in bob.news if isinstance(news, Joined)}) == 3
    assert [talk.payload for talk in bob.talks()] == ["hello"]
    check_all(server, [ada, bob])
