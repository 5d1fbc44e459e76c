"""The refused-input corpus (contract/vectors/refused.json) through the functions.

Each bad producer message, HTTP query, token and application-table item gets
exactly the error the corpus gives it (code, and a part of the message). The
WebSocket frames run on the stack (tests/integration/test_refused_frames.py),
the module inputs through `terraform test` (terraform/tests/refused_inputs.tftest.hcl).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from realtime import services
from realtime.core.auth import InvalidToken, TokenVerifier
from realtime.core.errors import PermanentError
from realtime.db_changes.sources import ChangeSources
from realtime.db_changes.translate import ChangeTranslator, Translation
from realtime.events.audience import EventTypeRules
from realtime.events.pipeline import EventPipeline
from realtime.handlers import events_api, ws_connect
from realtime.presence.api import PresenceReader

from .db_changes.records import STREAM_ARN
from .support import AUDIENCE, ISSUER, SECRET, FakeLambdaContext, http_event, ws_event

CORPUS = json.loads((Path(__file__).resolve().parents[2] / "contract" / "vectors" / "refused.json").read_text())


def cases(category: str) -> list[Any]:
    return [pytest.param(case, id=case["name"]) for case in CORPUS[category]["cases"]]


def resolve(value: Any) -> Any:
    """The input with every {"$generate": ...} replaced by what it describes (see the corpus's $generators)."""
    if isinstance(value, list):
        return [resolve(item) for item in value]
    if not isinstance(value, dict):
        return value
    if "$generate" not in value:
        return {key: resolve(item) for key, item in value.items()}
    spec = value["$generate"]
    match spec["kind"]:
        case "repeat":
            return spec["text"] * spec["times"]
        case "join":
            return "".join(resolve(spec["parts"]))
        case "list":
            return [spec["item"].format(i=i) for i in range(spec["count"])]
        case "nested":
            nested: list[Any] = []
            for _ in range(spec["depth"] - 1):
                nested = [nested]
            return nested
    raise AssertionError(f"unknown generator {spec!r}")


def test_the_corpus_has_at_least_40_cases_in_every_category_the_issue_names():
    counts = {name: len(part["cases"]) for name, part in CORPUS.items() if not name.startswith("$")}

    assert set(counts) == {"producerMessages", "websocketFrames", "httpQueries", "tokens", "tableItems", "moduleInputs"}
    assert all(counts.values())
    assert sum(counts.values()) >= 40


# --- producer messages -------------------------------------------------------------------------

PIPELINE = EventPipeline(
    store=None,
    delivery=None,
    rules=EventTypeRules.from_json('[{"type": "order.*", "audience": ["user:{data.userId}"]}]'),
    max_data_bytes=32768,
)


@pytest.mark.parametrize("case", cases("producerMessages"))
def test_producer_messages_go_to_the_dlq_with_their_reason(case):
    body = resolve(case["input"])

    with pytest.raises(PermanentError) as refused:
        PIPELINE.parse(
            body if isinstance(body, str) else json.dumps(body),
            "sqs-message-id",
            internal=case.get("queue") == "presence-events",
        )

    assert refused.value.code == case["error"]
    assert case["message"] in refused.value.reason


# --- HTTP queries and tokens: the functions as deployed, with a verifier that needs no AWS -------

VERIFIER = TokenVerifier(
    algorithms=["HS256"],
    resolve_keys=lambda _token: [SECRET.encode()],
    issuer=ISSUER,
    audience=AUDIENCE,
    max_lifetime=86400,
)


@pytest.fixture
def functions(monkeypatch):
    """events-api and ws-connect with the corpus's token checks; nothing behind them (refusals read nothing)."""
    monkeypatch.setattr(
        services, "events_api", lambda: services.EventsApi(VERIFIER, feed=None, presence=PresenceReader(None, 50))
    )
    monkeypatch.setattr(services, "ws_connect", lambda: services.WsConnect(VERIFIER, None, 7500, 10))


def token_of(spec: dict[str, Any]) -> str | None:
    """A token as the case describes it: by default sub, iss, aud and exp (in 10 minutes), signed with SECRET."""
    if "raw" in spec:
        return resolve(spec["raw"])
    now = int(time.time())
    claims: dict[str, Any] = {"sub": "alice", "iss": ISSUER, "aud": AUDIENCE, "exp": now + 600}
    for name, value in spec.get("claims", {}).items():
        claims[name] = now + value["$now"] if isinstance(value, dict) and "$now" in value else resolve(value)
    for name in spec.get("without", []):
        del claims[name]
    algorithm = spec.get("algorithm", "HS256")
    return jwt.encode(claims, None if algorithm == "none" else spec.get("secret", SECRET), algorithm=algorithm)


def http_answer(path: str, token: str | None, query: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    response = events_api.handler(http_event(headers=headers, query=query, path=path), FakeLambdaContext())
    return response["statusCode"], json.loads(response["body"])


@pytest.mark.parametrize("case", cases("httpQueries"))
def test_http_queries_get_a_400_naming_the_parameter(functions, case):
    request = resolve(case["input"])

    status, body = http_answer(request["path"], token_of({}), request["query"])

    assert status == 400
    assert body["error"]["code"] == case["error"]
    assert case["message"] in body["error"]["message"]


@pytest.mark.parametrize("case", cases("tokens"))
@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
def test_tokens_are_refused_on_connect_and_over_http(functions, case):
    token = token_of(case["input"])

    with pytest.raises(InvalidToken) as refused:
        VERIFIER.verify(token)
    query = {"token": token} if token else None
    connect = ws_connect.handler(ws_event("$connect", queryStringParameters=query), FakeLambdaContext())
    status, body = http_answer("/events", token)

    assert refused.value.reason == case["message"]
    assert connect == {"statusCode": 401}
    assert (status, body["error"]["code"]) == (401, case["error"])


# --- application-table items -------------------------------------------------------------------

RULE = {"name": "r", "event_type": "item.changed", "audience": ["user:{owner}"]}


def translation_of(spec: dict[str, Any]) -> Translation:
    sources = [{"name": "app", "stream_arn": STREAM_ARN, "rules": [RULE | spec.get("rule", {})]}]
    translator = ChangeTranslator(ChangeSources.from_json(json.dumps(sources)), max_topics_per_record=100)
    record = {
        "eventID": "e-1",
        "eventName": "INSERT",
        "eventSourceARN": spec.get("stream", STREAM_ARN),
        "dynamodb": {"Keys": {"pk": {"S": "x"}}, "NewImage": resolve(spec["item"]), "SequenceNumber": "1"},
    }
    return translator.translate(record)


@pytest.mark.parametrize("case", cases("tableItems"))
def test_table_items_a_rule_cannot_apply_to_give_no_event_and_say_why(case):
    translation = translation_of(case["input"])

    assert translation.messages == []
    if translation.refused is not None:
        outcome = translation.refused
    else:
        (outcome,) = translation.skipped
    assert outcome.code == case["error"]
    assert case["message"] in outcome.reason
