"""Broadcasts to 1,000, 10,000 and 100,000 simulated connections in one run, and the broadcast model beside them.

    make bench-broadcast    # PYTHONPATH=functions:clients/python python -m scripts.lab.bench_broadcast

Starts a stack of its own on the emulator, runs the bench's broadcasts (scripts/lab/bench.py: to `all`,
after a warm-up; the gateway simulator answers each post after 20 ms), writes them to
docs/benchmarks/broadcast.json and prints scripts/lab/broadcast_model.py's page: the model fitted on
1,000 and 10,000 only, its prediction for 100,000 next to the measured time, and the AWS scenarios.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from scripts.lab import broadcast_model
from scripts.lab.bench import broadcasts
from scripts.local.local_stack import stack_on_free_port
from scripts.module_defaults import VARIABLES


def main() -> None:
    sys.stdout.reconfigure(line_buffering=True)
    sizes = (*broadcast_model.FIT_SIZES, broadcast_model.PREDICTED_SIZE)
    with tempfile.TemporaryDirectory(prefix="broadcast-") as tmp, stack_on_free_port(Path(tmp)) as endpoints:
        results = broadcasts(endpoints, sizes, VARIABLES["fanout_concurrency"])
    stored = {str(result["size"]): result for result in results}
    broadcast_model.MEASURED.write_text(json.dumps(stored, indent=1) + "\n")
    broadcast_model.main()


if __name__ == "__main__":
    main()
