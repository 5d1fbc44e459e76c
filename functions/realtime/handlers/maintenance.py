"""`maintenance` (EventBridge Scheduler): remove dead connections, repair presence, and report
what cleanup did (and what TTL has yet to do) as metrics and one log line per run."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from realtime import services
from realtime.core.observability import logger, metrics, traced

# Stop starting new work this long before the function's timeout: the run settles what it started and
# saves where its scans stopped, and the next run carries on from there.
TIME_MARGIN_SECONDS = 10

METRICS = {
    "connections_checked": "StaleConnectionsChecked",
    "connections_removed": "DeadConnectionsRemoved",
    "connections_unknown": "ConnectionChecksFailed",
    "connections_expired": "ExpiredConnectionsClosed",
    "errors": "MaintenanceErrors",
    "orphan_sessions_removed": "OrphanSessionsRemoved",
    "offline_decided": "OverdueOfflineDecided",
    "events_resent": "PresenceEventsResent",
    "connections_items_scanned": "ConnectionsItemsScanned",
    "presence_items_scanned": "PresenceItemsScanned",
}
# When a run ends a full pass over a table: how long the pass took (every item was visited within it).
PASS_METRICS = {"connections": "ConnectionsFullPassSeconds", "presence": "PresenceFullPassSeconds"}


@traced
@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    def time_is_up() -> bool:
        return context.get_remaining_time_in_millis() < TIME_MARGIN_SECONDS * 1000

    report = services.maintenance().run(time_is_up)
    summary = report.summary()
    for field, metric in METRICS.items():
        metrics.add_metric(name=metric, unit=MetricUnit.Count, value=summary[field])
    for table, metric in PASS_METRICS.items():
        if summary[f"{table}_pass_ended"] and summary[f"{table}_last_pass_seconds"] is not None:
            metrics.add_metric(name=metric, unit=MetricUnit.Seconds, value=summary[f"{table}_last_pass_seconds"])
    for table, items in report.table_items.items():
        metrics.add_metric(name=f"{table.title()}TableItems", unit=MetricUnit.Count, value=items)
    for table, expired in report.expired_items.items():
        metrics.add_metric(name=f"{table.title()}TableExpiredItems", unit=MetricUnit.Count, value=expired)
    logger.info("Maintenance run finished", extra=summary)
    return summary
