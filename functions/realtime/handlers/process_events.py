"""`process-events`: SQS events queue -> validate, store, deliver. Poison messages go to the DLQ.

A record that fails is retried alone, after a delay that grows with its
receives (realtime.core.sqs.RetrySoon). Overload (throttling, contention on a
hot topic) only slows it down: it waits as long as the queue's maxReceiveCount
allows (events_queue_max_receive_count, 100 by default: hours). Any other
failure repeated POISON_AFTER_RECEIVES times sends it to the DLQ with the
error, so a bug or a bad message is not retried for hours.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from realtime import services
from realtime.core.errors import PermanentError, is_transient
from realtime.core.observability import logger, metrics, traced
from realtime.core.sqs import QueueRecord, records
from realtime.events.pipeline import BatchReport, PendingEvent, producer_of
from realtime.services import ProcessEvents


def _sent_at(record: QueueRecord) -> datetime | None:
    sent = record.sent_timestamp_ms
    return datetime.fromtimestamp(sent / 1000, UTC) if sent else None


POISON_AFTER_RECEIVES = 5


def _send_to_dlq(app: ProcessEvents, record: QueueRecord, error: PermanentError) -> None:
    app.dead_letters.send(
        record.body,
        error_code=error.code,
        error_reason=error.reason,
        source_message_id=record.message_id,
    )
    logger.warning(
        "Message can never be processed; sent to the DLQ",
        extra={
            "error_code": error.code,
            "error_reason": error.reason,
            "message_id": record.message_id,
            "sender_id": record.sender_id,
        },
    )
    metrics.add_metric(name="PoisonMessages", unit=MetricUnit.Count, value=1)


def _retried(app: ProcessEvents, record: QueueRecord, error: BaseException) -> bool:
    """Whether the record is retried (True) or, failing for the POISON_AFTER_RECEIVES-th time for a reason
    other than overload, sent to the DLQ with that reason (False)."""
    if is_transient(error) or record.receive_count < POISON_AFTER_RECEIVES:
        return True
    failure = PermanentError("failed_repeatedly", f"failed {record.receive_count} times; the last: {error!r}")
    try:
        _send_to_dlq(app, record, failure)
    except Exception:
        logger.exception("DLQ unreachable; SQS will retry the message", extra={"message_id": record.message_id})
        return True
    return False


def _parse(
    app: ProcessEvents, records: list[QueueRecord]
) -> tuple[list[tuple[QueueRecord, PendingEvent]], list[QueueRecord]]:
    """The records that can be processed, and those to retry; the ones that never can go to the DLQ."""
    valid, failed = [], []
    for record in records:
        try:
            pending = app.pipeline.parse(
                record.body,
                record.message_id,
                _sent_at(record),
                producer=producer_of(record.sender_id),
                # Only the module's functions may send to that queue (its policy): its records are theirs.
                internal=record.event_source_arn == app.internal_source_arn,
            )
            valid.append((record, pending))
        except PermanentError as error:
            try:
                _send_to_dlq(app, record, error)
            except Exception:
                logger.exception("DLQ unreachable; SQS will retry the message", extra={"message_id": record.message_id})
                failed.append(record)
        except Exception as error:
            logger.exception("Record could not be read", extra={"message_id": record.message_id})
            if _retried(app, record, error):
                failed.append(record)
    return valid, failed


def _log(report: BatchReport) -> None:
    for stored in report.stored:
        logger.info(
            "Event stored" if stored.created else "Event already stored; delivered again",
            extra={
                "event_id": stored.event.event_id,
                "event_type": stored.event.type,
                "seqs": stored.seqs,
                "stored_on": stored.created,
            },
        )
    delivery = report.delivery
    metrics.add_metric(name="EventsStored", unit=MetricUnit.Count, value=sum(len(s.created) for s in report.stored))
    metrics.add_metric(
        name="DuplicatesSkipped",
        unit=MetricUnit.Count,
        value=sum(len(s.seqs) - len(s.created) for s in report.stored),
    )
    for name, value in delivery.metrics().items():
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    for name, value in delivery.timings().items():
        metrics.add_metric(name=name, unit=MetricUnit.Milliseconds, value=value)
    logger.info("Batch delivered", extra={"events": len(report.stored), **delivery.log_fields()})


@traced
@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # Built before the batch so a configuration error fails the invocation loudly, not record by record.
    app = services.process_events()
    valid, failed = _parse(app, records(event))
    if valid:
        try:
            # Delivery turns never wait past half of what is left of this invocation (realtime.events.turns).
            deadline = time.monotonic() + context.get_remaining_time_in_millis() / 1000
            report = app.pipeline.process([pending for _, pending in valid], deadline=deadline)
        except Exception as error:
            logger.exception("Batch failed")
            failed += [record for record, _ in valid if _retried(app, record, error)]
        else:
            for index, error in report.failed.items():
                record, pending = valid[index]
                logger.warning(
                    "Event not stored",
                    extra={
                        "message_id": record.message_id,
                        "event_id": pending.event_id,
                        "error": repr(error),
                        "receive_count": record.receive_count,
                        "transient": is_transient(error),
                    },
                )
                if _retried(app, record, error):
                    failed.append(record)
            _log(report)
    metrics.add_metric(name="RecordsRetried", unit=MetricUnit.Count, value=len(failed))
    return app.retries.report(failed)
