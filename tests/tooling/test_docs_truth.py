"""The docs-truth check: the docs as committed pass; a planted wrong path, target, input or default fails."""

import pytest

from scripts.docs import docs_truth

ROOT = docs_truth.ROOT


def _problems(text: str) -> list[str]:
    return list(
        docs_truth.problems_in(
            "planted.md",
            text,
            root=ROOT,
            targets=docs_truth.make_targets(ROOT / "Makefile"),
            inputs=docs_truth.module_inputs(),
            defaults=docs_truth.module_defaults(),
        )
    )


def test_the_docs_as_committed_pass():
    assert docs_truth.problems() == []


def test_the_right_citations_pass():
    text = (
        "See `docs/scaling.md` and `scripts/lab/bench.py`, run `make bench` or `make storm STORM_USERS=10`;\n"
        "`presence_grace_period_seconds` (default 5 s), `maintenance_scan_items_per_run` (default 200,000).\n"
        '```hcl\nmodule "realtime" {\n  source = "x"\n  name = "rt"\n}\n```\n'
    )
    assert _problems(text) == []


@pytest.mark.parametrize(
    ("planted", "reason"),
    [
        ("Read `docs/scalling.md` first.", "`docs/scalling.md` does not exist"),
        ("Then run `make benchmark`.", "`make benchmark` is not a Makefile target"),
        (
            '```hcl\nmodule "realtime" {\n  source = "x"\n  presense_enabled = true\n}\n```',
            "the module has no input `presense_enabled`",
        ),
        (
            "`maintenance_connection_checks_per_second` (default 100) checks a second.",
            "`maintenance_connection_checks_per_second` is said to default to 100; terraform/variables.tf says 250",
        ),
        ("`presence_enabled` (default false) turns it on.", "is said to default to false"),
    ],
)
def test_a_planted_mistake_fails(planted, reason):
    found = _problems(planted)
    assert len(found) == 1
    assert reason in found[0]
