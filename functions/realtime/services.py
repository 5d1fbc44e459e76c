"""The composition root: what each function works with, built once per container from its settings.

One builder per function, named after it. Each reads its own settings model in
full (a missing variable fails the first invocation, naming it) and imports only
the modules that function uses, so a cold start pays for nothing else (ws-disconnect
never loads pydantic, the rule engines or the token libraries).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

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
    RepairingPresence,
    WsConnectSettings,
    WsDisconnectSettings,
    load,
)

if TYPE_CHECKING:
    from realtime.connections.layout import StoredLayout, SubscriptionLayout
    from realtime.connections.store import ConnectionStore
    from realtime.core.auth import TokenVerifier
    from realtime.core.sqs import DeadLetterQueue, RetrySoon
    from realtime.db_changes.publish import ChangePublisher
    from realtime.events.audience import EventTypeRules
    from realtime.events.delivery import EventDelivery
    from realtime.events.feed import EventFeed
    from realtime.events.pipeline import EventPipeline
    from realtime.events.store import EventStore
    from realtime.events.turns import DeliveryTurns
    from realtime.maintenance import Maintenance
    from realtime.presence.announcer import PresenceAnnouncer
    from realtime.presence.api import PresenceReader
    from realtime.presence.sessions import PresenceDecider, SessionTracker
    from realtime.presence.store import PresenceStore


class WsConnect(msgspec.Struct, frozen=True):
    verifier: TokenVerifier
    sessions: SessionTracker
    connection_ttl_seconds: int
    max_sessions_per_user: int


class ProcessEvents(msgspec.Struct, frozen=True):
    pipeline: EventPipeline
    dead_letters: DeadLetterQueue
    retries: RetrySoon
    internal_source_arn: str | None  # records from this queue (presence events) are the module's own


class Fanout(msgspec.Struct, frozen=True):
    delivery: EventDelivery
    retries: RetrySoon


class EventsApi(msgspec.Struct, frozen=True):
    verifier: TokenVerifier
    feed: EventFeed
    presence: PresenceReader | None  # None: presence is turned off (GET /presence answers 404)


# --- one builder per function --------------------------------------------------------------------


@per_container
def ws_connect() -> WsConnect:
    from realtime.connections.layout import StoredLayout
    from realtime.core.auth import TokenVerifier

    settings = load(WsConnectSettings)
    # The writer follows the layout item, which Terraform writes after the readers are updated.
    layout = StoredLayout(aws.dynamodb().Table(settings.connections_table))
    return WsConnect(
        verifier=TokenVerifier.from_settings(settings.token, max_topics=settings.max_topics_per_token),
        sessions=_sessions(settings.connections_table, settings.presence, layout),
        connection_ttl_seconds=settings.connection_ttl_seconds,
        max_sessions_per_user=settings.max_sessions_per_user,
    )


@per_container
def ws_disconnect() -> SessionTracker:
    settings = load(WsDisconnectSettings)
    return _sessions(settings.connections_table, settings.presence)


@per_container
def process_events() -> ProcessEvents:
    from realtime.core.sqs import DeadLetterQueue, RetrySoon
    from realtime.events.pipeline import EventPipeline
    from realtime.events.store import EventStore

    settings = load(ProcessEventsSettings)
    store = EventStore(aws.dynamodb().Table(settings.events_table), settings.event_retention_seconds)
    turns = None
    if settings.delivery_order_wait_ms:
        from realtime.events.turns import DeliveryTurns

        turns = DeliveryTurns(store, settings.delivery_order_wait_ms / 1000)
    pipeline = EventPipeline(
        store=store,
        # process-events posts the first fanout_threshold subscribers of each topic itself.
        delivery=_event_delivery(
            settings.connections_table,
            settings.presence,
            settings.connections_endpoint,
            concurrency=settings.delivery_concurrency,
            queue_url=settings.fanout_queue_url,
            max_attempts=settings.delivery_max_attempts,
            page_size=settings.fanout_threshold,
            subscription_shards=settings.subscription_shards,
            posts_per_second=settings.posts_per_second,
            turns=turns,
        ),
        rules=_event_type_rules(settings.event_type_rules),
        max_data_bytes=settings.max_data_bytes,
    )
    presence = settings.presence
    return ProcessEvents(
        pipeline=pipeline,
        dead_letters=DeadLetterQueue(aws.sqs_on_first_send(), settings.dlq_url),
        retries=RetrySoon(
            aws.sqs_on_first_send(),
            settings.events_queue_url,
            {presence.presence_events_queue_arn: presence.presence_events_queue_url} if presence else {},
        ),
        internal_source_arn=presence.presence_events_queue_arn if presence else None,
    )


def _event_type_rules(text: str) -> EventTypeRules | None:
    """The event-type rules, or None when there are none (the module's default): they are pydantic models,
    and without them a process-events cold start does not import pydantic at all."""
    if text.strip() == "[]":
        return None
    from realtime.events.audience import EventTypeRules

    return EventTypeRules.from_json(text)


@per_container
def fanout() -> Fanout:
    from realtime.core.sqs import RetrySoon
    from realtime.events.store import EventStore

    settings = load(FanoutSettings)
    delivery = _event_delivery(
        settings.connections_table,
        settings.presence,
        settings.connections_endpoint,
        concurrency=settings.fanout_concurrency,
        queue_url=settings.fanout_queue_url,
        max_attempts=settings.delivery_max_attempts,
        page_size=settings.fanout_page_size,
        subscription_shards=settings.subscription_shards,
        posts_per_second=settings.posts_per_second,
        events=EventStore(aws.dynamodb().Table(settings.events_table)),
    )
    return Fanout(delivery=delivery, retries=RetrySoon(aws.sqs(), settings.fanout_queue_url))


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
    from realtime.connections.scan_positions import ScanPositions
    from realtime.connections.sweep import CHECKS_IN_FLIGHT, ConnectionSweep
    from realtime.maintenance import Maintenance

    settings = load(MaintenanceSettings)
    presence = settings.presence
    dynamodb = aws.dynamodb()
    sessions = _sessions(settings.connections_table, presence)
    # Both scans' positions live in the connections table (the presence table's only key is userId).
    positions = ScanPositions(dynamodb.Table(settings.connections_table))
    repair = None
    if presence is not None:
        from realtime.presence.repair import PresenceRepair

        repair = PresenceRepair(
            presence=_presence_store(presence),
            connections=_connection_store(settings.connections_table),
            sessions=sessions,
            grace_seconds=presence.grace_seconds,
            positions=positions,
            items_per_run=settings.scan_items_per_run,
        )
    return Maintenance(
        sweep=ConnectionSweep(
            connections=_connection_store(settings.connections_table),
            management=aws.connections_management(settings.connections_endpoint, CHECKS_IN_FLIGHT),
            # A dead connection also ends its session when presence is on.
            remove=sessions.remove,
            stale_seconds=settings.stale_connection_seconds,
            positions=positions,
            items_per_run=settings.scan_items_per_run,
            checks_per_second=settings.connection_checks_per_second,
        ),
        repair=repair,
        ttl_tables={
            "events": dynamodb.Table(settings.events_table),
            "connections": dynamodb.Table(settings.connections_table),
        },
    )


@per_container
def db_changes() -> ChangePublisher:
    from realtime.core.sqs import DeadLetterQueue
    from realtime.db_changes.publish import ChangePublisher, EventsQueueSender
    from realtime.db_changes.sources import ChangeSources
    from realtime.db_changes.translate import ChangeTranslator

    settings = load(DbChangesSettings)
    translator = ChangeTranslator(ChangeSources.from_json(settings.sources), settings.max_topics_per_record)
    return ChangePublisher(
        translator,
        EventsQueueSender(aws.sqs(), settings.events_queue_url),
        DeadLetterQueue(aws.sqs(), settings.failures_queue_url),
    )


# --- shared pieces -------------------------------------------------------------------------------


def _event_delivery(
    connections_table: str,
    presence: EndingSessions | None,
    endpoint: str,
    *,
    concurrency: int,
    queue_url: str,
    max_attempts: int,
    page_size: int,
    subscription_shards: str,
    posts_per_second: int,
    events: EventStore | None = None,
    turns: DeliveryTurns | None = None,
) -> EventDelivery:
    from realtime.connections.layout import SubscriptionLayout
    from realtime.connections.posting import Poster, PostPace
    from realtime.events.delivery import DeliveryQueue, EventDelivery

    # A connection found gone while delivering also ends its session when presence is on.
    on_gone = _sessions(connections_table, presence).remove
    return EventDelivery(
        connections=_connection_store(connections_table, SubscriptionLayout.from_json(subscription_shards)),
        events=events,
        poster=Poster(aws.connections_gateway(endpoint, concurrency), concurrency, on_gone, PostPace(posts_per_second)),
        queue=DeliveryQueue(aws.sqs_on_first_send(), queue_url),
        max_attempts=max_attempts,
        page_size=page_size,
        turns=turns,
    )


def _connection_store(table_name: str, layout: SubscriptionLayout | StoredLayout | None = None) -> ConnectionStore:
    """`layout`: for the writer (ws-connect) and the readers (delivery); removals follow each record's own."""
    from realtime.connections.layout import ONE_KEY_EACH
    from realtime.connections.store import ConnectionStore

    return ConnectionStore(aws.dynamodb().Table(table_name), layout=layout or ONE_KEY_EACH)


def _presence_store(presence: PresenceTable) -> PresenceStore:
    from realtime.presence.store import PresenceStore

    return PresenceStore(aws.dynamodb(), presence.table)


def _announcer(presence: AnnouncingPresence | RepairingPresence) -> PresenceAnnouncer:
    from realtime.presence.announcer import PresenceAnnouncer

    return PresenceAnnouncer(
        aws.sqs(), presence.presence_events_queue_url, _presence_store(presence), include_groups=presence.group_presence
    )


def _sessions(
    connections_table: str, presence: PresenceTable | None, layout: StoredLayout | None = None
) -> SessionTracker:
    """Connection records, plus presence when the function's settings have it.

    What the tracker may do with presence follows what the function is given:
    announcing (ws-connect, maintenance) and scheduling offline checks
    (ws-disconnect, process-events, maintenance).
    """
    from realtime.presence.sessions import SessionTracker

    connections = _connection_store(connections_table, layout)
    if presence is None:
        return SessionTracker(connections)
    announces = isinstance(presence, AnnouncingPresence | RepairingPresence)
    announce = _announcer(presence).announce if announces else None
    schedule_check = None
    if isinstance(presence, EndingSessions):
        from realtime.presence.announcer import OfflineChecks

        schedule_check = OfflineChecks(aws.sqs(), presence.checks_queue_url, presence.grace_seconds).schedule
    return SessionTracker(connections, _presence_store(presence), announce=announce, schedule_check=schedule_check)
