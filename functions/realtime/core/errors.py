"""Errors shared by every capability: what went wrong, in words a caller can act on."""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError

# Errors of AWS's that mean "too much at once" or "try again": a queued record waits (never given up on), a
# connect is refused with "try later".
TRANSIENT_ERROR_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "Throttling",
        "RequestLimitExceeded",
        "TransactionConflictException",
        "TransactionCanceledException",
        "TransactionInProgressException",
        "InternalServerError",
        "ServiceUnavailable",
        "LimitExceededException",
    }
)


class ConfigError(RuntimeError):
    """The function's configuration (environment) is missing or invalid: fails the cold start."""


class TransientError(RuntimeError):
    """Overload that passes (contention on a hot topic, a queue that did not take a send): wait, then retry."""


class PermanentError(Exception):
    """A message that can never be processed, whatever the retries.

    `code` is a short stable identifier (sent to the DLQ as `errorCode`),
    `reason` a human-readable explanation (`errorReason`).
    """

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


class BadRequest(Exception):
    """An HTTP request the API refuses with 400: `code` is stable, `message` says what to fix."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def is_transient(error: BaseException) -> bool:
    """Overload or a network error, which passes with time: throttling, contention, an unreachable endpoint."""
    if isinstance(error, TransientError | BotoCoreError):
        return True
    if isinstance(error, ClientError):
        return error.response.get("Error", {}).get("Code", "") in TRANSIENT_ERROR_CODES
    return False
