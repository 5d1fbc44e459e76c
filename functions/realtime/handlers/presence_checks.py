"""`presence-checks`: the delayed offline checks (SQS, DelaySeconds = the grace period)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from realtime import services
from realtime.core.observability import logger, metrics, traced
from realtime.core.sqs import QueueRecord, batch_failures, records
from realtime.presence.announcer import OfflineCheck
from realtime.presence.sessions import PresenceDecider


def _handle_record(decider: PresenceDecider, record: QueueRecord) -> None:
    try:
        check = OfflineCheck.from_json(record.body)
    except ValueError as error:
        # Not written by this module: retrying cannot help, so drop it loudly.
        logger.error("Malformed offline check dropped", extra={"message_id": record.message_id, "error": str(error)})
        metrics.add_metric(name="MalformedPresenceChecks", unit=MetricUnit.Count, value=1)
        return
    logger.set_correlation_id(check.user_id)
    event_id = decider.check_offline(check.user_id, check.version)
    if event_id is None:
        # A session started (or ended again) since: a later check, if any, decides.
        logger.info("Offline check: still online or already decided", extra={"version": check.version})
        metrics.add_metric(name="OfflineChecksSkipped", unit=MetricUnit.Count, value=1)
        return
    logger.info("User went offline", extra={"event_id": event_id, "version": check.version})
    metrics.add_metric(name="PresenceOffline", unit=MetricUnit.Count, value=1)


@traced
@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    decider = services.presence_checks()
    # Each record sets its own correlation id; clear_state drops the last one before the next invocation.
    failed = []
    for record in records(event):
        try:
            _handle_record(decider, record)
        except Exception:
            logger.exception("Offline check failed; SQS will retry it", extra={"message_id": record.message_id})
            failed.append(record)
    return batch_failures(failed)
