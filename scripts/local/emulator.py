"""The local AWS emulator (ministack): start and stop it, and talk to it.

Everything else in scripts/ that needs the emulator comes here: its process
(started on 127.0.0.1 only, in a session of its own so its Lambda workers stop
with it), free loopback ports, the endpoints file that `make up` writes, and
boto3 clients with the emulator's dummy credentials. Standard library only at
import time, so `make down` works without the dev venv.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MINISTACK = ROOT / ".venv-ministack" / "bin" / "ministack"
LOCAL_STATE_DIR = ROOT / ".local"  # where `make up` keeps its stack
ENDPOINTS_FILE = "endpoints.json"
LOCAL_ENDPOINTS = LOCAL_STATE_DIR / ENDPOINTS_FILE
EMULATOR_PID_FILE = "ministack.pid"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def read_endpoints(path: Path) -> dict:
    """The stack's URLs and names, as `make up` wrote them."""
    if not path.exists():
        raise SystemExit(f"{path} not found: run `make up` first")
    return json.loads(path.read_text())


def emulator_client(endpoints: dict, service: str, *, resource: bool = False):
    """A boto3 client (or resource) for the stack's services.

    On an emulator (the endpoints name its ``emulator_endpoint``) with its dummy credentials;
    otherwise the stack is on AWS, reached with the default credential chain (docs/environments.md).
    """
    import boto3  # imported here: `make down` must work without it

    factory = boto3.resource if resource else boto3.client
    if "emulator_endpoint" not in endpoints:
        return factory(service, region_name=endpoints["region"])
    return factory(
        service,
        endpoint_url=endpoints["emulator_endpoint"],
        region_name=endpoints.get("region", "us-east-1"),
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


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


def start_emulator(
    port: int, state_dir: Path, timeout: float = 30.0, *, command: Sequence[str] = (), extra_env: Mapping[str, str] = {}
) -> Emulator:
    """Start ministack on 127.0.0.1:port with its state in ``state_dir``; return once it is healthy.

    ``command`` replaces the ``ministack`` entry point (a wrapper of it run by its interpreter);
    ``extra_env`` adds to its environment.
    """
    if not MINISTACK.exists():
        sys.exit(f"{MINISTACK} is missing: run `make install` first")
    if port_in_use(port):
        sys.exit(
            f"port {port} on 127.0.0.1 is in use: if it is a stack of yours, `make status` says so and "
            f"`make down` stops it; otherwise pick another port with LOCAL_PORT=..."
        )
    state_dir.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "BIND_HOST": "127.0.0.1",  # never all interfaces
        "GATEWAY_PORT": str(port),
        "STATE_DIR": str(state_dir / "ministack"),
        "LOG_LEVEL": os.environ.get("MINISTACK_LOG_LEVEL", "WARNING"),
        **extra_env,
    }
    log = (state_dir / "ministack.log").open("ab")
    process = subprocess.Popen(
        list(command) or [str(MINISTACK)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=state_dir,
        start_new_session=True,
    )
    (state_dir / EMULATOR_PID_FILE).write_text(f"{process.pid}\n")
    emulator = Emulator(port, process)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"ministack exited with {process.returncode}; see {state_dir / 'ministack.log'}")
        if healthy(emulator.endpoint):
            return emulator
        time.sleep(0.2)
    emulator.stop()
    sys.exit(f"ministack did not answer on port {port} within {timeout:.0f}s")


def healthy(endpoint: str) -> bool:
    """Whether the ministack at ``endpoint`` answers its health check."""
    try:
        with urllib.request.urlopen(f"{endpoint}/_ministack/health", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def stop_pid(pid: int, timeout: float = 10.0) -> None:
    """Stop a process group started in a session of its own (ministack with its Lambda workers)."""
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
