"""Publishing the events of a batch of stream records to the events queue.

The events join the path every producer uses (events queue -> process-events:
validate, store, deliver). All records of a batch are translated first, then
their messages go out together with SendMessageBatch (10 a call). A record
counts as published only when every one of its messages was accepted; the
others are reported as batch item failures and retried from the stream, which
is safe because their event ids are derived from the record.

A record the rules refuse (more topics than the per-record cap) gives no event:
a pointer to it goes to the failures queue (the mapping's on-failure
destination) with `errorCode` and `errorReason`, and the batch carries on. Only
if that send fails is the record reported as failed, so nothing is lost.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
from botocore.exceptions import BotoCoreError, ClientError

from realtime.core.encoding import compact_json
from realtime.core.observability import logger
from realtime.core.sqs import DeadLetterQueue, send_batches
from realtime.db_changes.translate import ChangeTranslator, OutgoingMessage, Refusal, Translation

# Skips that point at the deployment (stream view type, rules for another stream), not at one item.
_CONFIGURATION_SKIPS = frozenset({"image_missing", "unknown_stream"})


class EventsQueueSender:
    def __init__(self, sqs_client: Any, queue_url: str) -> None:
        self._sqs = sqs_client
        self._queue_url = queue_url

    def send(self, bodies: Sequence[str]) -> dict[int, str]:
        """Send every body; return the index and reason of each one the queue did not accept."""
        return send_batches(self._sqs, self._queue_url, [{"MessageBody": body} for body in bodies])


class PublishReport(msgspec.Struct):
    records: int = 0
    matched: int = 0  # (record, rule) pairs that fired
    events_queued: int = 0  # distinct event ids whose messages were all accepted
    skipped: int = 0
    refused: int = 0  # records sent to the failures queue with their reason
    failed: dict[str, str] = msgspec.field(default_factory=dict)  # sequence number -> reason

    def batch_item_failures(self, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """The partial-batch response: the records whose events were not all sent, in the batch's order, by
        SequenceNumber (the event source mapping retries from the first of them).

        Built here rather than by Powertools' BatchProcessor, which would run the batch again record by
        record to learn what is known already, and whose import loads every event class of Powertools
        (about 20 ms of each cold start). A record without a sequence number is reported with an empty
        identifier, which Lambda reads as the whole batch failed ("Configuring partial batch response
        with DynamoDB and Lambda", Lambda developer guide): nothing after it is skipped."""
        sequence_numbers = (_sequence_number(record) for record in records)
        return {"batchItemFailures": [{"itemIdentifier": n} for n in sequence_numbers if n in self.failed]}


def _sequence_number(record: Mapping[str, Any]) -> str:
    return str((record.get("dynamodb") or {}).get("SequenceNumber", ""))


class ChangePublisher:
    def __init__(self, translator: ChangeTranslator, sender: EventsQueueSender, failures: DeadLetterQueue) -> None:
        self._translator = translator
        self._sender = sender
        self._failures = failures

    def publish(self, records: Sequence[Mapping[str, Any]]) -> PublishReport:
        report = PublishReport(records=len(records))
        outgoing: list[tuple[str, OutgoingMessage]] = []
        for record in records:
            sequence_number = _sequence_number(record)
            try:
                translation = self._translator.translate(record)
            except Exception as error:  # a malformed record: let the stream retry it, then the on-failure queue
                logger.exception("Stream record could not be read", extra={"sequence_number": sequence_number})
                report.failed[sequence_number] = f"record could not be read: {error!r}"
                continue
            report.matched += translation.matched
            report.skipped += len(translation.skipped)
            logger.debug(
                "Stream record translated",
                extra={
                    "sequence_number": sequence_number,
                    "change_kind": translation.change.kind,
                    "keys": (record.get("dynamodb") or {}).get("Keys"),
                    "events": sorted({m.event_id for m in translation.messages}),
                },
            )
            _log_skips(translation)
            if translation.refused is not None:
                self._refuse(record, translation.refused, report)
            outgoing += [(sequence_number, message) for message in translation.messages]

        failures = self._sender.send([message.body for _, message in outgoing]) if outgoing else {}
        unsent_ids = set()
        for index, reason in failures.items():
            sequence_number, message = outgoing[index]
            report.failed.setdefault(sequence_number, f"event {message.event_id} ({message.rule}): {reason}")
            unsent_ids.add(message.event_id)
        report.events_queued = len({message.event_id for _, message in outgoing} - unsent_ids)
        for sequence_number, reason in report.failed.items():
            logger.warning(
                "Stream record not published; the stream will retry it",
                extra={"sequence_number": sequence_number, "reason": reason},
            )
        return report

    def _refuse(self, record: Mapping[str, Any], refusal: Refusal, report: PublishReport) -> None:
        """Send a pointer to the record and the reason to the failures queue; if that fails, let the stream retry."""
        stream = record.get("dynamodb") or {}
        sequence_number = str(stream.get("SequenceNumber", ""))
        pointer = {
            "errorCode": refusal.code,
            "errorReason": refusal.reason,
            "eventSourceARN": record.get("eventSourceARN"),
            "eventID": record.get("eventID"),
            "eventName": record.get("eventName"),
            "sequenceNumber": sequence_number,
            "keys": stream.get("Keys"),
            "approximateCreationDateTime": stream.get("ApproximateCreationDateTime"),
        }
        extra = {"sequence_number": sequence_number, "error_code": refusal.code, "error_reason": refusal.reason}
        try:
            self._failures.send(
                compact_json(pointer),
                error_code=refusal.code,
                error_reason=refusal.reason,
                source_message_id=str(record.get("eventID", "")),
            )
        except (ClientError, BotoCoreError) as error:
            report.failed[sequence_number] = f"refused ({refusal.code}), and the failures queue is unreachable: {error}"
            return
        report.refused += 1
        logger.warning("Stream record refused; sent to the failures queue", extra=extra)


def _log_skips(translation: Translation) -> None:
    change = translation.change
    for skip in translation.skipped:
        log = logger.error if skip.code in _CONFIGURATION_SKIPS else logger.warning
        log(
            "Rule skipped for this change",
            extra={
                "rule": skip.rule,
                "attribute": skip.attribute,
                "skip_code": skip.code,
                "skip_reason": skip.reason,
                "change_kind": change.kind,
                "sequence_number": change.sequence_number,
                "stream_arn": change.source_arn,
            },
        )
