"""`db-changes`: application-table stream records -> rules -> events on the events queue.

Records whose events did not all reach the queue are reported as batch item
failures (their sequence numbers); the mapping retries them, bisecting, and
finally sends their pointers to its on-failure queue. Records the rules refuse
(too many topics) go to that queue at once, with their reason.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from realtime import services
from realtime.core.observability import logger, metrics, traced


@traced
@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # Built before the batch so a bad rule fails the invocation loudly (cold start), naming the rule.
    publisher = services.db_changes()
    records = event.get("Records") or []
    report = publisher.publish(records)

    metrics.add_metric(name="StreamRecords", unit=MetricUnit.Count, value=report.records)
    metrics.add_metric(name="RulesMatched", unit=MetricUnit.Count, value=report.matched)
    metrics.add_metric(name="ChangeEventsQueued", unit=MetricUnit.Count, value=report.events_queued)
    metrics.add_metric(name="RulesSkipped", unit=MetricUnit.Count, value=report.skipped)
    metrics.add_metric(name="StreamRecordsRefused", unit=MetricUnit.Count, value=report.refused)
    metrics.add_metric(name="StreamRecordsFailed", unit=MetricUnit.Count, value=len(report.failed))
    logger.info(
        "Stream batch processed",
        extra={
            "records": report.records,
            "matched": report.matched,
            "events_queued": report.events_queued,
            "skipped": report.skipped,
            "refused": report.refused,
            "failed": len(report.failed),
        },
    )
    return report.batch_item_failures(records)
