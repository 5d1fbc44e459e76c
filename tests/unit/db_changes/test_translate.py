"""From stream records to producer messages: matching, templating, projection and event ids."""

import base64
import json
import re
import time
from decimal import Decimal

import pytest
from realtime.core.contract import EVENT_ID_PATTERN
from realtime.db_changes.sources import ChangeSources
from realtime.db_changes.translate import ChangeTranslator, derive_event_id
from realtime.events.producer import parse_producer_message

from .records import STREAM_ARN, stream_record

RULES = [
    {
        "name": "doctor-online",
        "event_type": "doctor.online",
        "when": {"attribute": "online", "becomes": {"BOOL": True}},
        "audience": ["presence:{doctorId}", "group:{clinicIds}"],
        "list_placeholders": ["clinicIds"],
        "data": ["doctorId", "name", "specialty"],
    },
    {
        "name": "doctor-offline",
        "event_type": "doctor.offline",
        "kinds": ["MODIFY"],
        "when": {"attribute": "online", "becomes": {"BOOL": False}},
        "audience": ["presence:{doctorId}", "group:{clinicIds}"],
        "list_placeholders": ["clinicIds"],
        "data": ["doctorId", "name"],
    },
    {
        "name": "patient-assigned",
        "event_type": "care.doctor_assigned",
        "kinds": ["INSERT"],
        "when": {"attribute": "patientId"},
        "audience": ["user:{patientId}"],
        "data": ["doctorId", "doctorName", "patientId"],
    },
    {
        "name": "patient-unassigned",
        "event_type": "care.doctor_unassigned",
        "kinds": ["REMOVE"],
        "when": {"attribute": "patientId"},
        "audience": ["user:{patientId}"],
        "data": ["doctorId", "patientId"],
    },
]

DOCTOR = {
    "pk": "doctor#d-7",
    "sk": "profile",
    "doctorId": "d-7",
    "name": "Dr. Ada Quinn",
    "specialty": "cardiology",
    "clinicIds": {"clinic-b", "clinic-a"},
    "online": False,
    "phone": "+44 20 7946 0000",  # never leaves the table: no rule projects it
}
ASSIGNMENT = {
    "pk": "doctor#d-7",
    "sk": "patient#p-1",
    "doctorId": "d-7",
    "doctorName": "Dr. Ada Quinn",
    "patientId": "p-1",
}


MAX_TOPICS = 100  # the module's db_changes_max_topics_per_record default


def translator(rules=None, stream_arn=STREAM_ARN, max_topics=MAX_TOPICS):
    sources = [{"name": "clinic", "stream_arn": stream_arn, "rules": rules or RULES}]
    return ChangeTranslator(ChangeSources.from_json(json.dumps(sources)), max_topics)


def messages(record, rules=None):
    return [json.loads(m.body) for m in translator(rules).translate(record).messages]


def fired(record, rules=None):
    return [message["type"] for message in messages(record, rules)]


################################################################################
# Matching, per change kind
################################################################################


def test_a_doctor_coming_online_notifies_the_doctor_watchers_and_the_clinics():
    (event,) = messages(stream_record("MODIFY", old=DOCTOR, new=DOCTOR | {"online": True}))

    assert event["type"] == "doctor.online"
    assert event["audience"] == ["presence:d-7", "group:clinic-a", "group:clinic-b"]
    assert event["data"] == {"doctorId": "d-7", "name": "Dr. Ada Quinn", "specialty": "cardiology"}
    assert event["occurredAt"] == "2026-01-01T00:00:00.000Z"


def test_becomes_fires_only_on_the_transition():
    online = DOCTOR | {"online": True}

    assert fired(stream_record("MODIFY", old=online, new=online | {"name": "Dr. A. Quinn"})) == []
    assert fired(stream_record("MODIFY", old=online, new=DOCTOR)) == ["doctor.offline"]
    assert fired(stream_record("MODIFY", old=DOCTOR, new=DOCTOR | {"specialty": "oncology"})) == []


def test_becomes_counts_an_absent_old_value_as_different():
    without_flag = {k: v for k, v in DOCTOR.items() if k != "online"}

    assert fired(stream_record("INSERT", new=DOCTOR | {"online": True})) == ["doctor.online"]
    assert fired(stream_record("MODIFY", old=without_flag, new=DOCTOR | {"online": True})) == ["doctor.online"]
    # doctor-offline only reacts to MODIFY: a doctor created offline is no news.
    assert fired(stream_record("INSERT", new=DOCTOR)) == []


@pytest.mark.parametrize("value", [1, "true", Decimal(1), [True]])
def test_becomes_compares_the_dynamodb_type_too(value):
    assert fired(stream_record("MODIFY", old=DOCTOR, new=DOCTOR | {"online": value})) == []


def test_becomes_compares_numbers_by_value():
    rules = [
        {
            "name": "next",
            "event_type": "queue.your_turn",
            "when": {"attribute": "position", "becomes": {"N": "1"}},
            "audience": ["user:{patientId}"],
        }
    ]
    waiting = {"pk": "queue#p-1", "patientId": "p-1", "position": 2}

    assert fired(stream_record("MODIFY", old=waiting, new=waiting | {"position": Decimal("1.0")}), rules) == [
        "queue.your_turn"
    ]
    assert (
        fired(
            stream_record("MODIFY", old=waiting | {"position": 1}, new=waiting | {"position": Decimal("1.00")}), rules
        )
        == []
    )


def test_insert_and_remove_of_an_assignment_notify_the_patient():
    (assigned,) = messages(stream_record("INSERT", new=ASSIGNMENT))
    (unassigned,) = messages(stream_record("REMOVE", old=ASSIGNMENT))

    assert (assigned["type"], assigned["audience"]) == ("care.doctor_assigned", ["user:p-1"])
    assert assigned["data"] == {"doctorId": "d-7", "doctorName": "Dr. Ada Quinn", "patientId": "p-1"}
    # A removed item is described by its old image.
    assert (unassigned["type"], unassigned["audience"]) == ("care.doctor_unassigned", ["user:p-1"])
    assert unassigned["data"] == {"doctorId": "d-7", "patientId": "p-1"}


def test_changes_no_rule_cares_about_give_nothing():
    assert fired(stream_record("MODIFY", old=ASSIGNMENT, new=ASSIGNMENT | {"notes": "follow-up in May"})) == []
    assert fired(stream_record("REMOVE", old=DOCTOR)) == []  # no rule on removed doctors
    assert fired(stream_record("INSERT", new={"pk": "clinic#a", "sk": "info"})) == []


ANY_CHANGE = [{"name": "any", "event_type": "item.changed", "audience": ["all"]}]
STATUS_CHANGES = [{"name": "status", "event_type": "item.status", "when": {"attribute": "status"}, "audience": ["all"]}]


@pytest.mark.parametrize(
    ("kinds", "kind", "fires"),
    [
        (["INSERT"], "INSERT", True),
        (["INSERT"], "MODIFY", False),
        (["INSERT"], "REMOVE", False),
        (["MODIFY"], "MODIFY", True),
        (["MODIFY"], "INSERT", False),
        (["REMOVE"], "REMOVE", True),
        (["REMOVE"], "MODIFY", False),
        (["INSERT", "MODIFY", "REMOVE"], "REMOVE", True),
    ],
)
def test_a_rule_fires_only_on_its_change_kinds(kinds, kind, fires):
    rules = [ANY_CHANGE[0] | {"kinds": kinds}]
    item = {"pk": "x", "status": "open"}
    record = stream_record(
        kind, old=None if kind == "INSERT" else item, new=None if kind == "REMOVE" else item | {"v": 2}
    )

    assert fired(record, rules) == (["item.changed"] if fires else [])


@pytest.mark.parametrize(
    ("old", "new", "fires"),
    [
        ({"status": "open"}, {"status": "closed"}, True),
        ({"status": "open"}, {"status": "open", "other": 1}, False),
        ({"status": "open"}, {}, True),  # the attribute disappeared
        ({}, {"status": "open"}, True),  # ...or appeared
        ({"status": "1"}, {"status": 1}, True),  # same text, another type
        ({"status": {"a", "b"}}, {"status": {"b", "a"}}, False),  # sets compare as sets
    ],
)
def test_attribute_change_rules_compare_old_and_new(old, new, fires):
    record = stream_record("MODIFY", old={"pk": "x"} | old, new={"pk": "x"} | new)

    assert fired(record, STATUS_CHANGES) == (["item.status"] if fires else [])


def test_attribute_change_counts_appearing_on_insert_and_disappearing_on_remove():
    assert fired(stream_record("INSERT", new={"pk": "x", "status": "open"}), STATUS_CHANGES) == ["item.status"]
    assert fired(stream_record("INSERT", new={"pk": "x"}), STATUS_CHANGES) == []
    assert fired(stream_record("REMOVE", old={"pk": "x", "status": "open"}), STATUS_CHANGES) == ["item.status"]


def test_a_stream_without_the_old_image_skips_comparing_rules_with_a_reason():
    record = stream_record("MODIFY", new=DOCTOR | {"online": True}, view_type="NEW_IMAGE")

    translation = translator().translate(record)

    assert translation.messages == []
    assert {(s.rule, s.code) for s in translation.skipped} == {
        ("clinic/doctor-online", "image_missing"),
        ("clinic/doctor-offline", "image_missing"),
    }
    assert "NEW_AND_OLD_IMAGES" in translation.skipped[0].reason


def test_records_of_an_unknown_stream_are_skipped_with_a_reason():
    translation = translator().translate(stream_record("INSERT", new=ASSIGNMENT, stream_arn=STREAM_ARN + "-other"))

    assert translation.messages == []
    assert [s.code for s in translation.skipped] == ["unknown_stream"]


################################################################################
# Audience templates
################################################################################


def test_a_missing_template_attribute_skips_that_rule_with_its_name_and_the_attribute():
    no_clinics = {k: v for k, v in DOCTOR.items() if k != "clinicIds"}

    translation = translator().translate(stream_record("MODIFY", old=no_clinics, new=no_clinics | {"online": True}))

    assert translation.messages == []
    (skip,) = translation.skipped
    assert (skip.rule, skip.code, skip.attribute) == ("clinic/doctor-online", "attribute_missing", "clinicIds")
    assert "group:{clinicIds}" in skip.reason


def test_one_skipped_rule_does_not_stop_the_others():
    rules = [
        *RULES,
        {"name": "any-insert", "event_type": "item.created", "kinds": ["INSERT"], "audience": ["group:{clinicId}"]},
    ]

    translation = translator(rules).translate(stream_record("INSERT", new=ASSIGNMENT))

    assert [json.loads(m.body)["type"] for m in translation.messages] == ["care.doctor_assigned"]
    assert [(s.rule, s.attribute) for s in translation.skipped] == [("clinic/any-insert", "clinicId")]


@pytest.mark.parametrize(
    ("value", "topics"),
    [
        ("a", ["group:a"]),
        (7, ["group:7"]),
        (Decimal("2.50"), ["group:2.5"]),
        ({"b", "a"}, ["group:a", "group:b"]),  # string set, sorted
        ({Decimal(10), Decimal(9)}, ["group:9", "group:10"]),  # number set, numerically
        (["b", "a", "b"], ["group:b", "group:a"]),  # list, in order, duplicates dropped
        (["a", 3], ["group:a", "group:3"]),
    ],
)
def test_templates_take_strings_numbers_and_declared_lists_of_them(value, topics):
    rules = [{"name": "r", "event_type": "t", "audience": ["group:{g}"], "list_placeholders": ["g"]}]

    (event,) = messages(stream_record("INSERT", new={"pk": "x", "g": value}), rules)

    assert event["audience"] == topics


def test_two_list_attributes_give_every_combination():
    rules = [
        {"name": "r", "event_type": "t", "audience": ["group:{clinic}.{role}"], "list_placeholders": ["clinic", "role"]}
    ]

    (event,) = messages(
        stream_record("INSERT", new={"pk": "x", "clinic": ["a", "b"], "role": {"nurse", "desk"}}), rules
    )

    assert event["audience"] == ["group:a.desk", "group:a.nurse", "group:b.desk", "group:b.nurse"]


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ({"nested": "map"}, "attribute_not_a_topic"),
        (True, "attribute_not_a_topic"),
        (None, "attribute_not_a_topic"),
        ([["nested"]], "attribute_not_a_topic"),
        ("two words", "invalid_topic"),
        ([], "empty_audience"),
    ],
)
def test_values_that_cannot_name_a_topic_skip_the_rule(value, code):
    rules = [{"name": "r", "event_type": "t", "audience": ["group:{g}"], "list_placeholders": ["g"]}]

    translation = translator(rules).translate(stream_record("INSERT", new={"pk": "x", "g": value}))

    assert translation.messages == []
    assert [s.code for s in translation.skipped] == [code]


@pytest.mark.parametrize("value", [["a", "b"], {"a", "b"}, {Decimal(1), Decimal(2)}])
def test_a_list_in_a_placeholder_not_declared_as_one_skips_the_rule(value):
    rules = [{"name": "r", "event_type": "t", "audience": ["presence:{doctorId}", "group:{g}"]}]

    translation = translator(rules).translate(stream_record("INSERT", new={"pk": "x", "doctorId": "d", "g": value}))

    assert translation.messages == []
    (skip,) = translation.skipped
    assert (skip.code, skip.attribute) == ("undeclared_list", "g")
    assert "list_placeholders" in skip.reason


def test_a_record_over_the_topic_cap_is_refused_before_any_topic_is_built():
    """The review's item: two 600-number sets would give 360,000 topics (3,600 messages)."""
    rules = [{"name": "r", "event_type": "t", "audience": ["group:{a}.{b}"], "list_placeholders": ["a", "b"]}]
    item = {"pk": "x", "a": {Decimal(n) for n in range(600)}, "b": {Decimal(n) for n in range(1000, 1600)}}

    started = time.monotonic()
    translation = translator(rules).translate(stream_record("INSERT", new=item))

    assert time.monotonic() - started < 1.0
    assert translation.messages == []
    assert translation.refused.code == "too_many_topics"
    assert "clinic/r gives 360000 topics" in translation.refused.reason
    assert "at most 100 (db_changes_max_topics_per_record)" in translation.refused.reason


def test_the_cap_counts_the_topics_of_every_rule_that_fires_on_the_record():
    rules = [
        {"name": "one", "event_type": "t", "audience": ["user:{a}"], "list_placeholders": ["a"]},
        {"name": "two", "event_type": "t", "audience": ["group:{a}"], "list_placeholders": ["a"]},
    ]
    item = {"pk": "x", "a": [f"u{n}" for n in range(60)]}

    within = translator(rules, max_topics=120).translate(stream_record("INSERT", new=item))
    over = translator(rules, max_topics=119).translate(stream_record("INSERT", new=item))

    assert (within.refused, len(within.messages)) == (None, 2)
    assert over.messages == []
    assert "clinic/two gives 60 topics, after 60 from the rules before it" in over.refused.reason


def test_an_audience_over_100_topics_is_split_into_messages_with_one_event_id():
    rules = [{"name": "r", "event_type": "t", "audience": ["user:{patients}"], "list_placeholders": ["patients"]}]
    patients = [f"p-{i:03d}" for i in range(250)]

    translation = translator(rules, max_topics=250).translate(
        stream_record("MODIFY", old={"pk": "x"}, new={"pk": "x", "patients": patients})
    )

    parts = [json.loads(m.body) for m in translation.messages]
    assert [len(p["audience"]) for p in parts] == [100, 100, 50]
    assert [t for p in parts for t in p["audience"]] == [f"user:{p}" for p in patients]
    assert len({p["id"] for p in parts}) == 1


################################################################################
# Projection (DynamoDB types to JSON)
################################################################################


def test_data_holds_only_the_named_attributes_as_json_values():
    rules = [
        {
            "name": "r",
            "event_type": "t",
            "audience": ["all"],
            "data": [
                "count",
                "fee",
                "big",
                "tags",
                "scores",
                "profile",
                "history",
                "online",
                "nothing",
                "photo",
                "absent",
            ],
        }
    ]
    item = {
        "pk": "x",
        "secret": "do not leak",
        "count": 3,
        "fee": Decimal("12.50"),
        "big": 12345678901234567890123456789,
        "tags": {"b", "a"},
        "scores": {Decimal(2), Decimal("1.5")},
        "profile": {"rating": Decimal(5), "langs": ["en", "fr"]},
        "history": [1, "two", {"three": Decimal("3.25")}],
        "online": True,
        "nothing": None,
        "photo": b"\x89PNG",
    }

    (event,) = messages(stream_record("INSERT", new=item), rules)

    assert event["data"] == {
        "count": 3,
        "fee": 12.5,
        "big": 12345678901234567890123456789,
        "tags": ["a", "b"],
        "scores": [1.5, 2],
        "profile": {"rating": 5, "langs": ["en", "fr"]},
        "history": [1, "two", {"three": 3.25}],
        "online": True,
        "nothing": None,
        "photo": base64.b64encode(b"\x89PNG").decode(),
    }
    assert isinstance(event["data"]["count"], int)


def test_the_data_is_empty_unless_attributes_are_named():
    rules = [{"name": "r", "event_type": "t", "audience": ["all"]}]

    (event,) = messages(stream_record("INSERT", new=DOCTOR), rules)

    assert event["data"] == {}


def test_an_event_too_large_for_the_queue_is_skipped():
    rules = [{"name": "r", "event_type": "t", "audience": ["all"], "data": ["blob"]}]

    translation = translator(rules).translate(stream_record("INSERT", new={"pk": "x", "blob": "x" * 300_000}))

    assert translation.messages == []
    assert [s.code for s in translation.skipped] == ["too_large"]


################################################################################
# Event ids and the producer contract
################################################################################


def test_the_event_id_is_stable_for_a_record_and_rule():
    record = stream_record("INSERT", new=ASSIGNMENT, event_id="abc")

    first = messages(record)[0]["id"]
    again = messages(record)[0]["id"]

    assert first == again == derive_event_id(STREAM_ARN, "abc", "patient-assigned")
    assert re.fullmatch(EVENT_ID_PATTERN, first)
    assert first.startswith("db-")


def test_event_ids_differ_by_record_rule_and_stream():
    ids = {
        derive_event_id(STREAM_ARN, "abc", "patient-assigned"),
        derive_event_id(STREAM_ARN, "abd", "patient-assigned"),
        derive_event_id(STREAM_ARN, "abc", "patient-unassigned"),
        derive_event_id(STREAM_ARN.replace("clinic", "billing"), "abc", "patient-assigned"),
    }

    assert len(ids) == 4


def test_two_rules_firing_on_one_record_give_two_events():
    rules = [*RULES, {"name": "audit", "event_type": "doctor.changed", "audience": ["group:audit"]}]

    events = messages(stream_record("MODIFY", old=DOCTOR, new=DOCTOR | {"online": True}), rules)

    assert [e["type"] for e in events] == ["doctor.online", "doctor.changed"]
    assert events[0]["id"] != events[1]["id"]


def test_messages_follow_the_producer_contract():
    for body in (
        m.body for m in translator().translate(stream_record("INSERT", new=DOCTOR | {"online": True})).messages
    ):
        message = parse_producer_message(json.loads(body))
        assert message.audience
        assert message.id
        assert message.occurred_at is not None
