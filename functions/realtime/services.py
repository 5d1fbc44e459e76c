"""The objects each function uses, built from configuration once per container."""

from __future__ import annotations

from realtime import aws, config
from realtime.auth import TokenVerifier, default_verifier
from realtime.connections import ConnectionStore
from realtime.delivery import Deliverer
from realtime.dlq import DeadLetterQueue
from realtime.events_store import EventStore
from realtime.feed import EventFeed
from realtime.pipeline import EventPipeline
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
    return Deliverer(aws.connections_management(), connection_store(), config.delivery_concurrency())


@config.per_container
def dead_letters() -> DeadLetterQueue:
    return DeadLetterQueue(aws.sqs(), config.dlq_url())


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
