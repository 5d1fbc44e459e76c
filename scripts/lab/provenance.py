"""Which code a generated page measured: the commit, and whether the working tree differed from it."""

from __future__ import annotations

import subprocess

from scripts.local.emulator import ROOT

# What a measurement runs: a change here that is not committed makes the page's commit not the whole story.
MEASURED_PATHS = ("functions", "terraform", "clients", "scripts")


def source_revision() -> str:
    """`<commit>`, `<commit> with uncommitted changes`, or `unknown` outside a git checkout."""
    try:
        commit = _git("rev-parse", "--short=12", "HEAD")
        changed = _git("status", "--porcelain", "--", *MEASURED_PATHS)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{commit} with uncommitted changes" if changed else commit


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
