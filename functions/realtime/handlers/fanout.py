"""`fanout`: SQS fanout queue -> post a page of a topic's connections, or retry the posts that failed."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from realtime import services
from realtime.core.batch import records
from realtime.core.observability import logger, metrics, traced


@traced
@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    app = services.fanout()
    failed = []
    for record in records(event):
        logger.set_correlation_id(record.message_id)
        try:
            job = json.loads(record.body)
            report = app.delivery.run_job(job, app.page_size)
        except Exception:
            # A page that could not be read, or a job that could not be queued: this job runs again.
            logger.exception("Fan-out job failed; SQS will retry it", extra={"message_id": record.message_id})
            failed.append(record)
            continue
        for name, value in report.metrics().items():
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
        logger.info(
            "Fan-out job done",
            extra={
                "event_id": job["event"]["id"],
                "topic": job.get("topic"),
                "attempt": job["attempt"],
                "delivered": report.sent,
                "gone": report.gone,
                "refused": report.refused,
                "throttled": report.throttled,
                "retried": report.retried,
                "abandoned": report.abandoned,
                "expired": report.expired,
                "lowest_concurrency": report.lowest_concurrency,
            },
        )
    metrics.add_metric(name="FanoutJobsRetried", unit=MetricUnit.Count, value=len(failed))
    return app.retries.report(failed)
