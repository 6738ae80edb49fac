"""``conveyor reconcile``: a redrive of the dead-letter queue goes on past a message whose invoke failed."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from conveyor.adapters.sqs import QueuedMessage
from conveyor.domain.errors import TargetInvokeError
from conveyor.domain.ports import Invocation

from conveyor_cli import operations, reconcile


def _message(message_id: str, execution: str) -> QueuedMessage:
    event = {"detail-type": reconcile.DETAIL_TYPE, "detail": {"executionArn": execution, "status": "ABORTED"}}
    return QueuedMessage(message_id=message_id, receipt_handle=f"r-{message_id}", body=json.dumps(event))


class _Queue:
    def __init__(self, session: object, url: str) -> None:
        self.url = url
        self.batches = [[_message("m-1", "arn:throttled"), _message("m-2", "arn:fine")]]
        self.deleted: list[str] = []

    def receive(self) -> list[QueuedMessage]:
        return self.batches.pop(0) if self.batches else []

    def delete(self, message: QueuedMessage) -> None:
        self.deleted.append(message.message_id)


class _Reconcile:
    """The Reconcile function as Lambda's adapter sees it: throttled for one execution, answering for the other."""

    def invoke(self, function_name: str, qualifier: str, payload: dict[str, Any]) -> Invocation:
        if payload["detail"]["executionArn"] == "arn:throttled":
            raise TargetInvokeError(f"invoking {function_name}:{qualifier} failed: TooManyRequestsException")
        return Invocation({"action": "reconciled"}, None, "$LATEST", 1.0)


def test_a_failed_invoke_is_named_and_the_redrive_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    queues: list[_Queue] = []
    monkeypatch.setattr(reconcile, "SqsQueue", lambda session, url: queues.append(_Queue(session, url)) or queues[-1])
    monkeypatch.setattr(operations, "targets", lambda cloud: _Reconcile())
    cloud: Any = SimpleNamespace(
        session=None,
        outputs=SimpleNamespace(reconcile_function="conveyor-reconcile", reconcile_dead_letter_queue="https://q"),
    )
    # When the dead-letter queue is redriven and Lambda throttles the first message's invoke
    result = reconcile.redrive_dead_letters(cloud)
    # Then that message is named with why and kept in the queue; the next one is reconciled and deleted
    assert result["failed"] == ["m-1: invoking conveyor-reconcile:$LATEST failed: TooManyRequestsException"]
    assert result["reconciled"] == [{"action": "reconciled"}]
    assert queues[0].deleted == ["m-2"]
