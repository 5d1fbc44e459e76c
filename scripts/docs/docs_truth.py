"""What the docs cite exists and matches: paths, make targets, module inputs and their defaults (make lint).

    python -m scripts.docs.docs_truth

Read from the hand-written docs (README.md, docs/*.md but the generated pages, the clients' and examples'
READMEs):

- a repository path in backticks (`docs/scaling.md`, `scripts/lab/bench.py`, `terraform/examples/local`)
  exists;
- a `make <target>` in backticks is a target of the Makefile;
- in an ```hcl block that calls the module (`module "realtime" {`), every argument is one of its inputs
  (or a meta-argument);
- a module input named in backticks and followed closely by "default <value>" has that default in
  terraform/variables.tf (numbers compared without their thousands separators, so "(default 200,000)" reads
  as 200000).

Environment variables and the wire limits are not read here (the refused-input corpus and the contract
vectors hold the limits). A path with a placeholder (`<name>`, `{id}`, `*`) is not checked.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

from scripts.docs.tf_docs import _plain, blocks
from scripts.local.emulator import ROOT

GENERATED = {"docs/benchmarks.md", "docs/reliability.md", "docs/refused-inputs.md"}
PATH = re.compile(r"`((?:docs|scripts|terraform|clients|functions|tests|contract)/[^`\s]*)`")
MAKE = re.compile(r"`make ([a-z][a-z0-9-]*)\b[^`]*`")
TARGET = re.compile(r"^([a-zA-Z0-9][a-zA-Z0-9_.-]*):(?!=)", re.MULTILINE)
HCL_BLOCK = re.compile(r"```hcl\n(.*?)```", re.DOTALL)
MODULE_CALL = re.compile(r'module\s+"realtime"\s*\{\n(.*?)^\}', re.DOTALL | re.MULTILINE)
ARGUMENT = re.compile(r"^  ([a-z_][a-z0-9_]*)\s*=", re.MULTILINE)
META_ARGUMENTS = {"source", "version", "providers", "count", "for_each", "depends_on"}
DEFAULT = re.compile(r"`([a-z][a-z0-9_]*)`[^`\n]{0,40}?\bdefault:?\s+`?(-?[\d,]*\.?\d+|true|false|null)\b")


def documents(root: Path = ROOT) -> list[Path]:
    found = [root / "README.md", *sorted((root / "docs").glob("*.md"))]
    found += [root / "terraform" / "README.md", *sorted((root / "terraform" / "examples").glob("*/README.md"))]
    found += [root / "clients" / "js" / "README.md", *sorted((root / "clients" / "python").glob("*/README.md"))]
    return [p for p in found if p.is_file() and p.relative_to(root).as_posix() not in GENERATED]


def make_targets(makefile: Path) -> set[str]:
    return set(TARGET.findall(makefile.read_text()))


def module_defaults() -> dict[str, object]:
    """Input name -> its default (python values; absent when the input is required)."""
    return {name: _plain(block["default"]) for name, block in blocks("variable") if "default" in block}


def module_inputs() -> set[str]:
    return {name for name, _block in blocks("variable")}


def _placeholder(path: str) -> bool:
    return any(mark in path for mark in "<>{}*$")


def _same(documented: str, actual: object) -> bool:
    if documented in ("true", "false"):
        return actual is (documented == "true")
    if documented == "null":
        return actual is None
    if isinstance(actual, bool) or not isinstance(actual, int | float):
        return False
    return float(documented.replace(",", "")) == float(actual)


def problems_in(
    name: str, text: str, *, root: Path, targets: set[str], inputs: set[str], defaults: dict[str, object]
) -> Iterator[str]:
    for number, line in enumerate(text.splitlines(), 1):
        for path in PATH.findall(line):
            cleaned = path.rstrip(".,:;)").split("#")[0]
            cleaned = re.sub(r":\d+$", "", cleaned)
            if not _placeholder(cleaned) and not (root / cleaned).exists():
                yield f"{name}:{number}: `{path}` does not exist"
        for target in MAKE.findall(line):
            if target not in targets:
                yield f"{name}:{number}: `make {target}` is not a Makefile target"
        for input_name, value in DEFAULT.findall(line):
            if input_name in defaults and not _same(value, defaults[input_name]):
                yield (
                    f"{name}:{number}: `{input_name}` is said to default to {value}; "
                    f"terraform/variables.tf says {defaults[input_name]!r}"
                )
    for block in HCL_BLOCK.findall(text):
        for call in MODULE_CALL.findall(block):
            for argument in ARGUMENT.findall(call):
                if argument not in inputs and argument not in META_ARGUMENTS:
                    yield f'{name}: the module has no input `{argument}` (an ```hcl module "realtime" block)'


def problems(paths: Iterable[Path] | None = None, root: Path = ROOT) -> list[str]:
    targets = make_targets(root / "Makefile")
    inputs, defaults = module_inputs(), module_defaults()
    found: list[str] = []
    for path in documents(root) if paths is None else paths:
        name = path.relative_to(root).as_posix()
        found += problems_in(name, path.read_text(), root=root, targets=targets, inputs=inputs, defaults=defaults)
    return found


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    if found := problems():
        sys.exit("docs cite what is not there:\n  " + "\n  ".join(found))
    print(f"docs: every path, make target, module input and default they cite holds ({len(documents())} files)")


if __name__ == "__main__":
    main()
