"""`process-events`: SQS events queue -> validate, store, deliver. Poison messages go to the DLQ."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from realtime import services
from realtime.core.batch import process_sqs_batch
from realtime.core.errors import PermanentError
from realtime.core.observability import logger, metrics, traced
from realtime.services import ProcessEvents


def _sent_at(record: SQSRecord) -> datetime | None:
    sent = record.attributes.sent_timestamp
    return datetime.fromtimestamp(int(sent) / 1000, UTC) if sent else None


def _send_to_dlq(app: ProcessEvents, record: SQSRecord, error: PermanentError) -> None:
    app.dead_letters.send(
        record.body,
        error_code=error.code,
        error_reason=error.reason,
        source_message_id=record.message_id,
    )
    logger.warning(
        "Message can never be processed; sent to the DLQ",
        extra={"error_code": error.code, "error_reason": error.reason, "message_id": record.message_id},
    )
    metrics.add_metric(name="PoisonMessages", unit=MetricUnit.Count, value=1)


def _handle_record(app: ProcessEvents, record: SQSRecord) -> None:
    logger.set_correlation_id(record.message_id)
    try:
        pending = app.pipeline.parse(record.body, record.message_id, _sent_at(record))
        logger.set_correlation_id(pending.event_id)
        report = app.pipeline.process(pending)
    except PermanentError as error:
        _send_to_dlq(app, record, error)
        return
    except Exception:
        logger.exception("Record failed; SQS will retry it", extra={"message_id": record.message_id})
        metrics.add_metric(name="RecordsRetried", unit=MetricUnit.Count, value=1)
        raise
    metrics.add_metric(name="EventsStored", unit=MetricUnit.Count, value=report.stored)
    metrics.add_metric(name="DuplicatesSkipped", unit=MetricUnit.Count, value=report.duplicates)
    metrics.add_metric(name="Delivered", unit=MetricUnit.Count, value=report.delivery.sent)
    metrics.add_metric(name="ConnectionsGone", unit=MetricUnit.Count, value=report.delivery.gone)
    metrics.add_metric(name="DeliveryRefused", unit=MetricUnit.Count, value=report.delivery.failed)
    logger.info(
        "Event processed",
        extra={
            "event_type": pending.type,
            "topics": pending.topics,
            "stored": report.stored,
            "duplicates": report.duplicates,
            "delivered": report.delivery.sent,
            "gone": report.delivery.gone,
            "refused": report.delivery.failed,
        },
    )


@traced
@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # Built before the batch so a configuration error fails the invocation loudly, not record by record.
    app = services.process_events()
    # Each record sets its own correlation id; clear_state drops the last one before the next invocation.
    return process_sqs_batch(event, context, functools.partial(_handle_record, app))
