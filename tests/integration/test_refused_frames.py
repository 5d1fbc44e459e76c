"""WebSocket frames the stack refuses (contract/vectors/refused.json), on the emulator.

The gateway answers every frame without a known action itself: `$default` is a
mock integration, with no function behind it. The local emulator does not
enforce route throttling (terraform/tests/defaults.tftest.hcl checks those
settings at plan level).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path

import pytest
from sessions import Session

pytestmark = pytest.mark.integration

CORPUS = json.loads((Path(__file__).resolve().parents[2] / "contract" / "vectors" / "refused.json").read_text())
FRAMES = CORPUS["websocketFrames"]["cases"]


@pytest.mark.parametrize("route", ["$default", "ping"])
def test_the_route_is_answered_by_the_gateway_not_by_a_function(stack, aws, route):
    """Unknown frames and keepalives cost no invocation: a MOCK integration, no function behind it."""
    gateway = aws("apigatewayv2")
    routes = {r["RouteKey"]: r for r in gateway.get_routes(ApiId=stack["websocket_api_id"])["Items"]}
    integrations = {i["IntegrationId"]: i for i in gateway.get_integrations(ApiId=stack["websocket_api_id"])["Items"]}

    integration = integrations[routes[route]["Target"].removeprefix("integrations/")]
    assert integration["IntegrationType"] == "MOCK"
    assert not [name for name in stack["function_names"] if name.endswith(route.lstrip("$"))]


def test_frames_without_a_known_action_get_the_error_frame_and_the_socket_stays_open(stack, token):
    async def scenario():
        session = await Session.open(stack["websocket_url"], token(f"frank-{uuid.uuid4().hex[:8]}"), "frank")
        for case in FRAMES:
            await session.send(case["input"])
        deadline = time.monotonic() + 20
        while len(errors := [f for f in session.frames if f.get("type") == "error"]) < len(FRAMES):
            assert time.monotonic() < deadline, f"{len(errors)} error frames for {len(FRAMES)} bad frames"
            await asyncio.sleep(0.1)
        # Still open and served: a ping after them is answered.
        await session.send({"action": "ping"})
        await session.wait_for(lambda frame: frame.get("type") == "pong")
        await session.close()
        return errors

    errors = asyncio.run(scenario())

    assert len(errors) == len(FRAMES)
    for frame, case in zip(errors, FRAMES, strict=True):
        assert frame["error"]["code"] == case["error"]
        assert case["message"] in frame["error"]["message"]
    assert len({json.dumps(frame, sort_keys=True) for frame in errors}) == 1, "one fixed frame, whatever was sent"
