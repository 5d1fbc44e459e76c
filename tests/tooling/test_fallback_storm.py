"""make storm's accounting: what the load tool counted, and the table it becomes."""

from scripts.lab.fallback_storm import Phase, read_result, render

OPTIONS = {"date": "2026-12-06", "users": 1200, "rate": 20.0, "wait": 2.0, "locust": "2.47.0", "command": "make storm"}


def _raw(**outcomes: int) -> dict:
    return {"outcomes": outcomes, "durations": {"answered": [0.1, 0.3, 2.0], "refused": [0.01, 0.02], "timed_out": []}}


def test_requests_neither_answered_refused_nor_timed_out_were_cut_off_by_the_end_of_the_load():
    phase = read_result(Phase("no ceiling", None), _raw(sent=100, answered=20, refused=0, timed_out=50))

    assert (phase.answered, phase.refused, phase.timed_out, phase.unfinished) == (20, 0, 50, 30)
    assert phase.answered_median_s == 0.3


def test_a_refusal_is_counted_once_and_other_statuses_are_not_cut_off_requests():
    raw = _raw(sent=10, answered=2, refused=6, **{"status 429": 5, "status 500": 1, "status 400": 2})

    phase = read_result(Phase("ceiling", 4), raw)

    assert phase.statuses == {"status 429": 5, "status 500": 1, "status 400": 2}
    assert phase.unfinished == 0  # the two 400s were answered (wrongly), not cut off


def test_the_table_says_when_the_stack_never_served_a_request_normally_again():
    before = read_result(Phase("no ceiling (before)", None), _raw(sent=10, answered=1, timed_out=9))
    before.recovery_s = None
    after = read_result(Phase("ceiling of 4 (after)", 4), _raw(sent=10, answered=5, refused=5))
    after.recovery_s = 1.04

    text = render([before, after], OPTIONS)

    assert "| no ceiling (before) | 10 | 1 | 0 | 9 | 0 |" in text
    assert "> 600 s |" in text
    assert "| ceiling of 4 (after) | 10 | 5 | 5 | 0 | 0 |" in text
    assert "| 1.0 s |" in text
    assert "1,200 fallback clients started at 20 a second" in text
