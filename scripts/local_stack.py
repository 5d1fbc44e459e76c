"""Bring the whole stack up on the local emulator (ministack), or take it down.

    python -m scripts.local_stack up   [--port 4566] [--demo-port 8765] [--state-dir .local]
    python -m scripts.local_stack down [--state-dir .local]

``up`` starts ministack on 127.0.0.1, builds the zips for this machine, applies
``terraform/examples/local``, writes the endpoints to
``<state-dir>/endpoints.json`` and starts the demo page. ``down`` stops both
and deletes the state directory. The integration tests and the benchmarks use
``stack_on_free_port``: the same steps on a free port.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from scripts import build
from scripts.emulator import (
    EMULATOR_PID_FILE,
    ENDPOINTS_FILE,
    LOCAL_STATE_DIR,
    ROOT,
    Emulator,
    free_port,
    start_emulator,
    stop_pid,
)

EXAMPLE_DIR = ROOT / "terraform" / "examples" / "local"
TERRAFORM = os.environ.get("TERRAFORM", "terraform")
DEMO_SERVER_PID_FILE = "demo_server.pid"


def terraform(*args: str, data_dir: Path, capture: bool = False) -> str:
    env = {
        **os.environ,
        "TF_DATA_DIR": str(data_dir),
        "TF_IN_AUTOMATION": "1",
        "TF_CLI_CONFIG_FILE": os.environ.get("TF_CLI_CONFIG_FILE", str(ROOT / "terraform.rc")),
    }
    command = [TERRAFORM, f"-chdir={EXAMPLE_DIR}", *args]
    result = subprocess.run(command, env=env, text=True, capture_output=True)
    if result.returncode != 0:
        sys.exit(f"terraform {args[0]} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result.stdout if capture else ""


def apply_stack(endpoint: str, state_dir: Path, code_zip: Path, layer_zip: Path, arch: str, demo_port: int) -> dict:
    """Apply examples/local against ``endpoint`` (its HTTP API allowing the demo page's origin); return its outputs."""
    data_dir = state_dir / "terraform"
    state_file = state_dir / "terraform.tfstate"
    variables = [
        f"-var=endpoint={endpoint}",
        f"-var=lambda_code_zip={code_zip}",
        f"-var=lambda_layer_zip={layer_zip}",
        f"-var=lambda_architecture={arch}",
        f"-var=demo_port={demo_port}",
    ]
    terraform("init", "-input=false", "-backend=false", data_dir=data_dir)
    terraform("apply", "-input=false", "-auto-approve", f"-state={state_file}", *variables, data_dir=data_dir)
    raw = json.loads(terraform("output", "-json", f"-state={state_file}", data_dir=data_dir, capture=True))
    return {name: item["value"] for name, item in raw.items()}


def deploy(emulator: Emulator, state_dir: Path, demo_port: int) -> dict:
    """Build the zips for this machine and apply examples/local on ``emulator``; returns the stack's endpoints."""
    arch = build.host_arch()
    zips = build.build(arch, ROOT / "dist")
    print("==> Applying terraform/examples/local (about a minute and a half)")
    outputs = apply_stack(emulator.endpoint, state_dir, zips["code"], zips["layer"], arch, demo_port)
    return {**outputs, "emulator_endpoint": emulator.endpoint}


@contextlib.contextmanager
def stack_on_free_port(state_dir: Path) -> Iterator[dict]:
    """A stack of its own on a free loopback port, stopped on exit (the tests, the benchmarks).

    Its HTTP API allows the origin of a demo page on another free port (`demo_port` in the endpoints).
    """
    emulator = start_emulator(free_port(), state_dir)
    try:
        yield deploy(emulator, state_dir, free_port())
    finally:
        emulator.stop()


def start_demo_server(state_dir: Path, port: int, timeout: float = 30.0) -> str:
    """Start the demo server in the background, in a session of its own; returns its URL."""
    log = (state_dir / "demo_server.log").open("ab")
    command = [sys.executable, "-m", "scripts.demo_server", "--endpoints", str(state_dir / ENDPOINTS_FILE)]
    process = subprocess.Popen(
        [*command, "--port", str(port), "--pid-file", str(state_dir / DEMO_SERVER_PID_FILE)],
        cwd=ROOT,  # `-m scripts.demo_server` of this checkout
        env={**os.environ, "PYTHONPATH": str(ROOT / "clients" / "python")},  # it publishes with the publisher SDK
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"the demo server exited with {process.returncode}; see {state_dir / 'demo_server.log'}")
        with contextlib.suppress(OSError), urllib.request.urlopen(f"{url}config.json", timeout=1) as response:
            if response.status == 200:
                return url
        time.sleep(0.2)
    stop_pid(process.pid)
    sys.exit(f"the demo server did not answer on {url} within {timeout:.0f}s")


def up(port: int, state_dir: Path, demo_port: int) -> dict:
    started = time.monotonic()
    print(f"==> Starting ministack on 127.0.0.1:{port}")
    emulator = start_emulator(port, state_dir)
    try:
        outputs = deploy(emulator, state_dir, demo_port)
    except BaseException:
        emulator.stop()
        raise
    (state_dir / ENDPOINTS_FILE).write_text(json.dumps(outputs, indent=2, sort_keys=True) + "\n")
    print(f"==> Stack is up in {time.monotonic() - started:.0f}s")
    print(f"    WebSocket URL : {outputs['websocket_url']}")
    print(f"    HTTP API URL  : {outputs['http_api_url']}")
    print(f"    Events queue  : {outputs['events_queue_url']}")
    print(f"    Endpoints file: {state_dir / ENDPOINTS_FILE}")
    print(f"    Demo page     : {start_demo_server(state_dir, demo_port)}")  # it refuses a non-loopback stack
    print("    Walkthrough   : make demo")
    print("    Token for a user: .venv/bin/python -m scripts.mint_token --user alice --groups ops")
    return outputs


def down(state_dir: Path) -> None:
    demo_server_pid = state_dir / DEMO_SERVER_PID_FILE
    if demo_server_pid.exists():
        stop_pid(int(demo_server_pid.read_text()))
    emulator_pid = state_dir / EMULATOR_PID_FILE
    if emulator_pid.exists():
        stop_pid(int(emulator_pid.read_text()))
        print("==> ministack stopped")
    if state_dir.exists():
        shutil.rmtree(state_dir)
        print(f"==> removed {state_dir}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["up", "down"])
    parser.add_argument("--port", type=int, default=int(os.environ.get("LOCAL_PORT", "4566")))
    parser.add_argument("--demo-port", type=int, default=int(os.environ.get("DEMO_PORT", "8765")))
    parser.add_argument("--state-dir", type=Path, default=LOCAL_STATE_DIR)
    args = parser.parse_args()
    state_dir = args.state_dir.resolve()
    if args.command == "up":
        if (state_dir / EMULATOR_PID_FILE).exists():
            sys.exit(f"a local stack is already recorded in {state_dir}: run `make down` first")
        up(args.port, state_dir, args.demo_port)
    else:
        down(state_dir)


if __name__ == "__main__":
    main()
