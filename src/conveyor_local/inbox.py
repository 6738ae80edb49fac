"""The local cloud's inbox: everything Conveyor published, kept where ``conveyor local inbox`` can read it.

On AWS, consumers add their own rules to Conveyor's lifecycle bus and their own subscriptions to its topic.
The local cloud adds one of each, for the developer, with standard wiring only: a rule on the bus matching
``source: conveyor`` whose target is an SQS queue, and an SQS subscription of the notification topic (the
SNS envelope keeps the message attributes). Both are local-cloud resources, never in ``template.yaml``.

``conveyor local inbox`` drains the two queues into ``<state-dir>/inbox.jsonl`` (SQS hands a message to one
reader; the journal lets every later reading see it again) and prints the journal.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

INBOX_FILE = "inbox.jsonl"


class InboxQueues(BaseModel):
    """Where the local cloud's inbox receives events and notifications (``local.json``: ``inbox``); ``None``
    when the template has no lifecycle bus (output ``LifecycleEventBusName``) or no topic."""

    model_config = ConfigDict(frozen=True)

    events: str | None = None
    notifications: str | None = None


class InboxEntry(BaseModel):
    """One thing Conveyor published: a lifecycle event or a notification."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["event", "notification"]
    received_at: datetime
    time: datetime | None = None
    detail_type: str | None = None
    subject: str | None = None
    app: str | None = None
    deployment_id: str | None = None
    environment: str | None = None
    attributes: dict[str, str] = {}
    body: dict[str, Any] | str


def queue_names(stack_name: str) -> tuple[str, str]:
    return f"{stack_name}-local-inbox-events", f"{stack_name}-local-inbox-notifications"


def wire_inbox(session: Any, endpoint_url: str, stack_name: str, outputs: dict[str, str]) -> InboxQueues:
    """Create (or find) the inbox's queues, the bus rule and the topic subscription; idempotent."""
    sqs = session.client("sqs", endpoint_url=endpoint_url)
    events_name, notifications_name = queue_names(stack_name)

    def queue(name: str) -> tuple[str, str]:
        url = sqs.create_queue(QueueName=name)["QueueUrl"]
        return url, sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]

    queues: dict[str, str] = {}
    if bus := outputs.get("LifecycleEventBusName"):
        url, arn = queue(events_name)
        events, rule = session.client("events", endpoint_url=endpoint_url), f"{stack_name}-local-inbox"
        pattern = json.dumps({"source": ["conveyor"]})
        events.put_rule(Name=rule, EventBusName=bus, EventPattern=pattern, State="ENABLED")
        events.put_targets(Rule=rule, EventBusName=bus, Targets=[{"Id": "local-inbox", "Arn": arn}])
        queues["events"] = url
    if topic := outputs.get("NotificationTopicArn"):
        url, arn = queue(notifications_name)
        sns = session.client("sns", endpoint_url=endpoint_url)
        subscribed = {
            s["Endpoint"]
            for page in sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic)
            for s in page["Subscriptions"]
        }
        if arn not in subscribed:
            sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
        queues["notifications"] = url
    return InboxQueues.model_validate(queues)


def _drain(sqs: Any, url: str | None) -> Iterator[dict[str, Any]]:
    while url:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not messages:
            return
        for message in messages:
            yield json.loads(message["Body"])
        sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
        )


def event_entry(event: dict[str, Any], received_at: datetime) -> InboxEntry:
    detail = event.get("detail") or {}
    return InboxEntry(
        kind="event",
        received_at=received_at,
        time=detail.get("occurred_at") or event.get("time"),
        detail_type=event.get("detail-type"),
        app=detail.get("app"),
        deployment_id=detail.get("deployment_id"),
        environment=detail.get("environment"),
        body=event,
    )


def notification_entry(envelope: dict[str, Any], received_at: datetime) -> InboxEntry:
    attributes = {k: str(v.get("Value")) for k, v in (envelope.get("MessageAttributes") or {}).items()}
    return InboxEntry(
        kind="notification",
        received_at=received_at,
        time=envelope.get("Timestamp"),
        subject=envelope.get("Subject"),
        app=attributes.get("app"),
        deployment_id=attributes.get("deployment_id"),
        environment=attributes.get("environment"),
        attributes=attributes,
        body=str(envelope.get("Message", "")),
    )


def collect(sqs: Any, queues: InboxQueues, state_dir: Path) -> list[InboxEntry]:
    """Move what the queues received into the journal; the new entries, in the order received."""
    now = datetime.now(UTC)
    new = [event_entry(e, now) for e in _drain(sqs, queues.events)]
    new += [notification_entry(n, now) for n in _drain(sqs, queues.notifications)]
    new.sort(key=lambda entry: entry.time or entry.received_at)
    if new:
        with (state_dir / INBOX_FILE).open("a", encoding="utf-8") as journal:
            for entry in new:
                journal.write(entry.model_dump_json() + "\n")
    return new


def journal(state_dir: Path) -> list[InboxEntry]:
    """Everything collected so far, oldest first."""
    path = state_dir / INBOX_FILE
    if not path.exists():
        return []
    return [InboxEntry.model_validate_json(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
