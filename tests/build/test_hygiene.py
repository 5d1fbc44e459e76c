"""Repository hygiene a contributor relies on: the hooks check what CI checks, and every example
stands on its own (a README, pinned Terraform and provider versions)."""

from __future__ import annotations

import re
from pathlib import Path

import hcl2
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(path for path in (ROOT / "terraform" / "examples").iterdir() if path.is_dir())


def test_pre_commit_runs_every_part_of_make_lint():
    lint_parts = re.search(r"^lint: ([^#]+)##", (ROOT / "Makefile").read_text(), re.MULTILINE)[1].split()
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    entries = {hook["entry"] for repo in config["repos"] for hook in repo["hooks"]}
    assert lint_parts, "no prerequisites found on the Makefile's lint target"
    assert {f"make {part}" for part in lint_parts} <= entries


@pytest.mark.parametrize("example", EXAMPLES, ids=[path.name for path in EXAMPLES])
def test_every_example_has_a_readme_and_pins_its_versions(example):
    assert (example / "README.md").is_file()
    with (example / "versions.tf").open() as handle:
        (terraform,) = hcl2.load(handle)["terraform"]
    assert terraform["required_version"]
    (providers,) = terraform["required_providers"]
    assert providers["aws"]["source"].strip('"') == "hashicorp/aws"
    assert providers["aws"]["version"]
