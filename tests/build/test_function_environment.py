"""Each function's environment (terraform/main.tf) is exactly what its settings model reads."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import hcl2
import pytest
from realtime.core.settings import FUNCTION_SETTINGS, variables

MAIN_TF = Path(__file__).resolve().parents[2] / "terraform" / "main.tf"


def _unquote(text: str) -> str:
    return text.strip('"')


def function_environment() -> dict[str, dict[str, str]]:
    """`local.function_environment`: function -> variable -> HCL expression, as written."""
    with MAIN_TF.open() as handle:
        for block in hcl2.load(handle).get("locals", []):
            if "function_environment" in block:
                table = block["function_environment"]
                return {_unquote(name): {var: str(expr) for var, expr in env.items()} for name, env in table.items()}
    raise AssertionError("terraform/main.tf has no local.function_environment")


ENVIRONMENT = function_environment()


def test_every_function_of_the_module_has_a_settings_model():
    assert set(ENVIRONMENT) == set(FUNCTION_SETTINGS)


@pytest.mark.parametrize("function", sorted(FUNCTION_SETTINGS))
def test_the_module_sets_exactly_what_the_function_reads(function):
    read = set(variables(FUNCTION_SETTINGS[function]))
    set_by_module = set(ENVIRONMENT[function])

    assert read - set_by_module == set(), "read but never set"
    assert set_by_module - read == set(), "set but never read"


def section_variables(model: type, name: str) -> set[str]:
    """The variables of the model's section `name` (none if it has no such section)."""
    fields = {field.name: field for field in dataclasses.fields(model)}
    return set(variables(fields[name].metadata["section"])) if name in fields else set()


@pytest.mark.parametrize("function", sorted(FUNCTION_SETTINGS))
def test_variables_the_module_may_leave_out_are_the_ones_the_function_can_do_without(function):
    """Presence variables come and go together, as the model's presence section; so do the token's."""
    model = FUNCTION_SETTINGS[function]
    environment = ENVIRONMENT[function]
    presence = {name for name, expression in environment.items() if expression.startswith("${local.presence.")}
    token = {name for name, expression in environment.items() if "var.token." in expression}

    assert presence == section_variables(model, "presence")
    assert token == section_variables(model, "token")
    # A model's presence section may be left out only where the function also runs without presence.
    fields = {field.name: field for field in dataclasses.fields(model)}
    if "presence" in fields and function != "presence-checks":
        assert fields["presence"].metadata["optional"], "the module turns presence off; this function must cope"
