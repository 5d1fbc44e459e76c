"""`fanout`: SQS fanout queue -> post a page of a topic's connections, or retry the posts that failed."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from realtime import services
from realtime.core.observability import logger, metrics, traced
from realtime.core.sqs import records
from realtime.events.delivery import InvalidJob, PageJob, job_from_message


@traced
@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    app = services.fanout()
    failed = []
    for record in records(event):
        logger.set_correlation_id(record.message_id)
        try:
            job = job_from_message(record.body)
            report = app.delivery.run(job)
        except InvalidJob as error:
            # Not written by this module, or its event is not stored (any more): retrying cannot help.
            logger.error("Delivery job dropped", extra={"message_id": record.message_id, "error": error.reason})
            metrics.add_metric(name="InvalidDeliveryJobs", unit=MetricUnit.Count, value=1)
            continue
        except Exception:
            # A page that could not be read, or a job that could not be queued: this job runs again.
            logger.exception("Fan-out job failed; SQS will retry it", extra={"message_id": record.message_id})
            failed.append(record)
            continue
        for name, value in report.metrics().items():
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
        for name, value in report.timings().items():
            metrics.add_metric(name=name, unit=MetricUnit.Milliseconds, value=value)
        job_fields = {
            "event_id": job.event.id,
            "topic": job.topic if isinstance(job, PageJob) else None,
            "attempt": job.attempt,
        }
        logger.info("Fan-out job done", extra={**job_fields, **report.log_fields()})
    metrics.add_metric(name="FanoutJobsRetried", unit=MetricUnit.Count, value=len(failed))
    return app.retries.report(failed)
