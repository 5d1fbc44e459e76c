"""Structured logger and metrics shared by every function of the bundle."""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger, Metrics

DEFAULT_METRICS_NAMESPACE = "RealtimeEvents"

logger = Logger()
# A missing namespace would make every flush raise, so fall back to the module's default.
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or DEFAULT_METRICS_NAMESPACE)
