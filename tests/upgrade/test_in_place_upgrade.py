"""An in-place upgrade under traffic: apply the previous release, connect clients, apply this tree, lose nothing.

On the emulator (ministack, a free loopback port), the whole tree at UPGRADE_FROM_REF (default 71d7b89,
the last landed main) is exported with `git archive`, its zips are built with its own build script and
its terraform/examples/local is applied. Current Python clients connect to that stack (three on the
WebSocket, one held on HTTP long polling) and a publisher thread sends a numbered event every 100 ms to
their topics, some events on two of a client's topics at once, every third one to `all`. While it
publishes, this tree's zips are built and this tree's examples/local is planned and applied to the same
state; publishing goes on for a while after the apply, then stops. A fourth socket client connects once
ws-connect has read the new subscription layout (after the apply, past LAYOUT_REFRESH_SECONDS): its
subscription to `all` is written to one of `all`'s 16 keys, beside the rows of the clients connected
before, which stay on the key they had (shard 0).

Asserted: the plan deletes or replaces nothing (a table or queue replaced loses its items or messages;
this replaces the earlier plan-only test) but the dependencies layer's version, which is immutable and
holds no data: a release's layer at another path is a new version, created before the old one is deleted
(the two releases' zips sit at different paths here, as they do for a user). The stack keeps its
URLs, every client hands on every published event exactly once (the late one: every event published
after it opened, its `all` row on a shard and its record saying so), each topic's events in seq order
without a gap from 30 s after the apply (a client that reconnects during the apply catches up over HTTP;
inversions before are reported), and the events and
fanout DLQs are empty. The counts and the apply's duration are printed and repeated in the terminal
summary.

Not covered: fan-out pages (the previous example has no `fanout_threshold` input, and 500 simulated
subscribers would each be posted to and dropped as gone on the first event); jobs in the previous
format are covered by tests/unit/events/test_delivery.py.

`make test-upgrade` runs it (about 5 to 10 minutes). Skipped without the emulator's venv
(.venv-ministack) or without the git history of UPGRADE_FROM_REF (a shallow clone).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import subprocess
import sys
import tarfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from measurements import FIGURES
from realtime.connections.layout import LAYOUT_REFRESH_SECONDS
from realtime_client import RealtimeClient, exactly_once_in_order
from realtime_publisher import Publisher

from scripts.local.emulator import MINISTACK, ROOT, emulator_client, free_port, start_emulator
from scripts.local.mint_token import local_secret, mint_token
from scripts.release import build

UPGRADE_FROM_REF = os.environ.get("UPGRADE_FROM_REF", "71d7b89")
EXAMPLE = Path("terraform") / "examples" / "local"

PUBLISH_INTERVAL = 0.1  # seconds between two published events
PUBLISHING_BEFORE = 10.0  # seconds of traffic on the previous release before the upgrade starts
PUBLISHING_AFTER = 20.0  # ... and on the upgraded stack after the apply
SETTLED_AFTER_APPLY = 30.0  # seconds after the apply: in-flight batches of the previous version are done
DELIVERY_TIMEOUT = 120.0  # after the last publish, for every client to have every event
TEST_TIMEOUT = 900.0  # the clients' part, upgrade included
EVENT_TYPE = "upgrade.tick"
ARTIFACTS = ROOT / "test-artifacts"  # each client's handed-on events, to read after a failure
# The DLQs that must stay empty: what process-events and the fanout function give up on.
CHECKED_DLQS = ("events-dlq", "fanout-dlq")
# Resource types an upgrade may replace: immutable, holding no data, created before the old one is deleted.
# Renewed on every change, the new one created before the old one goes: they hold nothing (a deployment is a
# snapshot of the routes the stage points at).
RENEWABLE_TYPES = {"aws_lambda_layer_version", "aws_apigatewayv2_deployment"}
CREATE_BEFORE_DELETE = ["create", "delete"]
# Removed on purpose since 3065e9a, holding nothing: 0.3's gateway answers pings itself (no ws-ping).
RETIRED = {
    'module.realtime.aws_lambda_function.this["ws-ping"]',
    'module.realtime.aws_iam_role.lambda["ws-ping"]',
    'module.realtime.aws_iam_role_policy.lambda["ws-ping"]',
    'module.realtime.aws_cloudwatch_log_group.lambda["ws-ping"]',
    'module.realtime.aws_lambda_permission.websocket["ping"]',
    'module.realtime.aws_apigatewayv2_integration.websocket["ping"]',
}


def history_of(ref: str) -> str | None:
    """The commit ``ref`` names, or None when this clone does not have it (shallow)."""
    result = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], cwd=ROOT, capture_output=True, text=True
    )
    return result.stdout.strip() or None


pytestmark = [
    pytest.mark.skipif(not MINISTACK.exists(), reason=f"{MINISTACK} is missing: make install"),
    pytest.mark.skipif(
        history_of(UPGRADE_FROM_REF) is None,
        reason=f"UPGRADE_FROM_REF {UPGRADE_FROM_REF} is not in this clone's git history "
        "(a shallow clone? `git fetch --unshallow`)",
    ),
]


# --- the two trees ---------------------------------------------------------------------------------


def terraform(tree: Path, *args: str, data_dir: Path) -> str:
    """Run terraform in ``tree``'s examples/local, with its own working directory; returns stdout."""
    env = {
        **os.environ,
        "TF_DATA_DIR": str(data_dir),
        "TF_IN_AUTOMATION": "1",
        "TF_CLI_CONFIG_FILE": str(ROOT / "terraform.rc"),  # providers from the machine's mirror, as in the Makefile
    }
    command = ["terraform", f"-chdir={tree / EXAMPLE}", *args]
    result = subprocess.run(command, env=env, text=True, capture_output=True)
    output = f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    assert result.returncode == 0, f"terraform {args[0]} in {tree} failed:\n{output}"
    return result.stdout


def export_tree(ref: str, target: Path) -> Path:
    """The whole tree of ``ref`` (functions, build script, module, examples), written to ``target``."""
    archive = subprocess.run(["git", "archive", ref], cwd=ROOT, capture_output=True)
    assert archive.returncode == 0, f"git archive {ref} failed (UPGRADE_FROM_REF): {archive.stderr.decode()}"
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(target, filter="data")
    return target


def build_previous_zips(tree: Path, arch: str, out: Path) -> dict[str, Path]:
    """The previous release's zips, built by its own build script (its Makefile's `build`: `scripts.build`
    up to 3065e9a, `scripts.release.build` since).

    ``out`` outlives the run, so its build script finds its layer unchanged and skips pip next time.
    """
    script = "scripts.release.build" if (tree / "scripts" / "release" / "build.py").exists() else "scripts.build"
    command = [sys.executable, "-m", script, "--arch", arch, "--out", str(out)]
    result = subprocess.run(command, cwd=tree, env={**os.environ, "PYTHONPATH": str(tree)}, capture_output=True)
    assert result.returncode == 0, f"the build of {UPGRADE_FROM_REF} failed:\n{result.stderr.decode()[-4000:]}"
    zips = {"code": out / arch / "functions.zip", "layer": out / arch / "layer.zip"}
    assert all(path.exists() for path in zips.values()), f"{UPGRADE_FROM_REF}'s build wrote no zips in {out / arch}"
    return zips


def stack_variables(endpoint: str, zips: dict[str, Path], arch: str, demo_port: int) -> list[str]:
    """What scripts/local/local_stack.py passes to examples/local (the same demo port both times: same CORS)."""
    return [
        f"-var=endpoint={endpoint}",
        f"-var=lambda_code_zip={zips['code']}",
        f"-var=lambda_layer_zip={zips['layer']}",
        f"-var=lambda_architecture={arch}",
        f"-var=demo_port={demo_port}",
    ]


def stack_outputs(tree: Path, state: Path, data_dir: Path) -> dict:
    raw = json.loads(terraform(tree, "output", "-json", f"-state={state}", data_dir=data_dir))
    return {name: item["value"] for name, item in raw.items()}


@dataclass
class Upgrade:
    """What upgrading did: the plan's resource changes, and how long each step took."""

    changes: list[dict] = field(default_factory=list)
    applied: bool = False
    build_seconds: float = 0.0
    plan_seconds: float = 0.0
    apply_seconds: float = 0.0
    emulator_stage_recreated: bool = False  # the emulator deleted the stage (see apply_upgrade); re-applied

    def replaced(self) -> list[str]:
        """Deletions and replacements that could lose something (all but the renewable ones)."""
        return [
            f"{c['address']}: {c['change']['actions']}"
            for c in self.changes
            if "delete" in c["change"]["actions"] and not self._renewable(c) and not self._retired(c)
        ]

    def retired(self) -> list[str]:
        return [c["address"] for c in self.changes if self._retired(c)]

    @staticmethod
    def _retired(change: dict) -> bool:
        return change["address"] in RETIRED and change["change"]["actions"] == ["delete"]

    def renewed(self) -> list[str]:
        return [c["address"] for c in self.changes if self._renewable(c)]

    @staticmethod
    def _renewable(change: dict) -> bool:
        return change["type"] in RENEWABLE_TYPES and change["change"]["actions"] == CREATE_BEFORE_DELETE

    def updated(self) -> list[str]:
        return [c["address"] for c in self.changes if c["change"]["actions"] == ["update"]]

    def moved(self) -> list[str]:
        return [f"{c['previous_address']} -> {c['address']}" for c in self.changes if c.get("previous_address")]


def upgrade_to_this_tree(state: Path, data_dir: Path, variables: Callable[[dict[str, Path]], list[str]]) -> Upgrade:
    """Build this tree's zips, plan its examples/local against ``state`` and apply that plan unless it replaces."""
    upgrade = Upgrade()
    started = time.monotonic()
    zips = build.build(build.host_arch(), ROOT / "dist")
    upgrade.build_seconds = time.monotonic() - started

    started = time.monotonic()
    plan = state.with_name("upgrade.tfplan")
    terraform(ROOT, "init", "-input=false", "-backend=false", data_dir=data_dir)
    terraform(ROOT, "plan", "-input=false", f"-state={state}", f"-out={plan}", *variables(zips), data_dir=data_dir)
    upgrade.changes = json.loads(terraform(ROOT, "show", "-json", str(plan), data_dir=data_dir)).get(
        "resource_changes", []
    )
    upgrade.plan_seconds = time.monotonic() - started
    if upgrade.replaced():
        return upgrade  # the test fails on it; applying would only lose what the test is about

    print(f"==> Applying {ROOT / EXAMPLE} under traffic", flush=True)
    started = time.monotonic()
    try:
        terraform(ROOT, "apply", "-input=false", f"-state={state}", str(plan), data_dir=data_dir)  # exactly the plan
    except AssertionError as error:
        # The emulator (ministack 1.5.33) routes DELETE .../stages/{stage}/routesettings/{route} to DeleteStage:
        # when a route's throttle changes, the provider's DeleteRouteSettings deletes the whole stage and the
        # UpdateStage after it answers 404. AWS deletes only the route's settings. Apply once more: the stage
        # is created again, with the new settings; the sockets the emulator holds stay open meanwhile.
        if "UpdateStage" not in str(error) or "not found" not in str(error):
            raise
        upgrade.emulator_stage_recreated = True
        terraform(
            ROOT, "apply", "-input=false", "-auto-approve", f"-state={state}", *variables(zips), data_dir=data_dir
        )
    upgrade.apply_seconds = time.monotonic() - started
    upgrade.applied = True
    return upgrade


# --- traffic -----------------------------------------------------------------------------------------


class Ticker(threading.Thread):
    """Publishes a numbered event every PUBLISH_INTERVAL until stopped; keeps the ids SQS accepted."""

    def __init__(self, publisher: Publisher, audiences: list[list[str]]):
        super().__init__(name="upgrade-ticker", daemon=True)
        self.publisher = publisher
        self.audiences = audiences
        self.run_id = uuid.uuid4().hex[:8]
        self.published: list[str] = []
        self.send_errors: list[str] = []  # sends SQS refused (each retried until accepted or given up)
        self.stopping = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.stopping.is_set():
            event_id = f"upg-{self.run_id}-{n:05d}"
            audience = self.audiences[n % len(self.audiences)]
            for _ in range(5):  # what a producer does; the id makes a send that did arrive count once
                try:
                    self.publisher.publish(EVENT_TYPE, {"n": n}, audience=audience, id=event_id)
                except Exception as error:  # any refusal is recorded and retried
                    self.send_errors.append(f"{event_id}: {error!r}")
                    time.sleep(0.5)
                else:
                    self.published.append(event_id)
                    break
            n += 1
            self.stopping.wait(PUBLISH_INTERVAL)

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=30)


class Recorder:
    """Everything a client hands on to the application, with the transport that carried it."""

    def __init__(self, client: RealtimeClient):
        self.client = client
        self.items: list[tuple[dict, str]] = []
        self.handed_on_at: list[float] = []  # time.time() of each item
        client.on("*", lambda event, meta: self.record(event, meta))

    def record(self, event: dict, meta) -> None:
        self.items.append((event, meta.transport))
        self.handed_on_at.append(meta.received_at)

    def events_since(self, moment: float) -> list[dict]:
        return [event for (event, _), at in zip(self.items, self.handed_on_at, strict=True) if at >= moment]

    @property
    def events(self) -> list[dict]:
        return [event for event, _ in self.items]

    def ticks(self) -> list[dict]:
        return [event for event in self.events if event.get("type") == EVENT_TYPE]

    def has_all(self, ids: list[str]) -> bool:
        return set(ids) <= {event["id"] for event in self.ticks()}

    def summary(self) -> str:
        ticks = [transport for event, transport in self.items if event.get("type") == EVENT_TYPE]
        stats = self.client.stats
        return (
            f"{self.client.name}: {len(ticks)} events ({ticks.count('websocket')} websocket, "
            f"{ticks.count('http')} http), {len(self.items) - len(ticks)} presence; "
            f"socket opens {stats.opens}, drops {stats.drops}, catch-ups {stats.syncs}, fallbacks {stats.fallbacks}"
        )


async def refuse_websocket(url: str):
    raise ConnectionRefusedError("this client is kept on HTTP long polling")


@dataclass
class Traffic:
    published: list[str]
    send_errors: list[str]
    recorders: list[Recorder]
    upgrade: Upgrade
    late: Recorder | None = None  # connected after the new layout was read
    published_to_late: list[str] = field(default_factory=list)  # published once it was open
    late_record: dict | None = None  # its connection record
    applied_at: float | None = None  # time.time() when this tree's apply returned


def connection_record_of(endpoints: dict, user: str) -> dict | None:
    """The connection record of a user's one connection, as the connections table holds it."""
    dynamodb = emulator_client(endpoints, "dynamodb")
    table = endpoints["connections_table_name"]
    items = dynamodb.scan(
        TableName=table,
        FilterExpression="sk = :meta AND userId = :user",
        ExpressionAttributeValues={":meta": {"S": "meta"}, ":user": {"S": user}},
    )["Items"]
    return items[0] if items else None


async def traffic_across(endpoints: dict, secret: str, upgrade: Callable[[], Upgrade]) -> Traffic:
    """Clients on the stack and a publisher at 10 events/s, while ``upgrade`` runs (in a thread)."""
    team = f"team-{uuid.uuid4().hex[:6]}"

    def client(user: str, **options) -> RealtimeClient:
        return RealtimeClient(
            endpoints["websocket_url"],
            endpoints["http_api_url"],
            lambda: mint_token(secret, user, [team], ttl=3600),
            name=user,
            backoff={"initial": 0.5, "maximum": 5.0},
            **options,
        )

    on_socket = [client(f"ws-{n}") for n in range(3)]
    on_http = client("http-only", ws_connect=refuse_websocket)
    recorders = [Recorder(c) for c in [*on_socket, on_http]]
    # Every event reaches the whole team; every other one also reaches ws-0 through its own topic, so ws-0
    # has it on two topics at once and must hand it on once (dedupe by key, or by id for older events).
    audiences = [[f"group:{team}"], [f"group:{team}", f"user:{on_socket[0].name}"], ["all"]]
    publisher = Publisher(endpoints["events_queue_url"], sqs_client=emulator_client(endpoints, "sqs"))
    ticker = Ticker(publisher, audiences)

    async with contextlib.AsyncExitStack() as clients:
        for each in [*on_socket, on_http]:
            await clients.enter_async_context(each)
        for each in on_socket:
            await each.wait_for_state("open", timeout=60)
        await on_http.wait_for_state("fallback", timeout=60)

        print(f"==> Publishing every {PUBLISH_INTERVAL * 1000:.0f} ms to 4 clients on {UPGRADE_FROM_REF}", flush=True)
        ticker.start()
        late, published_before_late, late_record, applied_at = None, 0, None, None
        try:
            await asyncio.sleep(PUBLISHING_BEFORE)
            upgraded = await asyncio.to_thread(upgrade)
            applied_at = time.time()
            if upgraded.applied:
                # ws-connect workers that started during the apply keep the layout they read for a minute.
                await asyncio.sleep(LAYOUT_REFRESH_SECONDS + 5)
                late = client("ws-late")
                recorders.append(Recorder(late))
                await clients.enter_async_context(late)
                await late.wait_for_state("open", timeout=60)
                published_before_late = len(ticker.published)
                late_record = await asyncio.to_thread(connection_record_of, endpoints, "ws-late")
                await asyncio.sleep(PUBLISHING_AFTER)
        finally:
            await asyncio.to_thread(ticker.stop)

        published = list(ticker.published)
        # Each recorder waits for what was published while it could hear it.
        expected = {id(r): published for r in recorders}
        if late is not None:
            expected[id(recorders[-1])] = published[published_before_late:]
        # The emulator stops a function's workers when its code is replaced, and the batch one was
        # processing comes back only after the events queue's visibility timeout (AWS lets in-flight
        # invocations finish on the old code): wait past it, so "lost" means lost.
        visibility = int(
            emulator_client(endpoints, "sqs").get_queue_attributes(
                QueueUrl=endpoints["events_queue_url"], AttributeNames=["VisibilityTimeout"]
            )["Attributes"]["VisibilityTimeout"]
        )
        deadline = time.monotonic() + max(DELIVERY_TIMEOUT, visibility + 30)
        while time.monotonic() < deadline and not all(r.has_all(expected[id(r)]) for r in recorders):
            await asyncio.sleep(0.5)
        await asyncio.sleep(2)  # a duplicate would come by now
    late_recorder = recorders[-1] if late is not None else None
    published_to_late = published[published_before_late:] if late is not None else []
    return Traffic(
        published,
        list(ticker.send_errors),
        recorders,
        upgraded,
        late_recorder,
        published_to_late,
        late_record,
        applied_at,
    )


def dlq_depths(endpoints: dict) -> dict[str, int]:
    """Messages in each of the stack's dead-letter queues, by the name's suffix (events-dlq, fanout-dlq, ...)."""
    sqs = emulator_client(endpoints, "sqs")
    prefix = endpoints["events_queue_url"].rsplit("/", 1)[-1].removesuffix("events")  # "<name>-"
    names = [f"ApproximateNumberOfMessages{state}" for state in ("", "NotVisible", "Delayed")]
    depths = {}
    for url in sqs.list_queues(QueueNamePrefix=prefix).get("QueueUrls", []):
        queue = url.rsplit("/", 1)[-1].removeprefix(prefix)
        if queue.endswith("dlq"):
            attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
            depths[queue] = sum(int(attributes.get(name, 0)) for name in names)
    return depths


# --- the test ----------------------------------------------------------------------------------------


def test_an_upgrade_applied_under_traffic_replaces_nothing_and_loses_no_event(tmp_path):
    arch = build.host_arch()
    print(f"\n==> Building the zips of {UPGRADE_FROM_REF} with its own build script", flush=True)
    previous = export_tree(UPGRADE_FROM_REF, tmp_path / "previous")
    previous_zips = build_previous_zips(previous, arch, ROOT / "dist" / f"upgrade-from-{UPGRADE_FROM_REF}")
    state = tmp_path / "terraform.tfstate"
    before, after = tmp_path / "tf-previous", tmp_path / "tf-current"
    demo_port = free_port()

    emulator = start_emulator(free_port(), tmp_path / "stack")
    try:

        def variables(zips: dict[str, Path]) -> list[str]:
            return stack_variables(emulator.endpoint, zips, arch, demo_port)

        print(f"==> Applying {UPGRADE_FROM_REF}'s terraform/examples/local on {emulator.endpoint}", flush=True)
        started = time.monotonic()
        terraform(previous, "init", "-input=false", "-backend=false", data_dir=before)
        terraform(previous, "apply", "-input=false", "-auto-approve", f"-state={state}", *variables(previous_zips),
                  data_dir=before)  # fmt: skip
        print(f"    applied in {time.monotonic() - started:.0f}s", flush=True)
        endpoints = {**stack_outputs(previous, state, before), "emulator_endpoint": emulator.endpoint}

        def upgrade() -> Upgrade:
            return upgrade_to_this_tree(state, after, variables)

        traffic = asyncio.run(
            asyncio.wait_for(traffic_across(endpoints, local_secret(endpoints), upgrade), TEST_TIMEOUT)
        )
        upgraded = traffic.upgrade
        endpoints_after = stack_outputs(ROOT, state, after) if upgraded.applied else endpoints
        dlqs = dlq_depths(endpoints)
    finally:
        emulator.stop()

    report = [
        f"upgrade from {UPGRADE_FROM_REF}: {len(upgraded.changes)} resources planned, "
        f"{len(upgraded.updated())} updated in place, {len(upgraded.replaced())} replaced, "
        f"{len(upgraded.renewed())} renewed ({', '.join(upgraded.renewed()) or 'none'}), "
        f"{len(upgraded.retired())} retired ({', '.join(upgraded.retired()) or 'none'}); "
        f"build {upgraded.build_seconds:.0f}s, plan {upgraded.plan_seconds:.0f}s, "
        f"apply {upgraded.apply_seconds:.0f}s under traffic"
        + (
            " (the emulator deleted the WebSocket stage on a route-settings change: applied twice)"
            if upgraded.emulator_stage_recreated
            else ""
        ),
        f"upgrade under traffic: {len(traffic.published)} events published, "
        f"{len(traffic.send_errors)} sends retried; DLQs {dlqs}",
        *(f"  {recorder.summary()}" for recorder in traffic.recorders),
    ]
    print("\n".join(report))
    print(f"updated in place: {upgraded.updated() or 'none'}")
    print(f"moved: {upgraded.moved() or 'none'}")
    FIGURES.extend(report)
    ARTIFACTS.mkdir(exist_ok=True)
    handed_on = {r.client.name: [{"transport": t, **e} for e, t in r.items] for r in traffic.recorders}
    (ARTIFACTS / "upgrade-handed-on.json").write_text(json.dumps(handed_on, indent=1) + "\n")

    # Nothing replaced: a table or queue replaced loses its items or messages.
    assert upgraded.changes, "the plan shows no resource at all: was the previous deployment applied to this state?"
    assert upgraded.replaced() == [], "upgrading deletes or replaces:\n" + "\n".join(upgraded.replaced())
    assert upgraded.applied
    for output in ("websocket_url", "http_api_url", "events_queue_url"):
        assert endpoints_after[output] == endpoints[output], f"the upgrade changed {output}"

    # Nothing lost, nothing twice, nothing out of order.
    assert len(traffic.published) >= (PUBLISHING_BEFORE + PUBLISHING_AFTER) / PUBLISH_INTERVAL / 2, "too few published"
    failures = []  # every client's, so one run shows whether the problem is one client's or all of them
    for recorder in traffic.recorders:
        name, ids = recorder.client.name, [event["id"] for event in recorder.ticks()]
        missing = set(traffic.published_to_late if recorder is traffic.late else traffic.published) - set(ids)
        duplicated = sorted({i for i in ids if ids.count(i) > 1})
        # Per-topic order is asserted for what clients hand on once the upgrade has settled (delivery turns
        # on every topic: each has been marked). Before, the previous version's invocations post a topic's
        # batches side by side, and a client reached through two topics of one event (ws-0) hands its frame
        # on when either topic is next, so a frame that overtook another on one topic is handed on early
        # there: those inversions are reported, not asserted.
        settled = traffic.applied_at + SETTLED_AFTER_APPLY
        problems = exactly_once_in_order(recorder.events_since(settled))
        whole_run = exactly_once_in_order(recorder.events)
        FIGURES.append(
            f"upgrade: {name}: {len(whole_run)} per-topic order inversions over the whole run, "
            f"{len(problems)} after the apply had settled"
        )
        if missing:
            failures.append(f"{name} never handed on {len(missing)} events, e.g. {sorted(missing)[:5]}")
        if duplicated:
            failures.append(f"{name} handed on {len(duplicated)} events twice, e.g. {duplicated[:5]}")
        if problems:
            failures.append(f"{name}: {len(problems)} per-topic order problems, e.g. {problems[:10]}")
    assert failures == [], "\n".join(failures)

    # The late client's `all` row went to one of 16 keys (the record says so); the others' stayed on shard 0.
    assert traffic.late is not None
    assert traffic.late_record is not None, "ws-late has no connection record"
    assert traffic.late_record.get("topicShards", {}).get("M", {}).get("all") == {"N": "16"}, traffic.late_record
    assert len(traffic.published_to_late) >= PUBLISHING_AFTER / PUBLISH_INTERVAL / 2, "too few published to ws-late"

    for queue in CHECKED_DLQS:
        assert dlqs.get(queue) == 0, f"{queue}: {dlqs.get(queue, 'not found')} messages (all DLQs: {dlqs})"
