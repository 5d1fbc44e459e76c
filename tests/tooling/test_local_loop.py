"""The local loop's reports: `make up`'s progress and `make logs`' lines."""

from __future__ import annotations

import io
import json

import pytest

from scripts.local import local_stack
from scripts.local.local_stack import ApplyFailed, ApplyProgress
from scripts.local.logs import format_line


def hook(kind: str, address: str, action: str) -> dict:
    return {"type": kind, "hook": {"resource": {"addr": address}, "action": action}}


def test_apply_progress_counts_planned_changes_done_and_not_data_sources():
    out = io.StringIO()
    progress = ApplyProgress(out=out, every=0)
    progress.read(hook("apply_complete", "data.aws_region.current", "read"))
    progress.read({"type": "change_summary", "changes": {"add": 2, "change": 1, "remove": 1, "operation": "plan"}})
    for address, action in [("aws_sqs_queue.a", "create"), ("aws_sqs_queue.b", "update"), ("aws_iam_role.c", "delete")]:
        progress.read(hook("apply_start", address, action))
        progress.read(hook("apply_complete", address, action))
    progress.read(hook("apply_complete", "data.aws_iam_policy_document.d", "read"))
    progress.show(final=True)

    lines = out.getvalue().splitlines()
    assert lines[0].split()[:2] == ["0/4", "resources"]
    assert lines[-1].split()[:2] == ["3/4", "resources"]
    assert lines[-1].endswith("aws_iam_role.c")


def test_apply_progress_keeps_the_errors_to_report():
    progress = ApplyProgress(out=io.StringIO())
    progress.read({"type": "diagnostic", "diagnostic": {"severity": "error", "summary": "Bad", "detail": "why"}})
    progress.read({"type": "diagnostic", "diagnostic": {"severity": "warning", "summary": "Meh"}})
    assert progress.errors == ["Bad: why"]


class FakeEmulator:
    def __init__(self, started: list, state_dir):
        self.state_dir, self.stopped = state_dir, False
        started.append(self)

    def stop(self) -> None:
        self.stopped = True


def stack_with_applies(monkeypatch, tmp_path, outcomes: list) -> tuple[list, list]:
    """stack_on_free_port with emulators that start nothing and applies that fail or succeed in turn."""
    started: list[FakeEmulator] = []
    monkeypatch.setattr(local_stack, "free_port", lambda: 0)
    monkeypatch.setattr(local_stack, "start_emulator", lambda port, state_dir, **_: FakeEmulator(started, state_dir))

    def deploy(emulator, state_dir, demo_port):
        outcome = outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    monkeypatch.setattr(local_stack, "deploy", deploy)
    return started, outcomes


def test_a_failed_apply_is_tried_once_more_on_a_fresh_emulator(monkeypatch, tmp_path, capsys):
    (tmp_path / "ministack").mkdir()
    (tmp_path / "ministack" / "state.json").write_text("{}")
    (tmp_path / "terraform.tfstate").write_text("{}")
    (tmp_path / "ministack.log").write_text("the first attempt's log\n")
    started, _ = stack_with_applies(monkeypatch, tmp_path, [ApplyFailed("ResourceAlreadyExistsException"), {"ok": 1}])
    with local_stack.stack_on_free_port(tmp_path) as endpoints:
        assert endpoints == {"ok": 1}
        assert [e.stopped for e in started] == [True, False]
    assert started[1].stopped
    # The second emulator and apply start from nothing; the log of the first stays to read.
    assert not (tmp_path / "ministack").exists()
    assert not (tmp_path / "terraform.tfstate").exists()
    assert (tmp_path / "ministack.log").read_text() == "the first attempt's log\n"
    assert "ResourceAlreadyExistsException" in capsys.readouterr().err


def test_an_apply_that_fails_twice_fails_the_stack_and_stops_both_emulators(monkeypatch, tmp_path):
    started, _ = stack_with_applies(monkeypatch, tmp_path, [ApplyFailed("first"), ApplyFailed("second")])
    with pytest.raises(ApplyFailed, match="second"), local_stack.stack_on_free_port(tmp_path):
        pass
    assert [e.stopped for e in started] == [True, True]


def test_other_failures_are_not_retried(monkeypatch, tmp_path):
    started, _ = stack_with_applies(monkeypatch, tmp_path, [RuntimeError("build failed"), {"ok": 1}])
    with pytest.raises(RuntimeError), local_stack.stack_on_free_port(tmp_path):
        pass
    assert [e.stopped for e in started] == [True]


def log_event(message: str) -> dict:
    return {"timestamp": 1_796_098_344_868, "message": message}


def test_log_lines_show_level_message_correlation_id_and_extra_fields():
    record = {"level": "INFO", "message": "Event processed", "correlation_id": "order-17", "service": "rt", "stored": 1}
    line = format_line("process-events", log_event(json.dumps(record)), None)
    assert line == "04:12:24.868 process-events   INFO    Event processed [order-17] stored=1"


def test_log_lines_filtered_by_correlation_id_leave_out_everything_else():
    mine = json.dumps({"level": "INFO", "message": "a", "correlation_id": "c-1"})
    other = json.dumps({"level": "INFO", "message": "b", "correlation_id": "c-2"})
    assert format_line("ws-connect", log_event(mine), "c-1")
    assert format_line("ws-connect", log_event(other), "c-1") is None
    assert format_line("ws-connect", log_event("Traceback (most recent call last):"), "c-1") is None


def test_platform_lines_and_metrics_records_are_left_out_and_other_output_kept():
    assert format_line("ws-disconnect", log_event("START RequestId: 1 Version: $LATEST"), None) is None
    assert format_line("ws-disconnect", log_event(json.dumps({"_aws": {}, "Pings": [1.0]})), None) is None
    assert format_line("ws-disconnect", log_event("Traceback (most recent call last):"), None).endswith(
        "Traceback (most recent call last):"
    )
