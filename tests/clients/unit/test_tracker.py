"""Pure logic of the Python client beyond the cases it shares with the browser
client (contract/vectors/client.json, run by test_client_vectors.py)."""

from __future__ import annotations

from realtime_client import Backoff, exactly_once_in_order


def ev(topic: str, seq: int) -> dict:
    return {"id": f"{topic}#{seq}", "type": "test.event", "topic": topic, "seq": seq, "data": {}}


def test_backoff_is_never_zero_nor_over_the_cap_with_real_randomness():
    backoff = Backoff(initial=0.2, maximum=5.0)
    assert all(0.1 <= backoff.next() <= 5.0 for _ in range(200))


def test_exactly_once_in_order_reports_problems():
    assert exactly_once_in_order([ev("a", 3), ev("a", 4), ev("b", 1)]) == []
    assert exactly_once_in_order([ev("a", 1), ev("a", 1)]) == ["duplicate ('a', 1)"]
    assert exactly_once_in_order([ev("a", 1), ev("a", 3)]) == ["a: expected seq 2, got 3"]
