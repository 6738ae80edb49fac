"""SQS: a queue read and emptied message by message (the reconcile dead-letter queue, redriven by an operator)."""

from __future__ import annotations

from dataclasses import dataclass

from boto3.session import Session

from conveyor.adapters import aws


@dataclass(frozen=True)
class QueuedMessage:
    message_id: str
    body: str
    receipt_handle: str


class SqsQueue:
    def __init__(self, session: Session, queue_url: str) -> None:
        self._sqs = aws.client(session, "sqs")
        self.url = queue_url

    def receive(self, max_messages: int = 10) -> list[QueuedMessage]:
        """Up to ``max_messages`` (at most 10) messages, without waiting; they are hidden from other readers for
        the queue's visibility timeout until deleted (raises botocore's errors)."""
        response = self._sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=max_messages, WaitTimeSeconds=0)
        return [
            QueuedMessage(message["MessageId"], message["Body"], message["ReceiptHandle"])
            for message in response.get("Messages", [])
        ]

    def delete(self, message: QueuedMessage) -> None:
        self._sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message.receipt_handle)
