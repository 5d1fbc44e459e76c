"""Keep the README's module inputs and outputs in step with terraform/*.tf.

    python -m scripts.docs.tf_docs          # rewrite the tables in README.md
    python -m scripts.docs.tf_docs --check  # fail if they are out of date (make lint)

The tables live between `<!-- BEGIN_TF_DOCS -->` and `<!-- END_TF_DOCS -->`,
as terraform-docs would put them (terraform-docs itself is not installable
here; python-hcl2 parses the files instead).
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path

import hcl2

ROOT = Path(__file__).resolve().parents[2]
MODULE_DIR = ROOT / "terraform"
README = ROOT / "README.md"
BEGIN, END = "<!-- BEGIN_TF_DOCS -->", "<!-- END_TF_DOCS -->"
MAX_DEFAULT_CHARS = 40


def _unquote(value: str) -> str:
    value = value.strip()
    if value.startswith("${") and value.endswith("}"):
        value = value[2:-1]
    if value.startswith('"<<') and value.endswith('"'):  # heredoc: "<<-EOT ... EOT"
        return textwrap.dedent(value[1:-1].split("\n", 1)[1].rsplit("\n", 1)[0]).strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = json.loads(value)
    return value


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _plain(value):
    """python-hcl2 keeps HCL quoting on strings: strip it, recursively."""
    if isinstance(value, str):
        return None if value == "${null}" else _unquote(value)
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {_plain(key): _plain(item) for key, item in value.items() if key != "__is_block__"}
    return value


def _default(block: dict) -> str:
    if "default" not in block:
        return "required"
    shown = json.dumps(_plain(block["default"]))
    return f"`{shown}`" if len(shown) <= MAX_DEFAULT_CHARS else "see `variables.tf`"


def _type(block: dict) -> str:
    kind = _unquote(str(block.get("type", "any")))
    return f"`{kind}`" if len(kind) <= MAX_DEFAULT_CHARS else "`object`, see `variables.tf`"


def blocks(kind: str) -> list[tuple[str, dict]]:
    found = []
    for path in sorted(MODULE_DIR.glob("*.tf")):
        with path.open() as handle:
            for item in hcl2.load(handle).get(kind, []):
                for name, block in item.items():
                    found.append((_unquote(name), block))
    return found


def render() -> str:
    lines = ["### Inputs", "", "| name | description | type | default |", "|---|---|---|---|"]
    for name, block in blocks("variable"):
        description = _cell(_unquote(block.get("description", "")))
        lines.append(f"| `{name}` | {description} | {_cell(_type(block))} | {_cell(_default(block))} |")
    lines += ["", "### Outputs", "", "| name | description |", "|---|---|"]
    for name, block in blocks("output"):
        lines.append(f"| `{name}` | {_cell(_unquote(block.get('description', '')))} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    text = README.read_text()
    if BEGIN not in text or END not in text:
        sys.exit(f"README.md has no {BEGIN} ... {END} section")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    updated = f"{head}{BEGIN}\n{render()}\n{END}{tail}"
    if args.check:
        if updated != text:
            sys.exit("README.md's module inputs/outputs are out of date: run `make docs`")
        print("README.md module inputs/outputs are up to date")
    else:
        README.write_text(updated)


if __name__ == "__main__":
    main()
