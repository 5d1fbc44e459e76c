"""The composition root: what each function works with, built once per container from its settings.

One builder per function, named after it. Each reads its own settings model in
full (a missing variable fails the first invocation, naming it) and imports only
the modules that function uses, so a cold start pays for nothing else (ws-ping
never loads pydantic, the rule engines or the token libraries).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from realtime.core import aws
from realtime.core.lifecycle import per_container
from realtime.core.settings import (
    AnnouncingPresence,
    DbChangesSettings,
    EndingSessions,
    EventsApiSettings,
    FanoutSettings,
    MaintenanceSettings,
    PresenceChecksSettings,
    PresenceTable,
    ProcessEventsSettings,
    WsConnectSettings,
    WsDisconnectSettings,
    WsPingSettings,
    load,
)

if TYPE_CHECKING:
    from realtime.core.auth import TokenVerifier
    from realtime.core.batch import RetrySoon
    from realtime.db_changes.publish import ChangePublisher
    from realtime.events.connections import ConnectionStore
    from realtime.events.dlq import DeadLetterQueue
    from realtime.events.fanout import FanoutDelivery
    from realtime.events.feed import EventFeed
    from realtime.events.pipeline import EventPipeline
    from realtime.presence.announcer import PresenceAnnouncer
    from realtime.presence.api import PresenceReader
    from realtime.presence.maintenance import Maintenance
    from realtime.presence.sessions import Heartbeats, PresenceDecider, SessionTracker
    from realtime.presence.store import PresenceStore


@dataclass(frozen=True)
class WsConnect:
    verifier: TokenVerifier
    sessions: SessionTracker
    connection_ttl_seconds: int
    max_sessions_per_user: int


@dataclass(frozen=True)
class ProcessEvents:
    pipeline: EventPipeline
    dead_letters: DeadLetterQueue
    retries: RetrySoon
    internal_source_arn: str | None  # records from this queue (presence events) are the module's own


@dataclass(frozen=True)
class Fanout:
    delivery: FanoutDelivery
    page_size: int
    retries: RetrySoon


@dataclass(frozen=True)
class EventsApi:
    verifier: TokenVerifier
    feed: EventFeed
    presence: PresenceReader | None  # None: presence is turned off (GET /presence answers 404)


# --- one builder per function --------------------------------------------------------------------


@per_container
def ws_connect() -> WsConnect:
    from realtime.core.auth import TokenVerifier

    settings = load(WsConnectSettings)
    return WsConnect(
        verifier=TokenVerifier.from_settings(settings.token, max_topics=settings.max_topics_per_token),
        sessions=_sessions(settings.connections_table, settings.presence),
        connection_ttl_seconds=settings.connection_ttl_seconds,
        max_sessions_per_user=settings.max_sessions_per_user,
    )


@per_container
def ws_disconnect() -> SessionTracker:
    settings = load(WsDisconnectSettings)
    return _sessions(settings.connections_table, settings.presence)


@per_container
def ws_ping() -> Heartbeats:
    from realtime.presence.sessions import Heartbeats

    settings = load(WsPingSettings)
    return Heartbeats(
        _sessions(settings.connections_table, settings.presence),
        _connection_store(settings.connections_table),
        interval_seconds=settings.stale_connection_seconds / 2,
    )


@per_container
def process_events() -> ProcessEvents:
    from realtime.core.batch import RetrySoon
    from realtime.events.dlq import DeadLetterQueue
    from realtime.events.pipeline import EventPipeline
    from realtime.events.rules import EventTypeRules
    from realtime.events.store import EventStore

    settings = load(ProcessEventsSettings)
    pipeline = EventPipeline(
        store=EventStore(aws.dynamodb().Table(settings.events_table), settings.event_retention_seconds),
        delivery=_fanout_delivery(
            settings.connections_table,
            settings.presence,
            settings.connections_endpoint,
            settings.delivery_concurrency,
            settings.fanout_queue_url,
            settings.delivery_max_attempts,
        ),
        rules=EventTypeRules.from_json(settings.event_type_rules),
        max_data_bytes=settings.max_data_bytes,
        fanout_threshold=settings.fanout_threshold,
    )
    presence = settings.presence
    return ProcessEvents(
        pipeline=pipeline,
        dead_letters=DeadLetterQueue(aws.sqs(), settings.dlq_url),
        retries=RetrySoon(
            aws.sqs(),
            settings.events_queue_url,
            {presence.presence_events_queue_arn: presence.presence_events_queue_url} if presence else {},
        ),
        internal_source_arn=presence.presence_events_queue_arn if presence else None,
    )


@per_container
def fanout() -> Fanout:
    from realtime.core.batch import RetrySoon

    settings = load(FanoutSettings)
    delivery = _fanout_delivery(
        settings.connections_table,
        settings.presence,
        settings.connections_endpoint,
        settings.fanout_concurrency,
        settings.fanout_queue_url,
        settings.delivery_max_attempts,
    )
    return Fanout(
        delivery=delivery,
        page_size=settings.fanout_page_size,
        retries=RetrySoon(aws.sqs(), settings.fanout_queue_url),
    )


@per_container
def events_api() -> EventsApi:
    from realtime.core.auth import TokenVerifier
    from realtime.events.feed import EventFeed
    from realtime.events.store import EventStore

    settings = load(EventsApiSettings)
    reader = None
    if settings.presence is not None:
        from realtime.presence.api import PresenceReader

        reader = PresenceReader(_presence_store(settings.presence), settings.presence.max_users)
    return EventsApi(
        verifier=TokenVerifier.from_settings(settings.token, max_topics=settings.max_topics_per_token),
        feed=EventFeed(EventStore(aws.dynamodb().Table(settings.events_table))),
        presence=reader,
    )


@per_container
def presence_checks() -> PresenceDecider:
    from realtime.presence.sessions import PresenceDecider

    presence = load(PresenceChecksSettings).presence
    return PresenceDecider(_presence_store(presence), announce=_announcer(presence).announce)


@per_container
def maintenance() -> Maintenance:
    from realtime.presence.maintenance import Maintenance

    settings = load(MaintenanceSettings)
    presence = settings.presence
    dynamodb = aws.dynamodb()
    return Maintenance(
        connections=_connection_store(settings.connections_table),
        management=aws.connections_management(settings.connections_endpoint),
        sessions=_sessions(settings.connections_table, presence),
        presence=_presence_store(presence) if presence is not None else None,
        ttl_tables={
            "events": dynamodb.Table(settings.events_table),
            "connections": dynamodb.Table(settings.connections_table),
        },
        stale_seconds=settings.stale_connection_seconds,
        grace_seconds=presence.grace_seconds if presence is not None else 0,
    )


@per_container
def db_changes() -> ChangePublisher:
    from realtime.db_changes.publish import ChangePublisher, EventsQueueSender
    from realtime.db_changes.rules import ChangeSources
    from realtime.db_changes.translate import ChangeTranslator
    from realtime.events.dlq import DeadLetterQueue

    settings = load(DbChangesSettings)
    translator = ChangeTranslator(ChangeSources.from_json(settings.sources), settings.max_topics_per_record)
    return ChangePublisher(
        translator,
        EventsQueueSender(aws.sqs(), settings.events_queue_url),
        DeadLetterQueue(aws.sqs(), settings.failures_queue_url),
    )


# --- shared pieces -------------------------------------------------------------------------------


def _fanout_delivery(
    connections_table: str,
    presence: EndingSessions | None,
    endpoint: str,
    concurrency: int,
    queue_url: str,
    max_attempts: int,
) -> FanoutDelivery:
    from realtime.events.delivery import Deliverer
    from realtime.events.fanout import FanoutDelivery, FanoutQueue

    # A connection found gone while delivering also ends its session when presence is on.
    on_gone = _sessions(connections_table, presence).remove
    management = aws.connections_management(endpoint, concurrency, retries=False)
    return FanoutDelivery(
        connections=_connection_store(connections_table),
        deliverer=Deliverer(management, concurrency, on_gone),
        queue=FanoutQueue(aws.sqs(), queue_url),
        max_attempts=max_attempts,
    )


def _connection_store(table_name: str) -> ConnectionStore:
    from realtime.events.connections import ConnectionStore

    return ConnectionStore(aws.dynamodb().Table(table_name))


def _presence_store(presence: PresenceTable) -> PresenceStore:
    from realtime.presence.store import PresenceStore

    return PresenceStore(aws.dynamodb(), presence.table)


def _announcer(presence: AnnouncingPresence) -> PresenceAnnouncer:
    from realtime.presence.announcer import PresenceAnnouncer

    return PresenceAnnouncer(
        aws.sqs(), presence.presence_events_queue_url, _presence_store(presence), include_groups=presence.group_presence
    )


def _sessions(connections_table: str, presence: PresenceTable | None) -> SessionTracker:
    """Connection records, plus presence when the function's settings have it.

    What the tracker may do with presence follows what the function is given:
    announcing (ws-connect, maintenance) and scheduling offline checks
    (ws-disconnect, process-events, maintenance).
    """
    from realtime.presence.sessions import SessionTracker

    connections = _connection_store(connections_table)
    if presence is None:
        return SessionTracker(connections)
    announce = _announcer(presence).announce if isinstance(presence, AnnouncingPresence) else None
    schedule_check = None
    if isinstance(presence, EndingSessions):
        from realtime.presence.announcer import OfflineChecks

        schedule_check = OfflineChecks(aws.sqs(), presence.checks_queue_url, presence.grace_seconds).schedule
    return SessionTracker(connections, _presence_store(presence), announce=announce, schedule_check=schedule_check)
