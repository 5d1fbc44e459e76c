"""Cold start of each function: its handler's import, and the first invocation's setup, from the zips.

    python -m scripts.lab.cold_start [--runs 5] [--python .venv-ministack/bin/python]

Builds the code and layer zips for this machine's architecture (`scripts.release.build`,
the layer reused when unchanged), unpacks them into a temporary directory laid
out as Lambda does (/var/task, /opt/python) and, in fresh `python -I -B`
interpreters (the median of `runs` of each), times:

- `import boto3` alone (the layer's SDK, which the functions import): what every function pays;
- per function of the Terraform module, the import of its handler module
  (`import_ms`, boto3 included; `beyond_boto3_ms`, the handler's own share,
  timed after `import boto3` in the same process),
  and that import plus building what its first invocation builds (`setup_ms`:
  the `realtime.services` builder of the function, with dummy settings;
  building creates clients and objects, it sends no request);
- `own_ms`, the function's own share of that: the handler's import and setup, timed after
  `import boto3` in the same process (not the difference of two medians, each of its own
  processes, which adds both medians' noise to it).

`-B` because Lambda's /var/task and /opt are read-only: no bytecode is cached
there, so what the zips do not ship compiled is compiled on every cold start,
as here. The interpreter stands in for the python3.12 runtime: by default the
emulator's venv's (the zips bring their own SDK, found first on the path as on Lambda).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from realtime.core.settings import FUNCTION_SETTINGS, variables

from scripts.module_defaults import FUNCTION_ENVIRONMENT
from scripts.release.build import ROOT, build, host_arch

MODULE_DIR = ROOT / "terraform"
RUNTIME_PYTHON = ROOT / ".venv-ministack" / "bin" / "python"

# Dummy settings for every function: the module's defaults, presence on, hs256 tokens from SSM.
# Nothing is sent anywhere.
DUMMY_ENVIRONMENT = {
    **FUNCTION_ENVIRONMENT,
    "CONNECTIONS_TABLE": "bench-connections",
    "EVENTS_TABLE": "bench-events",
    "PRESENCE_TABLE": "bench-presence",
    "EVENTS_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/bench-events",
    "FANOUT_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/bench-fanout",
    "DLQ_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/bench-events-dlq",
    "FAILURES_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/bench-db-changes-failures",
    "PRESENCE_CHECKS_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/bench-presence-checks",
    "PRESENCE_EVENTS_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/bench-presence-events",
    "PRESENCE_EVENTS_QUEUE_ARN": "arn:aws:sqs:us-east-1:123456789012:bench-presence-events",
    "CONNECTIONS_ENDPOINT": "https://abcdef1234.execute-api.us-east-1.amazonaws.com/live",
    "TOKEN_MODE": "hs256",
    "TOKEN_SECRET_SSM_PARAMETER": "/bench/token-secret",
    "TOKEN_ISSUER": "https://issuer.example/",
    "TOKEN_AUDIENCE": "bench",
    "GROUP_PRESENCE_ENABLED": "false",
    "PRESENCE_GRACE_SECONDS": "10",
    "MAX_PRESENCE_USERS": "100",
    "DB_CHANGE_SOURCES": json.dumps(
        [
            {
                "name": "orders",
                "stream_arn": "arn:aws:dynamodb:us-east-1:123456789012:table/orders/stream/2026-01-01T00:00:00.000",
                "rules": [{"name": "order-changed", "event_type": "order.changed", "audience": ["user:{ownerId}"]}],
            }
        ]
    ),
}
BASE_ENVIRONMENT = {
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "POWERTOOLS_SERVICE_NAME": "bench",
    "POWERTOOLS_METRICS_NAMESPACE": "Bench",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "LANG": "C.UTF-8",
}

# Run in the fresh interpreter: argv = code dir, layer dir, module ("" for boto3 alone), builder.
# boto3 is imported first and timed apart, so the handler's own share is measured in the same process.
PROBE = """
import importlib, json, sys, time
sys.path[:0] = sys.argv[1:3]
module, builder = sys.argv[3], sys.argv[4]
start = time.perf_counter()
import boto3
with_boto3 = time.perf_counter()
if not module:
    print(json.dumps({"import_ms": (with_boto3 - start) * 1000}))
    raise SystemExit
importlib.import_module(module)
imported = time.perf_counter()
getattr(importlib.import_module("realtime.services"), builder)()
built = time.perf_counter()
print(json.dumps({
    "import_ms": (imported - start) * 1000,
    "beyond_boto3_ms": (imported - with_boto3) * 1000,
    "setup_ms": (built - start) * 1000,
    "own_ms": (built - with_boto3) * 1000,
    "modules": sorted({name.split(".")[0] for name in sys.modules}),
}))
"""


def handlers() -> dict[str, str]:
    """Function name -> handler module, from the function entries of the module's feature files (terraform/*.tf)."""
    found = re.findall(
        r'"([\w-]+)" = \{\s*description\s*=.*\n\s*handler\s*=\s*"([\w.]+)\.handler"',
        "\n".join(path.read_text() for path in sorted(MODULE_DIR.glob("*.tf"))),
    )
    if set(dict(found)) != set(FUNCTION_SETTINGS):
        raise SystemExit(f"the module's function entries do not match the settings models: {found}")
    return dict(found)


def environment(function: str) -> dict[str, str]:
    wanted = set(variables(FUNCTION_SETTINGS[function]))
    # Exactly one secret source; the JWKS URL only in jwks mode.
    wanted -= {"TOKEN_SECRET_ARN", "TOKEN_JWKS_URL"}
    return {**BASE_ENVIRONMENT, "PATH": os.environ.get("PATH", ""), **{n: DUMMY_ENVIRONMENT[n] for n in wanted}}


def unpack(target: Path) -> tuple[Path, Path, dict[str, dict[str, float]]]:
    """The code and layer directories, and each zip's size (KiB, files, MB unpacked)."""
    with contextlib.redirect_stdout(sys.stderr):  # the build's lines stay out of the figures
        zips = build(host_arch(), ROOT / "dist")
    code, layer = target / "task", target / "opt"
    zipfile.ZipFile(zips["code"]).extractall(code)
    zipfile.ZipFile(zips["layer"]).extractall(layer)
    sizes = {}
    for name, path in zips.items():
        infos = zipfile.ZipFile(path).infolist()
        sizes[name] = {
            "kib": round(path.stat().st_size / 1024),
            "files": len(infos),
            "unpacked_mb": round(sum(info.file_size for info in infos) / 1e6, 1),
        }
    return code, layer / "python", sizes


def probe(python: Path, code: Path, layer: Path, function: str | None, module: str = "") -> dict[str, Any]:
    builder = (function or "").replace("-", "_")
    result = subprocess.run(
        [str(python), "-I", "-B", "-c", PROBE, str(code), str(layer), module, builder],
        capture_output=True,
        text=True,
        env=environment(function) if function else {**BASE_ENVIRONMENT, "PATH": os.environ.get("PATH", "")},
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"probe of {function or 'boto3'} failed:\n{result.stderr}")
    return json.loads(result.stdout)


def measure(runs: int = 5, python: Path | None = None) -> dict[str, Any]:
    """Median import and setup times over `runs` fresh interpreters, `import boto3` alone in the same runs."""
    python = python or (RUNTIME_PYTHON if RUNTIME_PYTHON.exists() else Path(sys.executable))
    table = handlers()
    boto3_ms: list[float] = []
    samples: dict[str, list[dict[str, Any]]] = {name: [] for name in table}
    load_average = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="cold-start-") as tmp:
        code, layer, zips = unpack(Path(tmp))
        for _ in range(runs):
            # Interleaved, so a busy moment of the machine weighs on boto3 and the handlers alike.
            boto3_ms.append(probe(python, code, layer, None)["import_ms"])
            for name, module in table.items():
                samples[name].append(probe(python, code, layer, name, module))
    version = subprocess.run([str(python), "-c", "import sys; print(sys.version.split()[0])"], capture_output=True)
    return {
        "python": version.stdout.decode().strip(),
        "runs": runs,
        "load_average": round(load_average, 2),
        "zips": zips,
        "boto3_ms": round(statistics.median(boto3_ms), 1),
        "handlers": {
            name: {
                "import_ms": round(statistics.median(s["import_ms"] for s in measured), 1),
                "beyond_boto3_ms": round(statistics.median(s["beyond_boto3_ms"] for s in measured), 1),
                "setup_ms": round(statistics.median(s["setup_ms"] for s in measured), 1),
                "own_ms": round(statistics.median(s["own_ms"] for s in measured), 1),
                "packages": measured[0]["modules"],
            }
            for name, measured in samples.items()
        },
    }


NOTABLE = ("pydantic", "jwt", "cryptography", "aws_xray_sdk", "jmespath")


def render(result: dict[str, Any]) -> str:
    boto3_ms = result["boto3_ms"]
    lines = [
        f"Python {result['python']}, median of {result['runs']} fresh interpreters; import boto3 alone: {boto3_ms} ms",
        "",
        f"{'function':<16} {'import ms':>9} {'setup ms':>9} {'own ms':>7} {'/ boto3':>7}  notable packages loaded",
    ]
    for name, figures in result["handlers"].items():
        loaded = ", ".join(p for p in NOTABLE if p in figures["packages"]) or "-"
        lines.append(
            f"{name:<16} {figures['import_ms']:>9.1f} {figures['setup_ms']:>9.1f} {figures['own_ms']:>7.1f} "
            f"{figures['own_ms'] / boto3_ms:>6.2f}x  {loaded}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--python", type=Path, help="the interpreter standing in for the runtime")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    result = measure(args.runs, args.python)
    print(json.dumps(result, indent=2) if args.json else render(result))


if __name__ == "__main__":
    main()
