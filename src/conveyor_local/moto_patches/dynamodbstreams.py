"""DynamoDB Streams to Lambda: a poller delivers a table's changes after the write, as Lambda's mapping does.

Seam (moto 5.2.5) and why:

``moto.dynamodb.models.table.StreamShard.add(self, old, new)``
    moto invokes every function mapped to the table's stream inline, inside the write that made the change:
    the writer waits for the function (a cold start of a worker, here), and inside our ``DYNAMODB_LOCK``,
    so every other DynamoDB request waits too, and a function that called DynamoDB from the server's other
    threads would deadlock. It also hands over every record since the last success whatever the
    ``BatchSize``, ignores ``FilterCriteria``, ``MaximumRetryAttempts``, ``BisectBatchOnFunctionError`` and
    the on-failure destination, drops the records when the function fails, and clears the shard after a
    delivery (``GetRecords`` then reads nothing). We append the record (moto's own ``StreamRecord``) and
    wake the shard's poller; the poller, a thread per shard, delivers each enabled mapping's records in
    commit order: filtered by its ``FilterCriteria`` (EventBridge pattern syntax, moto's matcher), at most
    ``BatchSize`` a call, after its ``MaximumBatchingWindowInSeconds``; a batch whose invocation fails is
    retried (``MaximumRetryAttempts``, -1 or unset: until ``MaximumRecordAgeInSeconds``), split in halves
    first when ``BisectBatchOnFunctionError``, and what still fails is described on the ``OnFailure``
    destination (an SQS queue) in Lambda's shape, then skipped. Waits are on the local time scale.

What is not Lambda's: positions live in this process, and a snapshot keeps no stream records
(``conveyor_local.persistence``), so a restarted cloud's streams start empty, their records delivered before
(a record not yet delivered when the cloud died is lost); a shard keeps its last ``RETAINED_RECORDS`` records.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from conveyor_local.moto_patches.dynamodb import DYNAMODB_LOCK
from conveyor_local.moto_patches.registry import patches, relies_on, resolve_dotted, time_scale

LOG = logging.getLogger(__name__)

STREAM_SHARD = "moto.dynamodb.models.table.StreamShard"
STREAM_RECORD = "moto.dynamodb.models.table.StreamRecord"
EVENT_PATTERN = "moto.events.models.EventPattern"
LAMBDA_BACKENDS = "moto.awslambda.models.lambda_backends"
SQS_BACKENDS = "moto.sqs.models.sqs_backends"

RETAINED_RECORDS = 2_000
"""Records a shard keeps for ``GetRecords`` once every mapping has passed them (DynamoDB keeps 24 hours)."""

SCANNED_PER_BATCH = 1_000
"""Records a mapping's next batch is looked for in (most are filtered out): a backlog costs each batch no more."""

RETRY_PAUSE_SECONDS = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
"""Pauses between tries of a failing batch (then 30 s each), on the local time scale."""


def stream_record(record: Any, region: str, source_arn: str) -> dict[str, Any]:
    """A ``StreamRecord`` as Lambda hands it to a function (``ApproximateCreationDateTime`` in epoch seconds)."""
    raw = record.to_json()
    dynamodb = dict(raw["dynamodb"])
    created = dynamodb.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        dynamodb["ApproximateCreationDateTime"] = (
            created.replace(tzinfo=UTC) if created.tzinfo is None else created
        ).timestamp()
    return {
        "eventID": raw["eventID"],
        "eventName": raw["eventName"],
        "eventVersion": raw["eventVersion"],
        "eventSource": raw["eventSource"],
        "awsRegion": region,
        "dynamodb": dynamodb,
        "eventSourceARN": source_arn,
    }


def matches_filters(mapping: Any, record: dict[str, Any]) -> bool:
    """Whether ``record`` passes the mapping's ``FilterCriteria`` (any filter; none: every record)."""
    filters = ((mapping.filter_criteria or {}).get("Filters")) or []
    if not filters:
        return True
    return any(_pattern(f.get("Pattern")).matches_event(record) for f in filters)


@functools.lru_cache(maxsize=256)
def _pattern(raw: str | None) -> Any:
    """A filter's pattern, parsed once (every record of the stream is matched against it)."""
    return resolve_dotted(EVENT_PATTERN).load(raw)


def split(batch: Sequence[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """A batch in two halves (bisect on error), the first half first."""
    middle = len(batch) // 2
    return [list(batch[:middle]), list(batch[middle:])]


class StreamPoller:
    """Delivers one shard's records to each of its table's event source mappings, in order, off the writer."""

    def __init__(self, shard: Any) -> None:
        self._shard = shard
        self._wake = threading.Event()
        # mapping uuid -> the next sequence number it has to look at
        self._positions: dict[str, int] = {}
        self._born_at = self._end()
        self._thread = threading.Thread(target=self._run, name=f"ddb-stream-{shard.table.name}", daemon=True)
        self._thread.start()

    def notify(self) -> None:
        self._wake.set()

    def _end(self) -> int:
        return int(self._shard.starting_sequence_number) + len(self._shard.items)

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            try:
                self.deliver_pending()
            except Exception:
                LOG.exception("stream delivery of table %s failed", self._shard.table.name)

    def deliver_pending(self) -> None:
        """Deliver every mapping's pending records; returns when each has caught up with the shard."""
        for mapping in list(self._shard.table.lambda_event_source_mappings.values()):
            if not mapping.enabled:
                continue
            window = float(mapping.max_batch_window or 0)
            if window:
                time.sleep(min(window, 300.0) * time_scale())
            while self._deliver_next(mapping):
                self._trim()  # a poller that never catches up (writes keep coming) still lets go of records
        self._trim()

    def _start_of(self, mapping: Any) -> int:
        if mapping.uuid not in self._positions:
            # A mapping seen first: TRIM_HORIZON reads what the shard holds, LATEST what comes after it. Records
            # restored with the shard (a restarted cloud) were delivered before the snapshot: they count as read.
            first = int(self._shard.starting_sequence_number)
            horizon = max(first, self._born_at)
            self._positions[mapping.uuid] = horizon if mapping.starting_position != "LATEST" else self._end()
        return self._positions[mapping.uuid]

    def _deliver_next(self, mapping: Any) -> bool:
        """Deliver the mapping's next batch; False when nothing is pending."""
        position = self._start_of(mapping)
        region = mapping.region
        with DYNAMODB_LOCK:
            first = int(self._shard.starting_sequence_number)
            position = max(position, first)
            pending = self._shard.items[position - first : position - first + SCANNED_PER_BATCH]
        if not pending:
            return False
        batch: list[dict[str, Any]] = []
        taken = 0
        for raw in pending:
            taken += 1
            record = stream_record(raw, region, mapping.event_source_arn)
            if matches_filters(mapping, record):
                batch.append(record)
                if len(batch) >= int(mapping.batch_size):
                    break
        if batch:
            self._deliver(mapping, batch)
        self._positions[mapping.uuid] = position + taken
        return True

    def _deliver(self, mapping: Any, batch: list[dict[str, Any]]) -> None:
        parts: deque[list[dict[str, Any]]] = deque([batch])
        while parts:
            part = parts.popleft()
            tries, error = 0, ""
            while True:
                tries += 1
                error = self._invoke(mapping, part)
                if not error:
                    break
                if mapping.bisect_on_error and len(part) > 1:
                    parts.extendleft(reversed(split(part)))
                    break
                if self._exhausted(mapping, part, tries):
                    self._on_failure(mapping, part, tries, error)
                    break
                pause = RETRY_PAUSE_SECONDS[min(tries - 1, len(RETRY_PAUSE_SECONDS) - 1)]
                time.sleep(pause * time_scale())

    @staticmethod
    def _exhausted(mapping: Any, part: list[dict[str, Any]], tries: int) -> bool:
        retries = mapping.max_retry_attempts
        if retries is not None and int(retries) >= 0 and tries > int(retries):
            return True
        max_age = mapping.max_record_age
        if max_age is not None and int(max_age) >= 0:
            oldest = float(part[0]["dynamodb"].get("ApproximateCreationDateTime") or time.time())
            return (time.time() - oldest) > int(max_age) * time_scale()
        return False

    @staticmethod
    def _invoke(mapping: Any, batch: list[dict[str, Any]]) -> str:
        """Invoke the mapped function with ``batch``; the error (empty when it succeeded)."""
        backend = resolve_dotted(LAMBDA_BACKENDS)[mapping.account_id][mapping.region]
        headers: dict[str, str] = {}
        try:
            fn = backend.get_function(mapping.function_arn)
            payload = fn.invoke(json.dumps({"Records": batch}), {}, headers)
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
        if "x-amz-function-error" in headers:
            text = payload.decode() if isinstance(payload, bytes) else str(payload)
            return text[:1000] or "function error"
        return ""

    def _on_failure(self, mapping: Any, batch: list[dict[str, Any]], tries: int, error: str) -> None:
        destination = ((mapping.destination_config or {}).get("OnFailure") or {}).get("Destination")
        LOG.error(
            "stream batch of %d records failed %d times for %s; %s", len(batch), tries, mapping.function_arn, error
        )
        if not destination:
            return
        first, last = batch[0]["dynamodb"], batch[-1]["dynamodb"]
        message = {
            "requestContext": {
                "requestId": batch[0]["eventID"],
                "functionArn": mapping.function_arn,
                "condition": "RetryAttemptsExhausted",
                "approximateInvokeCount": tries,
            },
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
            "version": "1.0",
            "timestamp": datetime.now(UTC).isoformat(),
            "DDBStreamBatchInfo": {
                "shardId": self._shard.id,
                "startSequenceNumber": first["SequenceNumber"],
                "endSequenceNumber": last["SequenceNumber"],
                "approximateArrivalOfFirstRecord": first.get("ApproximateCreationDateTime"),
                "approximateArrivalOfLastRecord": last.get("ApproximateCreationDateTime"),
                "batchSize": len(batch),
                "streamArn": mapping.event_source_arn,
            },
        }
        queue = destination.rsplit(":", 1)[-1]
        resolve_dotted(SQS_BACKENDS)[mapping.account_id][mapping.region].send_message(queue, json.dumps(message))

    def _trim(self) -> None:
        """Forget the records every mapping has passed, beyond the last ``RETAINED_RECORDS``."""
        with DYNAMODB_LOCK:
            shard = self._shard
            mappings = {mapping.uuid for mapping in shard.table.lambda_event_source_mappings.values()}
            passed = min((p for uuid, p in self._positions.items() if uuid in mappings), default=self._end())
            drop = min(passed - int(shard.starting_sequence_number), len(shard.items) - RETAINED_RECORDS)
            if drop > 0:
                del shard.items[:drop]
                shard.starting_sequence_number += drop


_POLLERS: dict[int, tuple[Any, StreamPoller]] = {}
_POLLERS_LOCK = threading.Lock()


def poller_of(shard: Any) -> StreamPoller:
    """The shard's poller (one per shard object, created on its first change)."""
    with _POLLERS_LOCK:
        known = _POLLERS.get(id(shard))
        if known is None or known[0] is not shard:
            known = (shard, StreamPoller(shard))
            _POLLERS[id(shard)] = known
        return known[1]


def add_stream_record(self: Any, old: Any, new: Any) -> None:
    """Replacement for ``StreamShard.add``: keep the record, wake the poller; never invoke inline."""
    poller = poller_of(self)
    event_name = "INSERT" if old is None else "REMOVE" if new is None else "MODIFY"
    view = self.table.stream_specification["StreamViewType"]
    sequence = len(self.items) + int(self.starting_sequence_number)
    self.items.append(resolve_dotted(STREAM_RECORD)(self.table, view, event_name, old, new, sequence))
    poller.notify()


patches(f"{STREAM_SHARD}.add", ("self", "old", "new"), add_stream_record)
relies_on(STREAM_RECORD, ("table", "stream_type", "event_name", "old", "new", "seq"))
relies_on(f"{STREAM_RECORD}.to_json", ("self",))
relies_on(f"{EVENT_PATTERN}.load", ("raw_pattern",))
relies_on(f"{EVENT_PATTERN}.matches_event", ("self", "event"))
relies_on(LAMBDA_BACKENDS)
relies_on("moto.awslambda.models.LambdaBackend.get_function", ("self", "function_name_or_arn", "qualifier"))
relies_on("moto.awslambda.models.LambdaFunction.invoke", ("self", "body", "request_headers", "response_headers"))
relies_on(SQS_BACKENDS)
relies_on("moto.sqs.models.SQSBackend.send_message", ("self", "queue_name", "message_body"))
