"""The db-changes handler: a stream batch in, producer messages on the events queue, failed records reported."""

import json
import time

import boto3
import pytest
from realtime.connections.store import ConnectionStore
from realtime.core import aws, lifecycle
from realtime.core.errors import ConfigError
from realtime.events.store import EventStore
from realtime.handlers import db_changes, process_events

from ..db_changes.records import STREAM_ARN, stream_record
from ..support import REGION, client_error, sqs_record

RULES = [
    {
        "name": "doctor-online",
        "event_type": "doctor.online",
        "when": {"attribute": "online", "becomes": {"BOOL": True}},
        "audience": ["presence:{doctorId}", "group:{clinicId}"],
        "list_placeholders": ["clinicId"],
        "data": ["doctorId", "name"],
    },
    {
        "name": "patient-assigned",
        "event_type": "care.doctor_assigned",
        "kinds": ["INSERT"],
        "when": {"attribute": "patientId"},
        "audience": ["user:{patientId}"],
        "data": ["doctorId", "patientId"],
    },
]


def doctor(number: int, online: bool, **extra):
    return {
        "pk": f"doctor#d-{number}",
        "doctorId": f"d-{number}",
        "name": f"Dr. {number}",
        "clinicId": "c-1",
        "online": online,
    } | extra


def coming_online(number: int, **extra):
    return stream_record(
        "MODIFY",
        old=doctor(number, False, **extra),
        new=doctor(number, True, **extra),
        event_id=f"event-{number}",
        sequence_number=f"{100 + number}",
    )


@pytest.fixture
def environment(monkeypatch):
    sources = [{"name": "clinic", "stream_arn": STREAM_ARN, "rules": RULES}]
    monkeypatch.setenv("DB_CHANGE_SOURCES", json.dumps(sources))


@pytest.fixture
def events_queue(aws_mock, environment, monkeypatch):
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName="realtime-test-events")["QueueUrl"]
    monkeypatch.setenv("EVENTS_QUEUE_URL", url)
    monkeypatch.setenv("FAILURES_QUEUE_URL", sqs.create_queue(QueueName="realtime-test-failures")["QueueUrl"])
    return sqs, url


@pytest.fixture
def failures_queue(events_queue):
    sqs, _ = events_queue
    return sqs, sqs.get_queue_url(QueueName="realtime-test-failures")["QueueUrl"]


def queued(queue) -> list[dict]:
    sqs, url = queue
    bodies = []
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]).get(
        "Messages", []
    ):
        bodies += batch
        sqs.delete_message_batch(
            QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)]
        )
    return bodies


class RecordingSqs:
    """Stands in for the SQS client: records each SendMessageBatch and fails the entries asked for."""

    def __init__(self, fail_bodies_containing: str = "", raise_on_call: int | None = None) -> None:
        self.calls: list[list[dict]] = []
        self.fail_bodies_containing = fail_bodies_containing
        self.raise_on_call = raise_on_call

    def send_message_batch(self, *, QueueUrl, Entries):
        self.calls.append(Entries)
        if self.raise_on_call == len(self.calls):
            raise client_error("ServiceUnavailable", 503, "SendMessageBatch")
        failed = [e for e in Entries if self.fail_bodies_containing and self.fail_bodies_containing in e["MessageBody"]]
        return {
            "Successful": [{"Id": e["Id"], "MessageId": f"m-{e['Id']}"} for e in Entries if e not in failed],
            "Failed": [
                {"Id": e["Id"], "SenderFault": False, "Code": "InternalError", "Message": "try again"} for e in failed
            ],
        }


@pytest.fixture
def recording_sqs(environment, monkeypatch):
    def install(**options) -> RecordingSqs:
        fake = RecordingSqs(**options)
        monkeypatch.setattr(aws, "sqs", lambda *_args, **_kwargs: fake)
        monkeypatch.setenv("EVENTS_QUEUE_URL", "https://sqs.us-east-1.amazonaws.com/123456789012/realtime-test-events")
        monkeypatch.setenv("FAILURES_QUEUE_URL", "https://sqs.us-east-1.amazonaws.com/123456789012/realtime-test-fails")
        return fake

    return install


def test_a_batch_becomes_producer_messages_on_the_events_queue(events_queue, lambda_context):
    records = [
        coming_online(1),
        stream_record("INSERT", new={"pk": "doctor#d-1", "doctorId": "d-1", "patientId": "p-9"}, sequence_number="200"),
        stream_record("MODIFY", old=doctor(2, True), new=doctor(2, True, name="Dr. Two"), sequence_number="201"),
    ]

    result = db_changes.handler({"Records": records}, lambda_context)

    assert result == {"batchItemFailures": []}
    bodies = sorted((json.loads(m["Body"]) for m in queued(events_queue)), key=lambda b: b["type"])
    assert [(b["type"], b["audience"], b["data"]) for b in bodies] == [
        ("care.doctor_assigned", ["user:p-9"], {"doctorId": "d-1", "patientId": "p-9"}),
        ("doctor.online", ["presence:d-1", "group:c-1"], {"doctorId": "d-1", "name": "Dr. 1"}),
    ]
    assert all(b["id"].startswith("db-") for b in bodies)


def test_messages_go_out_ten_per_call(recording_sqs, lambda_context):
    sqs = recording_sqs()

    result = db_changes.handler({"Records": [coming_online(n) for n in range(23)]}, lambda_context)

    assert result == {"batchItemFailures": []}
    assert [len(call) for call in sqs.calls] == [10, 10, 3]


def test_records_whose_events_were_not_accepted_are_reported_by_sequence_number(recording_sqs, lambda_context):
    recording_sqs(fail_bodies_containing='"doctorId":"d-2"')
    records = [coming_online(n) for n in (1, 2, 3)]

    result = db_changes.handler({"Records": records}, lambda_context)

    assert result == {"batchItemFailures": [{"itemIdentifier": "102"}]}


def test_a_failed_call_fails_only_the_records_it_carried(recording_sqs, lambda_context):
    recording_sqs(raise_on_call=2)
    records = [coming_online(n) for n in range(12)]

    result = db_changes.handler({"Records": records}, lambda_context)

    assert result == {"batchItemFailures": [{"itemIdentifier": "110"}, {"itemIdentifier": "111"}]}


def test_an_unreadable_record_fails_the_whole_batch_in_batch_order(recording_sqs, lambda_context):
    """A record without its stream fields is reported with an empty identifier, which Lambda reads as the
    whole batch failed (nothing after it is checkpointed); the readable records' events are still sent."""
    sqs = recording_sqs(fail_bodies_containing='"doctorId":"d-3"')
    unreadable = coming_online(2) | {"dynamodb": {"ApproximateCreationDateTime": "yesterday"}}  # no SequenceNumber
    records = [coming_online(3), unreadable, coming_online(1)]

    result = db_changes.handler({"Records": records}, lambda_context)

    assert result == {"batchItemFailures": [{"itemIdentifier": "103"}, {"itemIdentifier": ""}]}
    assert sum(len(call) for call in sqs.calls) == 2


def test_a_missing_template_attribute_is_a_logged_skip_not_a_failure(events_queue, lambda_context, caplog, capsys):
    no_clinic = stream_record(
        "MODIFY",
        old={"pk": "doctor#d-5", "doctorId": "d-5", "online": False},
        new={"pk": "doctor#d-5", "doctorId": "d-5", "online": True},
        sequence_number="105",
    )

    result = db_changes.handler({"Records": [no_clinic, coming_online(6)]}, lambda_context)

    assert result == {"batchItemFailures": []}
    assert [json.loads(m["Body"])["data"]["doctorId"] for m in queued(events_queue)] == ["d-6"]
    (skip,) = [record for record in caplog.records if record.getMessage() == "Rule skipped for this change"]
    assert (skip.rule, skip.attribute, skip.skip_code) == ("clinic/doctor-online", "clinicId", "attribute_missing")
    assert skip.levelname == "WARNING"
    assert skip.sequence_number == "105"
    (emitted,) = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert emitted["RulesSkipped"] == [1.0]
    assert emitted["ChangeEventsQueued"] == [1.0]


def test_a_record_over_the_topic_cap_goes_to_the_failures_queue_with_its_reason_and_the_batch_flows(
    events_queue, failures_queue, lambda_context, capsys
):
    many_clinics = coming_online(1, clinicId=[f"c-{n}" for n in range(150)])

    result = db_changes.handler({"Records": [many_clinics, coming_online(2)]}, lambda_context)

    assert result == {"batchItemFailures": []}
    assert [json.loads(m["Body"])["data"]["doctorId"] for m in queued(events_queue)] == ["d-2"]
    (refused,) = queued(failures_queue)
    attributes = {name: value["StringValue"] for name, value in refused["MessageAttributes"].items()}
    assert attributes["errorCode"] == "too_many_topics"
    assert "clinic/doctor-online gives 151 topics" in attributes["errorReason"]
    assert attributes["sourceMessageId"] == "event-1"
    pointer = json.loads(refused["Body"])
    assert (pointer["eventSourceARN"], pointer["sequenceNumber"], pointer["keys"]) == (
        STREAM_ARN,
        "101",
        {"pk": {"S": "doctor#d-1"}},
    )
    (emitted,) = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert emitted["StreamRecordsRefused"] == [1.0]


def test_a_refused_record_is_retried_when_the_failures_queue_cannot_take_it(events_queue, monkeypatch, lambda_context):
    monkeypatch.setenv("FAILURES_QUEUE_URL", events_queue[1].replace("realtime-test-events", "no-such-queue"))
    many_clinics = coming_online(1, clinicId=[f"c-{n}" for n in range(150)])

    result = db_changes.handler({"Records": [many_clinics, coming_online(2)]}, lambda_context)

    assert result == {"batchItemFailures": [{"itemIdentifier": "101"}]}


@pytest.mark.filterwarnings("ignore:No application metrics to publish")
def test_a_bad_rule_fails_the_cold_start_naming_the_rule(events_queue, monkeypatch, lambda_context):
    bad = [{"name": "clinic", "stream_arn": STREAM_ARN, "rules": [RULES[0] | {"event_type": "Doctor Online"}]}]
    monkeypatch.setenv("DB_CHANGE_SOURCES", json.dumps(bad))
    lifecycle.reset()

    with pytest.raises(ConfigError, match="rule 'doctor-online': event_type"):
        db_changes.handler({"Records": [coming_online(1)]}, lambda_context)


def test_a_replayed_record_is_stored_once(
    events_queue, events_table, connections_table, management_client, monkeypatch, lambda_context
):
    """The same record published twice (a retried batch) gives the same event id: process-events stores it once."""
    for name in ("DLQ_URL", "FANOUT_QUEUE_URL"):
        monkeypatch.setenv(name, events_queue[1])
    record = coming_online(1)

    db_changes.handler({"Records": [record]}, lambda_context)
    db_changes.handler({"Records": [record]}, lambda_context)
    first, replayed = queued(events_queue)
    assert first["Body"] == replayed["Body"]
    process_events.handler(
        {"Records": [sqs_record(first["Body"], "m-1"), sqs_record(replayed["Body"], "m-2")]}, lambda_context
    )

    stored = EventStore(events_table, 3600).read_after(["presence:d-1", "group:c-1"], {}, limit=10)
    assert sorted((e.topic, e.seq) for e in stored.events) == [("group:c-1", 1), ("presence:d-1", 1)]


def test_an_audience_split_across_messages_reaches_every_topic(
    events_queue, events_table, connections_table, management_client, monkeypatch, lambda_context
):
    """Over 100 topics, db-changes sends parts with one id; process-events delivers every part once, whatever
    batches they land in, and a connection reached through two parts in one batch gets one frame."""
    rule = {
        "name": "ward",
        "event_type": "ward.alert",
        "audience": ["user:{patients}"],
        "list_placeholders": ["patients"],
    }
    monkeypatch.setenv("DB_CHANGE_SOURCES", json.dumps([{"name": "clinic", "stream_arn": STREAM_ARN, "rules": [rule]}]))
    monkeypatch.setenv("MAX_TOPICS_PER_RECORD", "250")
    for name in ("DLQ_URL", "FANOUT_QUEUE_URL"):
        monkeypatch.setenv(name, events_queue[1])
    patients = [f"p{n:03d}" for n in range(250)]
    connections = ConnectionStore(connections_table, clock=lambda: time.time() - 60)
    for patient in patients:
        connections.add(f"tab-{patient}", patient, [f"user:{patient}"], ttl_seconds=600)
    connections.add("nurse", "nurse", ["user:p000", "user:p150", "user:p249"], ttl_seconds=600)  # in each part

    db_changes.handler(
        {"Records": [stream_record("INSERT", new={"pk": "ward-1", "patients": patients})]}, lambda_context
    )
    parts = queued(events_queue)
    assert len(parts) == 3
    assert len({json.loads(p["Body"])["id"] for p in parts}) == 1
    records = [sqs_record(part["Body"], f"m-{n}") for n, part in enumerate(parts)]
    process_events.handler({"Records": records[:2]}, lambda_context)  # two parts in one batch
    process_events.handler({"Records": records[2:]}, lambda_context)  # the last in another

    frames = {}
    for connection_id, data in management_client.posts:
        frames.setdefault(connection_id, []).append(json.loads(data))
    assert {c: [f["seqs"] for f in fs] for c, fs in frames.items() if c != "nurse"} == {
        f"tab-{patient}": [{f"user:{patient}": 1}] for patient in patients
    }
    # Parts 1 and 2 shared a batch: one frame for both; part 3 another (one id: the clients hand it on once).
    assert [f["seqs"] for f in frames["nurse"]] == [{"user:p000": 1, "user:p150": 1}, {"user:p249": 1}]
    assert len({f["id"] for fs in frames.values() for f in fs}) == 1
