"""The examples stay copyable to AWS: their outputs come from the module, and only the emulator's example knows
the emulator.

    python -m scripts.docs.examples_check

- Every output of every example takes its value from the module's outputs (`module.realtime.<name>`), or from a
  resource, data source or variable of the example itself: never a URL rebuilt from strings, which is right on
  one platform only (the emulator's `/_aws/execute-api/...` form was once built this way and was wrong on AWS).
- No example but terraform/examples/local holds the emulator's path or host, or a hard-coded region: a region
  comes from the provider (AWS_REGION), as the module's own outputs do.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterator
from pathlib import Path

from scripts.local.emulator import ROOT

EXAMPLES = ROOT / "terraform" / "examples"
EMULATOR_EXAMPLE = "local"
OUTPUT = re.compile(r'^output\s+"(?P<name>[^"]+)"\s*\{(?P<body>.*?)^\}', re.MULTILINE | re.DOTALL)
VALUE = re.compile(r"^\s*value\s*=\s*(?P<expression>.+?)(?=^\s*\w+\s*=|\Z)", re.MULTILINE | re.DOTALL)
# A value may refer to these; anything else (a string, a function of strings) is built by the example.
REFERENCE = re.compile(r"^(module\.realtime\.|var\.|data\.|aws_|\{)")
BUILT_URL = re.compile(r'"[^"]*(://|execute-api|/_aws/)[^"]*"')
EMULATOR_MARKS = re.compile(r"/_aws/execute-api|127\.0\.0\.1|localhost|localstack")
DIRECTIONS = "north|south|east|west|central|northeast|northwest|southeast|southwest"
REGION = re.compile(rf'"[a-z]{{2}}(?:-gov)?-(?:{DIRECTIONS})-\d"')


def output_problems(example: str, text: str) -> Iterator[str]:
    """What is wrong with one example's outputs.tf."""
    for block in OUTPUT.finditer(text):
        found = VALUE.search(block["body"])
        if found is None:
            yield f"{example}: output {block['name']!r} has no value"
            continue
        expression = found["expression"].strip()
        if not REFERENCE.match(expression) or BUILT_URL.search(expression):
            yield (
                f"{example}: output {block['name']!r} builds its value ({expression.splitlines()[0][:80]}); "
                "take it from the module's outputs (module.realtime.<name>) or a resource of the example"
            )


def platform_problems(example: str, path: Path, text: str) -> Iterator[str]:
    """The emulator, or a region, written into an example meant for AWS."""
    if example == EMULATOR_EXAMPLE:
        return
    for number, line in enumerate(text.splitlines(), 1):
        code = line.split("#", 1)[0]
        if EMULATOR_MARKS.search(code):
            yield f"{path.relative_to(ROOT)}:{number}: the emulator's host or path outside examples/{EMULATOR_EXAMPLE}"
        if REGION.search(code):
            yield f"{path.relative_to(ROOT)}:{number}: a hard-coded region; take it from the provider (AWS_REGION)"


def problems(examples: Path = EXAMPLES) -> list[str]:
    found: list[str] = []
    for folder in sorted(p for p in examples.iterdir() if p.is_dir()):
        for path in sorted(folder.glob("*.tf")):
            text = path.read_text()
            if path.name == "outputs.tf":
                found += output_problems(folder.name, text)
            found += platform_problems(folder.name, path, text)
    return found


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    if found := problems():
        sys.exit("terraform/examples:\n  " + "\n  ".join(found))
    print("terraform/examples: outputs from the module; the emulator only in examples/local")


if __name__ == "__main__":
    main()
