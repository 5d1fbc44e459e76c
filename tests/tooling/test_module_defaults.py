"""The module's defaults as the tests and lab tools read them (scripts/module_defaults.py) are
terraform/variables.tf's, so a changed default cannot leave a stale copy behind."""

from __future__ import annotations

import json
import re
from pathlib import Path

import hcl2
import pytest
from realtime.core.settings import FUNCTION_SETTINGS, variables

from scripts import module_defaults
from scripts.module_defaults import FUNCTION_ENVIRONMENT, TOKEN_MAX_LIFETIME_SECONDS, VARIABLES, runs_per_hour

VARIABLES_TF = Path(__file__).resolve().parents[2] / "terraform" / "variables.tf"


def declared() -> dict[str, dict]:
    """variables.tf's variables: name -> block (default, type, ...), as hcl2 reads them."""
    with VARIABLES_TF.open() as handle:
        return {name.strip('"'): block for entry in hcl2.load(handle)["variable"] for name, block in entry.items()}


DECLARED = declared()


def hcl_value(value):
    """hcl2 keeps the quotes of string literals."""
    return json.loads(value) if isinstance(value, str) and value.startswith('"') else value


@pytest.mark.parametrize("name", sorted(VARIABLES))
def test_each_default_is_the_one_variables_tf_declares(name):
    assert name in DECLARED, f"variables.tf declares no variable {name}"
    assert "default" in DECLARED[name], f"variables.tf gives {name} no default"
    assert VARIABLES[name] == hcl_value(DECLARED[name]["default"])


def test_the_token_lifetime_is_the_token_objects_optional_default():
    token_type = DECLARED["token"]["type"]
    found = re.search(r"\bmax_lifetime_seconds\s*=\s*optional\(number,\s*(\d+)\)", token_type)
    assert found, f"no max_lifetime_seconds default in the token type: {token_type}"
    assert int(found[1]) == TOKEN_MAX_LIFETIME_SECONDS


def test_the_environment_names_only_variables_a_function_reads():
    read = set().union(*(variables(model) for model in FUNCTION_SETTINGS.values()))
    assert set(FUNCTION_ENVIRONMENT) - read == set()


def test_the_environment_carries_the_defaults_as_the_module_writes_them():
    assert FUNCTION_ENVIRONMENT["FANOUT_THRESHOLD"] == str(DECLARED["fanout_threshold"]["default"])
    assert FUNCTION_ENVIRONMENT["EVENT_RETENTION_SECONDS"] == str(DECLARED["event_retention_days"]["default"] * 86400)
    assert json.loads(FUNCTION_ENVIRONMENT["EVENT_TYPE_RULES"]) == DECLARED["event_type_rules"]["default"]
    assert all(isinstance(value, str) for value in FUNCTION_ENVIRONMENT.values())


@pytest.mark.parametrize(
    ("schedule", "runs"), [("rate(5 minutes)", 12), ("rate(1 minute)", 60), ("rate(2 hours)", 0.5)]
)
def test_a_rate_schedule_gives_its_runs_per_hour(schedule, runs):
    assert runs_per_hour(schedule) == runs


def test_a_schedule_that_is_not_a_rate_is_refused():
    with pytest.raises(ValueError, match="cron"):
        runs_per_hour("cron(0 * * * ? *)")


def test_the_maintenance_runs_follow_the_default_schedule():
    assert (
        runs_per_hour(hcl_value(DECLARED["maintenance_schedule_expression"]["default"]))
        == module_defaults.MAINTENANCE_RUNS_PER_HOUR
    )


def test_each_live_connection_is_checked_every_threshold_plus_schedule_period():
    threshold = DECLARED["stale_connection_threshold_seconds"]["default"]
    period = 3600 / runs_per_hour(hcl_value(DECLARED["maintenance_schedule_expression"]["default"]))
    assert module_defaults.CONNECTION_CHECK_SECONDS == threshold + period == 600
    assert module_defaults.CONNECTION_CHECKS_PER_HOUR == 3600 / (threshold + period) == 6


def test_the_visible_page_interval_is_the_ping_interval_the_throttles_are_sized_from():
    visible = module_defaults.PING_INTERVAL_SECONDS["visible"]
    assert visible == DECLARED["websocket_ping_interval_seconds"]["default"]
    assert f"{visible} is both clients' default" in DECLARED["websocket_ping_interval_seconds"]["description"]


def test_the_hidden_page_interval_keeps_the_socket_open():
    """Longer than the visible page's (the throttles are sized from the shortest), inside the 10-minute idle
    timeout, and within what websocket_ping_interval_seconds accepts."""
    hidden, visible = module_defaults.PING_INTERVAL_SECONDS["hidden"], module_defaults.PING_INTERVAL_SECONDS["visible"]
    assert visible < hidden < module_defaults.IDLE_TIMEOUT_SECONDS
    (validation,) = DECLARED["websocket_ping_interval_seconds"]["validation"]
    upper = re.search(r"websocket_ping_interval_seconds <= (\d+)", validation["condition"])
    assert upper, f"no upper bound in {validation['condition']}"
    assert hidden <= int(upper[1])
