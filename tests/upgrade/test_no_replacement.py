"""Upgrading the module replaces nothing a deployment made with an earlier version holds.

On the emulator (ministack, a free loopback port): terraform/examples/local as it was at
UPGRADE_FROM_REF (default 3065e9a, the layout before the module was split by feature) is applied,
then the current tree's example plans against the same state. No resource may be deleted or replaced:
a table or queue replaced on upgrade loses its items or messages. `make test-upgrade` runs it (a few
minutes); it is skipped without the emulator's venv (.venv-ministack).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from scripts.local.emulator import MINISTACK, ROOT, free_port, start_emulator
from scripts.release import build

UPGRADE_FROM_REF = os.environ.get("UPGRADE_FROM_REF", "3065e9a")
EXAMPLE = Path("terraform") / "examples" / "local"

pytestmark = pytest.mark.skipif(not MINISTACK.exists(), reason=f"{MINISTACK} is missing: make install")


def terraform(tree: Path, *args: str, data_dir: Path) -> str:
    """Run terraform in ``tree``'s examples/local, with its own working directory; returns stdout."""
    env = {
        **os.environ,
        "TF_DATA_DIR": str(data_dir),
        "TF_IN_AUTOMATION": "1",
        "TF_CLI_CONFIG_FILE": str(ROOT / "terraform.rc"),  # providers from the machine's mirror, as in the Makefile
    }
    command = ["terraform", f"-chdir={tree / EXAMPLE}", *args]
    result = subprocess.run(command, env=env, text=True, capture_output=True)
    output = f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    assert result.returncode == 0, f"terraform {args[0]} in {tree} failed:\n{output}"
    return result.stdout


def export_module(ref: str, target: Path) -> Path:
    """The terraform/ tree of ``ref`` (module and examples), written under ``target``."""
    archive = subprocess.run(["git", "archive", ref, "terraform"], cwd=ROOT, capture_output=True)
    assert archive.returncode == 0, f"git archive {ref} failed (UPGRADE_FROM_REF): {archive.stderr.decode()}"
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(target, filter="data")
    return target


def test_a_deployment_of_the_previous_layout_plans_with_nothing_replaced(tmp_path):
    previous = export_module(UPGRADE_FROM_REF, tmp_path / "previous")
    state = tmp_path / "terraform.tfstate"
    arch = build.host_arch()
    zips = build.build(arch, ROOT / "dist")  # the same code for both: only the module's layout differs

    emulator = start_emulator(free_port(), tmp_path / "stack")
    try:
        variables = [
            f"-var=endpoint={emulator.endpoint}",
            f"-var=lambda_code_zip={zips['code']}",
            f"-var=lambda_layer_zip={zips['layer']}",
            f"-var=lambda_architecture={arch}",
            f"-var=demo_port={free_port()}",
        ]
        before, after = tmp_path / "tf-previous", tmp_path / "tf-current"
        terraform(previous, "init", "-input=false", "-backend=false", data_dir=before)
        terraform(previous, "apply", "-input=false", "-auto-approve", f"-state={state}", *variables, data_dir=before)

        plan = tmp_path / "upgrade.tfplan"
        terraform(ROOT, "init", "-input=false", "-backend=false", data_dir=after)
        terraform(ROOT, "plan", "-input=false", f"-state={state}", f"-out={plan}", *variables, data_dir=after)
        shown = json.loads(terraform(ROOT, "show", "-json", str(plan), data_dir=after))
    finally:
        emulator.stop()

    changes = shown.get("resource_changes", [])
    replaced = [f"{c['address']}: {c['change']['actions']}" for c in changes if "delete" in c["change"]["actions"]]
    updated = [c["address"] for c in changes if c["change"]["actions"] == ["update"]]
    moved = [f"{c['previous_address']} -> {c['address']}" for c in changes if c.get("previous_address")]
    print(f"upgrade from {UPGRADE_FROM_REF}: {len(changes)} resources planned; updated in place: {updated or 'none'}")
    print(f"moved: {moved or 'none'}")

    assert changes, "the plan shows no resource at all: was the previous deployment applied to this state?"
    assert replaced == [], "upgrading deletes or replaces:\n" + "\n".join(replaced)
