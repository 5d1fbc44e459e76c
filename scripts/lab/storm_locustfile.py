"""Locust users for `make storm` (scripts/lab/fallback_storm.py): clients pushed onto the HTTP fallback.

Each user behaves as the shipped clients do once their socket is given up: a
first read without waiting (`since=now`), then long polls with the cursor it was
given, one after another. An answer that says "not now" (429, 5xx) is followed
by Retry-After, when the answer has one, plus a full-jitter share of a backoff
(0.5 s doubling to 30 s); a request with no answer within its timeout (the
wait plus 15 s, as the clients) takes the equal-jitter backoff. Runs in its own
venv (.venv-load: locust pins gevent); imports nothing of the project.

Environment: STORM_TOKEN (a bearer token), STORM_WAIT (long-poll seconds),
STORM_RESULT (where the counts go, JSON, when the run ends).
"""

from __future__ import annotations

import json
import os
import random
import time
from collections import Counter

from locust import HttpUser, events, task
from locust.exception import StopUser

TOKEN = os.environ.get("STORM_TOKEN", "")
POLL_WAIT = float(os.environ.get("STORM_WAIT", "2"))
RESULT = os.environ.get("STORM_RESULT", "")
CLIENT_MARGIN = 15.0  # the clients' request timeout is the wait plus this (clients/js/src/client.js)

outcomes: Counter[str] = Counter()
durations: dict[str, list[float]] = {"answered": [], "refused": [], "timed_out": []}


class Backoff:
    """The clients' backoff (clients/js/src/backoff.js): 0.5 s doubling to 30 s, equal or full jitter."""

    def __init__(self, full_jitter: bool) -> None:
        self.full_jitter = full_jitter
        self.attempt = 0

    def next(self) -> float:
        ceiling = min(30.0, 0.5 * 2**self.attempt)
        self.attempt += 1
        return random.random() * ceiling if self.full_jitter else ceiling / 2 + random.random() * ceiling / 2

    def reset(self) -> None:
        self.attempt = 0


def retry_after(value: str | None) -> float:
    try:
        return min(max(float(value), 0.0), 300.0) if value else 0.0
    except ValueError:
        return 0.0


class FallbackClient(HttpUser):
    def on_start(self) -> None:
        self.cursor: str | None = None
        self.throttled = Backoff(full_jitter=True)
        self.failed = Backoff(full_jitter=False)
        self.read(wait=0.0)

    @task
    def poll(self) -> None:
        self.read(wait=POLL_WAIT)

    def read(self, wait: float) -> None:
        params = {"limit": "200"}
        if self.cursor:
            params["cursor"] = self.cursor
        else:
            params["since"] = "now"
        if wait:
            params["wait"] = f"{wait:g}"
        started = time.monotonic()
        outcomes["sent"] += 1  # those sent but never finished were cut off by the end of the run
        with self.client.get(
            "/events",
            params=params,
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=wait + CLIENT_MARGIN,
            name=f"GET /events wait={wait:g}",
            catch_response=True,
        ) as response:
            elapsed = time.monotonic() - started
            status = response.status_code
            if 200 <= status < 300:
                self.record("answered", elapsed)
                self.cursor = response.json().get("cursor") or self.cursor
                self.throttled.reset()
                self.failed.reset()
                response.success()
                return
            if status == 429 or 500 <= status < 600:
                self.record("refused", elapsed)
                outcomes[f"status {status}"] += 1
                response.failure(f"refused {status}")
                delay = retry_after(response.headers.get("Retry-After")) + self.throttled.next()
            elif status == 0:  # no answer: the timeout, or the connection failed
                self.record("timed_out", elapsed)
                response.failure("timed out")
                delay = self.failed.next()
            else:  # 4xx other than 429: a bug of this script, not load
                outcomes[f"status {status}"] += 1
                response.failure(f"status {status}")
                raise StopUser
        time.sleep(delay)

    @staticmethod
    def record(outcome: str, elapsed: float) -> None:
        outcomes[outcome] += 1
        durations[outcome].append(round(elapsed, 3))


@events.quitting.add_listener
def _write_result(environment, **_kwargs) -> None:
    if RESULT:
        with open(RESULT, "w") as handle:
            json.dump({"outcomes": outcomes, "durations": durations}, handle)
