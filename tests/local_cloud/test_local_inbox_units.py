"""The local inbox's journal: what `conveyor local inbox` reads, kept across readings, oldest first."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from conveyor_local.inbox import InboxQueues, collect, journal


class FakeQueues:
    """Two SQS queues' messages; a received message is gone once deleted, as on SQS."""

    def __init__(self, messages: dict[str, list[dict[str, Any]]]) -> None:
        self.messages = {url: [json.dumps(body) for body in bodies] for url, bodies in messages.items()}

    def receive_message(self, QueueUrl: str, **_: Any) -> dict[str, Any]:
        bodies = self.messages[QueueUrl][:10]
        return {"Messages": [{"Body": body, "ReceiptHandle": body} for body in bodies]}

    def delete_message_batch(self, QueueUrl: str, Entries: list[dict[str, str]]) -> None:
        handles = {entry["ReceiptHandle"] for entry in Entries}
        self.messages[QueueUrl] = [body for body in self.messages[QueueUrl] if body not in handles]


def _event(kind: str, at: str) -> dict[str, Any]:
    detail = {"kind": kind, "app": "hello", "deployment_id": "d-1", "environment": "staging", "occurred_at": at}
    return {"source": "conveyor", "detail-type": kind.title(), "time": at, "detail": detail}


def _notice(at: str) -> dict[str, Any]:
    attributes = {"app": "hello", "environment": "staging", "severity": "error", "deployment_id": "d-1"}
    return {
        "Type": "Notification",
        "Subject": "[Conveyor] hello 1.0.0 staging: ROLLED_BACK",
        "Message": "what failed",
        "Timestamp": at,
        "MessageAttributes": {k: {"Type": "String", "Value": v} for k, v in attributes.items()},
    }


def test_what_is_collected_is_kept_in_time_order_and_read_again(tmp_path: Path) -> None:
    # Given events and a notification waiting in the inbox's queues
    sqs = FakeQueues(
        {
            "events": [
                _event("traffic.shifted", "2026-12-03T10:00:02+00:00"),
                _event("rolled", "2026-12-03T10:00:05Z"),
            ],
            "notes": [_notice("2026-12-03T10:00:04Z")],
        }
    )
    queues = InboxQueues(events="events", notifications="notes")
    # When the inbox is read twice
    first = collect(sqs, queues, tmp_path)
    assert collect(sqs, queues, tmp_path) == []
    # Then the journal holds each once, oldest first, the notification with its attributes
    kept = journal(tmp_path)
    assert kept == first
    assert [(e.kind, e.detail_type or e.subject) for e in kept] == [
        ("event", "Traffic.Shifted"),
        ("notification", "[Conveyor] hello 1.0.0 staging: ROLLED_BACK"),
        ("event", "Rolled"),
    ]
    assert kept[1].attributes["severity"] == "error"
    assert {e.deployment_id for e in kept} == {"d-1"}
