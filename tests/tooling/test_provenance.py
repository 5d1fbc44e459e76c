"""Generated pages say which code they measured."""

import subprocess

from scripts.lab import provenance


def test_a_page_names_the_commit_checked_out():
    head = subprocess.run(
        ["git", "rev-parse", "--short=12", "HEAD"], cwd=provenance.ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()

    assert provenance.source_revision().split()[0] == head


def test_uncommitted_changes_to_what_is_measured_are_said(monkeypatch):
    answers = {"rev-parse": "0123456789ab", "status": " M functions/realtime/services.py"}
    monkeypatch.setattr(provenance, "_git", lambda *args: answers[args[0]])

    assert provenance.source_revision() == "0123456789ab with uncommitted changes"


def test_outside_a_git_checkout_the_commit_is_unknown(monkeypatch):
    def no_git(*_args):
        raise FileNotFoundError("git")

    monkeypatch.setattr(provenance, "_git", no_git)

    assert provenance.source_revision() == "unknown"
