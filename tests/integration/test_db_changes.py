"""Application-table changes become events, on the emulator: the example's clinic table, its stream,
the generated event filters, db-changes, and the usual store-then-deliver path.

The clinic table (terraform/examples/local/clinic.tf) holds doctor profiles
(`doctor#<id>` / `profile`, with `online` and `clinicIds`) and assignments
(`doctor#<id>` / `patient#<id>`). Patients' tokens grant `presence:<doctorId>`;
clinic staff are in the group of their clinic.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import datetime

import httpx
import pytest
from boto3.dynamodb.types import TypeSerializer
from realtime.db_changes.translate import derive_event_id
from sessions import Session

pytestmark = pytest.mark.integration

RULE_EVENT_TYPES = {"doctor.online", "doctor.offline", "care.doctor_assigned", "care.doctor_unassigned"}
_serializer = TypeSerializer()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class Clinic:
    """Writes to the example table the way the application would: no event code anywhere."""

    def __init__(self, client, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def _key(self, doctor_id: str, sk: str) -> dict:
        return {"pk": {"S": f"doctor#{doctor_id}"}, "sk": {"S": sk}}

    def put_doctor(self, doctor_id: str, clinic_ids: set[str], *, online: bool) -> None:
        item = {
            "pk": f"doctor#{doctor_id}",
            "sk": "profile",
            "doctorId": doctor_id,
            "name": "Dr. Ada Quinn",
            "specialty": "cardiology",
            "clinicIds": clinic_ids,
            "online": online,
            "phone": "+44 20 7946 0000",
        }
        self._client.put_item(TableName=self._table, Item={k: _serializer.serialize(v) for k, v in item.items()})

    def update_doctor(self, doctor_id: str, **changes) -> None:
        names = {f"#a{i}": name for i, name in enumerate(changes)}
        values = {f":v{i}": _serializer.serialize(value) for i, value in enumerate(changes.values())}
        self._client.update_item(
            TableName=self._table,
            Key=self._key(doctor_id, "profile"),
            UpdateExpression="SET " + ", ".join(f"#a{i} = :v{i}" for i in range(len(changes))),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

    def assign(self, doctor_id: str, patient_id: str) -> None:
        item = {
            **self._key(doctor_id, f"patient#{patient_id}"),
            "doctorId": {"S": doctor_id},
            "doctorName": {"S": "Dr. Ada Quinn"},
            "patientId": {"S": patient_id},
            "assignedAt": {"S": "2026-11-26T10:00:00Z"},
        }
        self._client.put_item(TableName=self._table, Item=item)

    def annotate(self, doctor_id: str, patient_id: str, notes: str) -> None:
        self._client.update_item(
            TableName=self._table,
            Key=self._key(doctor_id, f"patient#{patient_id}"),
            UpdateExpression="SET notes = :n",
            ExpressionAttributeValues={":n": {"S": notes}},
        )

    def unassign(self, doctor_id: str, patient_id: str) -> None:
        self._client.delete_item(TableName=self._table, Key=self._key(doctor_id, f"patient#{patient_id}"))


@pytest.fixture(scope="module")
def clinic(stack, aws) -> Clinic:
    return Clinic(aws("dynamodb"), stack["clinic_table_name"])


def rule_events(session: Session) -> list[tuple[str, str]]:
    """(type, topic) of the db-change events a session received, each stored event once per topic (copies share
    a seq; one frame carries every topic that reaches the session)."""
    seen, events = set(), []
    for frame in session.events:
        for topic, seq in frame["seqs"].items():
            if frame["type"] in RULE_EVENT_TYPES and (topic, seq) not in seen:
                seen.add((topic, seq))
                events.append((frame["type"], topic))
    return events


async def wait_for_event(session: Session, event_type: str, topic: str) -> dict:
    return await session.wait_for(lambda f: f.get("type") == event_type and f.get("topic") == topic, timeout=30)


async def stored_events(http_url: str, token: str) -> list[dict]:
    async with httpx.AsyncClient(timeout=40) as client:
        response = await client.get(
            f"{http_url}/events", params={"limit": 200}, headers={"Authorization": f"Bearer {token}"}
        )
    assert response.status_code == 200, response.text
    return response.json()["events"]


def test_puts_and_updates_reach_exactly_the_audience_of_each_rule(stack, clinic, token):
    doctor, other_doctor = unique("doc"), unique("doc")
    clinic_a, clinic_b = unique("clinic"), unique("clinic")
    patient, other_patient = unique("patient"), unique("patient")
    patient_token = token(patient, topics=[f"presence:{doctor}"])

    async def scenario():
        url = stack["websocket_url"]
        patient_tab_1 = await Session.open(url, patient_token, "patient-tab-1")
        patient_tab_2 = await Session.open(url, patient_token, "patient-tab-2")
        other_patient_tab = await Session.open(url, token(other_patient, topics=[f"presence:{other_doctor}"]), "other")
        staff_a = await Session.open(url, token(unique("nurse"), groups=[clinic_a]), "staff-a")
        staff_b = await Session.open(url, token(unique("nurse"), groups=[clinic_b]), "staff-b")
        patient_tabs = [patient_tab_1, patient_tab_2]

        # A doctor joins offline: no rule fires (doctor-offline reacts to updates only).
        clinic.put_doctor(doctor, {clinic_a}, online=False)
        clinic.assign(doctor, patient)
        for tab in patient_tabs:
            assigned = await wait_for_event(tab, "care.doctor_assigned", f"user:{patient}")
        assert assigned["data"] == {"doctorId": doctor, "doctorName": "Dr. Ada Quinn", "patientId": patient}

        clinic.update_doctor(doctor, online=True)
        for tab in patient_tabs:
            online = await wait_for_event(tab, "doctor.online", f"presence:{doctor}")
        await wait_for_event(staff_a, "doctor.online", f"group:{clinic_a}")
        # Only the projected attributes leave the table: no phone.
        assert online["data"] == {"doctorId": doctor, "name": "Dr. Ada Quinn", "specialty": "cardiology"}
        assert online["id"].startswith("db-")

        clinic.update_doctor(doctor, online=False)
        for tab in patient_tabs:
            await wait_for_event(tab, "doctor.offline", f"presence:{doctor}")
        await wait_for_event(staff_a, "doctor.offline", f"group:{clinic_a}")

        clinic.unassign(doctor, patient)
        for tab in patient_tabs:
            unassigned = await wait_for_event(tab, "care.doctor_unassigned", f"user:{patient}")
        assert unassigned["data"] == {"doctorId": doctor, "patientId": patient}  # from the removed item's old image

        await asyncio.sleep(2.0)  # anything else addressed to these sessions would have arrived by now
        expected_for_patient = [
            ("care.doctor_assigned", f"user:{patient}"),
            ("doctor.online", f"presence:{doctor}"),
            ("doctor.offline", f"presence:{doctor}"),
            ("care.doctor_unassigned", f"user:{patient}"),
        ]
        assert rule_events(patient_tab_1) == expected_for_patient
        assert rule_events(patient_tab_2) == expected_for_patient
        assert rule_events(staff_a) == [("doctor.online", f"group:{clinic_a}"), ("doctor.offline", f"group:{clinic_a}")]
        assert rule_events(other_patient_tab) == []
        assert rule_events(staff_b) == []

        # The same events, each stored once, over HTTP.
        over_http = [(e["type"], e["topic"]) for e in await stored_events(stack["http_api_url"], patient_token)]
        assert [e for e in over_http if e[0] in RULE_EVENT_TYPES] == expected_for_patient
        for session in [*patient_tabs, other_patient_tab, staff_a, staff_b]:
            await session.close()

    asyncio.run(scenario())


def test_a_doctor_in_several_clinics_notifies_each_clinic(stack, clinic, token):
    doctor, clinics = unique("doc"), [unique("clinic") for _ in range(2)]

    async def scenario():
        staff = [await Session.open(stack["websocket_url"], token(unique("desk"), groups=[c]), c) for c in clinics]

        clinic.put_doctor(doctor, set(clinics), online=True)  # joins on shift: INSERT with online = true

        for session, clinic_id in zip(staff, clinics, strict=True):
            await wait_for_event(session, "doctor.online", f"group:{clinic_id}")
        await asyncio.sleep(1.0)
        for session, clinic_id in zip(staff, clinics, strict=True):
            assert rule_events(session) == [("doctor.online", f"group:{clinic_id}")]
            await session.close()

    asyncio.run(scenario())


def refusals(aws, queue_url: str, doctor: str, timeout: float = 30.0) -> list[dict]:
    """The failures queue's messages about the doctor's profile (others may be there too), deleted once read."""
    sqs, found = aws("sqs"), []
    deadline = time.monotonic() + timeout
    while not found and time.monotonic() < deadline:
        received = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=2, MessageAttributeNames=["All"]
        )
        for message in received.get("Messages", []):
            body = json.loads(message["Body"])
            if (body.get("keys") or {}).get("pk", {}).get("S") == f"doctor#{doctor}":
                found.append({"body": body} | {k: v["StringValue"] for k, v in message["MessageAttributes"].items()})
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return found


def test_a_doctor_in_too_many_clinics_is_refused_with_its_reason_and_the_stream_carries_on(stack, aws, clinic, token):
    """151 topics (presence:<doctor> and 150 clinics) is over the module's default cap of 100 per record."""
    doctor, patient = unique("doc"), unique("patient")
    clinics = {unique("clinic") for _ in range(150)}
    patient_token = token(patient, topics=[f"presence:{doctor}"])

    async def scenario():
        patient_tab = await Session.open(stack["websocket_url"], patient_token, "patient")
        clinic.put_doctor(doctor, clinics, online=True)
        # The next change of the same item's partition, as a barrier: the stream keeps their order.
        clinic.assign(doctor, patient)
        await wait_for_event(patient_tab, "care.doctor_assigned", f"user:{patient}")
        await asyncio.sleep(1.0)
        assert rule_events(patient_tab) == [("care.doctor_assigned", f"user:{patient}")]
        await patient_tab.close()

    asyncio.run(scenario())

    (refusal,) = refusals(aws, stack["db_changes_failures_queue_url"], doctor)
    assert refusal["errorCode"] == "too_many_topics"
    assert "clinic/doctor-online gives 151 topics" in refusal["errorReason"]
    assert refusal["body"]["eventName"] == "INSERT"
    assert refusal["body"]["eventSourceARN"] == stack["clinic_table_stream_arn"]


def translated_records(aws, function_name: str, since_ms: int) -> list[dict]:
    """db-changes' own account of the records it received (its DEBUG log line per record)."""
    logs = aws("logs")
    records, token = [], None
    while True:
        page = logs.filter_log_events(
            logGroupName=f"/aws/lambda/{function_name}", startTime=since_ms, **({"nextToken": token} if token else {})
        )
        for event in page.get("events", []):
            try:
                entry = json.loads(event["message"])
            except ValueError:
                continue
            if isinstance(entry, dict) and entry.get("message") == "Stream record translated":
                records.append(entry)
        token = page.get("nextToken")
        if not token:
            return records


def test_irrelevant_changes_deliver_nothing_and_filtered_ones_never_invoke_the_function(stack, aws, clinic, token):
    doctor, clinic_id, patient = unique("doc"), unique("clinic"), unique("patient")
    patient_token = token(patient, topics=[f"presence:{doctor}"])
    since_ms = int(time.time() * 1000) - 1000

    async def scenario():
        patient_tab = await Session.open(stack["websocket_url"], patient_token, "patient")
        staff = await Session.open(stack["websocket_url"], token(unique("desk"), groups=[clinic_id]), "staff")

        clinic.put_doctor(doctor, {clinic_id}, online=False)
        clinic.assign(doctor, patient)
        await wait_for_event(patient_tab, "care.doctor_assigned", f"user:{patient}")

        # Irrelevant: a note on the assignment (no rule reads it, and no filter lets it through), and a
        # new name for an offline doctor (the filter lets it through: only the function sees `online` did not change).
        clinic.annotate(doctor, patient, "follow-up in May")
        clinic.update_doctor(doctor, name="Dr. A. Quinn")

        # A relevant change after them, as a barrier: the stream is ordered, so the two above were handled first.
        clinic.unassign(doctor, patient)
        await wait_for_event(patient_tab, "care.doctor_unassigned", f"user:{patient}")
        await asyncio.sleep(1.0)

        assert rule_events(patient_tab) == [
            ("care.doctor_assigned", f"user:{patient}"),
            ("care.doctor_unassigned", f"user:{patient}"),
        ]
        assert rule_events(staff) == []
        await patient_tab.close()
        await staff.close()

    asyncio.run(scenario())

    # What reached the function (the local example logs at DEBUG): the filter dropped the note.
    seen = {}
    for entry in translated_records(aws, stack["function_names"]["db-changes"], since_ms):
        keys = entry.get("keys") or {}
        if keys.get("pk", {}).get("S") == f"doctor#{doctor}":
            seen.setdefault(keys["sk"]["S"], []).append((entry["change_kind"], len(entry["events"])))
    assert seen == {
        "profile": [("INSERT", 0), ("MODIFY", 0)],
        f"patient#{patient}": [("INSERT", 1), ("REMOVE", 1)],  # no MODIFY: the note never invoked db-changes
    }


def captured_stream_record(aws, stream_arn: str, patient: str) -> dict:
    """The stream record of the patient's assignment, read back from DynamoDB Streams as Lambda got it."""
    streams = aws("dynamodbstreams")
    shards = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]
    for shard in shards:
        iterator = streams.get_shard_iterator(
            StreamArn=stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            page = streams.get_records(ShardIterator=iterator, Limit=1000)
            for record in page["Records"]:
                new_image = record["dynamodb"].get("NewImage") or {}
                if record["eventName"] == "INSERT" and new_image.get("patientId", {}).get("S") == patient:
                    created = record["dynamodb"]["ApproximateCreationDateTime"]
                    record["dynamodb"]["ApproximateCreationDateTime"] = (
                        created.timestamp() if isinstance(created, datetime) else created
                    )
                    record.pop("ResponseMetadata", None)
                    # Lambda adds the stream ARN to each record it delivers; GetRecords does not carry it.
                    return {**record, "eventSourceARN": stream_arn}
            if not page["Records"]:
                break
            iterator = page.get("NextShardIterator")
    raise AssertionError(f"no INSERT record for patient {patient} on {stream_arn}")


def test_a_replayed_stream_record_produces_no_second_event(stack, aws, clinic, token):
    doctor, patient = unique("doc"), unique("patient")
    patient_token = token(patient)
    stream_arn = stack["clinic_table_stream_arn"]

    async def scenario():
        patient_tab = await Session.open(stack["websocket_url"], patient_token, "patient")
        clinic.assign(doctor, patient)
        first = await wait_for_event(patient_tab, "care.doctor_assigned", f"user:{patient}")

        record = captured_stream_record(aws, stream_arn, patient)
        assert first["id"] == derive_event_id(stream_arn, record["eventID"], "patient-assigned")

        # Replay it, as a retried batch would: the same record straight into db-changes.
        response = aws("lambda").invoke(
            FunctionName=stack["function_names"]["db-changes"], Payload=json.dumps({"Records": [record]}, default=str)
        )
        assert "FunctionError" not in response, response["Payload"].read()
        assert json.loads(response["Payload"].read()) == {"batchItemFailures": []}

        # process-events finds the id already stored and only sends the stored frame again (same seq).
        await patient_tab.wait_for(lambda f: f.get("id") == first["id"] and f is not first, timeout=30)
        copies = [f for f in patient_tab.events if f["id"] == first["id"]]
        assert {(f["topic"], f["seq"]) for f in copies} == {(first["topic"], first["seq"])}

        stored = [e for e in await stored_events(stack["http_api_url"], patient_token) if e["type"] in RULE_EVENT_TYPES]
        assert [(e["id"], e["seq"]) for e in stored] == [(first["id"], first["seq"])]
        await patient_tab.close()

    asyncio.run(scenario())


def test_the_stream_mapping_on_the_stack_filters_and_bounds_retries(stack, aws):
    (mapping,) = aws("lambda").list_event_source_mappings(FunctionName=stack["function_names"]["db-changes"])[
        "EventSourceMappings"
    ]

    assert mapping["EventSourceArn"] == stack["clinic_table_stream_arn"]
    assert {json.dumps(json.loads(f["Pattern"]), sort_keys=True) for f in mapping["FilterCriteria"]["Filters"]} == {
        json.dumps(pattern, sort_keys=True)
        for pattern in [
            {"eventName": ["INSERT", "REMOVE"]},
            {"eventName": ["MODIFY"], "dynamodb": {"NewImage": {"online": {"BOOL": [True]}}}},
            {"eventName": ["MODIFY"], "dynamodb": {"NewImage": {"online": {"BOOL": [False]}}}},
        ]
    }
    assert mapping["BisectBatchOnFunctionError"] is True
    assert mapping["MaximumRetryAttempts"] == 10
    assert mapping["MaximumRecordAgeInSeconds"] == 3600
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["DestinationConfig"]["OnFailure"]["Destination"].endswith("-db-changes-failures")
