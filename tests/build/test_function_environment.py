"""Each function's environment, as the Terraform module builds it, is exactly what its settings model reads.

The feature files (terraform/connections.tf, events.tf, ...) declare each function's own variables and
the sections of its settings (token, presence); terraform/lambda.tf merges them into
`local.function_environment`. Terraform itself evaluates them here (`terraform console`, offline: no
provider call), with presence on and one db_changes source, so that all nine functions exist.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from realtime.core.settings import FUNCTION_SETTINGS, Section, declarations, variables

ROOT = Path(__file__).resolve().parents[2]
MODULE_DIR = ROOT / "terraform"
TFVARS = "tests/terraform.tfvars"  # the inputs terraform test uses, relative to the module
DB_CHANGES_SOURCE = (
    '[{name = "app", stream_arn = "arn:aws:dynamodb:us-east-1:123456789012:table/app/stream/2024-01-01T00:00:00.000",'
    ' rules = [{name = "changed", event_type = "app.changed", audience = ["user:{userId}"]}]}]'
)
# Function -> the variables it is given (besides Powertools'), and its sections' variables by section name.
EXPRESSION = (
    "jsonencode({for k, f in local.functions : k => {"
    ' environment = [for name in keys(local.function_environment[k]) : name if !startswith(name, "POWERTOOLS_")],'
    " own = keys(f.environment),"
    " sections = {for name, section in f.sections : name => keys(section)} }})"
)


def terraform(*args: str, data_dir: Path, stdin: str | None = None) -> str:
    executable = shutil.which(os.environ.get("TERRAFORM", "terraform"))
    assert executable, "terraform (1.11) is needed on PATH to evaluate the module's function environments"
    env = {
        **os.environ,
        "TF_DATA_DIR": str(data_dir),
        "TF_IN_AUTOMATION": "1",
        "TF_CLI_CONFIG_FILE": str(ROOT / "terraform.rc"),  # providers from the machine's mirror, as in the Makefile
    }
    result = subprocess.run(
        [executable, f"-chdir={MODULE_DIR}", *args], input=stdin, env=env, text=True, capture_output=True
    )
    assert result.returncode == 0, f"terraform {args[0]} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def module_functions(tmp_path_factory) -> dict[str, dict]:
    data_dir = tmp_path_factory.mktemp("terraform-data")
    terraform("init", "-backend=false", "-input=false", data_dir=data_dir)
    printed = terraform(
        "console",
        f"-var-file={TFVARS}",
        f"-var=db_changes_sources={DB_CHANGES_SOURCE}",
        data_dir=data_dir,
        stdin=EXPRESSION,
    )
    return json.loads(json.loads(printed))  # the console prints jsonencode's string as a quoted string


def section_variables(model: type, name: str) -> set[str]:
    """The variables of the model's section `name` (none if it has no such section)."""
    declared = declarations(model).get(name)
    return set(variables(declared.model)) if isinstance(declared, Section) else set()


def test_every_function_of_the_module_has_a_settings_model(module_functions):
    assert set(module_functions) == set(FUNCTION_SETTINGS)


@pytest.mark.parametrize("function", sorted(FUNCTION_SETTINGS))
def test_the_module_sets_exactly_what_the_function_reads(module_functions, function):
    read = set(variables(FUNCTION_SETTINGS[function]))
    set_by_module = set(module_functions[function]["environment"])

    assert read - set_by_module == set(), "read but never set"
    assert set_by_module - read == set(), "set but never read"


@pytest.mark.parametrize("function", sorted(FUNCTION_SETTINGS))
def test_the_module_builds_the_environment_from_the_models_sections(module_functions, function):
    """Each section of the model is one section local of the module: its variables come and go together."""
    model = FUNCTION_SETTINGS[function]
    built = module_functions[function]
    model_sections = {name for name, declared in declarations(model).items() if isinstance(declared, Section)}

    assert set(built["sections"]) == model_sections
    for name, names in built["sections"].items():
        assert set(names) == section_variables(model, name), f"the {name} section"
        assert set(names).isdisjoint(built["own"]), f"the {name} section's variables are set outside it too"


@pytest.mark.parametrize("function", sorted(FUNCTION_SETTINGS))
def test_variables_the_module_may_leave_out_are_the_ones_the_function_can_do_without(module_functions, function):
    """Presence variables come and go together, as the model's presence section; so do the token's."""
    model = FUNCTION_SETTINGS[function]
    sections = module_functions[function]["sections"]

    assert set(sections.get("presence", [])) == section_variables(model, "presence")
    assert set(sections.get("token", [])) == section_variables(model, "token")
    # A model's presence section may be left out only where the function also runs without presence.
    presence = declarations(model).get("presence")
    if presence is not None and function != "presence-checks":
        assert presence.optional, "the module turns presence off; this function must cope"
