"""make aws-smoke's own logic (the checks themselves need an AWS account: docs/environments.md)."""

from scripts.lab import aws_smoke


def test_a_check_that_raises_is_a_fail_and_the_run_goes_on(capsys):
    report = aws_smoke.Report()

    def broken():
        raise PermissionError("AccessDenied on lambda:GetFunctionRecursionConfig")

    report.add("first", broken)
    report.add("second", lambda: (aws_smoke.PASS, "fine"))
    report.add("third", lambda: (aws_smoke.INFO, "observed"))

    assert [(c.assumption, c.outcome) for c in report.checks] == [
        ("first", "FAIL"),
        ("second", "PASS"),
        ("third", "INFO"),
    ]
    assert [c.assumption for c in report.failed] == ["first"]
    assert "PermissionError: AccessDenied" in capsys.readouterr().out
