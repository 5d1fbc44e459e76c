"""Bring the whole stack up on the local emulator (ministack), or take it down.

    python -m scripts.local.local_stack up     [--port 4566] [--demo-port 8765] [--state-dir .local]
    python -m scripts.local.local_stack status [--state-dir .local]
    python -m scripts.local.local_stack down   [--state-dir .local]

``up`` starts ministack on 127.0.0.1, builds the zips for this machine, applies
``terraform/examples/local`` (showing resources done out of planned as it
goes), writes the endpoints to ``<state-dir>/endpoints.json`` and starts the
demo page. ``status`` says what of it is running, and where. ``down`` stops
both and deletes the state directory. The integration tests and the
benchmarks use ``stack_on_free_port``: the same steps on a free port.
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
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from scripts.local.emulator import (
    EMULATOR_PID_FILE,
    ENDPOINTS_FILE,
    LOCAL_STATE_DIR,
    ROOT,
    Emulator,
    free_port,
    healthy,
    pid_alive,
    port_in_use,
    start_emulator,
    stop_pid,
)
from scripts.release import build

EXAMPLE_DIR = ROOT / "terraform" / "examples" / "local"
TERRAFORM = os.environ.get("TERRAFORM", "terraform")
DEMO_SERVER_PID_FILE = "demo_server.pid"
DEMO_SERVER_URL_FILE = "demo_server.url"


def terraform_command(*args: str, data_dir: Path) -> tuple[list[str], dict[str, str]]:
    env = {
        **os.environ,
        "TF_DATA_DIR": str(data_dir),
        "TF_IN_AUTOMATION": "1",
        "TF_CLI_CONFIG_FILE": os.environ.get("TF_CLI_CONFIG_FILE", str(ROOT / "terraform.rc")),
    }
    return [TERRAFORM, f"-chdir={EXAMPLE_DIR}", *args], env


def terraform(*args: str, data_dir: Path, capture: bool = False) -> str:
    command, env = terraform_command(*args, data_dir=data_dir)
    result = subprocess.run(command, env=env, text=True, capture_output=True)
    if result.returncode != 0:
        sys.exit(f"terraform {args[0]} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result.stdout if capture else ""


@dataclass
class ApplyProgress:
    """Reads `terraform apply -json` messages and reports resources done out of planned, and the time taken.

    On a terminal it rewrites one line; elsewhere (CI, tests) it prints a line every ``every`` seconds.
    """

    out: TextIO = field(default_factory=lambda: sys.stdout)
    every: float = 10.0
    started: float = field(default_factory=time.monotonic)
    planned: int | None = None
    done: int = 0
    resource: str = ""
    errors: list[str] = field(default_factory=list)
    _printed_at: float = 0.0

    def read(self, message: dict) -> None:
        kind = message.get("type")
        if kind == "change_summary" and message["changes"]["operation"] == "plan":
            changes = message["changes"]
            self.planned = changes["add"] + changes["change"] + changes["remove"]
        elif kind == "apply_start":
            self.resource = message["hook"]["resource"]["addr"]
        elif kind in {"apply_complete", "apply_errored"} and message["hook"]["action"] != "read":
            self.done += 1  # data sources read during apply are not in the plan's count
        elif kind == "diagnostic" and message["diagnostic"]["severity"] == "error":
            diagnostic = message["diagnostic"]
            self.errors.append(": ".join(filter(None, [diagnostic["summary"], diagnostic.get("detail")])))
            return
        else:
            return
        self.show()

    def line(self) -> str:
        elapsed = time.monotonic() - self.started
        if self.planned is None:
            return f"  planning  {elapsed:4.0f}s"
        return f"  {self.done:>3}/{self.planned} resources  {elapsed:4.0f}s  {self.resource}"

    def show(self, final: bool = False) -> None:
        if self.out.isatty():
            width = shutil.get_terminal_size().columns - 1
            self.out.write("\r\x1b[K" + self.line()[:width] + ("\n" if final else ""))
            self.out.flush()
        elif final or time.monotonic() - self._printed_at >= self.every:
            print(self.line(), file=self.out, flush=True)
            self._printed_at = time.monotonic()


class ApplyFailed(SystemExit):
    """`terraform apply` failed; its message names the errors (a SystemExit, so `make up` prints it and exits)."""


def terraform_apply(*args: str, data_dir: Path, state_dir: Path) -> None:
    """`terraform apply`, showing its progress; a failure names its errors and the next step."""
    command, env = terraform_command("apply", "-json", *args, data_dir=data_dir)
    progress = ApplyProgress()
    progress.show()
    other_output = []
    with subprocess.Popen(command, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as process:
        for line in process.stdout:
            try:
                progress.read(json.loads(line))
            except ValueError:
                other_output.append(line)
    progress.show(final=True)
    if process.returncode != 0:
        errors = "\n".join(progress.errors) or "".join(other_output)[-4000:]
        raise ApplyFailed(
            f"terraform apply failed:\n{errors}\n"
            f"The emulator's log is {state_dir / 'ministack.log'}. Fix the cause, then `make down` and `make up`."
        )


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
    terraform_apply(
        "-input=false", "-auto-approve", f"-state={state_file}", *variables, data_dir=data_dir, state_dir=state_dir
    )
    raw = json.loads(terraform("output", "-json", f"-state={state_file}", data_dir=data_dir, capture=True))
    return {name: item["value"] for name, item in raw.items()}


def deploy(emulator: Emulator, state_dir: Path, demo_port: int) -> dict:
    """Build the zips for this machine and apply examples/local on ``emulator``; returns the stack's endpoints."""
    arch = build.host_arch()
    zips = build.build(arch, ROOT / "dist")
    print("==> Applying terraform/examples/local (about a minute and a half)", flush=True)
    outputs = apply_stack(emulator.endpoint, state_dir, zips["code"], zips["layer"], arch, demo_port)
    return {**outputs, "emulator_endpoint": emulator.endpoint}


def started_and_deployed(
    port: Callable[[], int],
    state_dir: Path,
    demo_port: int,
    *,
    emulator_command: Sequence[str] = (),
    emulator_env: Mapping[str, str] = {},
) -> tuple[Emulator, dict]:
    """Start the emulator on `port()` and apply examples/local on it; returns it, running, and the endpoints.

    A failed apply is tried once more on a fresh emulator (its state and the Terraform state wiped, its
    log kept): ministack, loaded, has answered a create on a fresh emulator with "already exists"
    (CreateLogGroup in CI, CreateRole here, once each). A failure of the module itself fails both
    attempts, and both are printed.
    """
    for attempt in (1, 2):
        emulator = start_emulator(port(), state_dir, command=emulator_command, extra_env=emulator_env)
        try:
            return emulator, deploy(emulator, state_dir, demo_port)
        except ApplyFailed as failure:
            emulator.stop()
            if attempt == 2:
                raise
            print(f"{failure}\n==> Applying once more, on a fresh emulator", file=sys.stderr, flush=True)
            shutil.rmtree(state_dir / "ministack", ignore_errors=True)
            for state_file in ("terraform.tfstate", "terraform.tfstate.backup"):
                (state_dir / state_file).unlink(missing_ok=True)
        except BaseException:
            emulator.stop()
            raise
    raise AssertionError("unreachable: the second attempt returns or raises")


@contextlib.contextmanager
def stack_on_free_port(
    state_dir: Path, *, emulator_command: Sequence[str] = (), emulator_env: Mapping[str, str] = {}
) -> Iterator[dict]:
    """A stack of its own on a free loopback port, stopped on exit (the tests, the benchmarks).

    Its HTTP API allows the origin of a demo page on another free port (`demo_port` in the endpoints).
    `emulator_command` and `emulator_env`: see `start_emulator`.
    """
    emulator, endpoints = started_and_deployed(
        free_port, state_dir, free_port(), emulator_command=emulator_command, emulator_env=emulator_env
    )
    try:
        yield endpoints
    finally:
        emulator.stop()


def start_demo_server(state_dir: Path, port: int, timeout: float = 30.0) -> str:
    """Start the demo server in the background, in a session of its own; returns its URL."""
    log = (state_dir / "demo_server.log").open("ab")
    command = [sys.executable, "-m", "scripts.local.demo_server", "--endpoints", str(state_dir / ENDPOINTS_FILE)]
    process = subprocess.Popen(
        [*command, "--port", str(port), "--pid-file", str(state_dir / DEMO_SERVER_PID_FILE)],
        cwd=ROOT,  # `-m scripts.local.demo_server` of this checkout
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
                (state_dir / DEMO_SERVER_URL_FILE).write_text(url + "\n")
                return url
        time.sleep(0.2)
    stop_pid(process.pid)
    sys.exit(f"the demo server did not answer on {url} within {timeout:.0f}s")


def up(port: int, state_dir: Path, demo_port: int) -> dict:
    started = time.monotonic()
    if port_in_use(demo_port):  # found now rather than after two minutes of apply
        sys.exit(f"port {demo_port} on 127.0.0.1 is in use: `make down` if it is an earlier demo page; or DEMO_PORT=")
    print(f"==> Starting ministack on 127.0.0.1:{port}")
    try:
        _, outputs = started_and_deployed(lambda: port, state_dir, demo_port)  # it runs on after `up`
    except BaseException:
        print("==> ministack stopped; `make down` clears what is left in .local", file=sys.stderr)
        raise
    (state_dir / ENDPOINTS_FILE).write_text(json.dumps(outputs, indent=2, sort_keys=True) + "\n")
    print(f"==> Stack is up in {time.monotonic() - started:.0f}s")
    print(f"    WebSocket URL : {outputs['websocket_url']}")
    print(f"    HTTP API URL  : {outputs['http_api_url']}")
    print(f"    Events queue  : {outputs['events_queue_url']}")
    print(f"    Endpoints file: {state_dir / ENDPOINTS_FILE}")
    print(f"    Demo page     : {start_demo_server(state_dir, demo_port)}")  # it refuses a non-loopback stack
    print("    Walkthrough   : make demo")
    print("    Logs          : make logs [FUNCTION=process-events] [CORRELATION_ID=...]")
    print("    Token for a user: .venv/bin/python -m scripts.local.mint_token --user alice --groups ops")
    return outputs


def process_line(state_dir: Path, pid_file: str, where: str) -> str:
    """'running, pid N, <where>', or what is wrong with the recorded process and what to do."""
    if not (state_dir / pid_file).exists():
        return "not started"
    pid = int((state_dir / pid_file).read_text())
    if not pid_alive(pid):
        return f"not running (pid {pid} has exited): `make down` clears the leftovers, then `make up`"
    return f"running, pid {pid}, {where}"


def status(state_dir: Path) -> None:
    """What of the local stack is running, and where."""
    if not (state_dir / EMULATOR_PID_FILE).exists():
        print(f"No local stack recorded in {state_dir}: `make up` starts one.")
        return
    endpoints_file = state_dir / ENDPOINTS_FILE
    endpoints = json.loads(endpoints_file.read_text()) if endpoints_file.exists() else {}
    emulator = endpoints.get("emulator_endpoint")
    health = "not answering" if emulator and not healthy(emulator) else "healthy"
    print(f"Local stack in {state_dir}")
    print(f"  ministack     {process_line(state_dir, EMULATOR_PID_FILE, f'{emulator} ({health})')}")
    if not endpoints:
        print("  stack         not applied (`make up` is still applying, or it failed: `make down`, then `make up`)")
        return
    state = json.loads((state_dir / "terraform.tfstate").read_text())
    instances = sum(len(resource["instances"]) for resource in state["resources"] if resource["mode"] == "managed")
    print(f"  stack         {instances} resources, {len(endpoints['function_names'])} functions (terraform.tfstate)")
    print(f"  WebSocket URL {endpoints['websocket_url']}")
    print(f"  HTTP API URL  {endpoints['http_api_url']}")
    print(f"  Events queue  {endpoints['events_queue_url']}")
    print(f"  Endpoints     {endpoints_file}")
    demo_url_file = state_dir / DEMO_SERVER_URL_FILE
    demo_url = demo_url_file.read_text().strip() if demo_url_file.exists() else "?"
    print(f"  demo page     {process_line(state_dir, DEMO_SERVER_PID_FILE, demo_url)}")
    print("  next          make demo | make logs | make down")


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
    parser.add_argument("command", choices=["up", "status", "down"])
    parser.add_argument("--port", type=int, default=int(os.environ.get("LOCAL_PORT", "4566")))
    parser.add_argument("--demo-port", type=int, default=int(os.environ.get("DEMO_PORT", "8765")))
    parser.add_argument("--state-dir", type=Path, default=LOCAL_STATE_DIR)
    args = parser.parse_args()
    state_dir = args.state_dir.resolve()
    if args.command == "up":
        if (state_dir / EMULATOR_PID_FILE).exists():
            sys.exit(f"a local stack is already recorded in {state_dir}: run `make down` first")
        up(args.port, state_dir, args.demo_port)
    elif args.command == "status":
        status(state_dir)
    else:
        down(state_dir)


if __name__ == "__main__":
    main()
