"""Check on a sandbox AWS account what the emulator cannot show (`make aws-smoke`; never run by make test).

    make aws-smoke REALTIME_STACK_ENDPOINTS=endpoints.json

The endpoints file is the one the suites read (docs/environments.md, "A real AWS account": a copy of
terraform/examples/local applied to the account, its outputs as JSON). Credentials come from the default chain
(AWS_PROFILE, ...) and need: sqs:SendMessage on the events queue and ReceiveMessage/DeleteMessage on its DLQ,
ssm:GetParameter (with decryption) on the token parameter, apigateway GET on the two APIs,
execute-api:ManageConnections on the WebSocket API, lambda:GetFunctionRecursionConfig, dynamodb:GetItem on the
events table, cloudwatch:GetMetricStatistics, sts:GetCallerIdentity.

Each assumption the module or its docs make about AWS is printed with PASS, FAIL or INFO (what was observed,
for behaviour nothing depends on). What it costs: a few hundred requests and WebSocket messages, two events,
one dead-lettered message: well under $0.01 at list prices. It takes about 2 minutes, 6 more with --metrics
(CloudWatch's WebSocket message counts arrive minutes late).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.error import HTTPError
from urllib.request import Request, urlopen

from realtime.events.pipeline import producer_of

from scripts.local.emulator import emulator_client
from scripts.local.mint_token import LOCAL_AUDIENCE, LOCAL_ISSUER, local_secret, mint_token

PASS, FAIL, INFO = "PASS", "FAIL", "INFO"


@dataclass
class Check:
    assumption: str
    outcome: str = FAIL
    observed: str = ""


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)

    def add(self, assumption: str, run: Callable[[], tuple[str, str]]) -> Check:
        """Run one check; an exception is a FAIL with its text, never the end of the run."""
        check = Check(assumption)
        try:
            check.outcome, check.observed = run()
        except Exception as error:  # a smoke check reports every failure and goes on
            check.outcome, check.observed = FAIL, f"{type(error).__name__}: {error}"
        self.checks.append(check)
        print(f"{check.outcome:4}  {check.assumption}\n      {check.observed}", flush=True)
        return check

    @property
    def failed(self) -> list[Check]:
        return [check for check in self.checks if check.outcome == FAIL]


class Smoke:
    def __init__(self, endpoints: dict[str, Any], *, issuer: str, audience: str) -> None:
        self.endpoints = endpoints
        self.user = f"smoke-{uuid.uuid4().hex[:8]}"
        self.token = mint_token(local_secret(endpoints), self.user, ttl=900, iss=issuer, aud=audience)

    def aws(self, service: str) -> Any:
        return emulator_client(self.endpoints, service)

    # --- the checks -----------------------------------------------------------------------------------

    def ping_is_a_mock_route(self) -> tuple[str, str]:
        api = self.aws("apigatewayv2")
        api_id = self.endpoints["websocket_api_id"]
        routes = {r["RouteKey"]: r for r in api.get_routes(ApiId=api_id)["Items"]}
        target = routes["ping"]["Target"].removeprefix("integrations/")
        kind = api.get_integration(ApiId=api_id, IntegrationId=target)["IntegrationType"]
        pong = asyncio.run(self._ping_once())
        ok = kind == "MOCK" and pong is not None
        return (PASS if ok else FAIL), f"ping integration {kind}; answer to a ping: {pong!r}"

    def last_active_at_after_a_ping(self) -> tuple[str, str]:
        """INFO: nothing depends on it (maintenance checks with GetConnection whatever lastActiveAt says)."""
        before, after = asyncio.run(self._last_active_around_a_ping())
        if before is None or after is None:
            return INFO, f"lastActiveAt not reported (before the ping {before}, after {after})"
        return INFO, f"lastActiveAt before the ping {before}, after {after}: {'moves' if after > before else 'stays'}"

    def fanout_recursion_is_allowed(self) -> tuple[str, str]:
        name = self.endpoints["function_names"]["fanout"]
        mode = self.aws("lambda").get_function_recursion_config(FunctionName=name).get("RecursiveLoop")
        return (PASS if mode == "Allow" else FAIL), f"{name}: RecursiveLoop = {mode}"

    def poison_reaches_the_dlq(self) -> tuple[str, str]:
        sqs = self.aws("sqs")
        marker = f"smoke-poison-{uuid.uuid4().hex[:8]}"
        sqs.send_message(QueueUrl=self.endpoints["events_queue_url"], MessageBody=f"not json {marker}")
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            answer = sqs.receive_message(
                QueueUrl=self.endpoints["dlq_url"], WaitTimeSeconds=10, MaxNumberOfMessages=10,
                MessageAttributeNames=["All"],
            )  # fmt: skip
            for message in answer.get("Messages", []):
                if marker in message["Body"]:
                    sqs.delete_message(QueueUrl=self.endpoints["dlq_url"], ReceiptHandle=message["ReceiptHandle"])
                    code = message.get("MessageAttributes", {}).get("errorCode", {}).get("StringValue")
                    return (PASS if code == "invalid_json" else FAIL), f"in the DLQ with errorCode {code}"
        return FAIL, "not in the DLQ within 90 s (the DLQ's queue policy may refuse process-events)"

    def sender_id_namespaces_ids(self) -> tuple[str, str]:
        caller = self.aws("sts").get_caller_identity()["UserId"]
        expected = producer_of(caller)
        event_id = f"smoke-{uuid.uuid4().hex[:8]}"
        topic = f"user:{self.user}"
        self.aws("sqs").send_message(
            QueueUrl=self.endpoints["events_queue_url"],
            MessageBody=json.dumps({"id": event_id, "type": "smoke.check", "data": {}, "audience": [topic]}),
        )
        table = self.endpoints["events_table_name"]
        key = {"topic": {"S": f"dedup#{topic}#from:{expected}:{event_id}"}, "seq": {"N": "0"}}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if "Item" in self.aws("dynamodb").get_item(TableName=table, Key=key, ConsistentRead=True):
                return PASS, f"SenderId {caller!r}: stored under producer {expected!r}"
            time.sleep(2)
        return FAIL, f"SenderId {caller!r}: nothing stored under producer {expected!r} within 60 s"

    def route_throttle_answers_429(self) -> tuple[str, str]:
        url = f"{self.endpoints['http_api_url']}/events?since=now&limit=1"
        statuses = self._burst(url, 150)  # GET /events: burst 50 by default
        throttled = statuses.count(429)
        summary = ", ".join(f"{status or 'no answer'}: {statuses.count(status)}" for status in sorted(set(statuses)))
        return (PASS if throttled else FAIL), f"150 requests at once: {summary}"

    def refused_connect_status(self) -> tuple[str, str]:
        """INFO: what a browser's handshake sees when $connect refuses (the clients back off either way)."""
        status = asyncio.run(self._refused_handshake())
        return INFO, f"a connect with a bad token is refused with HTTP {status}"

    def messages_are_billed_per_ping_and_pong(self, pings: int = 20) -> tuple[str, str]:
        started = datetime.now(UTC)
        asyncio.run(self._pings(pings))
        time.sleep(360)  # CloudWatch's WebSocket metrics arrive minutes late
        statistics = self.aws("cloudwatch").get_metric_statistics(
            Namespace="AWS/ApiGateway", MetricName="MessageCount",
            Dimensions=[{"Name": "ApiId", "Value": self.endpoints["websocket_api_id"]}],
            StartTime=started - timedelta(minutes=1), EndTime=datetime.now(UTC), Period=60, Statistics=["Sum"],
        )  # fmt: skip
        counted = sum(point["Sum"] for point in statistics["Datapoints"])
        return INFO, f"{pings} pings sent; MessageCount over the window: {counted:.0f} (pings and pongs: {2 * pings})"

    # --- helpers --------------------------------------------------------------------------------------

    async def _socket(self, token: str | None = None) -> Any:
        import websockets

        return await websockets.connect(f"{self.endpoints['websocket_url']}?token={token or self.token}")

    async def _ping_once(self) -> str | None:
        async with await self._socket() as socket:
            await socket.send(json.dumps({"action": "ping"}))
            return await asyncio.wait_for(socket.recv(), 10)

    async def _pings(self, count: int) -> None:
        async with await self._socket() as socket:
            for _ in range(count):
                await socket.send(json.dumps({"action": "ping"}))
                await asyncio.wait_for(socket.recv(), 10)

    def _connection_id(self) -> str | None:
        """The smoke user's one live connection, from its subscription row on its own topic in the connections
        table (realtime.connections.store: pk `topic#user:<id>`, sk `conn#<connection id>`)."""
        answer = self.aws("dynamodb").query(
            TableName=self.endpoints["connections_table_name"],
            KeyConditionExpression="pk = :topic",
            ExpressionAttributeValues={":topic": {"S": f"topic#user:{self.user}"}},
            ConsistentRead=True,
        )
        ids = [item["sk"]["S"].removeprefix("conn#") for item in answer.get("Items", [])]
        return ids[0] if len(ids) == 1 else None

    async def _last_active_around_a_ping(self) -> tuple[Any, Any]:
        management = self._management()
        async with await self._socket() as socket:
            connection_id = None
            for _ in range(10):  # the record is written by $connect; give a slow one a few seconds
                if (connection_id := self._connection_id()) is not None:
                    break
                await asyncio.sleep(0.5)
            if connection_id is None:
                raise RuntimeError("the smoke socket's connection id is not in the connections table")
            before = management.get_connection(ConnectionId=connection_id).get("LastActiveAt")
            await asyncio.sleep(3)
            await socket.send(json.dumps({"action": "ping"}))
            await asyncio.wait_for(socket.recv(), 10)
            await asyncio.sleep(1)
            after = management.get_connection(ConnectionId=connection_id).get("LastActiveAt")
        return before, after

    def _management(self) -> Any:
        """The @connections client, at the module's own management endpoint (its output)."""
        import boto3

        emulator = (
            {"aws_access_key_id": "test", "aws_secret_access_key": "test"}
            if "emulator_endpoint" in self.endpoints
            else {}
        )
        return boto3.client(
            "apigatewaymanagementapi",
            endpoint_url=self.endpoints["websocket_management_endpoint"],
            region_name=self.endpoints["region"],
            **emulator,
        )

    async def _refused_handshake(self) -> int | str:
        import websockets

        try:
            async with await self._socket("not-a-token"):
                return "none: the connect was accepted"
        except websockets.InvalidStatus as refusal:
            return refusal.response.status_code

    def _burst(self, url: str, count: int) -> list[int]:
        def one(_n: int) -> int:
            try:
                with urlopen(Request(url, headers={"Authorization": f"Bearer {self.token}"}), timeout=30) as answer:
                    return answer.status
            except HTTPError as error:
                return error.code
            except OSError:
                return 0  # no answer within 30 s

        with ThreadPoolExecutor(max_workers=50) as pool:
            return list(pool.map(one, range(count)))


def run(endpoints: dict[str, Any], *, metrics: bool, issuer: str, audience: str) -> Report:
    smoke, report = Smoke(endpoints, issuer=issuer, audience=audience), Report()
    report.add(
        "ping is answered by API Gateway itself (a MOCK integration): no function, a pong", smoke.ping_is_a_mock_route
    )
    report.add("GetConnection's lastActiveAt after a message to the MOCK ping route", smoke.last_active_at_after_a_ping)
    report.add("fanout's recursion config is Allow (its page chain is not stopped after ~16 hops)",
               smoke.fanout_recursion_is_allowed)  # fmt: skip
    report.add("process-events may send a poison message to the DLQ (the DLQ's queue policy on real IAM)",
               smoke.poison_reaches_the_dlq)  # fmt: skip
    report.add("ids are namespaced by the sender's SenderId as the module derives it", smoke.sender_id_namespaces_ids)
    report.add("GET /events's route throttle refuses a burst with 429", smoke.route_throttle_answers_429)
    report.add("what a refused $connect looks like to the client", smoke.refused_connect_status)
    if metrics:
        report.add("pings and pongs are billed messages (CloudWatch MessageCount)",
                   smoke.messages_are_billed_per_ping_and_pong)  # fmt: skip
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoints", type=Path, default=os.environ.get("REALTIME_STACK_ENDPOINTS"))
    parser.add_argument("--metrics", action="store_true", help="also wait for CloudWatch's message counts (6 min)")
    parser.add_argument("--issuer", default=LOCAL_ISSUER, help="the stack's token.issuer (the example's by default)")
    parser.add_argument("--audience", default=LOCAL_AUDIENCE, help="the stack's token.audience")
    args = parser.parse_args()
    if args.endpoints is None:
        sys.exit("aws-smoke: set REALTIME_STACK_ENDPOINTS to the stack's endpoints file (docs/environments.md)")
    endpoints = json.loads(Path(args.endpoints).read_text())
    if "emulator_endpoint" in endpoints:
        print("note: these endpoints are an emulator's; the checks are AWS's assumptions (expect FAILs here)")
    report = run(endpoints, metrics=args.metrics, issuer=args.issuer, audience=args.audience)
    print(f"\n{len(report.checks) - len(report.failed)} of {len(report.checks)} checks without a FAIL")
    if report.failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
