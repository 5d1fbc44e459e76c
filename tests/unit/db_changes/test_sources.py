"""Parsing and validation of the db-changes rules (DB_CHANGE_SOURCES), done at cold start."""

import json
from decimal import Decimal

import pytest
from realtime.core.errors import ConfigError
from realtime.db_changes.rules import Trigger, TypedValue
from realtime.db_changes.sources import ChangeSources

STREAM_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/clinic/stream/2026-01-01T00:00:00.000"


def source(*rules, name="clinic", stream_arn=STREAM_ARN):
    return {"name": name, "stream_arn": stream_arn, "rules": list(rules)}


def rule(**overrides):
    return {"name": "doctor-online", "event_type": "doctor.online", "audience": ["presence:{doctorId}"]} | overrides


def parse(*sources):
    return ChangeSources.from_json(json.dumps(list(sources)))


def test_a_full_rule_as_terraform_writes_it():
    sources = parse(
        source(
            rule(
                kinds=["INSERT", "MODIFY"],
                when={"attribute": "online", "becomes": {"S": None, "N": None, "BOOL": True}},
                audience=["presence:{doctorId}", "group:{clinicIds}"],
                list_placeholders=["clinicIds"],
                data=["doctorId", "name"],
            )
        )
    )

    (parsed,) = sources.for_stream(STREAM_ARN).rules
    assert parsed.label == "clinic/doctor-online"
    assert parsed.kinds == {"INSERT", "MODIFY"}
    assert parsed.when == Trigger(attribute="online", becomes=TypedValue(type="BOOL", value=True))
    assert [t.text for t in parsed.audience] == ["presence:{doctorId}", "group:{clinicIds}"]
    assert parsed.audience[1].fields == ("clinicIds",)
    assert parsed.list_placeholders == ["clinicIds"]
    assert parsed.data == ["doctorId", "name"]


def test_defaults_kinds_follow_the_trigger_and_data_is_empty():
    sources = parse(
        source(
            rule(name="any"),
            rule(name="attribute-changes", when={"attribute": "status"}),
            rule(name="becomes", when={"attribute": "position", "becomes": {"N": "1"}}),
        )
    )

    any_change, attribute_changes, becomes = sources.for_stream(STREAM_ARN).rules
    assert any_change.kinds == attribute_changes.kinds == {"INSERT", "MODIFY", "REMOVE"}
    assert any_change.when is None
    assert any_change.data == any_change.list_placeholders == []
    assert attribute_changes.when == Trigger(attribute="status")
    assert becomes.kinds == {"INSERT", "MODIFY"}
    assert becomes.when.becomes == TypedValue(type="N", value=Decimal("1"))


def test_sources_are_found_by_stream_arn():
    other = STREAM_ARN.replace("clinic", "billing")
    sources = parse(source(rule()), source(rule(), name="billing", stream_arn=other))

    assert sources.for_stream(other).name == "billing"
    assert sources.for_stream(STREAM_ARN + "x") is None


def test_an_empty_list_is_valid():
    assert parse().sources == ()


@pytest.mark.parametrize(
    ("bad_rule", "message"),
    [
        (rule(event_type="Doctor Online"), "rule 'doctor-online': event_type"),
        (rule(name="Doctor Online"), "rule 'Doctor Online': name"),
        (rule(kinds=["UPDATE"]), "rule 'doctor-online': kinds"),
        (rule(kinds=[]), "kinds: Frozenset should have at least 1 item"),
        (rule(kinds=["INSERT", "INSERT"]), "distinct"),
        (
            rule(when={"attribute": "online", "becomes": {"BOOL": True}}, kinds=["MODIFY", "REMOVE"]),
            "cannot fire on REMOVE",
        ),
        (rule(when={"attribute": "online", "becomes": {"BOOL": True, "S": "yes"}}), "exactly one of S, N, BOOL"),
        (rule(when={"attribute": "online", "becomes": {}}), "exactly one of S, N, BOOL"),
        (rule(when={"attribute": "online", "becomes": {"BOOL": "true"}}), "when.becomes: BOOL has the wrong type"),
        (rule(when={"attribute": "level", "becomes": {"N": "high"}}), "when.becomes: N has the wrong type"),
        (rule(when={"attribute": "online", "equals": True}), "unknown keys ['equals']"),
        (rule(when={"attribute": "has space"}), "when.attribute"),
        (rule(audience=[]), "audience: List should have at least 1 item"),
        (rule(audience=["doctor:{doctorId}"]), "does not form a topic"),
        (rule(audience=["user:{patient.id"]), "does not form a topic"),
        (rule(audience=["user:{patient id}"]), "placeholder {patient id}"),
        (rule(audience=["all", "all"]), "twice"),
        (rule(data=["name", "name"]), "data: lists an attribute twice"),
        (rule(data="name"), "data: Input should be a valid list"),
        (rule(list_placeholders=["clinicIds"]), "list_placeholders names ['clinicIds'], which no audience template"),
        (rule(list_placeholders=["doctorId", "doctorId"]), "list_placeholders: lists an attribute twice"),
        (rule(audience=["all"], topic="x"), "unknown keys ['topic']"),
        ("not a rule", "rules[0]: Input should be a valid dictionary"),
    ],
)
def test_a_bad_rule_fails_with_an_error_naming_it(bad_rule, message):
    with pytest.raises(ConfigError) as error:
        parse(source(bad_rule))

    assert "DB_CHANGE_SOURCES[0] (source 'clinic')" in str(error.value)
    assert message in str(error.value)


def test_rule_names_are_unique_within_a_source():
    with pytest.raises(ConfigError, match=r"unique within a source .*\['doctor-online'\]"):
        parse(source(rule(), rule(event_type="doctor.offline")))


@pytest.mark.parametrize(
    ("bad_source", "message"),
    [
        (source(rule(), stream_arn="arn:aws:dynamodb:us-east-1:123456789012:table/clinic"), "stream_arn"),
        (source(rule(), name="Clinic"), "name: must be"),
        ({"name": "clinic", "stream_arn": STREAM_ARN, "rules": []}, "rules: List should have at least 1 item"),
        (source(rule()) | {"batch_size": 10}, "unknown keys ['batch_size']"),
    ],
)
def test_a_bad_source_fails_with_an_error_naming_it(bad_source, message):
    with pytest.raises(ConfigError, match="DB_CHANGE_SOURCES\\[0\\]") as error:
        parse(bad_source)

    assert message in str(error.value)


def test_two_sources_cannot_share_a_stream():
    with pytest.raises(ConfigError, match="share the stream_arn"):
        parse(source(rule()), source(rule(), name="clinic-2"))


@pytest.mark.parametrize("text", ["{not json", '{"name": "clinic"}'])
def test_the_variable_must_be_a_json_list(text):
    with pytest.raises(ConfigError, match="DB_CHANGE_SOURCES"):
        ChangeSources.from_json(text)
