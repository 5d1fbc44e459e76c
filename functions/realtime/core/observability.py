"""Structured logger, metrics and (when the module turns it on) X-Ray tracing, shared by every function."""

from __future__ import annotations

import os
from collections.abc import Callable

from aws_lambda_powertools import Logger, Metrics, Tracer

DEFAULT_METRICS_NAMESPACE = "RealtimeEvents"

logger = Logger()
# A missing namespace would make every flush raise, so fall back to the module's default.
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or DEFAULT_METRICS_NAMESPACE)
# The module sets "false" only when lambda_tracing_mode is set. Otherwise no Tracer is made: even a
# disabled one imports the X-Ray SDK, and cold starts should not pay for what is off.
tracer = Tracer() if os.environ.get("POWERTOOLS_TRACE_DISABLED") == "false" else None


def traced[Handler: Callable](handler: Handler) -> Handler:
    """Trace each invocation and its AWS SDK calls with X-Ray, when tracing is on."""
    if tracer is None:
        return handler
    # Responses carry users' events and presence: keep them out of the trace metadata.
    return tracer.capture_lambda_handler(handler, capture_response=False)
