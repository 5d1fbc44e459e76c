"""Bring the whole stack up on the local emulator (ministack), or take it down.

    python scripts/local_stack.py up   [--port 4566] [--state-dir .local]
    python scripts/local_stack.py down [--state-dir .local]

``up`` starts ministack on 127.0.0.1, builds the zips for this machine, applies
``terraform/examples/local`` and writes the endpoints to
``<state-dir>/endpoints.json``. ``down`` stops the emulator and deletes the
state directory. The integration tests use the same functions on a free port.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_DIR = ROOT / "terraform" / "examples" / "local"
MINISTACK = ROOT / ".venv-ministack" / "bin" / "ministack"
TERRAFORM = os.environ.get("TERRAFORM", "terraform")
DEFAULT_STATE_DIR = ROOT / ".local"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Emulator:
    """A ministack process listening on 127.0.0.1:port."""

    port: int
    process: subprocess.Popen

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        stop_pid(self.process.pid)


def emulator_client(endpoints: dict, service: str, *, resource: bool = False):
    """A boto3 client (or resource) for the stack's emulator, with the emulator's dummy credentials."""
    import boto3  # imported here: `make down` must work without it

    factory = boto3.resource if resource else boto3.client
    return factory(
        service,
        endpoint_url=endpoints["emulator_endpoint"],
        region_name=endpoints.get("region", "us-east-1"),
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


def start_emulator(port: int, state_dir: Path, timeout: float = 30.0) -> Emulator:
    if not MINISTACK.exists():
        sys.exit(f"{MINISTACK} is missing: run `make install` first")
    if port_in_use(port):
        sys.exit(f"port {port} on 127.0.0.1 is already in use (another `make up`?); pick one with LOCAL_PORT=")
    state_dir.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "BIND_HOST": "127.0.0.1",  # never all interfaces
        "GATEWAY_PORT": str(port),
        "STATE_DIR": str(state_dir / "ministack"),
        "LOG_LEVEL": os.environ.get("MINISTACK_LOG_LEVEL", "WARNING"),
    }
    log = (state_dir / "ministack.log").open("ab")
    process = subprocess.Popen(
        [str(MINISTACK)], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=state_dir, start_new_session=True
    )
    (state_dir / "ministack.pid").write_text(f"{process.pid}\n")
    emulator = Emulator(port, process)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"ministack exited with {process.returncode}; see {state_dir / 'ministack.log'}")
        try:
            with urllib.request.urlopen(f"{emulator.endpoint}/_ministack/health", timeout=1) as response:
                if response.status == 200:
                    return emulator
        except OSError:
            time.sleep(0.2)
    emulator.stop()
    sys.exit(f"ministack did not answer on port {port} within {timeout:.0f}s")


def stop_pid(pid: int, timeout: float = 10.0) -> None:
    """Stop a process group started by start_emulator (Lambda workers included)."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


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


def apply_stack(endpoint: str, state_dir: Path, code_zip: Path, layer_zip: Path, arch: str) -> dict:
    """Apply examples/local against ``endpoint`` and return its outputs."""
    data_dir = state_dir / "terraform"
    state_file = state_dir / "terraform.tfstate"
    variables = [
        f"-var=endpoint={endpoint}",
        f"-var=lambda_code_zip={code_zip}",
        f"-var=lambda_layer_zip={layer_zip}",
        f"-var=lambda_architecture={arch}",
    ]
    terraform("init", "-input=false", "-backend=false", data_dir=data_dir)
    terraform("apply", "-input=false", "-auto-approve", f"-state={state_file}", *variables, data_dir=data_dir)
    raw = json.loads(terraform("output", "-json", f"-state={state_file}", data_dir=data_dir, capture=True))
    return {name: item["value"] for name, item in raw.items()}


def build_for_host(out: Path) -> tuple[Path, Path, str]:
    sys.path.insert(0, str(ROOT / "scripts"))
    import build  # scripts/ is not a package: imported by path

    arch = build.host_arch()
    zips = build.build(arch, out)
    return zips["code"], zips["layer"], arch


def up(port: int, state_dir: Path, demo_port: int) -> dict:
    started = time.monotonic()
    print(f"==> Starting ministack on 127.0.0.1:{port}")
    emulator = start_emulator(port, state_dir)
    try:
        code_zip, layer_zip, arch = build_for_host(ROOT / "dist")
        print("==> Applying terraform/examples/local (about a minute and a half)")
        outputs = apply_stack(emulator.endpoint, state_dir, code_zip, layer_zip, arch)
    except BaseException:
        emulator.stop()
        raise
    outputs["emulator_endpoint"] = emulator.endpoint
    (state_dir / "endpoints.json").write_text(json.dumps(outputs, indent=2, sort_keys=True) + "\n")
    print(f"==> Stack is up in {time.monotonic() - started:.0f}s")
    print(f"    WebSocket URL : {outputs['websocket_url']}")
    print(f"    HTTP API URL  : {outputs['http_api_url']}")
    print(f"    Events queue  : {outputs['events_queue_url']}")
    print(f"    Endpoints file: {state_dir / 'endpoints.json'}")
    import demo_server  # refuses anything but a loopback emulator

    print(f"    Demo page     : {demo_server.start_detached(state_dir, port=demo_port)}")
    print("    Walkthrough   : make demo")
    print("    Token for a user: .venv/bin/python scripts/mint_token.py --user alice --groups ops")
    return outputs


def down(state_dir: Path) -> None:
    import demo_server

    demo_server.stop_detached(state_dir)
    pid_file = state_dir / "ministack.pid"
    if pid_file.exists():
        stop_pid(int(pid_file.read_text()))
        print("==> ministack stopped")
    if state_dir.exists():
        shutil.rmtree(state_dir)
        print(f"==> removed {state_dir}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["up", "down"])
    parser.add_argument("--port", type=int, default=int(os.environ.get("LOCAL_PORT", "4566")))
    parser.add_argument("--demo-port", type=int, default=int(os.environ.get("DEMO_PORT", "8765")))
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    args = parser.parse_args()
    state_dir = args.state_dir.resolve()
    if args.command == "up":
        if (state_dir / "ministack.pid").exists():
            sys.exit(f"a local stack is already recorded in {state_dir}: run `make down` first")
        up(args.port, state_dir, args.demo_port)
    else:
        down(state_dir)


if __name__ == "__main__":
    main()
