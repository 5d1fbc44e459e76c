"""The objects each function uses, built from configuration once per container."""

from __future__ import annotations

from realtime import aws, config
from realtime.auth import TokenVerifier, default_verifier
from realtime.connections import ConnectionStore
from realtime.db_changes import ChangeTranslator
from realtime.db_changes_publisher import ChangePublisher, EventsQueueSender
from realtime.db_changes_rules import ChangeSources
from realtime.delivery import Deliverer
from realtime.dlq import DeadLetterQueue
from realtime.events_store import EventStore
from realtime.feed import EventFeed
from realtime.pipeline import EventPipeline
from realtime.presence import PresenceStore
from realtime.presence_api import PresenceReader
from realtime.presence_events import OfflineChecks, PresenceAnnouncer
from realtime.presence_maintenance import Maintenance
from realtime.presence_sessions import PresenceDecider, SessionTracker
from realtime.rules import EventTypeRules


@config.per_container
def connection_store() -> ConnectionStore:
    return ConnectionStore(aws.dynamodb().Table(config.connections_table()))


@config.per_container
def event_store() -> EventStore:
    return EventStore(aws.dynamodb().Table(config.events_table()), config.event_retention_seconds())


@config.per_container
def event_feed() -> EventFeed:
    return EventFeed(event_store())


@config.per_container
def event_type_rules() -> EventTypeRules:
    return EventTypeRules.from_json(config.event_type_rules_json())


@config.per_container
def deliverer() -> Deliverer:
    # With presence configured, a connection found gone also ends its session (SessionTracker.remove).
    connections = session_tracker() if config.presence_configured() else connection_store()
    return Deliverer(aws.connections_management(), connections, config.delivery_concurrency())


@config.per_container
def dead_letters() -> DeadLetterQueue:
    return DeadLetterQueue(aws.sqs(), config.dlq_url())


@config.per_container
def change_publisher() -> ChangePublisher:
    """db-changes: stream records -> rules -> producer messages on the events queue."""
    translator = ChangeTranslator(ChangeSources.from_json(config.db_change_sources_json()))
    return ChangePublisher(translator, EventsQueueSender(aws.sqs(), config.events_queue_url()))


@config.per_container
def event_pipeline() -> EventPipeline:
    return EventPipeline(
        store=event_store(),
        connections=connection_store(),
        deliverer=deliverer(),
        rules=event_type_rules(),
        max_data_bytes=config.max_data_bytes(),
    )


def token_verifier() -> TokenVerifier:
    return default_verifier()


@config.per_container
def presence_store() -> PresenceStore:
    return PresenceStore(aws.dynamodb(), config.presence_table())


@config.per_container
def presence_announcer() -> PresenceAnnouncer:
    return PresenceAnnouncer(
        aws.sqs(), config.events_queue_url(), presence_store(), include_groups=config.group_presence_enabled()
    )


@config.per_container
def offline_checks() -> OfflineChecks:
    return OfflineChecks(aws.sqs(), config.presence_checks_queue_url(), config.presence_grace_seconds())


@config.per_container
def session_tracker() -> SessionTracker:
    """Connections plus presence when PRESENCE_TABLE is set.

    The announcer and the check queue are resolved on first use, so a function
    only needs the variables of what it does (ws-ping never sends anything).
    """
    if not config.presence_configured():
        return SessionTracker(connection_store())
    return SessionTracker(
        connection_store(),
        presence_store(),
        announce=lambda state: presence_announcer().announce(state),
        schedule_check=lambda user_id, version: offline_checks().schedule(user_id, version),
    )


@config.per_container
def presence_decider() -> PresenceDecider:
    """presence-checks: needs the presence table and the events queue, not the connections table."""
    return PresenceDecider(presence_store(), announce=lambda state: presence_announcer().announce(state))


@config.per_container
def presence_reader() -> PresenceReader:
    return PresenceReader(presence_store())


@config.per_container
def maintenance() -> Maintenance:
    return Maintenance(
        connections_table=aws.dynamodb().Table(config.connections_table()),
        dynamodb=aws.dynamodb(),
        management=aws.connections_management(),
        sessions=session_tracker(),
        presence=presence_store(),
        stale_seconds=config.stale_connection_seconds(),
        grace_seconds=config.presence_grace_seconds(),
    )
