"""Errors shared by the domain modules."""

from __future__ import annotations


class PermanentError(Exception):
    """A message that can never be processed, whatever the retries.

    `code` is a short stable identifier (sent to the DLQ as `errorCode`),
    `reason` a human-readable explanation (`errorReason`).
    """

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason
