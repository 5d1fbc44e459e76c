"""A small world for presence tests: moto tables, a fake clock, queues that honour DelaySeconds on it,
and a fake `@connections` API that knows which connections are alive."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError
from realtime.connections.scan_positions import ScanPositions
from realtime.connections.store import ConnectionStore
from realtime.connections.sweep import ConnectionSweep
from realtime.core.auth import Principal
from realtime.core.topics import topics_for_claims
from realtime.maintenance import Maintenance
from realtime.presence.announcer import OfflineCheck, OfflineChecks, PresenceAnnouncer
from realtime.presence.repair import PresenceRepair
from realtime.presence.sessions import SessionTracker
from realtime.presence.store import PresenceStore

from ..support import client_error

PRESENCE_TABLE = "realtime-test-presence"
EVENTS_QUEUE = "https://sqs.test/events"
CHECKS_QUEUE = "https://sqs.test/presence-checks"
START = 1_767_225_600.0  # 2026-01-01T00:00:00Z
VISIBILITY_TIMEOUT_SECONDS = 30
MAX_SESSIONS = 1000  # the histories here never reach the limit; test_sessions_limit.py does
SCAN_ITEMS_PER_RUN = 200_000  # the module's default: these tables are read whole each run
CHECKS_PER_SECOND = 10_000  # the clock here is fake; the rate limit has its own tests


def create_presence_table(dynamodb: Any, name: str = PRESENCE_TABLE) -> Any:
    return dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "userId", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "userId", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


class Clock:
    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Message:
    queue_url: str
    body: str
    due: float


@dataclass
class FakeSqs:
    """send_message only; messages become due DelaySeconds later on the fake clock."""

    clock: Clock
    messages: list[Message] = field(default_factory=list)  # not yet taken
    messages_sent: list[Message] = field(default_factory=list)  # everything ever sent
    failing: set[str] = field(default_factory=set)  # queue URLs whose sends fail

    def send_message(self, *, QueueUrl: str, MessageBody: str, DelaySeconds: int = 0) -> dict[str, Any]:
        if QueueUrl in self.failing:
            raise client_error("ServiceUnavailable", 503, "SendMessage")
        message = Message(QueueUrl, MessageBody, self.clock() + DelaySeconds)
        self.messages.append(message)
        self.messages_sent.append(message)
        return {"MessageId": f"m{len(self.messages)}"}

    def take_due(self, queue_url: str) -> list[Message]:
        due = [m for m in self.messages if m.queue_url == queue_url and m.due <= self.clock()]
        self.messages = [m for m in self.messages if m not in due]
        return sorted(due, key=lambda m: m.due)


@dataclass
class FakeManagement:
    """GetConnection, PostToConnection, DeleteConnection: success for live ids, GoneException otherwise."""

    alive: set[str] = field(default_factory=set)
    failing: set[str] = field(default_factory=set)
    frames: dict[str, list[dict]] = field(default_factory=dict)  # posted, by connection
    on_delete: Any = None  # the gateway's $disconnect, run when a connection is deleted

    def get_connection(self, *, ConnectionId: str) -> dict[str, Any]:
        if ConnectionId in self.failing:
            raise client_error("InternalServerError", 500, "GetConnection")
        if ConnectionId not in self.alive:
            raise client_error("GoneException", 410, "GetConnection")
        return {}

    def post_to_connection(self, *, ConnectionId: str, Data: bytes) -> dict[str, Any]:
        self.get_connection(ConnectionId=ConnectionId)
        self.frames.setdefault(ConnectionId, []).append(json.loads(Data))
        return {}

    def delete_connection(self, *, ConnectionId: str) -> dict[str, Any]:
        self.get_connection(ConnectionId=ConnectionId)
        self.alive.discard(ConnectionId)
        if self.on_delete is not None:
            self.on_delete(ConnectionId)
        return {}


@dataclass
class Emitted:
    at: float
    type: str
    user_id: str
    version: int
    id: str
    audience: list[str]
    occurred_at: str


class World:
    def __init__(
        self,
        dynamodb: Any,
        connections_table: Any,
        *,
        grace: int = 5,
        stale: int = 180,
        include_groups: bool = True,
        presence_table: str = PRESENCE_TABLE,
    ) -> None:
        self.clock = Clock()
        self.sqs = FakeSqs(self.clock)
        self.management = FakeManagement(on_delete=lambda connection_id: self.sessions.close(connection_id))
        self.connections = ConnectionStore(connections_table, clock=self.clock)
        self.positions = ScanPositions(connections_table, clock=self.clock)
        self.presence = PresenceStore(dynamodb, presence_table, clock=self.clock)
        self.announcer = PresenceAnnouncer(self.sqs, EVENTS_QUEUE, self.presence, include_groups=include_groups)
        self.checks = OfflineChecks(self.sqs, CHECKS_QUEUE, grace)
        self.grace = grace
        self.stale = stale
        self.sessions = SessionTracker(
            self.connections,
            self.presence,
            announce=lambda state: self.announcer.announce(state),
            schedule_check=lambda user_id, version: self.checks.schedule(user_id, version),
            clock=self.clock,
        )
        self.maintenance = maintenance(self)
        self._ids = itertools.count(1)
        self.delivered_checks: list[str] = []  # bodies of every check handed to the consumer
        self.sent_at: dict[str, float] = {}  # event id -> first send time (the events queue stores once per id)
        self.emitted: list[Emitted] = []

    # --- what clients and the gateway do ---------------------------------------------

    def connect(
        self,
        user: str,
        groups: tuple[str, ...] = (),
        topics: tuple[str, ...] = (),
        token_lifetime: int | None = None,
    ) -> str:
        connection_id = f"c{next(self._ids)}"
        claims = {"sub": user, "groups": list(groups), "topics": list(topics)}
        expires_at = None if token_lifetime is None else int(self.clock()) + token_lifetime
        principal = Principal(
            user_id=user, groups=groups, topics=tuple(topics_for_claims(claims)), expires_at=expires_at
        )
        self.management.alive.add(connection_id)
        self.sessions.open(connection_id, principal, 7200, MAX_SESSIONS)
        self.collect()
        return connection_id

    def disconnect(self, connection_id: str) -> bool:
        self.management.alive.discard(connection_id)
        removed = self.sessions.close(connection_id)
        self.collect()
        return removed

    def lose(self, connection_id: str) -> None:
        """The socket dies and API Gateway never runs $disconnect."""
        self.management.alive.discard(connection_id)

    def ping(self, connection_id: str) -> bool:
        """The gateway answers pings itself (a MOCK route): nothing is written, it only shows the socket is up."""
        return connection_id in self.management.alive

    def sweep(self):
        report = self.maintenance.run()
        self.collect()
        return report

    def run_due_checks(self) -> list[str | None]:
        """The presence-checks consumer: a check that fails comes back after the visibility timeout."""
        results = []
        for message in self.sqs.take_due(CHECKS_QUEUE):
            self.delivered_checks.append(message.body)
            check = OfflineCheck.from_json(message.body)
            try:
                results.append(self.sessions.check_offline(check.user_id, check.version))
            except ClientError:
                message.due = self.clock() + VISIBILITY_TIMEOUT_SECONDS
                self.sqs.messages.append(message)
        self.collect()
        return results

    def advance(self, seconds: float) -> None:
        """Let time pass, running every offline check when it becomes due."""
        target = self.clock.now + seconds
        while True:
            pending = sorted(m.due for m in self.sqs.messages if m.queue_url == CHECKS_QUEUE and m.due <= target)
            if not pending:
                break
            self.clock.now = max(self.clock.now, pending[0])
            self.run_due_checks()
        self.clock.now = target

    # --- what the events queue received ------------------------------------------------

    def collect(self) -> None:
        for message in self.sqs.take_due(EVENTS_QUEUE):
            body = json.loads(message.body)
            if body["id"] in self.sent_at:
                continue  # stored once per id
            self.sent_at[body["id"]] = self.clock()
            self.emitted.append(
                Emitted(
                    self.clock(),
                    body["type"],
                    body["data"]["userId"],
                    body["data"]["version"],
                    body["id"],
                    body["audience"],
                    body["occurredAt"],
                )
            )

    def events_of(self, user: str) -> list[Emitted]:
        return [e for e in self.emitted if e.user_id == user]

    def kinds_of(self, user: str) -> list[str]:
        return [e.type.removeprefix("presence.") for e in self.events_of(user)]

    def state(self, user: str):
        return self.presence.get(user)

    # --- the atomic writes inside the handlers, to interleave them ---------------------------

    def opening_steps(self, connection_id: str, user: str, groups: tuple[str, ...] = ()) -> list:
        """$connect as SessionTracker.open does it: the session, then the record, then the announcement."""
        topics = tuple(topics_for_claims({"sub": user, "groups": list(groups)}))
        started: dict[str, Any] = {}

        def count_session() -> None:
            started["session"] = self.presence.session_started(user, connection_id, groups, MAX_SESSIONS)

        def put_record_and_announce() -> None:
            self.management.alive.add(connection_id)
            self.connections.add(connection_id, user, topics, 7200)
            if started["session"].came_online:
                self.sessions.announce(started["session"].state)

        return [count_session, put_record_and_announce]

    def removal_steps(self, connection_id: str, *, seen_now: bool = True) -> list:
        """A remover ($disconnect, maintenance or delivery) as SessionTracker._remove does it."""
        record: dict[str, Any] = {}

        def read_record() -> None:
            record["item"] = self.connections.get(connection_id)

        def end_session() -> None:
            if record["item"] is not None:
                self.sessions.end_session(record["item"]["userId"], connection_id, seen_now=seen_now)

        def remove_record() -> None:
            if record["item"] is not None:
                self.connections.remove(connection_id)

        return [read_record, end_session, remove_record]


def interleavings(first: list, second: list):
    """Every merge of two sequences that keeps each one's own order."""
    total = len(first) + len(second)
    for slots in itertools.combinations(range(total), len(first)):
        a, b = iter(first), iter(second)
        yield [next(a) if i in slots else next(b) for i in range(total)]


def maintenance(world: World, rand: Any = None, items_per_run: int = SCAN_ITEMS_PER_RUN) -> Maintenance:
    """The maintenance run as services.maintenance() builds it, over the world's stores and clock."""
    return Maintenance(
        sweep=ConnectionSweep(
            connections=world.connections,
            management=world.management,
            remove=world.sessions.remove,
            stale_seconds=world.stale,
            positions=world.positions,
            items_per_run=items_per_run,
            checks_per_second=CHECKS_PER_SECOND,
            clock=world.clock,
        ),
        repair=PresenceRepair(
            presence=world.presence,
            connections=world.connections,
            sessions=world.sessions,
            grace_seconds=world.grace,
            positions=world.positions,
            items_per_run=items_per_run,
            clock=world.clock,
            **({"rand": rand} if rand is not None else {}),
        ),
        ttl_tables={},
        clock=world.clock,
    )
