"""Figures the stack tests measure and report at the end of the run."""

from __future__ import annotations

import statistics

# Publish-to-receive latencies (seconds) seen by the tests.
LATENCIES: list[float] = []
# Other figures worth reading after a run (one line each), e.g. broadcast times to simulated audiences.
FIGURES: list[str] = []


def latency_summary() -> str:
    ordered = sorted(LATENCIES)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return (
        f"publish-to-receive latency over {len(ordered)} deliveries: "
        f"median {statistics.median(ordered) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, "
        f"max {ordered[-1] * 1000:.0f} ms"
    )
